"""The training job for `ray job submit`: the same as `w2vdist train RUN_DIR [key=value ...]`.

    ray job submit --address http://HEAD:8265 --working-dir . -- python jobs/train.py RUN_DIR num_workers=8

Under `ray job submit` RAY_ADDRESS is set, so the job joins that cluster instead of starting a local Ray. RUN_DIR
must be on storage every node sees (a shared file system): the workers read pairs/ and write checkpoints there.
"""

import sys

from w2vdist.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
