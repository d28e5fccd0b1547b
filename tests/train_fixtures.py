"""Small run directories for the training tests, written the way preprocess writes them (vocab/, corpus/, pairs/,
manifest.json through RunDir.commit), from plain Python: no Spark needed.

`two_topic_sentences` is a corpus with an obvious structure: each sentence talks about one of two topics, so
after training every topic word's nearest neighbours are words of its own topic.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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


def dynamic_window_pairs(ids: list[int], window: int, rng: random.Random) -> list[tuple[int, int]]:
    """word2vec's skip-gram pairs of one chunk: each center draws b in 1..window, contexts at distance 1..b."""
    pairs = []
    for i, center in enumerate(ids):
        reach = rng.randint(1, window)
        for distance in range(1, reach + 1):
            if i + distance < len(ids):
                pairs.append((center, ids[i + distance]))
            if i - distance >= 0:
                pairs.append((center, ids[i - distance]))
    return pairs


def build_run_dir(path: Path, sentences: list[list[str]], *, window: int = 3, min_count: int = 1,
                  pairs_per_file: int = 5000, corpus_files: int = 1, seed: int = 1) -> Path:
    counts = Counter(word for sentence in sentences for word in sentence)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    index = {word: i for i, word in enumerate(words)}
    chunks = [[index[w] for w in sentence if w in index] for sentence in sentences]
    rng = random.Random(seed)
    pairs = [pair for chunk in chunks for pair in dynamic_window_pairs(chunk, window, rng)]
    rng.shuffle(pairs)

    run = RunDir(path, create=True)
    staging = run.begin("preprocess")
    for name in ("vocab", "corpus", "pairs"):
        (staging / name).mkdir()
    pq.write_table(pa.table({"id": pa.array(range(len(words)), pa.int32()), "word": words,
                             "count": pa.array([counts[w] for w in words], pa.int64())}),
                   staging / "vocab" / "part-00000.parquet")
    for number in range(corpus_files):
        rows = range(number, len(chunks), corpus_files)
        pq.write_table(pa.table({"chunk_id": pa.array(rows, pa.int64()),
                                 "ids": pa.array([chunks[i] for i in rows], pa.list_(pa.int32()))}),
                       staging / "corpus" / f"part-{number:05d}.parquet")
    for number, start in enumerate(range(0, len(pairs), pairs_per_file)):
        part = pairs[start:start + pairs_per_file]
        pq.write_table(pa.table({"center": pa.array([c for c, _ in part], pa.int32()),
                                 "context": pa.array([o for _, o in part], pa.int32())}),
                       staging / "pairs" / f"part-{number:05d}.parquet")
    raw_tokens = sum(len(s) for s in sentences)
    stats = {"raw_tokens": raw_tokens, "vocab_size": len(words), "tokens_after_min_count": sum(map(len, chunks)),
             "tokens_after_subsampling": sum(map(len, chunks)), "pairs": len(pairs),
             "pair_files": -(-len(pairs) // pairs_per_file)}
    run.commit("preprocess", staging, ["vocab", "corpus", "pairs"],
               {"config": {"window": window, "min_count": min_count, "sample": 0.0, "seed": seed}, "stats": stats})
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
