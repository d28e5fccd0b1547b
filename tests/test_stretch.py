"""The stretched update (stretch.py): one update reaching as far as R copies of it taken one after the other."""

import numpy as np
import pytest
import torch

from w2vdist.train import sgns_numba
from w2vdist.train.stretch import MAX_CONTRACTION, OCCURRENCE_SHARE, row_copies, stretch_torch

CONTRACTIONS = [0.0, 1e-7, 5e-5, 1e-4, 2e-3, 0.1, 0.5, 0.9]


@pytest.mark.parametrize("copies", [2, 3, 8, 32])
def test_one_stretched_step_moves_as_far_as_copies_of_the_step_one_after_the_other(copies):
    """On a quadratic loss 1/2 a (x.p - y)^2 a gradient step contracts the error along p by h = lr a |p|^2; R steps
    from x0, iterated here, move x stretch(h, R) times as far as the first step does."""
    rng = np.random.default_rng(copies)
    partner, start, target, curvature = rng.normal(size=5), rng.normal(size=5), 0.7, 1.3
    for h in [1e-3, 0.05, 0.3, 0.8]:
        lr = h / (curvature * partner @ partner)
        x = start.copy()
        for _ in range(copies):
            x -= lr * curvature * (x @ partner - target) * partner
        first_step = -lr * curvature * (start @ partner - target) * partner
        factor = float(stretch_torch(torch.tensor(h), copies))
        np.testing.assert_allclose(x - start, factor * first_step, rtol=1e-5, atol=1e-9)


def test_small_contractions_add_up_and_large_ones_settle():
    h = torch.tensor(CONTRACTIONS)
    factors = stretch_torch(h, 8)
    assert factors[0] == 8 and factors[1] == pytest.approx(8, rel=1e-5)   # the copies add up
    assert torch.all(factors[1:] <= factors[:-1])                           # more contraction, less reach
    assert factors[-1] == pytest.approx((1 - 0.1 ** 8) / 0.9, rel=1e-6)     # nearly settled: about 1 / h
    assert torch.all(stretch_torch(h, 1) == 1)                               # one copy: word2vec's step
    assert stretch_torch(torch.tensor([5.0]), 8) == stretch_torch(torch.tensor([MAX_CONTRACTION]), 8)


@pytest.mark.parametrize("copies", [1, 2, 8, 33])
@pytest.mark.parametrize("more", [0, 5, 40])  # the launch's most copies: beyond GEOMETRIC_COPIES the closed form
def test_the_compiled_factor_equals_the_reference(copies, more):
    expected = stretch_torch(torch.tensor(CONTRACTIONS + [1.5]), copies)
    got = torch.tensor([sgns_numba._stretch(h, copies, copies + more) for h in CONTRACTIONS + [1.5]])
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


def test_a_factor_per_contraction_takes_each_its_own_copies():
    h = torch.tensor(CONTRACTIONS * 3)
    copies = torch.tensor([1] * len(CONTRACTIONS) + [2] * len(CONTRACTIONS) + [8] * len(CONTRACTIONS))
    expected = torch.cat([stretch_torch(torch.tensor(CONTRACTIONS), k) for k in (1, 2, 8)])
    torch.testing.assert_close(stretch_torch(h, copies), expected, rtol=1e-6, atol=0)


def test_a_row_takes_as_many_copies_as_replicas_are_likely_to_meet_its_word_in_a_round():
    """k_w = R (1 - (1 - 1/R)^(OCCURRENCE_SHARE n_w)), n_w the kept occurrences of w in a round of sync_every
    corpus words: rare words 1, words every replica meets often R, in between by the formula, rounded."""
    corpus_words, sync_every, replicas = 10_000_000, 1_000_000, 8
    counts = np.array([5_000_000, 100_000, 300, 60, 20, 1])   # occurrences in a round: 500k, 10k, 30, 6, 2, 0.1
    copies = row_copies(counts, 0.0, sync_every, corpus_words, replicas)   # sample 0: every occurrence kept
    assert copies.dtype == np.int32
    shared = [OCCURRENCE_SHARE * c * sync_every / corpus_words for c in counts]
    expected = [min(replicas, max(1, round(replicas * (1 - (1 - 1 / replicas) ** n)))) for n in shared]
    assert copies.tolist() == expected
    assert copies[0] == copies[1] == replicas and copies[-1] == copies[-2] == 1 and 1 < copies[2] < replicas
    assert np.all(np.diff(copies) <= 0)                                     # fewer occurrences, fewer copies
    # subsampling keeps fewer of a frequent word: its occurrences in a round are the kept ones
    kept = row_copies(np.array([300]), 1e-5, sync_every, 1_000 * 300, replicas)
    assert kept[0] < row_copies(np.array([300]), 0.0, sync_every, 1_000 * 300, replicas)[0]
    # more words between syncs: more occurrences in a round, so more copies; one replica: word2vec's rule
    assert row_copies(counts, 0.0, 10 * sync_every, corpus_words, replicas)[3] > copies[3]
    assert row_copies(counts, 0.0, sync_every, corpus_words, 1).tolist() == [1] * len(counts)
