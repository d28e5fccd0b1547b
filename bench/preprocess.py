"""Benchmark: the whole preprocess chain on the text8-style corpus, beside gensim's phrase and vocabulary step.

    python bench/preprocess.py [--corpus PATH] [--master local[2]] [--skip-gensim]

Prints seconds per stage, tokens/s, the peak memory of the job's process tree (driver, JVM, Python workers) and the
size of pairs/; then times gensim's `Phrases` (2 passes) plus `Word2Vec.build_vocab` on the same file in this run
and prints the ratio of the two for the tokenize + count + phrases stages. pairs/ holds the default
`pair_draws` (one draw; each more adds about one more pairs step). Targets: whole chain <= 300 s on
2 cores; tokenize + count + phrases faster than gensim.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "corpora" / "enwiki_2015_text8style_100MB.txt.gz"


class PeakMemory:
    """Samples the resident memory of a process and all its children, keeping the peak."""

    def __init__(self, pid: int, interval: float = 0.5):
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._thread.start()

    def _sample(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.process, *self.process.children(recursive=True)]
                total = sum(p.memory_info().rss for p in procs if p.is_running())
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            self._stop.wait(interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_w2vdist(corpus: Path, out: Path, master: str) -> tuple[dict, float, int]:
    command = [sys.executable, "-m", "w2vdist.cli", "preprocess", str(corpus), "--out", str(out),
               f"spark_master={master}", "phrase_passes=2", "force=true"]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO)
    memory = PeakMemory(process.pid)
    code = process.wait()
    peak = memory.stop()
    wall = time.monotonic() - started
    if code != 0:
        sys.exit(f"w2vdist preprocess failed with exit code {code}")
    record = json.loads((out / "manifest.json").read_text())["stages"]["preprocess"]
    return record, wall, peak


def run_gensim(corpus: Path, workdir: Path) -> tuple[float, int, int]:
    from gensim.models import Word2Vec
    from gensim.models.phrases import Phrases
    from gensim.models.word2vec import Text8Corpus

    plain = workdir / "text8_like"
    with gzip.open(corpus, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    started = time.monotonic()
    sentences = Text8Corpus(str(plain))
    bigrams = Phrases(sentences, min_count=5, threshold=100).freeze()
    trigrams = Phrases(bigrams[sentences], min_count=5, threshold=100).freeze()
    model = Word2Vec(sg=1, min_count=5, vector_size=100, workers=1)
    model.build_vocab(trigrams[bigrams[sentences]])
    elapsed = time.monotonic() - started
    return elapsed, len(bigrams.phrasegrams) + len(trigrams.phrasegrams), len(model.wv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--skip-gensim", action="store_true")
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus} (expected ../shared/data beside the checkout)")

    with tempfile.TemporaryDirectory(prefix="w2vdist-bench-") as tmp:
        workdir = Path(tmp)
        record, wall, peak = run_w2vdist(args.corpus, workdir / "run", args.master)
        stats, seconds = record["stats"], record["seconds"]
        pairs_bytes = sum(f.stat().st_size for f in (workdir / "run" / "pairs").rglob("*.parquet"))
        front = seconds["tokenize"] + seconds["count"] + seconds["phrases"]
        print(f"\nw2vdist preprocess on {args.corpus.name}, {args.master}, 2 phrase passes")
        for stage, value in seconds.items():
            print(f"  {stage:<10} {value:8.1f} s")
        print(f"  wall (with JVM start) {wall:.1f} s")
        print(f"  raw tokens {stats['raw_tokens']:,}; {stats['raw_tokens'] / seconds['total']:,.0f} tokens/s overall")
        print(f"  vocabulary {stats['vocab_size']:,}; phrases per pass {stats['phrases_per_pass']}")
        print(f"  tokens after min_count {stats['tokens_after_min_count']:,} (corpus/); expected after "
              f"subsampling {stats['expected_tokens_after_subsampling']:,.0f}")
        print(f"  pairs {stats['pairs']:,} in {stats['pair_draws']} draw(s) {stats['pairs_per_draw']}, "
              f"{stats['pair_files']} files, {pairs_bytes / 2**20:.0f} MiB")
        print(f"  peak memory of the process tree {peak / 2**30:.2f} GiB")
        print(f"  tokenize + count + phrases {front:.1f} s; whole chain {seconds['total']:.1f} s "
              f"(target <= 300 s: {'met' if seconds['total'] <= 300 else 'NOT met'})")
        if args.skip_gensim:
            return
        gensim_seconds, gensim_phrases, gensim_vocab = run_gensim(args.corpus, workdir)
        print(f"\ngensim Phrases x2 + build_vocab, one process: {gensim_seconds:.1f} s "
              f"({gensim_phrases:,} phrases, vocabulary {gensim_vocab:,})")
        print(f"ratio gensim / w2vdist (tokenize + count + phrases): {gensim_seconds / front:.2f}x "
              f"({'faster' if front < gensim_seconds else 'slower'} than gensim)")


if __name__ == "__main__":
    main()
