"""Counter-based random numbers: a uniform draw is a hash of (seed, stream, chunk id, position).

Subsampling and window draws then depend only on what is drawn for, never on how Spark partitions or batches the
data, so a run is reproducible on any cluster layout and a test can recompute any single draw.
"""

from __future__ import annotations

import numpy as np

SUBSAMPLE_STREAM = 1
WINDOW_STREAM = 2

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def uniform(seed: int, stream: int, chunk_ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1), one per (chunk id, position), independent across seeds and streams."""
    with np.errstate(over="ignore"):
        key = _splitmix64(np.uint64(seed) * np.uint64(1_000_003) + np.uint64(stream))
        x = _splitmix64(key ^ chunk_ids.astype(np.uint64))
        x = _splitmix64(x ^ positions.astype(np.uint64))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
