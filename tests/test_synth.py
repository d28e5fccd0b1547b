"""Synthetic languages: the generators follow their rules, and trained vectors find the proximity language's
structure but none in the random language."""

import itertools

import numpy as np
import pytest
from scipy import stats

from tests.vector_helpers import train_on_text
from w2vdist.cli import main
from w2vdist.synth import WORDS, generate

ALPHABET_NEAR_BBB = ["aaa", "ccc", "ddd", "eee"]


def _read(path):
    return [line.split(" ") for line in path.read_text(encoding="ascii").splitlines()]


def test_proximity_sentences_follow_the_rule(tmp_path, capsys):
    path = tmp_path / "proximity.txt"
    assert main(["synth", "proximity", "--out", str(path), "--sentences", "3000", "--seed", "4"]) == 0
    assert "wrote 3,000 sentences of the proximity language" in capsys.readouterr().out
    letters = np.array([[WORDS.index(w) for w in sentence] for sentence in _read(path)])
    assert letters.shape == (3000, 7)
    assert (letters[:, 1:] != letters[:, :-1]).all()  # never the word before
    # Every word w lies in s+w .. s+w+2 for one start s in 0..17: the tightest start range must be non-empty.
    offsets = letters - np.arange(7)
    lowest_start, highest_start = np.maximum(offsets.max(axis=1) - 2, 0), np.minimum(offsets.min(axis=1), 17)
    assert (lowest_start <= highest_start).all()
    assert set(np.unique(letters)) == set(range(26))
    # All three letters are drawn at the middle positions (not only one or two of them).
    assert len(np.unique(letters[:, 3] - letters[:, 2])) == 4  # -1, +1, +2 and +3 (never 0)
    np.testing.assert_array_equal(letters, generate("proximity", 3000, seed=4))  # seeded: the same every time


def test_random_sentences_are_permutations_of_the_26_words(tmp_path):
    path = tmp_path / "random.txt"
    assert main(["synth", "random", "--out", str(path), "--sentences", "500", "--seed", "2"]) == 0
    sentences = _read(path)
    assert len(sentences) == 500
    assert all(sorted(s) == WORDS for s in sentences)
    first_words = [s[0] for s in sentences]
    assert stats.chisquare([first_words.count(w) for w in WORDS]).pvalue > 0.001  # any word may come first


@pytest.fixture(scope="module")
def trained(tmp_path_factory, spark):
    """Vectors trained on each language (a small corpus, seeded): see train_on_text for the trainer."""
    folder = tmp_path_factory.mktemp("synth")
    corpora = {"proximity": 2000, "random": 600}  # about 14,000 and 15,600 tokens
    result = {}
    for language, sentences in corpora.items():
        path = folder / f"{language}.txt"
        assert main(["synth", language, "--out", str(path), "--sentences", str(sentences), "--seed", "1"]) == 0
        result[language] = train_on_text(path, spark=spark, seed=1, window=2 if language == "proximity" else 5)
    return result


def _similarities(vectors):
    unit = vectors.unit_vectors(WORDS)
    return unit @ unit.T


def _alphabet_gaps(similarity):
    """For each word with two alphabet neighbours: their mean similarity minus its mean similarity to the rest."""
    gaps = []
    for i in range(1, len(WORDS) - 1):
        rest = [j for j in range(len(WORDS)) if abs(j - i) > 1]
        gaps.append(similarity[i, [i - 1, i + 1]].mean() - similarity[i, rest].mean())
    return np.array(gaps)


def _percentile_of_bbb_neighbours(similarity):
    """Where bbb's mean similarity to aaa and ccc falls among its mean similarities to any two other words."""
    others = [j for j in range(len(WORDS)) if j not in (0, 1, 2)]
    null = [similarity[1, list(pair)].mean() for pair in itertools.combinations(others, 2)]
    return stats.percentileofscore(null, similarity[1, [0, 2]].mean())


def test_proximity_language_puts_bbb_near_its_alphabet_neighbours(trained):
    vectors = trained["proximity"]
    nearest = [w for w, _ in vectors.neighbours(["bbb"], topn=3)[0]]
    assert set(nearest) <= set(ALPHABET_NEAR_BBB) and {"aaa", "ccc"} <= set(nearest)
    near = min(vectors.similarity("bbb", w) for w in ALPHABET_NEAR_BBB[:3])
    for far in ("xxx", "zzz"):
        assert vectors.similarity("bbb", far) < min(0.6, near - 0.25)
    assert _percentile_of_bbb_neighbours(_similarities(vectors)) == 100
    assert stats.ttest_1samp(_alphabet_gaps(_similarities(vectors)), 0, alternative="greater").pvalue < 1e-10


def test_random_language_shows_no_alphabet_structure(trained):
    similarity = _similarities(trained["random"])
    # Seeded corpus and training, so these are fixed outcomes of tests that each hold with probability 0.99 when
    # there is no structure (the proximity language above scores 100 and p < 1e-10).
    assert _percentile_of_bbb_neighbours(similarity) < 99
    assert stats.ttest_1samp(_alphabet_gaps(similarity), 0, alternative="greater").pvalue > 0.01


def test_the_proximity_language_trains_with_default_settings(tmp_path, spark):
    """word2vec's rule cannot overshoot on a 26-word vocabulary: every setting but min_count at its default."""
    from w2vdist.config import load_config
    from w2vdist.preprocess.job import run_preprocess
    from w2vdist.train import local
    from w2vdist.vectors import Vectors

    path = tmp_path / "proximity.txt"
    assert main(["synth", "proximity", "--out", str(path), "--sentences", "3000", "--seed", "3"]) == 0
    run = tmp_path / "run"
    run_preprocess(load_config([], ["min_count=1", "phrase_passes=0"], {"input": [str(path)], "out": str(run)}),
                   spark=spark)
    assert local.main([str(run)]) == 0
    vectors = Vectors.from_run(run)
    nearest = [w for w, _ in vectors.neighbours(["bbb"], topn=3)[0]]
    assert {"aaa", "ccc"} <= set(nearest), nearest
