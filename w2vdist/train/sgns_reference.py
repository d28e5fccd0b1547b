"""The update rule in plain torch: the readable specification the numba and Triton kernels are tested against,
and the fallback where neither runs (slow: a Python loop over centers).

word2vec's skip-gram with negative sampling, one window at a time (Mikolov et al. 2013; word2vec.c's order:
a context word's input vector predicts the center's output vector). For center i of a launch, word w:

    b        = its reach, uniform in 1..window                      (draw 0 of the center)
    contexts = the kept words at offsets -b..-1, 1..b inside its chunk
    lr       = lr_start + (lr_end - lr_start) * i / M              (linear over the launch's M centers)
    targets  = w (label 1) and `negative` noise words (label 0):    shared by every context of the window
               (shared_negatives, Ji et al. 2016), or drawn for each context offset; a noise word equal to w
               is skipped, as in word2vec
    g[j,k]   = (label_k - sigmoid(in[x_j] . out[t_jk])) * lr
    in[x_j]  += sum_k g[j,k] out[t_jk]         out[t_jk] += g[j,k] in[x_j]

With rule.copies (sync_rule=stretched, several replicas) each update of a row w is stretched to k_w = copies[w]
copies of it (stretch.py) by its contraction: g[j,k] of out[t_jk] by h_jk = lr sigmoid'(dot_jk) (|in[x_j]|^2 +
|out[t_jk]|^2) to k of t_jk, the update of in[x_j] by sum_k h_jk to k of x_j; all from the rows as they were
before the window.

Every dot of a window is taken before any of its updates, and updates to one row within a window add up. The
loss, -log sigmoid(dot) for the label 1 and -log sigmoid(-dot) for noise, is summed over every LOSS_SAMPLE-th
center's pairs only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from w2vdist import random_streams
from w2vdist.train.stretch import stretched_coefficients
from w2vdist.train.types import LOSS_SAMPLE, LaunchResult, WindowLaunch, WindowRule, context_slot, draw_slots


def window_offsets(launch: WindowLaunch, i: int, window: int) -> list[int]:
    """The offsets of center i's contexts: -b..-1, 1..b inside its chunk, b its reach (the window law)."""
    chunk = int(launch.word_chunk[i])
    key = int(launch.chunk_key[chunk])
    base = int(launch.positions[i]) * draw_slots(window, 1)
    reach = int(random_streams.reach_torch(random_streams.bits_torch(key, torch.tensor(base)), window))
    start, end = int(launch.chunk_start[chunk]), int(launch.chunk_end[chunk])
    return [d for d in range(-reach, reach + 1) if d and start <= i + d < end]


def _row_copies(copies: torch.Tensor | None, contexts: torch.Tensor,
                targets: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The copies of the input rows [n, 1] and of the output rows [n, 1 + K] a window updates; None, None without."""
    if copies is None:
        return None, None
    return copies[contexts].unsqueeze(1), copies[targets]


def train_windows(input_table: torch.Tensor, output_table: torch.Tensor, launch: WindowLaunch,
                  alias_threshold: torch.Tensor, alias: torch.Tensor, rule: WindowRule,
                  lr_start: float, lr_end: float) -> LaunchResult:
    """Apply the rule to every center of `launch`, part after part, updating both tables in place."""
    slots = draw_slots(rule.window, rule.negative)
    words = launch.words.tolist()
    total = launch.centers
    pairs, loss_sum, loss_pairs = 0, 0.0, 0
    for i in range(total):
        offsets = window_offsets(launch, i, rule.window)
        key = int(launch.chunk_key[int(launch.word_chunk[i])])
        base = int(launch.positions[i]) * slots
        if not offsets:
            continue
        contexts = torch.tensor([words[i + d] for d in offsets])
        if rule.shared_negatives:
            counters = base + 1 + torch.arange(rule.negative)
            noise = random_streams.noise_torch(random_streams.bits_torch(key, counters), alias_threshold, alias)
            noise = noise.unsqueeze(0).expand(len(offsets), -1)
        else:
            counters = torch.tensor([[base + 1 + context_slot(d, rule.window) * rule.negative + k
                                      for k in range(rule.negative)] for d in offsets])
            noise = random_streams.noise_torch(random_streams.bits_torch(key, counters), alias_threshold, alias)
        center = torch.full((len(offsets), 1), words[i], dtype=torch.long)
        targets = torch.cat([center, noise], dim=1)                         # [n, 1 + K]
        labels = torch.zeros(targets.shape, dtype=input_table.dtype)
        labels[:, 0] = 1.0
        active = torch.ones(targets.shape, dtype=torch.bool)
        active[:, 1:] = noise != words[i]

        rows_in = input_table[contexts].to(torch.float32)                      # [n, D]
        rows_out = output_table[targets].to(torch.float32)                     # [n, 1 + K, D]
        dots = torch.einsum("nd,nkd->nk", rows_in, rows_out)
        lr = lr_start + (lr_end - lr_start) * i / total
        g = (labels - torch.sigmoid(dots)) * lr * active
        g_in, g_out = stretched_coefficients(g, dots, lr, active, rows_in.pow(2).sum(1, keepdim=True),
                                             rows_out.pow(2).sum(2), *_row_copies(rule.copies, contexts, targets))
        input_table.index_add_(0, contexts, torch.einsum("nk,nkd->nd", g_in, rows_out).to(input_table.dtype))
        output_table.index_add_(0, targets.reshape(-1),
                                (g_out.unsqueeze(-1) * rows_in.unsqueeze(1)).reshape(-1, rows_in.shape[1])
                                .to(output_table.dtype))
        pairs += len(offsets)
        if i % LOSS_SAMPLE == 0:
            signed = torch.where(labels > 0, dots, -dots)
            loss_sum += float((F.softplus(-signed) * active).sum())
            loss_pairs += len(offsets)
    return LaunchResult(pairs, loss_sum, loss_pairs)


def train_pairs(input_table: torch.Tensor, output_table: torch.Tensor, centers: torch.Tensor,
                contexts: torch.Tensor, pair_keys: torch.Tensor, pair_rows: torch.Tensor,
                alias_threshold: torch.Tensor, alias: torch.Tensor, negative: int,
                lr_start: float, lr_end: float, copies: torch.Tensor | None = None) -> LaunchResult:
    """The same rule for pair_source=pairs, one (center, context) pair at a time: the context's input vector
    predicts the center's output vector against `negative` noise words, draws row * negative + k of the pair's
    key; lr linear over the launch's pairs. `copies`: as rule.copies of train_windows."""
    total = len(centers)
    loss_sum, loss_pairs = 0.0, 0
    for i in range(total):
        word, context = int(centers[i]), int(contexts[i])
        counters = int(pair_rows[i]) * negative + torch.arange(negative)
        noise = random_streams.noise_torch(random_streams.bits_torch(int(pair_keys[i]), counters),
                                           alias_threshold, alias)
        targets = torch.cat([torch.tensor([word]), noise])
        labels = torch.zeros(len(targets), dtype=input_table.dtype)
        labels[0] = 1.0
        active = torch.cat([torch.tensor([True]), noise != word])
        row_in = input_table[context].to(torch.float32, copy=True)
        rows_out = output_table[targets].to(torch.float32)
        dots = rows_out @ row_in
        lr = lr_start + (lr_end - lr_start) * i / total
        g = (labels - torch.sigmoid(dots)) * lr * active
        g_in, g_out = stretched_coefficients(g.unsqueeze(0), dots.unsqueeze(0), lr, active.unsqueeze(0),
                                             row_in.pow(2).sum().reshape(1, 1), rows_out.pow(2).sum(1).unsqueeze(0),
                                             *_row_copies(copies, torch.tensor([context]), targets.unsqueeze(0)))
        input_table[context] += (g_in[0] @ rows_out).to(input_table.dtype)
        output_table.index_add_(0, targets, (g_out[0].unsqueeze(1) * row_in).to(output_table.dtype))
        if i % LOSS_SAMPLE == 0:
            signed = torch.where(labels > 0, dots, -dots)
            loss_sum += float((F.softplus(-signed) * active).sum())
            loss_pairs += 1
    return LaunchResult(total, loss_sum, loss_pairs)
