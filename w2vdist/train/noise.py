"""The noise distribution of negative sampling: unigram counts to the power 0.75, as an alias table.

Walker's alias method (Vose's construction) draws a word in O(1) from one 64-bit draw (random_streams: the high
32 bits pick a column, the low 24 bits decide between the column's word and its alias). The thresholds are
integers out of 2^24, so the numba, Triton and torch kernels draw the same words bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from w2vdist.random_streams import probability_thresholds

NOISE_POWER = 0.75


@dataclass(frozen=True)
class NoiseTable:
    threshold: np.ndarray   # int32 [V]: column i gives word i when the draw's low 24 bits are below this
    alias: np.ndarray       # int32 [V]: the word column i gives otherwise

    @classmethod
    def from_counts(cls, counts: np.ndarray, power: float = NOISE_POWER) -> "NoiseTable":
        weights = np.asarray(counts, dtype=np.float64) ** power
        if not len(weights) or weights.sum() <= 0:
            raise ValueError("the noise distribution needs at least one word with a positive count")
        threshold, alias = alias_table(weights / weights.sum())
        return cls(probability_thresholds(threshold), alias.astype(np.int32))

    def probabilities(self) -> np.ndarray:
        """The distribution the table draws from (tests)."""
        size = len(self.alias)
        own = self.threshold / float(1 << 24)
        result = own / size
        np.add.at(result, self.alias, (1.0 - own) / size)
        return result


def alias_table(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method: column i is word i with probability threshold[i], else word alias[i]. A Python loop
    over the vocabulary: about a second per million words, once per run."""
    scaled = np.asarray(probabilities, dtype=np.float64) * len(probabilities)
    alias = np.arange(len(probabilities), dtype=np.int64)
    small = list(np.flatnonzero(scaled < 1.0))
    large = list(np.flatnonzero(scaled >= 1.0))
    while small and large:
        low, high = small.pop(), large.pop()
        alias[low] = high
        scaled[high] -= 1.0 - scaled[low]
        (small if scaled[high] < 1.0 else large).append(high)
    scaled[small + large] = 1.0  # what is left is 1 up to rounding
    return scaled, alias
