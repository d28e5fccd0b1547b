"""`w2vdist export`: every format loads back exactly, word2vec files load in gensim, run-dir states are checked."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from gensim.models import KeyedVectors

from tests.vector_helpers import write_run_dir
from w2vdist.cli import main
from w2vdist.errors import RunDirError, VectorFileError
from w2vdist.vectors import Vectors

WORDS = ["the", "of", "new_york", "café", "united_states_of_america", "x"] + [f"w{i}" for i in range(194)]


@pytest.fixture
def run(tmp_path):
    rng = np.random.default_rng(7)
    matrix = rng.normal(size=(len(WORDS), 16)).astype(np.float32)
    counts = np.arange(len(WORDS), 0, -1, dtype=np.int64) * 10
    write_run_dir(tmp_path / "run", WORDS, counts, matrix)
    return tmp_path / "run", matrix, counts


@pytest.mark.parametrize("name, binary", [("v.txt", False), ("v.bin", True), ("v.txt.gz", False), ("v.bin.gz", True)])
def test_word2vec_formats_load_in_gensim_exactly_with_their_counts(run, tmp_path, capsys, name, binary):
    run_dir, matrix, counts = run
    out = tmp_path / name  # the format, and gzip, from the name
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    assert f"wrote 200 vectors of 16 dimensions to {out}, {out}.vocab" in capsys.readouterr().out
    assert (out.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    kv = KeyedVectors.load_word2vec_format(str(out), binary=binary, fvocab=f"{out}.vocab")
    assert kv.index_to_key == WORDS  # phrases keep their connector, order is by id
    np.testing.assert_array_equal(kv.vectors, matrix)  # 9 significant digits round-trip float32
    assert [kv.get_vecattr(w, "count") for w in WORDS] == counts.tolist()
    loaded = Vectors.load(out)
    np.testing.assert_array_equal(loaded.vectors, matrix)
    np.testing.assert_array_equal(loaded.counts, counts)  # read back from beside the file


@pytest.mark.parametrize("name, binary", [("v.txt", False), ("v.bin.gz", True), ("v.parquet", None), ("v.npy", None)])
def test_limit_reads_only_the_first_words_as_gensim(run, tmp_path, name, binary):
    run_dir, matrix, counts = run
    out = tmp_path / name
    Vectors.from_run(run_dir).save(out)
    loaded = Vectors.load(out, limit=7)
    assert loaded.index_to_key == WORDS[:7]
    np.testing.assert_array_equal(loaded.vectors, matrix[:7])
    np.testing.assert_array_equal(loaded.counts, counts[:7])
    if binary is not None:
        kv = KeyedVectors.load_word2vec_format(str(out), binary=binary, limit=7)
        assert kv.index_to_key == loaded.index_to_key and np.array_equal(kv.vectors, loaded.vectors)
    assert Vectors.load(run_dir, limit=3).index_to_key == WORDS[:3]


def test_text_is_read_as_a_stream(tmp_path):
    """Reading holds the matrix and a chunk of lines, not the file (whose text takes 3x the matrix): less memory
    than the file's size, where reading it whole took about 4x."""
    import tracemalloc

    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(60_000, 50)).astype(np.float32)
    path = tmp_path / "big.txt"
    Vectors([f"w{i}" for i in range(len(matrix))], matrix).save(path)
    tracemalloc.start()
    loaded = Vectors.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(loaded.vectors, matrix)
    assert path.stat().st_size > 25_000_000
    assert peak < path.stat().st_size, f"peak {peak:,} bytes for a file of {path.stat().st_size:,}"


def test_a_stale_counts_file_is_replaced_or_removed(run, tmp_path):
    run_dir, matrix, counts = run
    out = tmp_path / "v.bin"
    Vectors.from_run(run_dir).save(out)
    assert out.with_name("v.bin.vocab").exists()
    Vectors(WORDS, matrix).save(out)  # vectors without counts: their file must not pass for these
    assert not out.with_name("v.bin.vocab").exists() and Vectors.load(out).counts is None
    out.with_name("v.bin.vocab").write_text("the 5\n")
    with pytest.raises(VectorFileError, match=r"v.bin.vocab' has no count for 199 word\(s\)"):
        Vectors.load(out)


def test_a_name_without_a_known_extension_needs_a_format(run, tmp_path, capsys):
    run_dir, _, _ = run
    assert main(["export", str(run_dir), "--out", str(tmp_path / "vectors.w2v")]) == 2
    assert "cannot tell the format from the name 'vectors.w2v'" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--out", str(tmp_path / "vectors.w2v"), "--format", "word2vec"]) == 0


def test_parquet_has_word_count_vector_and_round_trips(run, tmp_path):
    run_dir, matrix, counts = run
    out = tmp_path / "vectors.parquet"
    assert main(["export", str(run_dir), "--format", "parquet", "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.schema.names == ["word", "count", "vector"]
    assert str(table.schema.field("vector").type) == "list<element: float>"
    assert table.column("word").to_pylist() == WORDS
    loaded = Vectors.load(out)
    np.testing.assert_array_equal(loaded.vectors, matrix)
    np.testing.assert_array_equal(loaded.counts, counts)


def test_npy_writes_the_matrix_and_the_vocabulary(run, tmp_path):
    run_dir, matrix, counts = run
    out = tmp_path / "emb.npy"
    assert main(["export", str(run_dir), "--format", "npy", "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), matrix)
    vocab_lines = (tmp_path / "emb.vocab.tsv").read_text(encoding="utf-8").splitlines()
    assert vocab_lines[:3] == ["the\t2000", "of\t1990", "new_york\t1980"]
    loaded = Vectors.load(out)
    assert loaded.index_to_key == WORDS
    np.testing.assert_array_equal(loaded.counts, counts)


def test_normalize_scales_rows_to_unit_length(run, tmp_path):
    run_dir, matrix, _ = run
    out = tmp_path / "unit.txt"
    assert main(["export", str(run_dir), "--format", "word2vec", "--out", str(out), "--normalize"]) == 0
    loaded = Vectors.load(out).vectors
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
