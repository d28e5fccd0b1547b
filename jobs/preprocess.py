"""`w2vdist preprocess` as a spark-submit job: the submitter's master and Spark settings win.

    spark-submit --master spark://HOST:7077 jobs/preprocess.py INPUT... --out RUN_DIR [key=value ...]

The executors need the `w2vdist` package importable (install it on every node, or pass it with --py-files).
"""

import sys

from w2vdist.cli import main

if __name__ == "__main__":
    sys.exit(main(["preprocess", "--submitted", *sys.argv[1:]]))
