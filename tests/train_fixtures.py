"""Small run directories for the training tests, written the way preprocess writes them (vocab/, corpus/, pairs/,
manifest.json through RunDir.commit), from plain Python: no Spark needed.

`two_topic_sentences` is a corpus with an obvious structure: each sentence talks about one of two topics, so
after training every topic word's nearest neighbours are words of its own topic.
"""

from __future__ import annotations

import random
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from w2vdist.preprocess.pairs import draw_pairs
from w2vdist.preprocess.subsample import keep_thresholds
from w2vdist.rundir import RunDir

TOPICS = {
    "animals": ["cat", "dog", "horse", "cow", "sheep", "goat", "mouse", "rabbit", "tiger", "lion"],
    "tools": ["hammer", "saw", "drill", "wrench", "chisel", "pliers", "spanner", "file", "clamp", "vise"],
}
GLUE = ["the", "a", "and", "of", "with"]


def two_topic_sentences(count: int = 600, length: int = 14, seed: int = 7) -> list[list[str]]:
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        words = TOPICS[rng.choice(sorted(TOPICS))]
        sentences.append([rng.choice(GLUE) if rng.random() < 0.25 else rng.choice(words) for _ in range(length)])
    return sentences


def build_run_dir(path: Path, sentences: list[list[str]], *, window: int = 3, min_count: int = 1,
                  sample: float = 0.0, pair_draws: int = 1, corpus_files: int = 1, seed: int = 1) -> Path:
    """A run directory as preprocess writes it: corpus/ before subsampling, pairs/draw=K/ drawn by preprocess's
    own draw_pairs (the law training follows), stats named as preprocess names them."""
    counts = Counter(word for sentence in sentences for word in sentence)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    index = {word: i for i, word in enumerate(words)}
    chunks = [[index[w] for w in sentence if w in index] for sentence in sentences]
    count_array = np.array([counts[w] for w in words], dtype=np.int64)
    thresholds = keep_thresholds(count_array, sample)
    ids = pa.array(chunks, pa.list_(pa.int32()))
    chunk_ids = np.arange(len(chunks), dtype=np.int64)

    run = RunDir(path, create=True)
    staging = run.begin("preprocess")
    for name in ("vocab", "corpus", "pairs"):
        (staging / name).mkdir()
    pq.write_table(pa.table({"id": pa.array(range(len(words)), pa.int32()), "word": words,
                             "count": pa.array(count_array, pa.int64())}),
                   staging / "vocab" / "part-00000.parquet")
    for number in range(corpus_files):
        rows = range(number, len(chunks), corpus_files)
        pq.write_table(pa.table({"chunk_id": pa.array(rows, pa.int64()),
                                 "ids": pa.array([chunks[i] for i in rows], pa.list_(pa.int32()))}),
                       staging / "corpus" / f"part-{number:05d}.parquet")
    pairs_per_draw = []
    for draw in range(pair_draws):
        centers, contexts = draw_pairs(chunk_ids, ids, thresholds, seed, draw, window)
        order = np.random.default_rng([seed, draw]).permutation(len(centers))
        (staging / "pairs" / f"draw={draw}").mkdir()
        pq.write_table(pa.table({"center": pa.array(centers[order], pa.int32()),
                                 "context": pa.array(contexts[order], pa.int32())}),
                       staging / "pairs" / f"draw={draw}" / "part-00000.parquet")
        pairs_per_draw.append(len(centers))
    raw_tokens = sum(len(s) for s in sentences)
    stats = {"raw_tokens": raw_tokens, "vocab_size": len(words), "tokens_after_min_count": sum(map(len, chunks)),
             "pairs": sum(pairs_per_draw), "pairs_per_draw": pairs_per_draw, "pair_draws": pair_draws,
             "pair_files": pair_draws}
    run.commit("preprocess", staging, ["vocab", "corpus", "pairs"],
               {"config": {"window": window, "min_count": min_count, "sample": sample, "seed": seed},
                "stats": stats})
    return path


def read_vectors(run: Path) -> tuple[list[str], np.ndarray]:
    table = pq.read_table(run / "vectors")
    return table.column("word").to_pylist(), np.array(table.column("vector").to_pylist(), dtype=np.float32)


def assert_topics_learned(words: list[str], vectors: np.ndarray) -> None:
    """Of each topic word's 5 nearest topic words, at least 4 are of its own topic."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    topic = {w: name for name, members in TOPICS.items() for w in members}
    for word in topic:
        i = words.index(word)
        nearest = [words[j] for j in np.argsort(-unit @ unit[i]) if words[j] in topic and j != i][:5]
        assert sum(topic[n] == topic[word] for n in nearest) >= 4, (word, nearest)


def cyclic_copies(vocab: int, most: int):
    """Rows' copies for stretched updates (stretch.py): 1..most by row id, so that rows of every count meet in a
    window; None (not stretched) for most = 1."""
    import torch

    return None if most == 1 else torch.arange(vocab, dtype=torch.int32) % most + 1


def free_port() -> int:
    """A free TCP port on loopback, for a test's own gloo process group."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
