"""Every random draw of every stage: counter-based, so any draw can be computed alone, on any device, by any worker.

A draw is SplitMix64 (Steele, Lea & Flood, OOPSLA 2014) of a key plus a counter. Keys come in two levels:

    stream_key(seed, stream, index)     63 bits, from NumPy's SeedSequence: one per (seed, stream, epoch or draw)
    chunk_key(stream key, chunk_id)     63 bits, one SplitMix64: one per corpus chunk and stream key
    bits(chunk key, counter)            64 bits: the draw itself

Subsampling, windows and negatives are drawn per (chunk, position), never per worker, thread or partition, so
Spark's partitioning, the number of training workers or threads, and a resume change none of them. The same
functions exist for NumPy (preprocess, host code), torch (any device; torch has no uint64, so int64 tensors hold
the same bits: products wrap as uint64's do, and right shifts are made logical by masking) and numba (CPU kernels);
the Triton kernel writes the same arithmetic in its own language. Tests check that all of them agree bit for bit.

The laws built on the bits, the same in every implementation:

    keep a token        (bits >> 40) < keep_threshold[word]      keep_threshold = round(p_keep * 2^24)
    reach of a center   1 + (((bits >> 32) * window) >> 32)       uniform in 1..window
    a noise word        column = ((bits >> 32) * V) >> 32; the column's word if (bits & 0xFFFFFF) <
                        alias_threshold[column], else its alias   (Walker's alias method, integer compares)
"""

from __future__ import annotations

import enum

import numpy as np

GAMMA, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_UINT64 = (1 << 64) - 1
PROBABILITY_BITS = 24            # keep and alias thresholds are integers out of 2^24


class Stream(enum.IntEnum):
    """The registry of random streams: one id per purpose, never reused."""
    SUBSAMPLE = 1      # keep draws of tokens; index: epoch (training) or pair draw (preprocess)
    WINDOW = 2         # reach and negatives of each center; index: epoch or pair draw
    FILE_ORDER = 3     # order of pairs/ files and of corpus/ blocks each epoch; index: epoch
    INIT = 4           # the initial input table, one generator per column; index: column
    PAIR_SHUFFLE = 5   # preprocess's permutation of each pairs/ file; index: the file's first chunk id (and the
                       # draw, mixed in by the generator)
    SPREAD = 6         # preprocess's assignment of chunks to pairs/ files; index: pair draw
    PAIR_NOISE = 7     # negatives of pair_source=pairs; index: epoch


CENTER_DRAWS = 1 << 20   # counters reserved per center position: draw 0 is its reach, then its noise words


def draw_slots(window: int, negative: int) -> int:
    """The counter stride between two positions of a chunk. A center's draws are its reach (draw 0), then
    `negative` noise words for each of its 2 * window context offsets (shared negatives use the first `negative`).
    The stride is a constant, so a center's reach is the same draw whatever `window` and `negative` are, in
    training and in preprocess's pairs alike."""
    if 1 + 2 * window * negative > CENTER_DRAWS:
        raise ValueError(f"window * negative must stay below {CENTER_DRAWS // 2}")
    return CENTER_DRAWS


# --- host side (Python ints and NumPy) ---------------------------------------------------------------------------

def stream_key(seed: int, stream: Stream, index: int = 0) -> int:
    """A 63-bit key for part `index` (an epoch, a draw, a column) of a stream: independent streams from one seed."""
    return int(np.random.SeedSequence([seed, int(stream), index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def splitmix64(state: int) -> int:
    """SplitMix64's output function on a Python int."""
    z = state & _UINT64
    z = ((z ^ (z >> 30)) * MIX1) & _UINT64
    z = ((z ^ (z >> 27)) * MIX2) & _UINT64
    return z ^ (z >> 31)


def mix_numpy(state: np.ndarray) -> np.ndarray:
    """SplitMix64's output function, elementwise on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        state = (state ^ (state >> np.uint64(30))) * np.uint64(MIX1)
        state = (state ^ (state >> np.uint64(27))) * np.uint64(MIX2)
    return state ^ (state >> np.uint64(31))


def chunk_keys(key: int, chunk_ids: np.ndarray) -> np.ndarray:
    """The 63-bit key of each chunk (int64 array) under a stream key."""
    with np.errstate(over="ignore"):
        state = np.uint64(key) + (chunk_ids.astype(np.uint64) + np.uint64(1)) * np.uint64(GAMMA)
    return (mix_numpy(state) >> np.uint64(1)).astype(np.int64)


def bits_numpy(keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Draw `counters` of the chunk keys `keys`: uint64 bits."""
    with np.errstate(over="ignore"):
        state = keys.astype(np.uint64) + (counters.astype(np.uint64) + np.uint64(1)) * np.uint64(GAMMA)
    return mix_numpy(state)


def reach_numpy(bits: np.ndarray, window: int) -> np.ndarray:
    """The window law: a center's reach, uniform in 1..window, from its reach draw."""
    return (1 + (((bits >> np.uint64(32)) * np.uint64(window)) >> np.uint64(32))).astype(np.int64)


def keep_numpy(bits: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The subsampling law: whether a token is kept, given its word's keep threshold (keep_thresholds)."""
    return (bits >> np.uint64(40)).astype(np.int64) < thresholds


def probability_thresholds(probabilities: np.ndarray) -> np.ndarray:
    """Probabilities as int32 thresholds out of 2^24, so every implementation compares integers."""
    return np.rint(np.clip(probabilities, 0.0, 1.0) * (1 << PROBABILITY_BITS)).astype(np.int32)


# --- torch (any device) ------------------------------------------------------------------------------------------

def _signed(value: int) -> int:
    """A 64-bit pattern as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _logical_shift(values, bits: int):
    return (values >> bits) & ((1 << (64 - bits)) - 1)


def mix_torch(state):
    """SplitMix64's output function, elementwise on int64 tensors holding uint64 bits."""
    state = (state ^ _logical_shift(state, 30)) * _signed(MIX1)
    state = (state ^ _logical_shift(state, 27)) * _signed(MIX2)
    return state ^ _logical_shift(state, 31)


def bits_torch(keys, counters):
    """bits_numpy on int64 tensors (keys: a tensor or one int)."""
    return mix_torch(keys + (counters + 1) * _signed(GAMMA))


def reach_torch(bits, window: int):
    return 1 + ((_logical_shift(bits, 32) * window) >> 32)


def keep_torch(bits, thresholds):
    return _logical_shift(bits, 40) < thresholds


def noise_torch(bits, alias_threshold, alias):
    """Noise words from draw bits by Walker's alias method (alias_threshold: int32 out of 2^24)."""
    column = (_logical_shift(bits, 32) * len(alias)) >> 32
    coin = bits & ((1 << PROBABILITY_BITS) - 1)
    return column.where(coin < alias_threshold[column], alias[column].long())
