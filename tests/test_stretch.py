"""The stretched update (stretch.py): one update reaching as far as R copies of it taken one after the other."""

import numpy as np
import pytest
import torch

from w2vdist.train import sgns_numba
from w2vdist.train.stretch import MAX_CONTRACTION, stretch_torch

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
def test_the_compiled_factor_equals_the_reference(copies):
    expected = stretch_torch(torch.tensor(CONTRACTIONS + [1.5]), copies)
    got = torch.tensor([sgns_numba._stretch(h, copies) for h in CONTRACTIONS + [1.5]])
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
