"""Skip-gram (center, context) pairs, drawn exactly as training draws an epoch, shuffled into files of bounded size.

pairs/ holds `pair_draws` independent draws, pairs/draw=K/ for K = 0..pair_draws-1; draw K is what training's
epoch K generates from corpus/ (random_streams, with the pair draw as the epoch index):

    keep      the token at position p of chunk c (p counts every word of corpus/, before subsampling), word w, is
              kept iff keep_numpy(bits(chunk key of c under stream_key(seed, SUBSAMPLE, K), p), threshold[w])
    compact   the kept words of a chunk, in text order: a dropped word leaves no gap (word2vec)
    reach     the kept word at kept index i, position p, draws b = reach_numpy(bits(chunk key of c under
              stream_key(seed, WINDOW, K), p * draw_slots), window), uniform in 1..window
    contexts  the kept words at kept indices i-b..i-1 and i+1..i+b of the same chunk

so distance d (among kept words) has weight window - d + 1. Shuffling is two-level: chunks go to files by a seeded
hash (Stream.SPREAD), and each file's pairs are permuted (Stream.PAIR_SHUFFLE), which mixes pairs from hundreds of
chunks per file without a full shuffle of every pair across the cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from w2vdist.datasets import PAIRS
from w2vdist.random_streams import Stream, bits_numpy, chunk_keys, draw_slots, keep_numpy, reach_numpy, stream_key

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

OUTPUT_BATCH = 1 << 20


def center_stride(window: int) -> int:
    """The counter stride between two positions' window draws (random_streams.draw_slots; the reach is slot 0 of
    a position)."""
    return draw_slots(window, 1)


def _tokens(ids: pa.ListArray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Flattened id lists: (ids, chunk index of each, position of each in its chunk, number of chunks)."""
    offsets = ids.offsets.to_numpy()
    flat = ids.values.slice(offsets[0], offsets[-1] - offsets[0]).to_numpy(zero_copy_only=False)
    offsets = (offsets - offsets[0]).astype(np.int64)
    lengths = np.diff(offsets)
    chunk_of = np.repeat(np.arange(len(lengths)), lengths)
    return flat, chunk_of, np.arange(len(flat), dtype=np.int64) - offsets[:-1][chunk_of], len(lengths)


def _keep(chunk_ids: np.ndarray, flat: np.ndarray, chunk_of: np.ndarray, positions: np.ndarray,
          keep_thresholds: np.ndarray, seed: int, draw: int) -> np.ndarray:
    keys = chunk_keys(stream_key(seed, Stream.SUBSAMPLE, draw), np.asarray(chunk_ids, dtype=np.int64))
    return keep_numpy(bits_numpy(keys[chunk_of], positions), np.asarray(keep_thresholds)[flat])


def keep_mask(chunk_ids: np.ndarray, ids: pa.ListArray, keep_thresholds: np.ndarray, seed: int,
              draw: int) -> np.ndarray:
    """Whether each token of the id lists (flattened) survives subsampling in pair draw (or epoch) `draw`."""
    flat, chunk_of, positions, _ = _tokens(ids)
    return _keep(chunk_ids, flat, chunk_of, positions, keep_thresholds, seed, draw)


def draw_pairs(chunk_ids: np.ndarray, ids: pa.ListArray, keep_thresholds: np.ndarray, seed: int, draw: int,
               window: int, stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All (center, context) pairs of pair draw (training epoch) `draw` of the given chunks of corpus/.

    chunk_ids: int64 [C], the chunks' ids; ids: their id lists before subsampling; keep_thresholds: int32 [V]
    (subsample.keep_thresholds). Returns int32 centers and contexts, grouped by distance; pairs never cross
    from one list to another. `stride` is center_stride(window), computed when not given.
    """
    stride = center_stride(window) if stride is None else stride
    chunk_ids = np.asarray(chunk_ids, dtype=np.int64)
    flat, chunk_of, positions, chunks = _tokens(ids)
    keep = _keep(chunk_ids, flat, chunk_of, positions, keep_thresholds, seed, draw)
    words, positions, chunk_of = flat[keep], positions[keep], chunk_of[keep]
    kept = np.bincount(chunk_of, minlength=chunks)
    starts = np.cumsum(kept) - kept
    index = np.arange(len(words))
    before = index - starts[chunk_of]             # kept words before each center in its chunk
    after = kept[chunk_of] - before - 1           # kept words after it
    window_keys = chunk_keys(stream_key(seed, Stream.WINDOW, draw), chunk_ids)
    reach = reach_numpy(bits_numpy(window_keys[chunk_of], positions * stride), window)
    centers, contexts = [], []
    for distance in range(1, window + 1):
        within = reach >= distance
        ahead = index[within & (after >= distance)]
        behind = index[within & (before >= distance)]
        centers += [words[ahead], words[behind]]
        contexts += [words[ahead + distance], words[behind - distance]]
    return (np.concatenate(centers).astype(np.int32, copy=False),
            np.concatenate(contexts).astype(np.int32, copy=False))


def expected_pairs(kept_tokens: float, window: int) -> float:
    """Pairs from `kept_tokens` words, ignoring chunk edges: each center has 2 E[b] = window + 1 contexts."""
    return kept_tokens * (window + 1)


def make_pairs(corpus: "DataFrame", keep_thresholds: np.ndarray, window: int, seed: int, draw: int,
               num_files: int) -> "DataFrame":
    """(chunk_id, ids) of corpus/ -> (center, context) of pair draw `draw`, in `num_files` partitions of shuffled
    pairs. Chunks go to partitions by a hash keyed by (seed, draw), so every draw mixes other chunks per file."""
    from pyspark.sql import functions as F

    sc = corpus.sparkSession.sparkContext
    thresholds = sc.broadcast(np.asarray(keep_thresholds, dtype=np.int32))
    stride = center_stride(window)
    spread_key = stream_key(seed, Stream.SPREAD, draw)
    spread = (corpus.repartition(num_files, F.xxhash64("chunk_id", F.lit(spread_key)))
              .sortWithinPartitions("chunk_id"))

    def generate(batches):
        batches = [batch for batch in batches if batch.num_rows]
        if not batches:
            return
        table = pa.Table.from_batches(batches)
        chunk_ids = table.column("chunk_id").to_numpy()
        centers, contexts = draw_pairs(chunk_ids, table.column("ids").combine_chunks(), thresholds.value, seed,
                                       draw, window, stride)
        shuffle_key = stream_key(seed, Stream.PAIR_SHUFFLE, int(chunk_ids[0]))
        order = np.random.default_rng([shuffle_key, draw]).permutation(len(centers))
        centers, contexts = centers[order], contexts[order]
        for start in range(0, len(centers), OUTPUT_BATCH):
            yield pa.RecordBatch.from_arrays(
                [pa.array(centers[start:start + OUTPUT_BATCH]), pa.array(contexts[start:start + OUTPUT_BATCH])],
                schema=PAIRS.schema)

    return spread.mapInArrow(generate, PAIRS.spark_schema)
