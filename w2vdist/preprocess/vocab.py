"""The vocabulary: word counts from token chunks, and ids by descending count."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from w2vdist.datasets import VOCAB
from w2vdist.errors import ConfigError, shorten
from w2vdist.preprocess.phrases import count_grams

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def count_words(chunks: "DataFrame", passes: list[list[str]] = (), connector: str = "_") -> "DataFrame":
    """(tokens) -> (word, count) over every token, after joining the given phrase passes."""
    return count_grams(chunks, passes, connector, bigrams=False).withColumnRenamed("gram", "word")


def build_vocab(word_counts: "DataFrame", min_count: int, max_vocab_size: int | None) -> pa.Table:
    """Words with count >= min_count, ids 0.. by descending count, ties by the word; at most max_vocab_size."""
    from pyspark.sql import functions as F

    kept = word_counts.where(F.col("count") >= min_count).select("word", "count").toArrow()
    if kept.num_rows == 0:
        top = word_counts.orderBy(F.desc("count")).limit(1).collect()
        most = f"the most frequent word, '{shorten(top[0]['word'])}', occurs {top[0]['count']} times" if top else \
            "the corpus has no tokens"
        raise ConfigError(f"setting 'min_count' = {min_count} leaves no word in the vocabulary ({most})")
    return order_vocab(kept["word"], kept["count"], max_vocab_size)


def order_vocab(words: pa.Array, counts: pa.Array, max_vocab_size: int | None = None) -> pa.Table:
    table = pa.table({"word": words, "count": pa.array(counts, pa.int64())})
    order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("word", "ascending")])
    if max_vocab_size is not None:
        order = order[:max_vocab_size]
    table = table.take(order)
    ids = pa.array(range(table.num_rows), pa.int32())
    return pa.table([ids, table["word"], table["count"]], schema=VOCAB.schema)


def merge_vocab(base: pa.Table, base_counts: dict[str, int], new: pa.Table) -> pa.Table:
    """Retraining: the base run's words keep their ids (with their counts in the new corpus, 0 when absent), and the
    new vocabulary's other words follow in their own order, so known rows of the trained tables map over as is."""
    added = new.filter(pc.invert(pc.is_in(new["word"], value_set=base["word"])))
    words = base["word"].to_pylist() + added["word"].to_pylist()
    counts = [base_counts.get(w, 0) for w in base["word"].to_pylist()] + added["count"].to_pylist()
    return pa.table([pa.array(range(len(words)), pa.int32()), pa.array(words, pa.string()),
                     pa.array(counts, pa.int64())], schema=VOCAB.schema)
