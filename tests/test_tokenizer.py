import pytest

from w2vdist.tokenizer import Tokenizer

SAMPLES = [
    "The Quick brown fox, jumped over 12 lazy dogs in 1999!",
    "Café déjà vu: naïve coöperation — São Paulo's streets.",
    "it's O'Neill's rock'n'roll; don't stop",
    "Ελληνικά κείμενα και русский текст 42",
    "tabs\tand\nnewlines  and   spaces",
    "numbers 3.14 and 2,000 and 7th and x2",
    "",
    "¡Hola! ¿Qué tal? 東京 is Tokyo",
]


def test_python_tokenizer_rules():
    assert Tokenizer().tokenize("The U.S. it's 1999, Café") == ["the", "u", "s", "it's", "1999", "café"]
    assert Tokenizer(ascii_fold=True).tokenize("Café Zürich") == ["cafe", "zurich"]
    assert Tokenizer(numbers="replace").tokenize("in 1999 and 7th") == ["in", "<num>", "and", "7th"]
    assert Tokenizer(numbers="drop").tokenize("in 1999 and 7th") == ["in", "and", "7th"]
    assert Tokenizer(lowercase=False).tokenize("New York") == ["New", "York"]


@pytest.mark.parametrize("tokenizer", [
    Tokenizer(),
    Tokenizer(lowercase=False),
    Tokenizer(ascii_fold=True),
    Tokenizer(numbers="replace"),
    Tokenizer(numbers="drop", ascii_fold=True),
])
def test_spark_and_python_tokenize_alike(spark, tokenizer):
    from pyspark.sql import functions as F

    frame = spark.createDataFrame([(text,) for text in SAMPLES], "text string")
    rows = frame.select("text", tokenizer.spark_tokens(F.col("text")).alias("tokens")).collect()
    for row in rows:
        assert list(row["tokens"]) == tokenizer.tokenize(row["text"]), row["text"]
