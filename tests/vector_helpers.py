"""Shared inputs of the vector-toolkit tests: small trained vectors, run directories, the evaluation files."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from w2vdist.vectors import Vectors

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPUS = SHARED_DATA / "corpora" / "enwiki_2015_text8style_100MB.txt.gz"
QUESTIONS = SHARED_DATA / "eval" / "questions-words.txt"
WORDSIM = SHARED_DATA / "eval" / "wordsim353.tsv"


def require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"the shared test data is missing: expected {path} beside the checkout")
    return path


@functools.lru_cache(maxsize=1)
def text8_keyed_vectors():
    """gensim vectors from the first 2 MB of the text8-style corpus (CBOW, 5 epochs: about 2 s, ~6,600 words).

    Trained once per test session; gensim's own KeyedVectors, so tests can compare with gensim's answers."""
    from gensim.models import Word2Vec

    with gzip.open(require(CORPUS), "rb") as f:
        words = f.read(2_000_000).decode("ascii").split()[:-1]  # the last word may be cut
    sentences = [words[i:i + 1000] for i in range(0, len(words), 1000)]
    model = Word2Vec(sentences, vector_size=50, window=5, min_count=5, sg=0, negative=5, epochs=5, alpha=0.05,
                     workers=2, seed=1)
    return model.wv


def vectors_of(keyed_vectors) -> Vectors:
    return Vectors(keyed_vectors.index_to_key, keyed_vectors.vectors,
                   np.asarray(keyed_vectors.expandos["count"], dtype=np.int64), source="the test vectors")


def text8_vectors() -> Vectors:
    return vectors_of(text8_keyed_vectors())


def write_run_dir(path: Path, words: list[str], counts: np.ndarray, matrix: np.ndarray,
                  train_completed: bool = True) -> Path:
    """A run directory as preprocess and train leave it: vocab/, vectors/ (two part files) and the manifest."""
    ids = np.arange(len(words), dtype=np.int32)
    (path / "vocab").mkdir(parents=True)
    pq.write_table(pa.table({"id": ids, "word": words, "count": pa.array(counts, pa.int64())}),
                   path / "vocab" / "part-00000.parquet")
    (path / "vectors").mkdir()
    vectors = pa.array(list(matrix.astype(np.float32)), pa.list_(pa.float32()))
    table = pa.table({"id": ids, "word": words, "count": pa.array(counts, pa.int64()), "vector": vectors})
    half = len(words) // 2  # parts written in reverse order: readers must sort by id
    pq.write_table(table.slice(half), path / "vectors" / "part-00000.parquet")
    pq.write_table(table.slice(0, half), path / "vectors" / "part-00001.parquet")
    stages = {"preprocess": {"completed": "2025-01-01T00:00:00+00:00"},
              "train": {"completed": "2025-01-01T01:00:00+00:00" if train_completed else None}}
    (path / "manifest.json").write_text(json.dumps({"stages": stages}), encoding="utf-8")
    return path


def train_on_text(corpus: Path, *, spark, seed: int, window: int, dim: int = 20, epochs: int = 5) -> Vectors:
    """Skip-gram vectors of a one-sentence-per-line text file, trained by the project itself: `w2vdist preprocess`
    (on the given Spark session) then the training loop without Ray, every word kept and none subsampled."""
    from w2vdist.config import load_config
    from w2vdist.preprocess.job import run_preprocess
    from w2vdist.train import local

    run_dir = corpus.with_name(corpus.stem + "-run")
    settings = [f"window={window}", "min_count=1", "phrase_passes=0", "sample=0", f"seed={seed}",
                "pairs_per_file=100000"]
    run_preprocess(load_config([], settings, {"input": [str(corpus)], "out": str(run_dir)}), spark=spark)
    assert local.main([str(run_dir), f"dim={dim}", f"epochs={epochs}", f"seed={seed}", "sample=0",
                       "use_gpu=false"]) == 0
    return Vectors.from_run(run_dir)
