"""One worker's shard of the two embedding tables, the noise sampler and the skip-gram negative-sampling step.

No autograd: the SGNS gradient is simple enough to write down, and doing so avoids building a graph per step.
For a pair (c, o) with noise words n_1..n_K, targets t_0 = o, t_k = n_k, labels 1, 0, ..., 0 and learning rate lr:

    dot_k = in[c] . out[t_k]                      (summed over every worker's columns: sharding.reduce_dots)
    g_k   = (label_k - sigmoid(dot_k)) * lr       (0 for padding, and for a noise word equal to o, as word2vec)
    in[c]     += sum_k g_k out[t_k]
    out[t_k]  += g_k in[c]

A step applies this to a whole batch at once: every update is computed from the tables as they were before the
step and updates of the same row are summed (the order of application does not matter). Each worker applies it to
its own columns only; a column's update needs no other column, so the shards together compute exactly the update
of one unsharded table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from w2vdist.train import random_streams

if TYPE_CHECKING:
    from w2vdist.train.sharding import ColumnSharding

NOISE_POWER = 0.75


class NoiseSampler:
    """Noise words from count^0.75 by Walker's alias method: one 53-bit uniform u per draw picks column
    floor(u V) of the table and, by the fraction of u V, that column's word or its alias.

    Draw i of step s is a pure function of (seed, s, i) (random_streams). Every worker draws the same negatives
    for the same global batch without communicating, whatever the number of workers; a resumed run draws what the
    uninterrupted run would have; and numba on CPUs (cpu_kernels.draw_targets) and torch on any device compute the
    same words."""

    def __init__(self, counts: np.ndarray, seed: int, device: torch.device, compiled: bool):
        weights = np.asarray(counts, dtype=np.float64) ** NOISE_POWER
        # step s's key follows from step 0's (SeedSequence, a few tens of microseconds, once)
        self.first_key = random_streams.stream_seed(seed, random_streams.NOISE_STREAM, 0)
        self.device = device
        if compiled and device.type != "cpu":
            raise ValueError("compiled noise draws need a CPU device")
        self._cpu = _cpu_kernels() if compiled else None
        threshold, alias = (self._cpu.alias_table if self._cpu else alias_table)(weights / weights.sum())
        self.threshold = torch.from_numpy(threshold).to(device)
        self.alias = torch.from_numpy(alias).to(device)

    def targets(self, contexts: torch.Tensor, step: int, negative: int) -> torch.Tensor:
        """(B,) context ids -> (B, 1 + negative): each pair's context, then its noise words (draws b * negative
        to (b + 1) * negative - 1 of `step`)."""
        key = random_streams.draw_key(self.first_key, step)
        if self._cpu is not None:
            targets = np.empty((len(contexts), 1 + negative), dtype=np.int64)
            self._cpu.draw_targets(key, self.threshold.numpy(), self.alias.numpy(), contexts.numpy(), targets)
            return torch.from_numpy(targets)
        targets = torch.empty((len(contexts), 1 + negative), dtype=torch.int64, device=self.device)
        targets[:, 0] = contexts
        targets[:, 1:] = self._draw(key, len(contexts) * negative).view(len(contexts), negative)
        return targets

    def _draw(self, key: int, count: int) -> torch.Tensor:
        scaled = random_streams.uniform(key, torch.arange(count, device=self.device)) * len(self.alias)
        column = scaled.to(torch.int64).clamp_(max=len(self.alias) - 1)
        keep = scaled - column < self.threshold[column]
        return torch.where(keep, column, self.alias[column])


def _cpu_kernels():
    # imported only where the loop chose the numba kernel (loop.choose_kernel): numba is optional
    from w2vdist.train import cpu_kernels

    return cpu_kernels


def alias_table(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method: column i is word i with probability threshold[i], else word alias[i]. A Python loop
    over the vocabulary, about a second per million words, for machines without numba (cpu_kernels.alias_table
    is the same loop compiled)."""
    scaled = probabilities * len(probabilities)
    alias = np.arange(len(probabilities), dtype=np.int64)
    small = list(np.flatnonzero(scaled < 1.0))
    large = list(np.flatnonzero(scaled >= 1.0))
    while small and large:
        low, high = small.pop(), large.pop()
        alias[low] = high
        scaled[high] -= 1.0 - scaled[low]
        (small if scaled[high] < 1.0 else large).append(high)
    scaled[small + large] = 1.0  # what is left is 1 up to rounding
    return scaled.astype(np.float32), alias


def initial_input_columns(vocab_size: int, dim: int, columns: range, seed: int,
                          device: torch.device) -> torch.Tensor:
    """word2vec's initialisation, uniform in (-0.5/dim, 0.5/dim). Column j is drawn from its own seeded generator,
    so a worker draws exactly its columns of the table one worker would draw, without drawing the rest."""
    generator = torch.Generator(device=device)
    table = torch.empty((len(columns), vocab_size), device=device)
    for row, column in enumerate(columns):
        generator.manual_seed(random_streams.stream_seed(seed, random_streams.INIT_STREAM, column))
        table[row] = torch.rand(vocab_size, generator=generator, device=device)
    return ((table - 0.5) / dim).T.contiguous()


class EmbeddingShard:
    """This worker's columns of the input (word) and output (context) tables, and the step on them.

    `kernel` is "torch" (gather / bmm / index_add_, any device) or "numba" (cpu_kernels, CPU tables only):
    the same arithmetic, the numba one without the batch x (1+K) x columns temporaries."""

    def __init__(self, input_table: torch.Tensor, output_table: torch.Tensor, kernel: str):
        if kernel not in ("torch", "numba"):
            raise ValueError(f"unknown kernel {kernel!r}")
        if kernel == "numba" and input_table.device.type != "cpu":
            raise ValueError("the numba kernel needs CPU tables")
        self.input = input_table
        self.output = output_table
        self.kernel = kernel
        if kernel == "numba":
            self._cpu = _cpu_kernels()

    @classmethod
    def initial(cls, vocab_size: int, dim: int, columns: range, seed: int, device: torch.device,
                kernel: str) -> "EmbeddingShard":
        output_table = torch.zeros((vocab_size, len(columns)), device=device)  # word2vec starts the output at 0
        return cls(initial_input_columns(vocab_size, dim, columns, seed, device), output_table, kernel)

    def step(self, centers: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, lr: float,
             sharding: "ColumnSharding") -> torch.Tensor | float:
        """One SGNS step: partial dots, summed over every shard by `sharding`, then the update of this shard's
        columns. Returns the batch's summed loss (a 0-d tensor on the tables' device, not to wait for it there)."""
        if self.kernel == "numba" and sharding.world_size == 1:
            return self._cpu.whole_step(self.input.numpy(), self.output.numpy(), centers.numpy(), targets.numpy(),
                                        valid.numpy(), lr)
        dots = sharding.reduce_dots(self.partial_dots(centers, targets))
        coefficients, loss = sgns_coefficients(dots, targets, valid, lr)
        self.update(centers, targets, coefficients)
        return loss

    def partial_dots(self, centers: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B,) center ids and (B, 1+K) target ids -> (B, 1+K) dot products over this shard's columns."""
        if self.kernel == "numba":
            dots = torch.empty(targets.shape, dtype=torch.float32)
            self._cpu.partial_dots(self.input.numpy(), self.output.numpy(), centers.numpy(), targets.numpy(),
                                   dots.numpy())
            return dots
        words = self.input[centers]                                   # B x d
        contexts = self.output[targets]                               # B x (1+K) x d
        return torch.bmm(contexts, words.unsqueeze(2)).squeeze(2)

    def update(self, centers: torch.Tensor, targets: torch.Tensor, coefficients: torch.Tensor) -> None:
        """Apply the batch's SGD update (module doc) with g = `coefficients`, to this shard's columns."""
        if self.kernel == "numba":
            self._cpu.apply_update(self.input.numpy(), self.output.numpy(), centers.numpy(), targets.numpy(),
                                   coefficients.numpy())
            return
        words = self.input[centers]
        contexts = self.output[targets]
        word_updates = torch.bmm(coefficients.unsqueeze(1), contexts).squeeze(1)     # B x d
        context_updates = coefficients.unsqueeze(2) * words.unsqueeze(1)              # B x (1+K) x d
        self.output.index_add_(0, targets.reshape(-1), context_updates.reshape(-1, self.output.shape[1]))
        self.input.index_add_(0, centers, word_updates)


def sgns_weights(targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1 for each (pair, target) that counts, 0 for padding and for a noise word equal to the context."""
    weights = valid.unsqueeze(1) & torch.ones_like(targets, dtype=torch.bool)
    weights[:, 1:] &= targets[:, 1:] != targets[:, :1]
    return weights.to(torch.float32)


def sgns_loss(dots: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(dot_0) - sum_k log sigmoid(-dot_k), summed over the batch (a 0-d tensor: no device sync)."""
    signs = torch.full_like(dots, -1.0)
    signs[:, 0] = 1.0
    return -(F.logsigmoid(dots * signs) * weights).sum()


def sgns_coefficients(dots: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor,
                      lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The g of every (pair, target) from the full dot products, and the batch's summed loss."""
    weights = sgns_weights(targets, valid)
    labels = torch.zeros_like(dots)
    labels[:, 0] = 1.0
    return (labels - torch.sigmoid(dots)) * (weights * lr), sgns_loss(dots, weights)
