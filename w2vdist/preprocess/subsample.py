"""Subsampling of frequent words, with word2vec's keep probability, and the mapping of tokens to vocabulary ids.

    p_keep(w) = (sqrt(c(w) / (s T)) + 1) * (s T) / c(w)     (capped at 1)

with s the `sample` setting and T the total count of vocabulary words (word2vec's train_words). Each draw is a hash
of (seed, chunk id, position), so the kept corpus does not depend on how Spark splits the work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from w2vdist.preprocess.phrases import phrase_rewriter
from w2vdist.preprocess.randomness import SUBSAMPLE_STREAM, uniform

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore"):  # a word absent from the corpus (retraining) is never drawn anyway
        return np.minimum((np.sqrt(counts / threshold) + 1.0) * threshold / counts, 1.0)


def expected_kept(counts: np.ndarray, sample: float) -> float:
    return float((np.asarray(counts, dtype=np.float64) * keep_probabilities(counts, sample)).sum())


def subsample_tokens(chunk_ids: np.ndarray, tokens: pa.ListArray, vocab_words: pa.Array,
                     keep_probability: np.ndarray, seed: int) -> pa.ListArray:
    """Token lists -> id lists of the vocabulary words that survive subsampling, in text order."""
    offsets = tokens.offsets.to_numpy()
    flat = tokens.values.slice(offsets[0], offsets[-1] - offsets[0])
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    ids = pc.fill_null(pc.index_in(flat, value_set=vocab_words), -1).to_numpy(zero_copy_only=False)
    positions = np.arange(len(flat)) - np.repeat(offsets[:-1], lengths)
    draws = uniform(seed, SUBSAMPLE_STREAM, np.repeat(chunk_ids, lengths), positions)
    keep = (ids >= 0) & (draws < keep_probability[np.maximum(ids, 0)])
    new_offsets = np.concatenate(([0], np.cumsum(keep)))[offsets]
    return pa.ListArray.from_arrays(pa.array(new_offsets, pa.int32()), pa.array(ids[keep], pa.int32()))


def subsample(chunks: "DataFrame", vocab: pa.Table, sample: float, seed: int, passes: list[list[str]] = (),
              connector: str = "_") -> "DataFrame":
    """(chunk_id, tokens) -> (chunk_id, ids): the corpus, with the phrase passes joined, as vocabulary ids after
    min_count and subsampling."""
    sc = chunks.sparkSession.sparkContext
    rewrite = phrase_rewriter(chunks, passes, connector)
    words = sc.broadcast(vocab["word"].to_pylist())
    keep = sc.broadcast(keep_probabilities(vocab["count"].to_numpy(), sample))

    def to_ids(batches):
        value_set = pa.array(words.value, pa.string())
        for batch in batches:
            chunk_ids = batch.column("chunk_id").to_numpy()
            ids = subsample_tokens(chunk_ids, rewrite(batch.column("tokens")), value_set, keep.value, seed)
            yield pa.RecordBatch.from_arrays([batch.column("chunk_id"), ids], names=["chunk_id", "ids"])

    return chunks.select("chunk_id", "tokens").mapInArrow(to_ids, "chunk_id long, ids array<int>")
