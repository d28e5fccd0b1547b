"""Vectors: queries agree with gensim on the same vectors; every format loads; bad input gets named errors."""

import gzip
import json

import numpy as np
import pytest
from gensim.models import KeyedVectors

import w2vdist
from tests.vector_helpers import text8_keyed_vectors, text8_vectors, write_run_dir
from w2vdist.config import DEFAULT_TOKEN_PATTERN
from w2vdist.cli import main
from w2vdist.errors import UnknownWordsError, VectorFileError
from w2vdist.vectors import Vectors


@pytest.fixture(scope="module")
def kv():
    return text8_keyed_vectors()


@pytest.fixture(scope="module")
def vectors():
    return text8_vectors()


def _same_ranking(ours, theirs):
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)


@pytest.mark.parametrize("positive, negative", [(["king"], []), (["france", "berlin"], ["germany"]),
                                                (["war", "peace"], []), ([], ["the"])])
def test_most_similar_matches_gensim(kv, vectors, positive, negative):
    _same_ranking(vectors.most_similar(positive, negative, topn=10), kv.most_similar(positive, negative, topn=10))


def test_restrict_vocab_searches_only_the_most_frequent_words(kv, vectors):
    ours = vectors.most_similar(["city"], topn=8, restrict_vocab=300)
    _same_ranking(ours, kv.most_similar(["city"], topn=8, restrict_vocab=300))
    assert all(vectors.key_to_index[w] < 300 for w, _ in ours)


def test_neighbours_batch_equals_one_query_at_a_time(vectors):
    words = vectors.index_to_key[100:140]
    batched = vectors.neighbours(words, topn=5)
    for word, row in zip(words, batched):
        _same_ranking(row, vectors.most_similar([word], topn=5))
        assert word not in [w for w, _ in row]


def test_similarity_analogy_and_odd_one_out_match_gensim(kv, vectors):
    assert vectors.similarity("king", "queen") == pytest.approx(float(kv.similarity("king", "queen")), abs=1e-6)
    _same_ranking(vectors.analogy("man", "king", "woman", topn=5), kv.most_similar(["king", "woman"], ["man"], 5))
    for words in (["king", "queen", "prince", "car"], ["france", "germany", "italy", "music"]):
        assert vectors.doesnt_match(words) == kv.doesnt_match(words)


def test_3cosmul_follows_levy_and_goldberg_as_gensim(kv, vectors):
    a, b, c = (vectors.unit_vectors([w])[0] for w in ("paris", "france", "rome"))
    unit = vectors.unit_vectors(vectors.index_to_key)
    shifted = [(unit @ v + 1) / 2 for v in (a, b, c)]
    expected = shifted[1] * shifted[2] / (shifted[0] + 1e-6)
    expected[vectors.ids(["paris", "france", "rome"])] = -np.inf
    best = np.argsort(-expected)[:5]
    ours = vectors.analogy("paris", "france", "rome", topn=5, method="mul")
    assert [w for w, _ in ours] == [vectors.index_to_key[i] for i in best]
    np.testing.assert_allclose([s for _, s in ours], expected[best], rtol=1e-5)
    _same_ranking(ours, kv.most_similar_cosmul(["france", "rome"], ["paris"], topn=5))
    _same_ranking(vectors.most_similar_cosmul(["france", "rome"], ["paris"], topn=5), ours)


def test_unknown_words_are_all_listed(vectors):
    with pytest.raises(UnknownWordsError) as caught:
        vectors.most_similar(["king", "qwxzy", "King", "zzyzx"])
    message = str(caught.value)
    assert caught.value.words == ["qwxzy", "King", "zzyzx"]
    assert "'qwxzy'" in message and "'zzyzx'" in message and "did you mean 'king'" in message


def test_package_exports_vectors():
    assert w2vdist.Vectors is Vectors
    assert "Vectors" in dir(w2vdist)


# --- gensim's habits -------------------------------------------------------------------------------------------
def test_lookups_as_gensim(kv, vectors):
    assert vectors.index_to_key == kv.index_to_key and vectors.key_to_index == kv.key_to_index
    np.testing.assert_array_equal(vectors.vectors, kv.vectors)
    np.testing.assert_array_equal(vectors["king"], kv["king"])
    np.testing.assert_array_equal(vectors[["king", "queen"]], kv[["king", "queen"]])
    np.testing.assert_allclose(vectors.get_vector("king", norm=True), kv.get_vector("king", norm=True), atol=1e-6)
    assert vectors.get_index("king") == kv.get_index("king") and vectors.vector_size == kv.vector_size
    with pytest.raises(KeyError, match="unknown word 'qwxzy'"):  # gensim raises KeyError too
        vectors["qwxzy"]
    assert repr(vectors) == f"<Vectors: {len(kv):,} words x 50 dimensions, with counts, from the test vectors>"


def test_most_similar_takes_raw_vectors_weights_and_topn_none_as_gensim(kv, vectors):
    raw = 3.0 * kv["king"] - kv["man"]  # not unit length: gensim uses a raw vector as given
    for positive, negative in [([raw], []), ([raw, "woman"], ["queen"]), ([("king", 2.0), ("war", 0.5)], [])]:
        _same_ranking(vectors.most_similar(positive, negative, topn=8), kv.most_similar(positive, negative, topn=8))
    _same_ranking(vectors.most_similar(raw, topn=5), kv.most_similar(raw, topn=5))  # a single vector
    np.testing.assert_allclose(vectors.most_similar("king", topn=None), kv.most_similar("king", topn=None),
                               atol=1e-5)
    np.testing.assert_allclose(vectors.most_similar("king", topn=None, restrict_vocab=100),
                               kv.most_similar("king", topn=None, restrict_vocab=100), atol=1e-5)
    np.testing.assert_allclose(vectors.most_similar_cosmul(["king", raw], ["man"], topn=None),
                               kv.most_similar_cosmul(["king", raw], ["man"], topn=None), rtol=1e-4)
    _same_ranking(vectors.most_similar_cosmul("king", topn=6), kv.most_similar_cosmul("king", topn=6))


def test_to_gensim_and_back(kv, vectors):
    theirs = vectors.to_gensim()
    assert theirs.index_to_key == vectors.index_to_key
    np.testing.assert_array_equal(theirs.vectors, vectors.vectors)
    assert [theirs.get_vecattr(w, "count") for w in ("the", "king")] == [
        int(vectors.counts[vectors.get_index(w)]) for w in ("the", "king")]
    _same_ranking(theirs.most_similar(["france", "berlin"], ["germany"], topn=5),
                  vectors.most_similar(["france", "berlin"], ["germany"], topn=5))
    back = Vectors.from_gensim(kv)
    assert back.index_to_key == kv.index_to_key and back.source == "gensim KeyedVectors"
    np.testing.assert_array_equal(back.vectors, kv.vectors)
    np.testing.assert_array_equal(back.counts, kv.expandos["count"])
    bare = KeyedVectors(4)
    bare.add_vectors(["a", "b"], np.eye(2, 4, dtype=np.float32))
    assert Vectors.from_gensim(bare).counts is None and Vectors.from_gensim(bare).to_gensim().index_to_key == ["a", "b"]


def run_dir_with_tokenizer(tmp_path, words, seed):
    """A run directory of random vectors whose manifest names the tokenizer preprocess used."""
    rng = np.random.default_rng(seed)
    run = write_run_dir(tmp_path / "run", words, np.arange(len(words), 0, -1), rng.normal(size=(len(words), 8)))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["stages"]["preprocess"]["config"] = {"lowercase": True, "token_pattern": DEFAULT_TOKEN_PATTERN,
                                                  "ascii_fold": False, "numbers": "keep", "number_token": "<num>",
                                                  "phrase_connector": "_"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_queries_go_through_the_runs_tokenizer(tmp_path):
    run = run_dir_with_tokenizer(tmp_path, ["new_york", "new", "york", "paris", "café", "los_angeles"], seed=2)
    vectors = Vectors.from_run(run)
    assert vectors.get_index("New York") == 0 and vectors.get_index("PARIS") == 3 and "Los  Angeles" in vectors
    assert vectors.get_index("new") == 1  # a word of the vocabulary is taken as it is
    assert [w for w, _ in vectors.most_similar("New York", topn=6)] == [
        w for w, _ in vectors.most_similar("new_york", topn=6)]
    bare = Vectors(vectors.index_to_key, vectors.vectors)  # no run, no tokenizer: a hint instead
    with pytest.raises(UnknownWordsError, match="'New York' .did you mean 'new_york'.") as caught:
        bare.most_similar("New York")
    with pytest.raises(UnknownWordsError, match="'Paris' .did you mean 'paris'."):
        bare.ids(["Paris"])
    assert caught.value.words == ["New York"]


def test_similar_prints_the_word_a_query_became(tmp_path, capsys):
    run = run_dir_with_tokenizer(tmp_path, ["new_york", "paris", "rome", "berlin"], seed=3)
    assert main(["similar", str(run), "New York", "--topn", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "New York (new_york)"


# --- formats ---------------------------------------------------------------------------------------------------
WORDS = ["the", "new_york", "café", "a"]
MATRIX = np.array([[0.5, -1.25, 3.0], [1e-8, 2.5e10, -0.1], [0.0, 1.0, 2.0], [-3.0, 0.25, 7.5]], np.float32)


def test_reads_glove_text_without_header(tmp_path):
    path = tmp_path / "glove.6B.3d.txt"
    path.write_text("".join(f"{w} {' '.join(map(str, row))}\n" for w, row in zip(WORDS, MATRIX.tolist())))
    loaded = Vectors.load(path)
    assert loaded.index_to_key == WORDS
    np.testing.assert_array_equal(loaded.vectors, MATRIX)
    assert loaded.counts is None


def test_reads_word2vec_text_as_the_c_tool_writes_it_gzipped(tmp_path):
    # The C tool leaves a space at the end of each line.
    lines = [f"{len(WORDS)} 3"] + [f"{w} {' '.join(f'{x:f}' for x in row)} " for w, row in zip(WORDS, MATRIX)]
    path = tmp_path / "vectors.txt.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    loaded = Vectors.load(path)
    assert loaded.index_to_key == WORDS
    np.testing.assert_allclose(loaded.vectors, MATRIX, atol=1e-6)


def test_reads_binary_written_by_gensim_without_record_newlines(tmp_path, kv):
    path = tmp_path / "gensim.w2v"  # no telling extension: the content says binary
    kv.save_word2vec_format(str(path), binary=True)
    loaded = Vectors.load(path)
    assert loaded.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(loaded.vectors, kv.vectors)


@pytest.mark.parametrize("content, expected", [
    ("2 3\nthe 1 2 3\nof 1 2\n", "line 3: expected a word and 3 numbers, got 2"),
    ("2 3\nthe 1 2 3\nof 1 x 3\n", "line 3: expected 3 numbers after the word, got '1 x 3'"),
    ("3 3\nthe 1 2 3\nof 1 2 3\n", "the header announces 3 words but 2 lines follow"),
    ("the 1 2 3\nof 1 2 3 4\n", "line 2: expected a word and 3 numbers, got 4"),
])
def test_malformed_text_names_the_line(tmp_path, content, expected):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(VectorFileError, match=expected) as caught:
        Vectors.load(path)
    assert str(path) in str(caught.value)


def test_truncated_binary_names_the_record(tmp_path):
    path = tmp_path / "cut.bin"
    Vectors(WORDS, MATRIX).save(path, "word2vec-binary")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(VectorFileError, match="record 4 of the 4 the header announces is cut short"):
        Vectors.load(path)


def test_missing_file_and_unknown_format_are_usage_errors(tmp_path):
    with pytest.raises(VectorFileError, match="'.*nope.txt' does not exist"):
        Vectors.load(tmp_path / "nope.txt")
    path = tmp_path / "v.txt"
    Vectors(WORDS, MATRIX).save(path, "word2vec")
    with pytest.raises(VectorFileError, match="unknown vector format 'fasttext': expected one of word2vec"):
        Vectors.load(path, format="fasttext")
    with pytest.raises(VectorFileError, match="unknown export format 'hdf5'"):
        Vectors(WORDS, MATRIX).save(tmp_path / "v.h5", "hdf5")


# --- command line ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vector_file(tmp_path_factory, vectors):
    path = tmp_path_factory.mktemp("cli") / "text8.txt"
    vectors.save(path, "word2vec")
    return path


def test_similar_prints_each_words_neighbours(vector_file, vectors, capsys):
    assert main(["similar", str(vector_file), "france", "war", "--topn", "3", "--restrict-vocab", "2000"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "france" and lines[4] == "war"
    expected = vectors.neighbours(["france"], topn=3, restrict_vocab=2000)[0]
    assert [line.split() for line in lines[1:4]] == [[w, f"{s:.4f}"] for w, s in expected]


def test_analogy_prints_the_answers(vector_file, vectors, capsys):
    assert main(["analogy", str(vector_file), "man", "king", "woman", "--topn", "2", "--method", "mul"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "man is to king as woman is to"
    assert [line.split()[0] for line in lines[1:]] == [w for w, _ in vectors.analogy("man", "king", "woman", 2,
                                                                                     "mul")]


def test_unknown_query_words_exit_with_one_message(vector_file, capsys):
    assert main(["similar", str(vector_file), "france", "Zqxj", "Paris"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("w2vdist similar: error: unknown words 'Zqxj', 'Paris' (did you mean 'paris'?)")
    assert str(vector_file) in err and "Traceback" not in err


@pytest.mark.parametrize("fmt, name", [("word2vec", "v.txt"), ("word2vec-binary", "v.bin"), ("parquet", "v.parquet"),
                                       ("npy", "v.npy")])
def test_vectors_with_nan_or_inf_are_refused_or_dropped_on_request(tmp_path, capsys, fmt, name):
    matrix = MATRIX.copy()
    matrix[1, 0], matrix[3, 2] = np.nan, -np.inf
    path = tmp_path / name
    Vectors(WORDS, matrix).save(path, fmt)
    assert main(["similar", str(path), WORDS[0]]) == 2
    err = capsys.readouterr().err
    assert f"2 of the {len(WORDS)} vectors hold NaN or infinite numbers" in err and str(path) in err
    assert f"'{WORDS[1]}' (row 2)" in err and f"'{WORDS[3]}' (row 4)" in err and "--nonfinite drop" in err
    assert main(["similar", str(path), WORDS[0], "--nonfinite", "drop"]) == 0
    printed = capsys.readouterr()
    neighbours = [line.split()[0] for line in printed.out.splitlines()[1:]]
    assert neighbours == [WORDS[2]]  # the two finite words left, and the query itself is never returned
    assert "nan" not in printed.out
    kept = Vectors.load(path, nonfinite="drop")
    assert kept.index_to_key == [WORDS[0], WORDS[2]] and np.isfinite(kept.vectors).all()
