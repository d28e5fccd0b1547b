"""Counter-based random numbers for training: draw i of a stream is SplitMix64 (Steele, Lea & Flood, OOPSLA 2014)
of the stream's key plus i, so any draw can be computed alone, on any device, by any worker.

The negatives of a step (model.NoiseSampler) and the windows of a corpus chunk (corpus_stream) come from here;
cpu_kernels computes the same function with numba. torch has no uint64 arithmetic, so the tensors hold the same
bits in int64: products wrap as uint64's do, and right shifts are made logical by masking off the sign bits they
bring in.
"""

from __future__ import annotations

import numpy as np
import torch

GAMMA, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_UINT64 = (1 << 64) - 1

INIT_STREAM = 4
NOISE_STREAM = 5
WINDOW_STREAM = 6
PAIR_ORDER_STREAM = 7


def stream_seed(seed: int, stream: int, index: int) -> int:
    """A 63-bit key for part `index` of a random stream: independent streams from one `seed`."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def splitmix64(state: int) -> int:
    """SplitMix64's output function on a Python int (a key for a step, derived without SeedSequence's cost)."""
    z = state & _UINT64
    z = ((z ^ (z >> 30)) * MIX1) & _UINT64
    z = ((z ^ (z >> 27)) * MIX2) & _UINT64
    return z ^ (z >> 31)


def draw_key(first_key: int, index: int) -> int:
    """The 63-bit key of part `index` of a stream whose part 0 has `first_key`."""
    return splitmix64(first_key + index * GAMMA) >> 1


def mix(state: torch.Tensor) -> torch.Tensor:
    """SplitMix64's output function, elementwise on int64 tensors."""
    state = (state ^ _logical_shift(state, 30)) * _signed(MIX1)
    state = (state ^ _logical_shift(state, 27)) * _signed(MIX2)
    return state ^ _logical_shift(state, 31)


def draw_keys(first_key: int, indices: torch.Tensor) -> torch.Tensor:
    """draw_key for a tensor of indices."""
    return _logical_shift(mix(first_key + indices * _signed(GAMMA)), 1)


def uniform(keys: torch.Tensor | int, counters: torch.Tensor) -> torch.Tensor:
    """Draw `counters` of the streams `keys` (an int64 tensor, or one int key) as float64 uniforms in [0, 1)."""
    bits = mix(keys + (counters + 1) * _signed(GAMMA))
    return _logical_shift(bits, 11).to(torch.float64) * 2.0 ** -53


def _signed(value: int) -> int:
    """A 64-bit pattern as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _logical_shift(values: torch.Tensor, bits: int) -> torch.Tensor:
    return (values >> bits) & ((1 << (64 - bits)) - 1)
