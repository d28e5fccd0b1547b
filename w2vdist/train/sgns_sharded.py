"""The synchronous column-sharded step: word2vec's rule on a replica whose tables are split by columns over
`column_shards` workers, for tables larger than one device. Plain torch, on any device.

Shard s of a replica holds columns torch.tensor_split(range(dim), S)[s] of both tables. All S shards build the
same launch from the same block (every draw is counter-based) and walk its centers in batches of BATCH_CENTERS
consecutive centers. For each batch, on every shard:

1. the windows of its centers, drawn as sgns_reference.py draws them: each center's reach, contexts and targets
   (the center, label 1, and its `negative` noise words, label 0), lr linear over the launch's centers;
2. the partial dot products over this shard's columns, summed over the shards: one all-reduce of
   pairs x (1 + negative) numbers, after which every shard holds the whole dots;
3. g = (label - sigmoid(dot)) * lr, the same on every shard;
4. each window's update of every row it touches, on this shard's columns (within a window, updates to one row add
   up, as in sgns_reference.py);
5. per row r of either table, the batch's per-window updates U_r,i combined by agreement.agreement_scale, with a
   step of 1:

       U_r . clamp(Q_r / |U_r|^2, 1 / n_r, 1)     U_r = sum_i U_r,i   Q_r = sum_i |U_r,i|^2   n_r: windows updating r

   Norms run over all columns, so Q_r and |U_r|^2 are summed over the shards: one more all-reduce, of 2 numbers
   per distinct row of the batch. Windows that move a frequent row the same way move it by their mean, not by
   their sum (summed, a batch's updates pile up and diverge on small vocabularies); rows that few windows touch,
   or that windows move in unrelated directions, move by the sum.

With a batch of one center every scale is 1 and the step is sgns_reference.train_windows exactly; S shards
compute what one shard computes, up to the order of float sums (both tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from w2vdist import random_streams
from w2vdist.train.agreement import agreement_scale
from w2vdist.train.stretch import stretched_coefficients
from w2vdist.train.types import (LOSS_SAMPLE, LaunchResult, ShardSum, WindowLaunch, WindowRule, context_slot,
                                 draw_slots)

# Centers per synchronous step (two all-reduces each). Smaller batches combine fewer updates of a frequent row: the
# bundled sample's analogies score 100 % at 512 and 8.5 % at 4096 (README, Column shards).
BATCH_CENTERS = 512


@dataclass
class _Windows:
    """The (center, context) pairs of a batch's windows, one row per pair, in the reference's order."""
    centers: int            # the batch's centers
    window: torch.Tensor    # int64 [n]: the pair's center, counted from the batch's first
    contexts: torch.Tensor  # int64 [n]: the context words (rows of the input table)
    targets: torch.Tensor   # int64 [n, 1 + K]: the center word, then the noise words (rows of the output table)
    active: torch.Tensor    # bool [n, 1 + K]: false for a noise word equal to the center (skipped, as in word2vec)
    lr: torch.Tensor        # float32 [n]: the learning rate of the pair's center


def train_windows(input_columns: torch.Tensor, output_columns: torch.Tensor, launch: WindowLaunch,
                  alias_threshold: torch.Tensor, alias: torch.Tensor, rule: WindowRule, lr_start: float,
                  lr_end: float, shards: ShardSum, batch_centers: int = BATCH_CENTERS) -> LaunchResult:
    """Train every window of `launch` on this shard's columns of both tables (updated in place), batch by batch."""
    result = LaunchResult(0, 0.0, 0)
    for first in range(0, launch.centers, batch_centers):
        stop = min(first + batch_centers, launch.centers)
        windows = _batch_windows(launch, first, stop, alias_threshold, alias, rule, lr_start, lr_end)
        result += _step(input_columns, output_columns, windows, first, shards, rule.copies)
    return result


def _batch_windows(launch: WindowLaunch, first: int, stop: int, alias_threshold: torch.Tensor,
                   alias: torch.Tensor, rule: WindowRule, lr_start: float, lr_end: float) -> _Windows:
    """The windows of centers first..stop-1 of `launch`: sgns_reference's draws, for all centers at once."""
    device = launch.words.device
    window, negative = rule.window, rule.negative
    centers = torch.arange(first, stop, device=device)
    chunk = launch.word_chunk[centers].long()
    keys = launch.chunk_key[chunk]
    base = launch.positions[centers].long() * draw_slots(window, negative)
    reach = random_streams.reach_torch(random_streams.bits_torch(keys, base), window)
    offsets = [d for d in range(-window, window + 1) if d]
    distance = torch.tensor(offsets, device=device)
    slots = torch.tensor([context_slot(d, window) for d in offsets], device=device)
    positions = centers.unsqueeze(1) + distance
    inside = ((distance.abs() <= reach.unsqueeze(1)) & (positions >= launch.chunk_start[chunk].unsqueeze(1))
              & (positions < launch.chunk_end[chunk].unsqueeze(1)))
    center_of, column = inside.nonzero(as_tuple=True)  # by center, then by offset: the reference's order
    words = launch.words[centers].long()
    if rule.shared_negatives:
        counters = base.unsqueeze(1) + 1 + torch.arange(negative, device=device)
        noise = random_streams.noise_torch(random_streams.bits_torch(keys.unsqueeze(1), counters), alias_threshold,
                                           alias)[center_of]
    else:
        counters = (base[center_of].unsqueeze(1) + 1 + slots[column].unsqueeze(1) * negative
                    + torch.arange(negative, device=device))
        noise = random_streams.noise_torch(random_streams.bits_torch(keys[center_of].unsqueeze(1), counters),
                                           alias_threshold, alias)
    center_words = words[center_of].unsqueeze(1)
    active = torch.ones((len(center_of), 1 + negative), dtype=torch.bool, device=device)
    active[:, 1:] = noise != center_words
    lr = lr_start + (lr_end - lr_start) * (first + center_of).to(torch.float64) / launch.centers
    return _Windows(centers=stop - first, window=center_of, contexts=launch.words[positions[center_of, column]].long(),
                    targets=torch.cat([center_words, noise], dim=1), active=active, lr=lr.to(torch.float32))


def _step(input_columns: torch.Tensor, output_columns: torch.Tensor, windows: _Windows, first: int,
          shards: ShardSum, copies: torch.Tensor | None = None) -> LaunchResult:
    """Steps 2 to 5 of the module's docstring for one batch (`first`: its first center's index in the launch),
    each window's coefficients stretched to its rows' `copies` (stretch.stretched_coefficients; None: not
    stretched); the rows' squared norms it needs are summed over the shards in the dots' all-reduce."""
    if not len(windows.window):  # no center of the batch has a context: the same on every shard
        return LaunchResult(0, 0.0, 0)
    rows_in = input_columns[windows.contexts]                                    # [n, c]
    rows_out = output_columns[windows.targets]                                   # [n, 1 + K, c]
    dots = torch.einsum("nc,nkc->nk", rows_in, rows_out)
    targets = dots.shape[1]
    in_squares = out_squares = in_copies = out_copies = None
    if copies is not None:
        in_copies, out_copies = copies[windows.contexts].unsqueeze(1), copies[windows.targets]
        sums = torch.cat([dots, rows_in.pow(2).sum(1, keepdim=True), rows_out.pow(2).sum(2)], dim=1).contiguous()
        shards.sum_(sums)
        dots, in_squares, out_squares = sums.split([targets, 1, targets], dim=1)
    else:
        dots = dots.contiguous()
        shards.sum_(dots)
    labels = torch.zeros_like(dots)
    labels[:, 0] = 1.0
    lr = windows.lr.unsqueeze(1)
    g = (labels - torch.sigmoid(dots)) * lr * windows.active
    g_in, g_out = stretched_coefficients(g, dots, lr, windows.active, in_squares, out_squares, in_copies, out_copies)
    width = rows_in.shape[1]
    active = windows.active.reshape(-1)
    input_update = _RowUpdates.of(windows.contexts, windows.window, windows.centers,
                                  torch.einsum("nk,nkc->nc", g_in, rows_out))
    output_update = _RowUpdates.of(windows.targets.reshape(-1)[active],
                                   windows.window.repeat_interleave(windows.targets.shape[1])[active],
                                   windows.centers,
                                   (g_out.unsqueeze(2) * rows_in.unsqueeze(1)).reshape(-1, width)[active])
    squares = torch.cat([input_update.squares(), output_update.squares()])
    shards.sum_(squares)
    input_squares, output_squares = squares.split([2 * len(input_update.rows), 2 * len(output_update.rows)])
    input_update.apply(input_columns, input_squares)
    output_update.apply(output_columns, output_squares)
    sampled = (first + windows.window) % LOSS_SAMPLE == 0
    signed = torch.where(labels > 0, dots, -dots)[sampled]
    loss = F.softplus(-signed) * windows.active[sampled]
    return LaunchResult(len(windows.window), float(loss.sum()), int(sampled.sum()))


@dataclass
class _RowUpdates:
    """A batch's updates of one table on this shard's columns, per distinct row: the sum of the windows' updates
    and the sum of their squared norms (this shard's columns' part of both), and how many windows updated it."""
    rows: torch.Tensor     # int64 [R]: the distinct rows, ascending
    summed: torch.Tensor   # [R, c]: U_r
    own: torch.Tensor      # [R]: this shard's part of Q_r
    windows: torch.Tensor  # int64 [R]: n_r

    @classmethod
    def of(cls, rows: torch.Tensor, windows: torch.Tensor, centers: int, updates: torch.Tensor) -> "_RowUpdates":
        """Updates of `rows` by windows `windows` (0..centers-1) of a batch, one entry each: a row may repeat
        within a window, and its entries there add up."""
        per_window_keys, per_window = torch.unique(rows * centers + windows, return_inverse=True)
        per_window_updates = torch.zeros((len(per_window_keys), updates.shape[1]), dtype=updates.dtype,
                                         device=updates.device).index_add_(0, per_window, updates)
        key_rows = per_window_keys // centers
        distinct, of_row, counts = torch.unique_consecutive(key_rows, return_inverse=True, return_counts=True)
        summed = torch.zeros((len(distinct), updates.shape[1]), dtype=updates.dtype,
                             device=updates.device).index_add_(0, of_row, per_window_updates)
        own = torch.zeros(len(distinct), dtype=updates.dtype, device=updates.device).index_add_(
            0, of_row, per_window_updates.pow(2).sum(1))
        return cls(distinct, summed, own, counts)

    def squares(self) -> torch.Tensor:
        """This shard's parts of Q_r and of |U_r|^2, to be summed over the shards: [2 R]."""
        return torch.cat([self.own, self.summed.pow(2).sum(1)])

    def apply(self, columns: torch.Tensor, squares: torch.Tensor) -> None:
        """Add each row's combined update, given Q_r and |U_r|^2 summed over all shards."""
        own, together = squares.split(len(self.rows))
        scale = agreement_scale(own, together, 1.0 / self.windows.to(own.dtype), step=1.0)
        columns.index_add_(0, self.rows, self.summed * scale.unsqueeze(1))
