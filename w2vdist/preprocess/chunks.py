"""Documents to token chunks: the unit every later step works on, and the boundary no window or phrase crosses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from w2vdist.tokenizer import Tokenizer

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def tokenize_documents(docs: "DataFrame", tokenizer: Tokenizer, max_doc_tokens: int) -> "DataFrame":
    """(text, undecodable) -> (chunk_id, tokens, first_chunk, undecodable), chunks of <= max_doc_tokens tokens.

    A 100 MB single-line corpus becomes thousands of chunks here, so the stages after this run in parallel even
    when one task had to read the whole (unsplittable, gzipped) line. Documents without tokens are dropped.
    """
    from pyspark.sql import functions as F

    tokens = docs.select(tokenizer.spark_tokens(F.col("text")).alias("tokens"), "undecodable")
    tokens = tokens.where(F.size("tokens") > 0)
    last_chunk = F.floor((F.size("tokens") - 1) / max_doc_tokens).cast("int")
    chunks = tokens.select("tokens", "undecodable", F.explode(F.sequence(F.lit(0), last_chunk)).alias("chunk"))
    return chunks.select(
        F.monotonically_increasing_id().alias("chunk_id"),
        F.slice("tokens", F.col("chunk") * max_doc_tokens + 1, F.lit(max_doc_tokens)).alias("tokens"),
        (F.col("chunk") == 0).alias("first_chunk"),
        (F.col("undecodable") & (F.col("chunk") == 0)).alias("undecodable"),
    )
