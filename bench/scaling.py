"""Scaling benchmark: data-parallel replicas against one worker, speed and quality, in the same run.

    python bench/scaling.py [--run-dir runs/text8] [--workers 1,2,8] [--epochs 5] [key=value ...]

Trains the text8-style run directory (bench/train_quality.py preprocesses it) under Ray Train with each worker
count of --workers, each worker with one CPU thread: Ray is started with as many CPUs as workers, so 8 workers
on this 2-core machine are over-subscribed (a quarter of a core each) and show whether quality holds, not speed.
Each run is scored like bench/train_quality.py (analogy on 30k words, WordSim-353, SimLex-999). Prints words/s
(corpus words over all workers), the speed-up over the first count, the score differences, the bytes each worker
sends per sync and per trained word, the sync time, and the bars: 2 workers >= 1.8x the words/s of 1, their
vectors within 0.5 analogy point and 0.01 WordSim of 1 worker's; 8 workers within 1 analogy point.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from train_quality import TRAIN, ensure_preprocessed, keyed_vectors, score  # noqa: E402
from train_speed import scratch_run  # noqa: E402


def child(run: Path, workers: int, epochs: int, overrides: list[str]) -> None:
    """(In a child process) a Ray with `workers` CPUs, then `w2vdist train` with `workers` replicas."""
    import ray

    from w2vdist.config import load_config
    from w2vdist.train.launcher import run_train, start_local_ray

    start_local_ray(num_cpus=workers, log_to_driver=True)
    settings = [f"{k}={v}" for k, v in TRAIN.items()] + [f"epochs={epochs}", f"num_workers={workers}",
                                                         *overrides]
    record = run_train(load_config([], settings, {"out": str(run)}))
    ray.shutdown()
    print(json.dumps({"words_per_s": record["stats"]["words_per_s"], "seconds": record["seconds"]["train"],
                      "bytes_per_sync": record["stats"]["bytes_per_sync"],
                      "sync_seconds": record["stats"].get("sync_seconds"), "syncs": record["stats"].get("syncs")}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=str(REPO / "runs" / "text8"))
    parser.add_argument("--workers", default="1,2,8")
    parser.add_argument("--epochs", type=int, default=TRAIN["epochs"])
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    if args.child:
        child(Path(args.run_dir), args.child, args.epochs, args.overrides)
        return 0
    import numpy as np
    import pyarrow.parquet as pq

    from w2vdist.rundir import RunDir

    source = Path(args.run_dir)
    ensure_preprocessed(source)
    raw_words = RunDir(source).stage("preprocess")["stats"]["raw_tokens"]
    rows = []
    (REPO / "runs").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="w2vdist-scaling-", dir=REPO / "runs") as tmp:
        for workers in [int(w) for w in args.workers.split(",")]:
            run = scratch_run(source, Path(tmp), f"workers-{workers}")
            done = subprocess.run([sys.executable, __file__, "--run-dir", str(run), "--child", str(workers),
                                   "--epochs", str(args.epochs), *args.overrides], cwd=REPO, stdout=subprocess.PIPE,
                                  text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if done.returncode:
                sys.exit(f"training with {workers} workers failed")
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            table = pq.read_table(run / "vectors", columns=["word", "vector"])
            kv = keyed_vectors(table.column("word").to_pylist(),
                               np.array(table.column("vector").to_pylist(), dtype=np.float32))
            rows.append((workers, figures, score(kv)))

    base_workers, base, base_scores = rows[0]
    print(f"\n{'workers':>8s}{'words/s':>12s}{'speed-up':>10s}{'analogy %':>11s}{'WordSim':>9s}{'SimLex':>9s}"
          f"{'d analogy':>11s}{'d WordSim':>11s}{'MB/sync':>9s}{'B/word':>8s}{'sync s':>8s}")
    passed = True
    for workers, figures, (analogy, wordsim, simlex) in rows:
        speedup = figures["words_per_s"] / base["words_per_s"]
        sync_mb = figures["bytes_per_sync"] / 1e6
        syncs = figures.get("syncs") or 0
        per_word = figures["bytes_per_sync"] * syncs / (raw_words * args.epochs) if syncs else 0.0
        print(f"{workers:8d}{figures['words_per_s']:12,.0f}{speedup:9.2f}x{analogy:11.2f}{wordsim:9.4f}"
              f"{simlex:9.4f}{analogy - base_scores[0]:+11.2f}{wordsim - base_scores[1]:+11.4f}{sync_mb:9.1f}"
              f"{per_word:8.2f}{figures.get('sync_seconds') or 0:8.1f}")
        if base_workers == 1 and workers == 2:
            ok = speedup >= 1.8 and analogy >= base_scores[0] - 0.5 and wordsim >= base_scores[1] - 0.01
            passed &= ok
            print(f"  bar for 2 workers (>= 1.8x, analogy within 0.5, WordSim within 0.01): "
                  f"{'met' if ok else 'NOT met'}")
        if base_workers == 1 and workers == 8:
            ok = analogy >= base_scores[0] - 1.0
            passed &= ok
            print(f"  bar for 8 workers (analogy within 1 point): {'met' if ok else 'NOT met'}")
    print(f"({os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
