"""Evaluation: the same figures as gensim's evaluate_word_analogies / evaluate_word_pairs on the same vectors."""

import json
import re

import numpy as np
import pytest
from gensim.models import KeyedVectors

from tests.vector_helpers import QUESTIONS, WORDSIM, require, text8_keyed_vectors, vectors_of, write_run_dir
from w2vdist.cli import main
from w2vdist.errors import EvaluationDataError
from w2vdist.evaluation import evaluate_analogies, evaluate_similarity, read_word_pairs
from w2vdist.vectors import Vectors


@pytest.fixture(scope="module")
def questions():
    return require(QUESTIONS)


@pytest.fixture(scope="module")
def wordsim():
    return require(WORDSIM)


def _gensim_analogies(kv, path, restrict_vocab):
    score, sections = kv.evaluate_word_analogies(str(path), restrict_vocab=restrict_vocab)
    return score, {s["section"]: (len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in sections}


def _assert_same_as_gensim(kv, vectors, path, restrict_vocab):
    score, by_section = _gensim_analogies(kv, path, restrict_vocab)
    ours = evaluate_analogies(vectors, path, restrict_vocab=restrict_vocab)
    assert (ours["correct"], ours["total"]) == by_section.pop("Total accuracy")
    assert ours["accuracy"] == pytest.approx(score, abs=1e-12)
    assert {name: (s["correct"], s["total"]) for name, s in ours["sections"].items()} == by_section
    return ours


@pytest.mark.parametrize("restrict_vocab", [30000, 1500])
def test_analogies_equal_gensim(questions, restrict_vocab):
    kv = text8_keyed_vectors()
    ours = _assert_same_as_gensim(kv, vectors_of(kv), questions, restrict_vocab)
    assert ours["correct"] >= 5  # the vectors answer some questions, so agreement means something
    in_vocab = set(kv.index_to_key[:restrict_vocab])
    lines = [line.lower().split() for line in questions.read_text().splitlines() if not line.startswith(":")]
    assert ours["oov"] == sum(not set(q) <= in_vocab for q in lines)
    assert ours["total"] + ours["oov"] == 19544


@pytest.mark.parametrize("restrict_vocab", [2000, 30000])
def test_case_variants_are_resolved_as_gensim_does(questions, restrict_vocab):
    """Capitalised copies of words, some more frequent than the original, close to it: gensim maps a question word
    to the first row of its upper-case form and skips answers that are case variants of a question word."""
    base = text8_keyed_vectors()
    rng = np.random.default_rng(3)
    words, matrix = list(base.index_to_key), base.vectors
    variants = [w.capitalize() for w in words[:400]] + [w.upper() for w in words[100:200]]
    source_rows = [base.key_to_index[v.lower()] for v in variants]
    noisy = matrix[source_rows] + rng.normal(scale=0.05, size=(len(variants), matrix.shape[1])).astype(np.float32)
    # 50 variants go before everything (more frequent than their lower-case word), the rest after.
    all_words = variants[:50] + words + variants[50:]
    all_matrix = np.vstack([noisy[:50], matrix, noisy[50:]])
    kv = KeyedVectors(all_matrix.shape[1])
    kv.add_vectors(all_words, all_matrix)
    ours = _assert_same_as_gensim(kv, Vectors(all_words, all_matrix), questions, restrict_vocab)
    assert ours["correct"] > 0
    if restrict_vocab > len(all_words):  # every word is in: the same questions as without the variants
        assert ours["total"] == evaluate_analogies(vectors_of(base), questions, restrict_vocab)["total"]


def test_3cosmul_evaluation_matches_a_direct_computation(questions):
    vectors = vectors_of(text8_keyed_vectors())
    ours = evaluate_analogies(vectors, questions, restrict_vocab=1500, method="mul")
    unit = vectors.unit_vectors(vectors.index_to_key[:1500])
    index = {w: i for i, w in enumerate(vectors.index_to_key[:1500])}
    rows = np.array([[index[w] for w in line.lower().split()] for line in questions.read_text().splitlines()
                     if not line.startswith(":") and all(w in index for w in line.lower().split())])
    shifted = [(unit[rows[:, k]] @ unit.T + 1) / 2 for k in range(3)]
    scores = shifted[1] * shifted[2] / (shifted[0] + 1e-6)  # gensim's epsilon, as most_similar_cosmul
    np.put_along_axis(scores, rows[:, :3], -np.inf, axis=1)
    assert ours["total"] == len(rows)
    assert ours["correct"] == int((scores.argmax(axis=1) == rows[:, 3]).sum())
    assert ours["method"] == "mul"


def test_word_pairs_equal_gensim(wordsim):
    kv = text8_keyed_vectors()
    _, spearman, oov_ratio = kv.evaluate_word_pairs(str(wordsim))
    ours = evaluate_similarity(vectors_of(kv), wordsim)
    assert ours["spearman"] == pytest.approx(spearman.statistic, abs=1e-9)
    assert ours["oov"] / (ours["pairs"] + ours["oov"]) * 100 == pytest.approx(oov_ratio)
    assert ours["pairs"] + ours["oov"] == 353


def test_cli_prints_json_and_saves_it_beside_a_run_dir(tmp_path, capsys, questions, wordsim):
    kv = text8_keyed_vectors()
    run = write_run_dir(tmp_path / "run", kv.index_to_key, kv.expandos["count"], kv.vectors)
    argv = ["evaluate", str(run), "--analogies", str(questions), "--similarity", str(wordsim), "--json"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"analogy", "similarity"}
    assert {"accuracy", "correct", "total", "oov", "coverage", "sections"} <= set(printed["analogy"])
    assert set(printed["analogy"]["sections"]["family"]) == {"accuracy", "correct", "total", "oov", "coverage"}
    assert set(printed["similarity"][str(wordsim)]) == {"spearman", "pairs", "oov", "coverage"}
    assert printed["analogy"]["correct"] == evaluate_analogies(vectors_of(kv), questions)["correct"]
    assert json.loads((run / "eval" / "evaluation.json").read_text()) == printed


def test_cli_table_and_file_results_path(tmp_path, capsys, wordsim):
    kv = text8_keyed_vectors()
    path = tmp_path / "vectors.bin"
    vectors_of(kv).save(path, "word2vec-binary")
    assert main(["evaluate", str(path), "--similarity", str(wordsim)]) == 0
    table = capsys.readouterr().out
    spearman = json.loads((tmp_path / "vectors.bin.eval.json").read_text())["similarity"][str(wordsim)]["spearman"]
    assert "spearman" in table and f"{spearman:.4f}" in table


def test_nothing_to_evaluate_is_a_usage_error(tmp_path, capsys):
    path = tmp_path / "v.txt"
    path.write_text("2 2\na 1 0\nb 0 1\n")
    assert main(["evaluate", str(path)]) == 2
    assert "give --analogies FILE and/or --similarity FILE" in capsys.readouterr().err


def test_malformed_evaluation_files_name_the_line(tmp_path):
    vectors = Vectors(["a", "b", "c", "d"], np.eye(4, dtype=np.float32))
    analogies = tmp_path / "q.txt"
    analogies.write_text(": one\na b c d\na b c\n")
    with pytest.raises(EvaluationDataError, match=r"q.txt' line 3: expected four words"):
        evaluate_analogies(vectors, analogies)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("# comment\nword1 word2 similarity\na b 1.5\nc d high\n")
    with pytest.raises(EvaluationDataError, match=r"pairs.txt' line 4: expected 'word1 word2 score', got 'c d high'"):
        read_word_pairs(pairs)
    pairs.write_text("word1 word2 similarity\na b 1.5\nc d 2\n")  # a header line is skipped
    assert read_word_pairs(pairs) == [("a", "b", 1.5), ("c", "d", 2.0)]
    with pytest.raises(EvaluationDataError, match="evaluation file '.*missing.txt' does not exist"):
        evaluate_similarity(vectors, tmp_path / "missing.txt")


def test_sections_without_questions_say_n_a_and_low_coverage_is_warned(tmp_path, capsys):
    words = ["paris", "france", "rome", "italy", "berlin", "germany"]
    rng = np.random.default_rng(1)
    path = tmp_path / "v.txt"
    Vectors(words, rng.normal(size=(6, 8)).astype(np.float32)).save(path, "word2vec")
    (tmp_path / "q.txt").write_text(": capitals\nparis france rome italy\nparis france berlin germany\n"
                                    ": unknown\nqqqa qqqb qqqc qqqd\n")
    (tmp_path / "pairs.txt").write_text("paris france 9\nrome italy 8\nberlin germany 7\n"
                                        + "".join(f"qqq{i} zzz{i} {i}\n" for i in range(7)))
    assert main(["evaluate", str(path), "--analogies", str(tmp_path / "q.txt"), "--similarity",
                 str(tmp_path / "pairs.txt")]) == 0
    table = capsys.readouterr().out
    assert re.search(r"unknown\s+n/a\s+0\s+0\s+1", table)  # not 0.0 %
    assert "warning: the Spearman figure of" in table and "covers only 3 of 10 pairs (30%)" in table
    assert "warning: the analogy" not in table  # 2 of 3 questions: enough
    saved = json.loads((tmp_path / "v.txt.eval.json").read_text())
    assert saved["analogy"]["sections"]["unknown"]["accuracy"] is None
    assert saved["analogy"]["coverage"] == pytest.approx(2 / 3)
    assert saved["similarity"][str(tmp_path / "pairs.txt")]["coverage"] == pytest.approx(0.3)
