"""Skip-gram (center, context) pairs with word2vec's dynamic window, shuffled into files of bounded size.

For each center a window b is drawn uniformly from 1..window and every word at distance 1..b on either side inside
the same chunk is a context, so distance d appears with weight (window - d + 1). Shuffling is two-level: chunks go
to files by a seeded hash, and each file's pairs are permuted, which mixes pairs from hundreds of chunks per file
without a full shuffle of every pair across the cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from w2vdist.preprocess.randomness import WINDOW_STREAM, uniform

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

PAIRS_SCHEMA = pa.schema([("center", pa.int32()), ("context", pa.int32())])
OUTPUT_BATCH = 1 << 20


def window_pairs(chunk_ids: np.ndarray, ids: pa.ListArray, window: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All (center, context) pairs of the given id lists; pairs never cross from one list to another."""
    offsets = ids.offsets.to_numpy()
    flat = ids.values.slice(offsets[0], offsets[-1] - offsets[0]).to_numpy(zero_copy_only=False)
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    index = np.arange(len(flat))
    positions = index - np.repeat(offsets[:-1], lengths)
    remaining = np.repeat(lengths, lengths) - positions - 1  # words after each center in its chunk
    reach = 1 + (uniform(seed, WINDOW_STREAM, np.repeat(chunk_ids, lengths), positions) * window).astype(np.int64)
    centers, contexts = [], []
    for distance in range(1, window + 1):
        within = reach >= distance
        ahead = index[within & (remaining >= distance)]
        behind = index[within & (positions >= distance)]
        centers += [flat[ahead], flat[behind]]
        contexts += [flat[ahead + distance], flat[behind - distance]]
    return (np.concatenate(centers).astype(np.int32, copy=False),
            np.concatenate(contexts).astype(np.int32, copy=False))


def expected_pairs(kept_tokens: float, window: int) -> float:
    """Pairs from `kept_tokens` words, ignoring chunk edges: each center has 2 E[b] = window + 1 contexts."""
    return kept_tokens * (window + 1)


def make_pairs(corpus: "DataFrame", window: int, seed: int, num_files: int) -> "DataFrame":
    """(chunk_id, ids) -> (center, context), in `num_files` partitions of shuffled pairs."""
    from pyspark.sql import functions as F

    spread = corpus.repartition(num_files, F.xxhash64("chunk_id", F.lit(seed))).sortWithinPartitions("chunk_id")

    def generate(batches):
        batches = [batch for batch in batches if batch.num_rows]
        if not batches:
            return
        table = pa.Table.from_batches(batches)
        chunk_ids = table.column("chunk_id").to_numpy()
        centers, contexts = window_pairs(chunk_ids, table.column("ids").combine_chunks(), window, seed)
        order = np.random.default_rng([seed, int(chunk_ids[0])]).permutation(len(centers))
        centers, contexts = centers[order], contexts[order]
        for start in range(0, len(centers), OUTPUT_BATCH):
            yield pa.RecordBatch.from_arrays(
                [pa.array(centers[start:start + OUTPUT_BATCH]), pa.array(contexts[start:start + OUTPUT_BATCH])],
                schema=PAIRS_SCHEMA)

    return spread.mapInArrow(generate, "center int, context int")
