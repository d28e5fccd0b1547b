"""Scaling benchmark: data-parallel replicas against one worker, speed and quality, in the same run.

    python bench/scaling.py [--run-dir runs/text8] [--workers 1,2,8] [--epochs 5] [key=value ...]

Trains the text8-style run directory (bench/train_quality.py preprocesses it) under Ray Train with each worker
count of --workers, each worker with one CPU thread: Ray is started with as many CPUs as workers, so 8 workers
on this 2-core machine are over-subscribed (a quarter of a core each) and show whether quality holds, not speed.
Each run is scored like bench/train_quality.py (analogy on 30k words, WordSim-353, SimLex-999). Prints words/s
(corpus words over all workers), the speed-up over the first count, the score differences, the bytes each worker
sends per sync and per trained word, the time in syncs and the part of it spent waiting for the slowest replica,
and the bars: 2 workers >= 1.8x the words/s of 1, their vectors within 0.5 analogy point and 0.01 WordSim of 1
worker's; 8 workers within 1 analogy point.
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

    # Ray's own loggers at ERROR, as `w2vdist train` sets them: its placement-group cleaner warns every second
    start_local_ray(num_cpus=workers, log_to_driver=True, logging_config=ray.LoggingConfig(log_level="ERROR"))
    settings = [f"{k}={v}" for k, v in TRAIN.items()] + [f"epochs={epochs}", f"num_workers={workers}",
                                                         *overrides]
    record = run_train(load_config([], settings, {"out": str(run)}))
    ray.shutdown()
    print(json.dumps({"words_per_s": record["stats"]["words_per_s"], "seconds": record["seconds"]["train"],
                      "sync_seconds": record["stats"].get("sync_seconds"), "syncs": record["stats"].get("syncs"),
                      "sync_mb": record["stats"].get("sync_mb"),
                      "sync_wait_seconds": record["stats"].get("sync_wait_seconds")}))


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
          f"{'d analogy':>11s}{'d WordSim':>11s}{'MB/sync':>9s}{'B/word':>8s}{'sync s':>8s}"
          f"{'wait s':>8s}")
    passed = True
    for workers, figures, (analogy, wordsim, simlex) in rows:
        speedup = figures["words_per_s"] / base["words_per_s"]
        syncs = figures.get("syncs") or 0
        sync_mb = (figures.get("sync_mb") or 0.0) / max(syncs, 1)   # measured: only changed rows are sent
        per_word = sync_mb * 1e6 * syncs / (raw_words * args.epochs)
        print(f"{workers:8d}{figures['words_per_s']:12,.0f}{speedup:9.2f}x{analogy:11.2f}{wordsim:9.4f}"
              f"{simlex:9.4f}{analogy - base_scores[0]:+11.2f}{wordsim - base_scores[1]:+11.4f}{sync_mb:9.1f}"
              f"{per_word:8.2f}{figures.get('sync_seconds') or 0:8.1f}{figures.get('sync_wait_seconds') or 0:8.1f}")
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
    synced = [figures for workers, figures, _ in rows if workers > 1 and figures.get("syncs")]
    if base_workers == 1 and synced:
        print_projection(base["words_per_s"], synced[0], vocab_size(source))
    return 0 if passed else 1


# PROJECTION inputs that were not measured here (no GPU, no network): stated, not measured.
NVLINK_BYTES_S, NVLINK_STEP_S = 360e9, 10e-6     # NCCL all-reduce bus bandwidth of 8 H100 SXM, latency per ring step
ETHERNET_BYTES_S, ETHERNET_STEP_S = 1.1e9, 50e-6  # 10 Gb/s Ethernet, what TCP carries of it, latency per ring step
H100_WORDS_S = 35e6            # the low end of the Triton kernel's ESTIMATE with per-context negatives (README, GPU)
CORES_PER_NODE, THREAD_EFFICIENCY = 16, 0.73  # 2 threads ran 1.45x 1 thread here (bench/train_speed.py)
SYNC_EVERY = (1_000_000, 16_000_000, 64_000_000)


def projected_words_s(workers: int, worker_words_s: float, sync_s: float, sync_every: int) -> float:
    """Words/s of `workers` replicas that sync every `sync_every` words: a round trains sync_every words at the
    workers' summed rate, then waits for one sync."""
    return sync_every / (sync_every / (workers * worker_words_s) + sync_s)


def print_projection(worker_words_s: float, synced: dict, vocab: int) -> None:
    from w2vdist.train.replicas import ReplicaGroup

    working_s = max(synced["sync_seconds"] - synced["sync_wait_seconds"], 1e-9)  # without waiting for a replica
    measured_bytes_s = synced["sync_mb"] * 1e6 / working_s
    print(f"\nPROJECTION (not measured: derived from this run's 1-worker rate, {worker_words_s:,.0f} words/s, and "
          f"its sync cost without the waits, {working_s / synced['syncs'] * 1e3:.0f} ms for "
          f"{synced['sync_mb'] / synced['syncs']:.0f} MB = {measured_bytes_s / 1e9:.2f} GB/s over gloo on loopback, "
          f"arithmetic included; every row counted as changed, the most a sync sends)")
    node_words_s = worker_words_s * CORES_PER_NODE * THREAD_EFFICIENCY
    setups = [("8 H100 on NVLink", 8, H100_WORDS_S, NVLINK_BYTES_S, NVLINK_STEP_S),
              ("16 CPU nodes, 10 Gb/s", 16, node_words_s, ETHERNET_BYTES_S, ETHERNET_STEP_S)]
    print(f"{'setup':24s}{'V x dim':>14s}{'MB/sync':>9s}{'sync ms':>9s}{'sync_every':>12s}{'B/word':>8s}"
          f"{'words/s':>16s}{'of ideal':>9s}")
    for name, workers, rate, bandwidth, step_s in setups:
        for table_vocab, dim in ((vocab, 100), (1_000_000, 300)):
            sent = ReplicaGroup.bytes_per_sync(table_vocab, dim, workers)
            sync_s = sent / bandwidth + 2 * (workers - 1) * step_s
            for sync_every in SYNC_EVERY:
                words_s = projected_words_s(workers, rate, sync_s, sync_every)
                print(f"{name:24s}{f'{table_vocab:,} x {dim}':>14s}{sent / 1e6:9.0f}{sync_s * 1e3:9.1f}"
                      f"{sync_every:12,d}{sent / sync_every:8.0f}{words_s:16,.0f}{words_s / (workers * rate):8.0%}")
    print(f"(per worker: an H100 at {H100_WORDS_S:,.0f} words/s, the low end of the kernel's estimate; a CPU node "
          f"at {CORES_PER_NODE} cores x the measured 1-thread rate x {THREAD_EFFICIENCY})")


def vocab_size(run: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetDataset(run / "vocab").read(columns=["id"]).num_rows


if __name__ == "__main__":
    sys.exit(main())
