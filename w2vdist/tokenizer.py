"""The tokenizer: the same rules in plain Python (for queries) and as Spark column expressions (for corpora).

Steps, in order: optional ASCII folding, optional lower-casing, every match of `token_pattern`, then tokens made only
of digits are kept, replaced by `number_token` or dropped. The pattern uses `\\p{..}` classes, which Java's regex
and Python's `regex` module read alike, so both sides split text the same way (a test checks it).
"""

import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

import regex

from w2vdist.config import DEFAULT_TOKEN_PATTERN, Config

if TYPE_CHECKING:
    from pyspark.sql import Column

NUMBER_PATTERN = r"^\p{N}+$"


def fold_ascii(text: str) -> str:
    """Accents folded to ASCII as text8 does: NFKD, then every non-ASCII character dropped."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


@dataclass(frozen=True)
class Tokenizer:
    lowercase: bool = True
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    ascii_fold: bool = False
    numbers: str = "keep"
    number_token: str = "<num>"

    @classmethod
    def from_config(cls, config: Config) -> "Tokenizer":
        return cls(lowercase=config.lowercase, token_pattern=config.token_pattern, ascii_fold=config.ascii_fold,
                   numbers=config.numbers, number_token=config.number_token)

    def tokenize(self, text: str) -> list[str]:
        if self.ascii_fold:
            text = fold_ascii(text)
        if self.lowercase:
            text = text.lower()
        tokens = [m.group(0) for m in regex.finditer(self.token_pattern, text)]
        if self.numbers == "keep":
            return tokens
        number = regex.compile(NUMBER_PATTERN)
        if self.numbers == "drop":
            return [t for t in tokens if not number.match(t)]
        return [self.number_token if number.match(t) else t for t in tokens]

    def spark_tokens(self, text: "Column") -> "Column":
        """An array<string> column of the tokens of `text`, built from Spark's own functions."""
        from pyspark.sql import functions as F

        if self.ascii_fold:
            text = _fold_ascii_udf()(text)
        if self.lowercase:
            text = F.lower(text)
        tokens = F.regexp_extract_all(text, F.lit(self.token_pattern), 0)
        if self.numbers == "drop":
            tokens = F.filter(tokens, lambda t: ~t.rlike(NUMBER_PATTERN))
        elif self.numbers == "replace":
            tokens = F.transform(tokens, lambda t: F.when(t.rlike(NUMBER_PATTERN), F.lit(self.number_token))
                                 .otherwise(t))
        return tokens


def _fold_ascii_udf():
    # Spark has no Unicode normalisation function; an Arrow-backed pandas UDF keeps it to one call per batch.
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")
    def fold(texts: pd.Series) -> pd.Series:
        return texts.str.normalize("NFKD").str.encode("ascii", "ignore").str.decode("ascii")

    return fold
