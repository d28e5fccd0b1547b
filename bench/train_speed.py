"""Speed benchmark: training words/s of w2vdist and of gensim, measured in the same run.

    python bench/train_speed.py [--run-dir runs/text8] [--epochs 1] [--threads 1,2] [--ray-workers 2]
                                [--pair-sources pairs,corpus] [key=value]
    python bench/train_speed.py --device cuda --dims 100,300    # GPU: the Triton kernel; no gensim

words/s is corpus words (the manifest's raw_tokens per epoch) per second of training, the figure word2vec and
gensim report, counted the same way for both: gensim's time is that of `train()` alone (vocabulary built
before), w2vdist's that of its epochs (from the train record; Ray start-up and writing vectors/ excluded).

Each trainer runs in its own process, whose peak resident memory is printed. w2vdist runs
- on its own without Ray (`python -m w2vdist.train.local`: the same loop a Ray worker runs) with each thread
  count of --threads, compared with gensim with as many workers, and
- under Ray Train with each --ray-workers count (data-parallel replicas, gloo on CPUs), on the same run
  directory, compared with gensim with as many workers as the machine has cores.
Each run is made with every input mode of --pair-sources. On a GPU, it prints words/s for each dim of --dims and
the fraction of the training time the loop waited for input. Training writes into a scratch run directory whose
inputs link to --run-dir (preprocessed first, see bench/train_quality.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "corpora" / "enwiki_2015_text8style_100MB.txt.gz"


def scratch_run(source: Path, parent: Path, name: str) -> Path:
    """A run directory that shares `source`'s preprocess output (links) and gets its own training output."""
    run = parent / name
    run.mkdir()
    for dataset in ("vocab", "pairs", "corpus"):
        if (source / dataset).exists():
            (run / dataset).symlink_to((source / dataset).resolve())
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["stages"] = {"preprocess": manifest["stages"]["preprocess"]}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def measured(command: list[str], threads: int | None = None) -> tuple[str, int]:
    """Run `command`; return (its standard output, the peak resident memory of its process in MiB)."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True, env=env)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"{' '.join(command)} failed")
    return output, usage.ru_maxrss // 1024


def train_record(run: Path) -> dict:
    record = json.loads((run / "manifest.json").read_text())["stages"]["train"]
    epochs = record["stats"]["epochs"]
    seconds = sum(e["seconds"] for e in epochs)
    return {"words_per_s": record["stats"]["words_per_s"], "seconds": seconds,
            "input_wait": sum(e["input_wait_s"] for e in epochs) / seconds}


def gensim_child(epochs: int, workers: int) -> None:
    """(In a child process) train gensim on the corpus; print the training seconds as JSON."""
    import gzip

    from gensim.models import Word2Vec
    from gensim.models.word2vec import Text8Corpus

    with tempfile.TemporaryDirectory(prefix="w2vdist-bench-") as tmp:
        text = Path(tmp) / "text8_like"
        with gzip.open(CORPUS, "rb") as src, open(text, "wb") as dst:
            shutil.copyfileobj(src, dst)
        model = Word2Vec(sg=1, vector_size=100, window=5, negative=5, sample=1e-3, min_count=5, workers=workers,
                         seed=1)
        corpus = Text8Corpus(str(text))
        model.build_vocab(corpus)
        started = time.perf_counter()
        model.train(corpus, total_examples=model.corpus_count, epochs=epochs)
        print(json.dumps({"seconds": time.perf_counter() - started}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=str(REPO / "runs" / "text8"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dims", default="100", help="comma-separated dims (GPU: 100,300)")
    parser.add_argument("--threads", default="", help="comma-separated thread counts for the run without Ray "
                                                      "(default: every core)")
    parser.add_argument("--ray-workers", default="", help="comma-separated num_workers for runs under Ray")
    parser.add_argument("--pair-sources", default="corpus", help="comma-separated pair_source values (pairs,corpus)")
    parser.add_argument("--gensim-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--gensim-workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="more w2vdist settings")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    if args.gensim_child:
        gensim_child(args.epochs, args.gensim_workers)
        return 0
    source_dir = Path(args.run_dir)
    if not (source_dir / "manifest.json").is_file():
        sys.exit(f"{source_dir} has no preprocess output: run bench/train_quality.py (or w2vdist preprocess) first")
    manifest = json.loads((source_dir / "manifest.json").read_text())
    raw_words = manifest["stages"]["preprocess"]["stats"]["raw_tokens"]
    rows = []
    (REPO / "runs").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="w2vdist-speed-", dir=REPO / "runs") as tmp:
        for dim in [int(d) for d in args.dims.split(",")]:
            for source in args.pair_sources.split(","):
                settings = [f"epochs={args.epochs}", f"dim={dim}", f"use_gpu={args.device == 'cuda'}",
                            f"pair_source={source}", *args.overrides]
                for threads in [int(t) for t in args.threads.split(",") if t] or [cores]:
                    run = scratch_run(source_dir, Path(tmp), f"alone-{dim}-{source}-{threads}")
                    _, peak = measured([sys.executable, "-m", "w2vdist.train.local", str(run), *settings], threads)
                    rows.append((f"w2vdist {source}, no Ray, {threads} thread(s), dim {dim}", train_record(run),
                                 peak, threads))
                for workers in [int(w) for w in args.ray_workers.split(",") if w]:
                    run = scratch_run(source_dir, Path(tmp), f"ray-{workers}-{source}-{dim}")
                    measured([sys.executable, "-m", "w2vdist.cli", "train", str(run), f"num_workers={workers}",
                              *settings])
                    rows.append((f"w2vdist {source}, Ray, {workers} workers, dim {dim}", train_record(run), None,
                                 cores))
    gensim: dict[int, float] = {}
    if args.device == "cpu":
        for workers in sorted({row[3] for row in rows}):
            output, gensim_peak = measured([sys.executable, __file__, "--gensim-child", f"--epochs={args.epochs}",
                                            f"--gensim-workers={workers}"])
            seconds = json.loads(output.strip().splitlines()[-1])["seconds"]
            gensim[workers] = raw_words * args.epochs / seconds
            rows.append((f"gensim, {workers} worker(s), dim 100",
                         {"words_per_s": gensim[workers], "seconds": seconds, "input_wait": None}, gensim_peak,
                         workers))

    print(f"\n{'':54s}{'words/s':>12s}{'vs gensim':>11s}{'train s':>9s}{'input wait':>12s}{'peak MiB':>10s}")
    for name, figures, peak, workers in rows:
        ratio = f"{figures['words_per_s'] / gensim[workers]:.2f}x" if workers in gensim else "-"
        wait = "-" if figures["input_wait"] is None else f"{100 * figures['input_wait']:.1f}%"
        print(f"{name:54s}{figures['words_per_s']:12,.0f}{ratio:>11s}{figures['seconds']:9.1f}{wait:>12s}"
              f"{'-' if peak is None else peak:>10}")
    print("(vs gensim: against gensim with as many workers as w2vdist's threads; Ray rows against gensim with every "
          "core)")
    print(f"({cores} cores; load average {os.getloadavg()[0]:.1f} at the end: other work on the machine slows "
          f"every figure)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
