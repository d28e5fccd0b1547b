"""Tokens to vocabulary ids: corpus/, the corpus after phrases and min_count, before any subsampling.

Training subsamples corpus/ afresh every epoch (word2vec's rule), so this step only joins the phrase passes, maps
each token to its id and drops the tokens outside the vocabulary, keeping text order and the chunk ids that key
every later random draw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from w2vdist.datasets import CORPUS
from w2vdist.preprocess.phrases import phrase_rewriter

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def token_ids(tokens: pa.ListArray, vocab_words: pa.Array) -> pa.ListArray:
    """Token lists -> id lists (int32) of their vocabulary words, in text order; other tokens are dropped."""
    offsets = tokens.offsets.to_numpy()
    flat = tokens.values.slice(offsets[0], offsets[-1] - offsets[0])
    offsets = offsets - offsets[0]
    ids = pc.fill_null(pc.index_in(flat, value_set=vocab_words), -1).to_numpy(zero_copy_only=False)
    known = ids >= 0
    new_offsets = np.concatenate(([0], np.cumsum(known)))[offsets]
    return pa.ListArray.from_arrays(pa.array(new_offsets, pa.int32()), pa.array(ids[known], pa.int32()))


def to_ids(chunks: "DataFrame", vocab: pa.Table, passes: list[list[str]] = (), connector: str = "_") -> "DataFrame":
    """(chunk_id, tokens) -> (chunk_id, ids): the corpus with the phrase passes joined, as vocabulary ids."""
    sc = chunks.sparkSession.sparkContext
    rewrite = phrase_rewriter(chunks, passes, connector)
    words = sc.broadcast(vocab["word"].to_pylist())

    def convert(batches):
        value_set = pa.array(words.value, pa.string())
        for batch in batches:
            ids = token_ids(rewrite(batch.column("tokens")), value_set)
            yield pa.RecordBatch.from_arrays([batch.column("chunk_id"), ids], names=CORPUS.schema.names)

    return chunks.select("chunk_id", "tokens").mapInArrow(convert, CORPUS.spark_schema)
