"""`w2vdist export`: every format loads back exactly, word2vec files load in gensim, run-dir states are checked."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from gensim.models import KeyedVectors

from tests.vector_helpers import write_run_dir
from w2vdist.cli import main
from w2vdist.errors import RunDirError
from w2vdist.vectors import Vectors

WORDS = ["the", "of", "new_york", "café", "united_states_of_america", "x"] + [f"w{i}" for i in range(194)]


@pytest.fixture
def run(tmp_path):
    rng = np.random.default_rng(7)
    matrix = rng.normal(size=(len(WORDS), 16)).astype(np.float32)
    counts = np.arange(len(WORDS), 0, -1, dtype=np.int64) * 10
    write_run_dir(tmp_path / "run", WORDS, counts, matrix)
    return tmp_path / "run", matrix, counts


@pytest.mark.parametrize("format, binary", [("word2vec", False), ("word2vec-binary", True)])
def test_word2vec_formats_load_in_gensim_exactly(run, tmp_path, capsys, format, binary):
    run_dir, matrix, _ = run
    out = tmp_path / f"vectors.{format}"
    assert main(["export", str(run_dir), "--format", format, "--out", str(out)]) == 0
    assert f"wrote 200 vectors of 16 dimensions to {out}" in capsys.readouterr().out
    kv = KeyedVectors.load_word2vec_format(str(out), binary=binary)
    assert kv.index_to_key == WORDS  # phrases keep their connector, order is by id
    np.testing.assert_array_equal(kv.vectors, matrix)  # 9 significant digits round-trip float32
    np.testing.assert_array_equal(Vectors.load(out).matrix, matrix)


def test_parquet_has_word_count_vector_and_round_trips(run, tmp_path):
    run_dir, matrix, counts = run
    out = tmp_path / "vectors.parquet"
    assert main(["export", str(run_dir), "--format", "parquet", "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.schema.names == ["word", "count", "vector"]
    assert str(table.schema.field("vector").type) == "list<element: float>"
    assert table.column("word").to_pylist() == WORDS
    loaded = Vectors.load(out)
    np.testing.assert_array_equal(loaded.matrix, matrix)
    np.testing.assert_array_equal(loaded.counts, counts)


def test_npy_writes_the_matrix_and_the_vocabulary(run, tmp_path):
    run_dir, matrix, counts = run
    out = tmp_path / "emb.npy"
    assert main(["export", str(run_dir), "--format", "npy", "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), matrix)
    vocab_lines = (tmp_path / "emb.vocab.tsv").read_text(encoding="utf-8").splitlines()
    assert vocab_lines[:3] == ["the\t2000", "of\t1990", "new_york\t1980"]
    loaded = Vectors.load(out)
    assert loaded.words == WORDS
    np.testing.assert_array_equal(loaded.counts, counts)


def test_normalize_scales_rows_to_unit_length(run, tmp_path):
    run_dir, matrix, _ = run
    out = tmp_path / "unit.txt"
    assert main(["export", str(run_dir), "--format", "word2vec", "--out", str(out), "--normalize"]) == 0
    loaded = Vectors.load(out).matrix
    np.testing.assert_allclose(np.linalg.norm(loaded, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(loaded, matrix / np.linalg.norm(matrix, axis=1, keepdims=True), rtol=1e-5)


def test_npy_output_must_end_in_npy(run, tmp_path, capsys):
    run_dir, _, _ = run
    assert main(["export", str(run_dir), "--format", "npy", "--out", str(tmp_path / "emb")]) == 2
    assert "the npy format needs a path ending in .npy" in capsys.readouterr().err
    assert not list(tmp_path.glob("emb*"))


def test_run_dir_without_finished_training_is_refused(tmp_path, capsys):
    write_run_dir(tmp_path / "killed", ["a", "b"], np.array([2, 1]), np.ones((2, 3)), train_completed=False)
    with pytest.raises(RunDirError, match="the train stage did not complete"):
        Vectors.from_run(tmp_path / "killed")
    preprocessed = tmp_path / "preprocessed"
    preprocessed.mkdir()
    (preprocessed / "manifest.json").write_text('{"stages": {"preprocess": {"completed": "2025-01-01"}}}')
    assert main(["export", str(preprocessed), "--format", "word2vec", "--out", str(tmp_path / "o.txt")]) == 2
    assert f"run directory '{preprocessed}' has no vectors/: run `w2vdist train` first" in capsys.readouterr().err
