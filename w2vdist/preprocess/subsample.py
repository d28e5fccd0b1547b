"""word2vec's subsampling of frequent words: the keep probability of each word, shared by preprocess and training.

    p_keep(w) = (sqrt(c(w) / (s T)) + 1) * (s T) / c(w)     (capped at 1)

with s the `sample` setting and T the total count of vocabulary words (word2vec's train_words). The draws
themselves are random_streams' (Stream.SUBSAMPLE, a draw per (epoch or pair draw, chunk, position)): training
draws them afresh every epoch over corpus/, and preprocess's pairs/ draw K is exactly training's epoch K.
"""

from __future__ import annotations

import numpy as np

from w2vdist.random_streams import probability_thresholds


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """p_keep of each word from the vocabulary's counts; all ones when `sample` is 0."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore"):  # a word absent from the corpus (retraining) is never drawn anyway
        return np.minimum((np.sqrt(counts / threshold) + 1.0) * threshold / counts, 1.0)


def keep_thresholds(counts: np.ndarray, sample: float) -> np.ndarray:
    """The int32 keep threshold of each word (out of 2^24) that random_streams' keep law compares with."""
    return probability_thresholds(keep_probabilities(counts, sample))


def expected_kept(counts: np.ndarray, sample: float) -> float:
    """The tokens one epoch (or one pair draw) keeps on average: sum over words of count * p_keep."""
    return float((np.asarray(counts, dtype=np.float64) * keep_probabilities(counts, sample)).sum())
