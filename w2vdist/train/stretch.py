"""The stretched update: an update made to reach as far as R copies of it, taken one after the other, would. Its
arithmetic only: the torch form here, for the reference (sgns_reference.py) and the sharded step; the
numba and Triton kernels compute the same per pair.

A pair's update, g = (label - sigmoid(dot)) x lr along each row's partner, moves both rows and so contracts the
error of the pair's dot by h = lr x sigmoid'(dot) x (|in|^2 + |out|^2), on the pair's quadratic model. An output
row's update is stretched by its pair's h; an input row's, which sums its window's targets, by the sum of theirs.
R copies of an update contracting by h, one after the other, move the row

    stretch(h, R) = (1 - (1 - h)^R) / h

times as far as one copy: R times while h is small (the copies add up), about 1 / h once one copy nearly settles
the row, never past the point where the copies would have settled it.

With sync_rule=stretched each of R replicas takes every update stretched so, and the sync averages the replicas'
tables: a row that few updates touch moves as if the replicas' updates had been added (what `changes` does), a row
that each replica's updates settle moves to where they settle it (what `average` does), decided for each update
by its own curvature, with no setting. With R = 1 the factor is 1: word2vec's rule.
"""

from __future__ import annotations

import torch

MAX_CONTRACTION = 0.999  # h >= 1 would overshoot in one step; beyond this the factor is held at its value here
SERIES_BELOW = 1e-4      # below this h the factor is its series to h^2: (1 - h)^R would lose digits to rounding


def stretch_torch(contraction: torch.Tensor, copies: int) -> torch.Tensor:
    """stretch(h, R) of each contraction h (clamped to [0, MAX_CONTRACTION]), in float64, as a float32 tensor."""
    h = contraction.to(torch.float64).clamp(0.0, MAX_CONTRACTION)
    exact = -torch.expm1(copies * torch.log1p(-h)) / h.clamp_min(SERIES_BELOW)
    series = copies - copies * (copies - 1) / 2 * h + copies * (copies - 1) * (copies - 2) / 6 * h * h
    return torch.where(h < SERIES_BELOW, series, exact).to(torch.float32)


def stretched_coefficients(g: torch.Tensor, dots: torch.Tensor, lr: float | torch.Tensor, active: torch.Tensor,
                           in_squares: torch.Tensor | None, out_squares: torch.Tensor | None,
                           copies: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The coefficients [n, 1 + K] of a window's updates of its input rows and of its output rows, g stretched to
    `copies` copies by each update's contraction: an output row's by its pair's, h = lr sigmoid'(dot)
    (|in|^2 + |out|^2); an input row's by the sum of its pairs' over its targets. `in_squares` [n, 1] and
    `out_squares` [n, 1 + K]: the squared norms of the input rows and of the targets' output rows (unused, and
    may be None, with one copy). One copy: g, g."""
    if copies == 1:
        return g, g
    pair_contraction = torch.sigmoid(dots) * torch.sigmoid(-dots) * lr * active * (in_squares + out_squares)
    return (g * stretch_torch(pair_contraction.sum(1, keepdim=True), copies),
            g * stretch_torch(pair_contraction, copies))
