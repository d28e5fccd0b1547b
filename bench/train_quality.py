"""Quality benchmark: w2vdist against gensim, same corpus, same settings, same machine, same run.

    python bench/train_quality.py [--run-dir runs/text8] [--workers 1] [--gensim-workers 2]
                                  [--pair-sources corpus,pairs] [key=value ...]

On ../shared/data/corpora/enwiki_2015_text8style_100MB.txt.gz with min_count 5, dim 100, window 5, negative 5,
sample 1e-3 and 5 epochs, trains w2vdist (`w2vdist train`, Ray, --workers workers) with each pair source
(preprocessing the run directory first, with pair_draws 5, when it has no complete preprocess output) and
gensim's skip-gram on the same text, then scores them the same way, with gensim's own evaluation: the Google
analogies restricted to the 30,000 most frequent words, WordSim-353 and SimLex-999 (gensim's test data)
Spearman. Prints all, the differences and whether each w2vdist run meets the bar: analogy >= gensim + 0.5
point, WordSim >= gensim, SimLex >= gensim - 0.01. key=value words are w2vdist settings (shared_negatives=...).
Takes about 15 minutes on 2 cores.
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
PREPROCESS = {"min_count": 5, "window": 5, "sample": 1e-3, "phrase_passes": 0, "pair_draws": 5}
TRAIN = {"dim": 100, "negative": 5, "epochs": 5}
ANALOGY_BAR, WORDSIM_BAR, SIMLEX_BAR = 0.5, 0.0, -0.01   # w2vdist - gensim must be at least these

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

    settings = [f"{k}={v}" for k, v in TRAIN.items()] + [f"num_workers={workers}", "force=true", *overrides]
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


def score(kv) -> tuple[float, float, float]:
    from gensim.test.utils import datapath

    analogy = kv.evaluate_word_analogies(str(ANALOGIES), restrict_vocab=30000)[0]
    wordsim = kv.evaluate_word_pairs(str(WORDSIM))[1][0]
    simlex = kv.evaluate_word_pairs(datapath("simlex999.txt"))[1][0]
    return 100 * analogy, float(wordsim), float(simlex)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=str(REPO / "runs" / "text8"))
    parser.add_argument("--workers", type=int, default=1, help="w2vdist's num_workers")
    parser.add_argument("--gensim-workers", type=int, default=2)
    parser.add_argument("--pair-sources", default="corpus,pairs")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="more w2vdist settings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    run_dir = Path(args.run_dir)
    ensure_preprocessed(run_dir)
    from w2vdist.rundir import RunDir

    words = RunDir(run_dir).stage("preprocess")["stats"]["raw_tokens"] * TRAIN["epochs"]
    rows = []
    for source in args.pair_sources.split(","):
        kv, seconds = train_w2vdist(run_dir, args.workers, [f"pair_source={source}", *args.overrides])
        rows.append((f"w2vdist, pair_source={source}", score(kv), seconds))
    theirs, their_seconds = train_gensim(args.gensim_workers)
    gensim = score(theirs)

    print(f"\n{'':32s}{'analogy (30k) %':>17s}{'WordSim-353':>13s}{'SimLex-999':>12s}{'train s':>10s}"
          f"{'words/s':>12s}")
    for name, (analogy, wordsim, simlex), seconds in rows + [(f"gensim, {args.gensim_workers} workers", gensim,
                                                              their_seconds)]:
        print(f"{name:32s}{analogy:17.2f}{wordsim:13.4f}{simlex:12.4f}{seconds:10.1f}{words / seconds:12,.0f}")
    passed_all = True
    for name, (analogy, wordsim, simlex), _ in rows:
        gaps = (analogy - gensim[0], wordsim - gensim[1], simlex - gensim[2])
        passed = gaps[0] >= ANALOGY_BAR and gaps[1] >= WORDSIM_BAR and gaps[2] >= SIMLEX_BAR
        passed_all &= passed
        print(f"{name} - gensim: analogy {gaps[0]:+.2f} points, WordSim {gaps[1]:+.4f}, SimLex {gaps[2]:+.4f}: "
              f"bar {'met' if passed else 'NOT met'}")
    print(f"bar: analogy >= gensim + {ANALOGY_BAR} point, WordSim >= gensim + {WORDSIM_BAR}, SimLex >= gensim "
          f"{SIMLEX_BAR:+}")
    return 0 if passed_all else 1


if __name__ == "__main__":
    sys.exit(main())
