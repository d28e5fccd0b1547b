"""Quality benchmark: w2vdist against gensim, same corpus, same settings, same machine, same run.

    python bench/train_quality.py [--run-dir runs/text8] [--workers 1] [--gensim-workers 2] [key=value ...]

On ../shared/data/corpora/enwiki_2015_text8style_100MB.txt.gz with min_count 5, dim 100, window 5, negative 5,
sample 1e-3 and 5 epochs, trains w2vdist (`w2vdist train`, Ray, --workers workers) on the run directory's
pairs (preprocessing it first when it has no complete preprocess output) and gensim's skip-gram on the same text,
then scores both the same way, with gensim's own evaluation: the Google analogies restricted to the 30,000 most
frequent words, and WordSim-353 Spearman. Prints both, the differences and whether w2vdist meets the bar
(analogy >= gensim - 1 point, WordSim >= gensim - 0.02). key=value words are w2vdist settings (batch_size=...).
Takes about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CORPUS = DATA / "corpora" / "enwiki_2015_text8style_100MB.txt.gz"
ANALOGIES = DATA / "eval" / "questions-words.txt"
WORDSIM = DATA / "eval" / "wordsim353.tsv"
PREPROCESS = {"min_count": 5, "window": 5, "sample": 1e-3, "phrase_passes": 0}
TRAIN = {"dim": 100, "negative": 5, "epochs": 5}
ANALOGY_BAR, WORDSIM_BAR = 1.0, 0.02

log = logging.getLogger("bench")


def ensure_preprocessed(run_dir: Path) -> None:
    from w2vdist.cli import main as cli_main
    from w2vdist.rundir import RunDir

    if run_dir.is_dir() and RunDir(run_dir).is_complete("preprocess"):
        used = RunDir(run_dir).stage("preprocess")["config"]
        different = {k: used.get(k) for k, v in PREPROCESS.items() if used.get(k) != v}
        if different:
            sys.exit(f"{run_dir} was preprocessed with {different}; the benchmark needs {PREPROCESS}")
        return
    log.info("preprocessing %s into %s", CORPUS, run_dir)
    code = cli_main(["preprocess", str(CORPUS), "--out", str(run_dir), *(f"{k}={v}" for k, v in PREPROCESS.items())])
    if code:
        sys.exit(code)


def keyed_vectors(words: list[str], vectors: np.ndarray):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(words, vectors)
    return kv


def train_w2vdist(run_dir: Path, workers: int, overrides: list[str]):
    from w2vdist.config import load_config
    from w2vdist.train.launcher import run_train

    settings = [f"{k}={v}" for k, v in TRAIN.items()] + [f"num_workers={workers}", *overrides]
    record = run_train(load_config([], settings, {"out": str(run_dir)}))
    table = pq.read_table(run_dir / "vectors", columns=["word", "vector"])
    vectors = np.array(table.column("vector").to_pylist(), dtype=np.float32)
    return keyed_vectors(table.column("word").to_pylist(), vectors), record["seconds"]["train"]


def train_gensim(workers: int):
    from gensim.models import Word2Vec
    from gensim.models.word2vec import Text8Corpus

    with tempfile.TemporaryDirectory(prefix="w2vdist-bench-") as tmp:
        text = Path(tmp) / "text8_like"
        with gzip.open(CORPUS, "rb") as src, open(text, "wb") as dst:
            shutil.copyfileobj(src, dst)
        model = Word2Vec(sg=1, vector_size=TRAIN["dim"], window=PREPROCESS["window"], negative=TRAIN["negative"],
                         sample=PREPROCESS["sample"], min_count=PREPROCESS["min_count"], workers=workers, seed=1)
        corpus = Text8Corpus(str(text))
        model.build_vocab(corpus)
        started = time.perf_counter()
        model.train(corpus, total_examples=model.corpus_count, epochs=TRAIN["epochs"])
        seconds = time.perf_counter() - started
    return model.wv, seconds


def score(kv) -> tuple[float, float]:
    analogy = kv.evaluate_word_analogies(str(ANALOGIES), restrict_vocab=30000)[0]
    wordsim = kv.evaluate_word_pairs(str(WORDSIM))[1][0]
    return 100 * analogy, float(wordsim)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=str(REPO / "runs" / "text8"))
    parser.add_argument("--workers", type=int, default=1, help="w2vdist's num_workers")
    parser.add_argument("--gensim-workers", type=int, default=2)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="more w2vdist settings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    run_dir = Path(args.run_dir)
    ensure_preprocessed(run_dir)
    from w2vdist.rundir import RunDir

    raw_words = RunDir(run_dir).stage("preprocess")["stats"]["raw_tokens"]
    ours, our_seconds = train_w2vdist(run_dir, args.workers, args.overrides)
    theirs, their_seconds = train_gensim(args.gensim_workers)
    (our_analogy, our_wordsim), (their_analogy, their_wordsim) = score(ours), score(theirs)

    words = raw_words * TRAIN["epochs"]
    print(f"\n{'':24s}{'analogy (30k) %':>17s}{'WordSim-353':>13s}{'train s':>10s}{'words/s':>12s}")
    print(f"{'w2vdist':24s}{our_analogy:17.2f}{our_wordsim:13.4f}{our_seconds:10.1f}{words / our_seconds:12,.0f}")
    print(f"{'gensim':24s}{their_analogy:17.2f}{their_wordsim:13.4f}{their_seconds:10.1f}"
          f"{words / their_seconds:12,.0f}")
    print(f"{'w2vdist - gensim':24s}{our_analogy - their_analogy:+17.2f}{our_wordsim - their_wordsim:+13.4f}")
    passed = our_analogy >= their_analogy - ANALOGY_BAR and our_wordsim >= their_wordsim - WORDSIM_BAR
    print(f"bar (analogy >= gensim - {ANALOGY_BAR} point, WordSim >= gensim - {WORDSIM_BAR}): "
          f"{'met' if passed else 'NOT met'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
