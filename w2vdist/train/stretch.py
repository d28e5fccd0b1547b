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

With sync_rule=stretched each of R replicas takes every update of row w stretched so to k_w copies, and the sync
moves each row by the sum of the replicas' changes divided by k_w: a row that few updates touch moves as if the
replicas' updates had been added (what `changes` does), a row that each replica's updates settle moves to where
they settle it (what `average` does, k_w = R), decided for each update by its own curvature. To first order in the
learning rate the sum of every replica's updates arrives whatever k_w is; k_w decides how far one replica's view
of a row runs ahead of the others' within a round:

    k_w = R (1 - (1 - 1/R)^(OCCURRENCE_SHARE x n_w)), rounded, in 1..R      (row_copies)

n_w = the kept occurrences of w in a round over all replicas (count x keep probability x sync_every / corpus
words). A word that every replica meets many times in a round gets R; a word met a few times gets 1 or 2. With R =
1 the factor is 1: word2vec's rule. No setting: the counts, sample, sync_every and R decide it.
"""

from __future__ import annotations

import numpy as np
import torch

from w2vdist.preprocess.subsample import keep_probabilities

MAX_CONTRACTION = 0.999  # h >= 1 would overshoot in one step; beyond this the factor is held at its value here
SERIES_BELOW = 1e-4      # below this h the factor is its series to h^2: (1 - h)^R would lose digits to rounding
OCCURRENCE_SHARE = 0.25  # of a row's occurrences in a round that count toward its copies; chosen by measurement:
                         # 8 replicas, 5 epochs of text8, 1 .. 0.1 gave 34.72, 35.16, 35.94, 35.35 % analogy
                         # (README, Data parallel)


def row_copies(counts: np.ndarray, sample: float, sync_every: int, corpus_words: int, replicas: int) -> np.ndarray:
    """k_w of every row (int32, 1..replicas): how many copies of itself each update of row w reaches as far as."""
    counts = np.asarray(counts, dtype=np.float64)
    if replicas == 1:
        return np.ones(len(counts), np.int32)
    occurrences = counts * keep_probabilities(counts, sample) * sync_every / max(corpus_words, 1)
    reached = replicas * -np.expm1(OCCURRENCE_SHARE * occurrences * np.log1p(-1.0 / replicas))
    return np.clip(np.rint(reached), 1, replicas).astype(np.int32)


def stretch_torch(contraction: torch.Tensor, copies: int | torch.Tensor) -> torch.Tensor:
    """stretch(h, R) of each contraction h (clamped to [0, MAX_CONTRACTION]) with R copies (a number, or one per
    contraction), in float64, as a float32 tensor."""
    h = contraction.to(torch.float64).clamp(0.0, MAX_CONTRACTION)
    copies = copies.to(torch.float64) if isinstance(copies, torch.Tensor) else copies
    exact = -torch.expm1(copies * torch.log1p(-h)) / h.clamp_min(SERIES_BELOW)
    series = copies - copies * (copies - 1) / 2 * h + copies * (copies - 1) * (copies - 2) / 6 * h * h
    return torch.where(h < SERIES_BELOW, series, exact).to(torch.float32)


def stretched_coefficients(g: torch.Tensor, dots: torch.Tensor, lr: float | torch.Tensor, active: torch.Tensor,
                           in_squares: torch.Tensor | None, out_squares: torch.Tensor | None,
                           in_copies: torch.Tensor | None, out_copies: torch.Tensor | None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The coefficients [n, 1 + K] of a window's updates of its input rows and of its output rows, g stretched by
    each update's contraction to its row's copies: an output row's by its pair's, h = lr sigmoid'(dot)
    (|in|^2 + |out|^2), to out_copies [n, 1 + K] (its target's k); an input row's by the sum of its pairs' over its
    targets, to in_copies [n, 1]. `in_squares` [n, 1] and `out_squares` [n, 1 + K]: the squared norms of the input
    rows and of the targets' output rows. Without copies (None: word2vec's rule, all else may be None too): g, g."""
    if in_copies is None:
        return g, g
    pair_contraction = torch.sigmoid(dots) * torch.sigmoid(-dots) * lr * active * (in_squares + out_squares)
    return (g * stretch_torch(pair_contraction.sum(1, keepdim=True), in_copies),
            g * stretch_torch(pair_contraction, out_copies))
