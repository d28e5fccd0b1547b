"""Documents to token chunks: the unit every later step works on, and the boundary no window or phrase crosses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from w2vdist.tokenizer import Tokenizer

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


# Up to this many characters, ending before white space: a 100 MB single-line corpus is cut into pieces of this size
# before tokenizing, so that one task reading an unsplittable gzipped line does not also tokenize all of it alone.
PIECE_CHARS = 1 << 20
PIECE_PATTERN = rf"[\s\S]{{1,{PIECE_CHARS}}}(?=\s|$)|[\s\S]{{1,{PIECE_CHARS}}}"


def tokenize_documents(docs: "DataFrame", tokenizer: Tokenizer, max_doc_tokens: int,
                       partitions: int | None = None) -> "DataFrame":
    """(text, undecodable) -> (chunk_id, tokens, first_chunk, undecodable), chunks of <= max_doc_tokens tokens.

    Long lines are cut into pieces at white space first (tokens hold none), and the pieces are spread over
    `partitions` before the tokenizer runs. Documents without tokens are dropped.
    """
    from pyspark.sql import functions as F

    pieces = docs.select(F.posexplode(F.regexp_extract_all("text", F.lit(PIECE_PATTERN), 0)).alias("piece", "text"),
                         "undecodable")
    if partitions:
        pieces = pieces.repartition(partitions)
    tokens = pieces.select(tokenizer.spark_tokens(F.col("text")).alias("tokens"),
                           (F.col("undecodable") & (F.col("piece") == 0)).alias("undecodable"),
                           (F.col("piece") == 0).alias("first_piece"))
    tokens = tokens.where(F.size("tokens") > 0)
    last_chunk = F.floor((F.size("tokens") - 1) / max_doc_tokens).cast("int")
    chunks = tokens.select("tokens", "undecodable", "first_piece",
                           F.explode(F.sequence(F.lit(0), last_chunk)).alias("chunk"))
    return chunks.select(
        F.monotonically_increasing_id().alias("chunk_id"),
        F.slice("tokens", F.col("chunk") * max_doc_tokens + 1, F.lit(max_doc_tokens)).alias("tokens"),
        (F.col("first_piece") & (F.col("chunk") == 0)).alias("first_chunk"),
        (F.col("undecodable") & (F.col("chunk") == 0)).alias("undecodable"),
    )
