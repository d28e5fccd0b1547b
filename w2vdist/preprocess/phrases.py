"""Phrases, word2phrase style: score adjacent word pairs, join those above a threshold, repeat for longer phrases.

Scores (Mikolov et al. 2013, and word2phrase.c): with counts c(.) from the pass's own input and T its token count,
    word2phrase: (c(ab) - min_count) / (c(a) c(b)) * T
    npmi:        ln(p(ab) / (p(a) p(b))) / -ln(p(ab)),  p(x) = c(x) / T
and a pair is a candidate only when c(a), c(b) and c(ab) are all at least min_count. Joining is greedy from the
left, as word2phrase writes its output: after `a b` is joined, `b` cannot also join the word after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# Bigram keys are "a b": tokens never hold white space, since every token pattern match is a word.
KEY_SEPARATOR = " "


def gram_counts(tokens: pa.ListArray, bigrams: bool = True) -> list[pa.RecordBatch]:
    """Counts of every token and, with `bigrams`, every adjacent pair "a b" inside a list, for one Arrow batch."""
    offsets = tokens.offsets.to_numpy()
    flat = tokens.values.slice(offsets[0], offsets[-1] - offsets[0])
    grams = [flat]
    if bigrams and len(flat) > 1:
        inside = np.ones(len(flat) - 1, dtype=bool)
        starts = offsets[1:-1] - offsets[0]
        inside[starts[(starts > 0) & (starts < len(flat))] - 1] = False
        keys = pc.binary_join_element_wise(flat.slice(0, len(flat) - 1), flat.slice(1), KEY_SEPARATOR)
        grams.append(keys.filter(pa.array(inside)))
    counted = [pc.value_counts(g) for g in grams]
    return [pa.RecordBatch.from_arrays([c.field(0), c.field(1)], names=["gram", "count"]) for c in counted]


def count_grams(chunks: "DataFrame", passes: list[list[str]] = (), connector: str = "_",
                bigrams: bool = True) -> "DataFrame":
    """(tokens) -> (gram, count) for every token and adjacent pair "a b", after joining the given phrase passes.

    Each Arrow batch is counted in Python (Arrow's hash counting) and Spark only sums those partial counts, which
    moves far fewer rows than exploding every token into its own row.
    """
    from pyspark.sql import functions as F

    rewrite = phrase_rewriter(chunks, passes, connector)

    def count(batches):
        for batch in batches:
            yield from gram_counts(rewrite(batch.column("tokens")), bigrams)

    partial = chunks.select("tokens").mapInArrow(count, "gram string, count long")
    return partial.groupBy("gram").agg(F.sum("count").alias("count"))


def phrase_rewriter(chunks: "DataFrame", passes: list[list[str]], connector: str):
    """A function of a token ListArray that joins each pass's phrases in turn, for use inside Arrow UDFs."""
    shipped = chunks.sparkSession.sparkContext.broadcast([list(keys) for keys in passes]) if passes else None

    def rewrite(tokens: pa.ListArray) -> pa.ListArray:
        for keys in (shipped.value if shipped is not None else []):
            tokens = join_phrases(tokens, pa.array(keys, pa.string()), connector)
        return tokens

    return rewrite


def unigram_counts(gram_counts: "DataFrame") -> "DataFrame":
    from pyspark.sql import functions as F

    return (gram_counts.where(~F.col("gram").contains(KEY_SEPARATOR))
            .select(F.col("gram").alias("word"), "count"))


def score_bigrams(gram_counts: "DataFrame", min_count: int, train_words: int, scoring: str) -> "DataFrame":
    """(gram, count) -> (a, b, count, score) for every candidate pair."""
    from pyspark.sql import functions as F

    words = unigram_counts(gram_counts).where(F.col("count") >= min_count)
    parts = F.split("gram", KEY_SEPARATOR, 2)
    pairs = (gram_counts.where(F.col("gram").contains(KEY_SEPARATOR) & (F.col("count") >= min_count))
             .select(parts[0].alias("a"), parts[1].alias("b"), "count"))
    left = words.select(F.col("word").alias("a"), F.col("count").alias("count_a"))
    right = words.select(F.col("word").alias("b"), F.col("count").alias("count_b"))
    joined = pairs.join(left, "a").join(right, "b")
    total = float(train_words)
    if scoring == "word2phrase":
        score = (F.col("count") - min_count) / (F.col("count_a") * F.col("count_b")) * total
    else:
        p_ab = F.col("count") / total
        score = F.log(p_ab / ((F.col("count_a") / total) * (F.col("count_b") / total))) / -F.log(p_ab)
    return joined.select("a", "b", "count", score.cast("double").alias("score"))


def join_phrases(tokens: pa.ListArray, phrase_keys: pa.Array, connector: str) -> pa.ListArray:
    """Rewrite each token list, joining the pairs whose key "a b" is in `phrase_keys`, greedily from the left."""
    offsets = tokens.offsets.to_numpy()
    flat = tokens.values.slice(offsets[0], offsets[-1] - offsets[0])
    offsets = offsets - offsets[0]
    n = len(flat)
    if n < 2 or len(phrase_keys) == 0:
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat)
    left, right = flat.slice(0, n - 1), flat.slice(1)
    candidate = pc.is_in(pc.binary_join_element_wise(left, right, KEY_SEPARATOR), value_set=phrase_keys)
    candidate = candidate.to_numpy(zero_copy_only=False).copy()
    starts = offsets[1:-1]
    starts = starts[(starts > 0) & (starts < n)]
    candidate[starts - 1] = False  # a pair whose right word starts the next chunk
    # In a run of consecutive candidates the 1st, 3rd, 5th ... join: each join uses up its right word.
    index = np.arange(n - 1)
    run_start = candidate & ~np.concatenate(([False], candidate[:-1]))
    last_run_start = np.maximum.accumulate(np.where(run_start, index, 0))
    joined = candidate & ((index - last_run_start) % 2 == 0)
    merged = pc.binary_join_element_wise(left, right, connector)
    merged = pa.concat_arrays([merged, pa.nulls(1, merged.type)])
    values = pc.if_else(pa.array(np.concatenate((joined, [False]))), merged, flat)
    keep = ~np.concatenate(([False], joined))
    new_offsets = np.concatenate(([0], np.cumsum(keep)))[offsets]
    return pa.ListArray.from_arrays(pa.array(new_offsets, pa.int32()), values.filter(pa.array(keep)))


def apply_phrases(chunks: "DataFrame", passes: list[list[str]], connector: str) -> "DataFrame":
    """(chunk_id, tokens) -> (chunk_id, tokens) with each pass's phrases ("a b" keys) joined by `connector`."""
    rewrite = phrase_rewriter(chunks, passes, connector)

    def rewrite_batches(batches):
        for batch in batches:
            yield pa.RecordBatch.from_arrays([batch.column("chunk_id"), rewrite(batch.column("tokens"))],
                                             names=["chunk_id", "tokens"])

    return chunks.select("chunk_id", "tokens").mapInArrow(rewrite_batches, "chunk_id long, tokens array<string>")
