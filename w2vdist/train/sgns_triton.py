"""The update rule as one Triton kernel for GPU tables: sgns_reference.py's arithmetic, one window at a time.

One program per part of the launch walks its centers in order, as word2vec's threads walk their share of the
corpus; all programs run at once and write the tables with atomic adds and no locks (Hogwild). Run one program
after the other (as Triton's interpreter does), any number of parts gives the reference's result up to float
rounding: tests/test_sgns_triton.py checks this under TRITON_INTERPRET=1 on CPU. The GPU compilation itself has
not been run yet.

Per center, inside the program:

    draws      SplitMix64 in uint64, bit for bit random_streams' (reach: draw 0; noise: draws 1..K shared, or
               1 + context_slot(offset) * K + k per context offset), Walker's alias method on int32 thresholds
    tiles      contexts [BLOCK_J = next pow2 of 2 * window, BLOCK_D = next pow2 of dim] (offsets -window..-1,
               1..window, masked by the reach and the chunk; columns past dim masked), noise words [BLOCK_K]
               (shared) or [BLOCK_J, BLOCK_K], -1 where skipped (equal to the center)
    reads      the context rows once, the center's output row once, then each noise output row once (a [BLOCK_D]
               row when shared, a [BLOCK_J, BLOCK_D] tile per noise column otherwise); every dot of the window
               is taken from these values before any write
    writes     in[x_j] += sum_k g[j,k] out[t_jk], accumulated in registers during the reads: one atomic add per
               context row; out[t_jk] += g[j,k] in[x_j] from the context tile still in registers; the center's
               row, and the noise rows when shared, get one atomic add per window, summed over the contexts
    loss       exp and log only on every LOSS_SAMPLE-th center; per program sums of pairs, loss and loss pairs go
               to a [parts, 3] float64 buffer, reduced and copied to the host once after the launch (the launch's
               only host synchronisation)

Throughput, an ESTIMATE (nothing here was measured on a GPU). Window 5 (average reach 3, so about 6 contexts per
center), negative 5, fp32 rows of 4 * dim bytes. Upper bound on DRAM traffic: every row read from DRAM once and
written back once per window, no reuse between windows:

    rows per center        shared negatives: 6 input + 1 center + 5 noise = 12 rows read, 12 written = 24
                           per-context negatives: 6 input + 1 center + 30 noise = 37 read, 37 written = 74
    bytes per center       dim 100: shared 9.6 KB, per-context 29.6 KB; dim 300: shared 28.8 KB, per-context 88.8 KB
    launch arrays          words, positions, word_chunk: 12 B per center; chunk arrays: per chunk, negligible;
                           alias table gathers (8 B per noise draw) hit L2: the table is 8 B per vocabulary word
                           stretched updates (several replicas): a 4 B gather of the row's copies per row written,
                           from a table of 4 B per vocabulary word, in L2 too
    per corpus word        x ~0.7, the share of corpus words left by subsampling (sample=1e-3 on English text; an
                           assumption): dim 100: shared ~6.7 KB, per-context ~21 KB; dim 300: ~20 KB, ~62 KB
    bandwidth bound        at 3.35 TB/s: dim 100: shared ~500 M words/s, per-context ~160 M words/s;
                           dim 300: shared ~165 M words/s, per-context ~54 M words/s

Real DRAM traffic is lower: a program's consecutive windows share all but about one context row, which stays in
L1/L2 (6 input rows per center become ~1 read and ~1 write back: shared negatives then move 14 rows, not 24), and
the frequent words that dominate centers and, even more, noise draws (counts^0.75) stay in the 50 MB L2. So DRAM
bandwidth is likely not the limit. What probably is, roughly in this order:

    latency x occupancy   a center is a chain of dependent memory round trips (word, chunk -> key, reach ->
                          contexts and alias table -> rows -> atomics), then one more per noise column when the
                          loop over columns is not unrolled: ~3-8 us per center per program. Registers decide how
                          many programs hide it: ~3-5 [BLOCK_J, BLOCK_D] fp32 tiles live, so at dim 100 (4 warps)
                          maybe 4-8 programs per SM (~500-1000 on 132 SMs), at dim 300 (BLOCK_D 512: 41% padding,
                          8 warps) ~2 per SM. That guesses ~100-250 M corpus words/s at dim 100 with shared
                          negatives and tens of millions at dim 300 per-context; it needs thousands of parts
    atomics               dim fp32 atomic adds per row written (12 or 37 rows per center, ~1.2k-11k per center);
                          rows of the most frequent words are hit by many programs at once and serialise in L2
    Hogwild               races as word2vec's threads; a program may also read a row before its own previous
                          window's adds have landed
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from w2vdist.train import stretch
from w2vdist.train.types import LOSS_SAMPLE, LaunchResult, WindowLaunch, WindowRule, draw_slots

MAX_CONTRACTION = tl.constexpr(stretch.MAX_CONTRACTION)
SERIES_BELOW = tl.constexpr(stretch.SERIES_BELOW)

# random_streams' SplitMix64 constants. Literals at or above 2^63 are typed uint64 by Triton, so the arithmetic
# below is uint64 with wrapping products and logical shifts, as random_streams' NumPy version.
_GAMMA = tl.constexpr(0x9E3779B97F4A7C15)
_MIX1 = tl.constexpr(0xBF58476D1CE4E5B9)
_MIX2 = tl.constexpr(0x94D049BB133111EB)
_COIN_MASK = tl.constexpr((1 << 24) - 1)   # random_streams.PROBABILITY_BITS


@triton.jit
def _bits(key, counter):
    """random_streams.bits: SplitMix64 of key + (counter + 1) * GAMMA, all uint64."""
    z = key + (counter + 1) * _GAMMA
    z = (z ^ (z >> 30)) * _MIX1
    z = (z ^ (z >> 27)) * _MIX2
    return z ^ (z >> 31)


@triton.jit
def _reach(bits, window):
    """random_streams.reach: uniform in 1..window, from the high 32 bits (the product fits in uint64)."""
    return (1 + (((bits >> 32) * window) >> 32)).to(tl.int32)


@triton.jit
def _noise_words(bits, mask, vocab, alias_threshold_ptr, alias_ptr):
    """random_streams.noise_torch: Walker's alias method on integer thresholds out of 2^24."""
    column = ((bits >> 32) * vocab) >> 32          # < vocab < 2^32, so the uint64 product cannot wrap
    coin = (bits & _COIN_MASK).to(tl.int32)
    column = column.to(tl.int32)
    threshold = tl.load(alias_threshold_ptr + column, mask=mask, other=0)
    alias = tl.load(alias_ptr + column, mask=mask, other=0)
    return tl.where(coin < threshold, column, alias)


@triton.jit
def _softplus(x):
    # log1p is not in core triton.language (libdevice's is not available under the interpreter); log(1 + e^-|x|)
    # loses only terms below float epsilon
    return tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def _stretch(contraction, copies):
    """stretch.stretch_torch in float64: (1 - (1 - h)^R) / h, its series to h^2 below SERIES_BELOW (fp32 would
    lose the difference to rounding); `copies` R of each contraction."""
    h = tl.minimum(tl.maximum(contraction.to(tl.float64), 0.0), MAX_CONTRACTION)
    r = copies.to(tl.float64)
    series = r - r * (r - 1) / 2 * h + r * (r - 1) * (r - 2) / 6 * h * h
    exact = (1.0 - tl.exp(r * tl.log(1.0 - h))) / tl.maximum(h, SERIES_BELOW)
    return tl.where(h < SERIES_BELOW, series, exact).to(tl.float32)


@triton.jit
def _sgns_windows_kernel(
        in_ptr, out_ptr, in_stride, out_stride,
        words_ptr, positions_ptr, word_chunk_ptr, chunk_start_ptr, chunk_end_ptr, chunk_key_ptr, parts_ptr,
        alias_threshold_ptr, alias_ptr, copies_ptr, stats_ptr,
        vocab, total_centers, dim, lr_start, lr_end,
        WINDOW: tl.constexpr, NEGATIVE: tl.constexpr, SHARED: tl.constexpr, SLOTS: tl.constexpr,
        STRETCH: tl.constexpr, SAMPLE: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_K: tl.constexpr,
        BLOCK_D: tl.constexpr):
    part = tl.program_id(0)
    first = tl.load(parts_ptr + part)
    last = tl.load(parts_ptr + part + 1)

    j = tl.arange(0, BLOCK_J)                          # context_slot order: offsets -W..-1, then 1..W
    offset = tl.where(j < WINDOW, j - WINDOW, j - WINDOW + 1)
    distance = tl.abs(offset)
    k = tl.arange(0, BLOCK_K)                          # noise k: draw 1 + k, or 1 + context_slot * NEGATIVE + k
    k_valid = k < NEGATIVE
    d = tl.arange(0, BLOCK_D)
    d_valid = d < dim

    loss_sum = tl.full([], 0.0, tl.float64)
    pairs = tl.full([], 0, tl.int64)
    loss_pairs = tl.full([], 0, tl.int64)
    lr_step = (lr_end - lr_start) / total_centers

    for i in range(first, last):
        word = tl.load(words_ptr + i)
        chunk = tl.load(word_chunk_ptr + i)
        key = tl.load(chunk_key_ptr + chunk).to(tl.uint64)          # 63-bit, non-negative
        start = tl.load(chunk_start_ptr + chunk)
        end = tl.load(chunk_end_ptr + chunk)
        base = tl.load(positions_ptr + i).to(tl.uint64) * SLOTS       # < 2^31 * SLOTS: no wrap
        reach = _reach(_bits(key, base), WINDOW)
        lr = lr_start + lr_step * i
        sampled = (i % SAMPLE) == 0

        # the contexts, and their input rows: read once, kept for the output rows' updates
        at = i + offset
        context_valid = (j < 2 * WINDOW) & (distance <= reach) & (at >= start) & (at < end)
        contexts = tl.load(words_ptr + at, mask=context_valid, other=0)
        in_rows = in_ptr + contexts.to(tl.int64)[:, None] * in_stride + d[None, :]
        row_mask = context_valid[:, None] & d_valid[None, :]
        x = tl.load(in_rows, mask=row_mask, other=0.0)                    # [BLOCK_J, BLOCK_D]
        count = tl.sum(context_valid.to(tl.int32), axis=0)

        # the noise words, -1 where skipped (equal to the center, or no context): [BLOCK_K] shared by the
        # window, or [BLOCK_J, BLOCK_K] one set per context offset. Column n is taken out of the tile by a masked
        # sum, as Triton cannot index a register tile.
        if SHARED:
            noise = _noise_words(_bits(key, base + 1 + k), k_valid, vocab, alias_threshold_ptr, alias_ptr)
            noise = tl.where(k_valid & (noise != word) & (count > 0), noise, -1)
        else:
            noise_mask = context_valid[:, None] & k_valid[None, :]
            noise = _noise_words(_bits(key, base + 1 + j[:, None] * NEGATIVE + k[None, :]), noise_mask, vocab,
                                 alias_threshold_ptr, alias_ptr)
            noise = tl.where(noise_mask & (noise != word), noise, -1)

        # reads: every dot from the rows as they were before this window
        center_row = tl.load(out_ptr + word.to(tl.int64) * out_stride + d, mask=d_valid, other=0.0)
        dots = tl.sum(x * center_row[None, :], axis=1)                   # [BLOCK_J]
        sigmoid = 1.0 / (1.0 + tl.exp(-dots))
        g_center = tl.where(context_valid, (1.0 - sigmoid) * lr, 0.0)
        delta_in = g_center[:, None] * center_row[None, :]
        if STRETCH:  # stretch.py: each pair's contraction; an input row's is the sum over its targets
            in_square = tl.sum(x * x, axis=1)                                               # [BLOCK_J]
            pair = tl.where(context_valid, sigmoid * (1.0 - sigmoid) * lr, 0.0) * (
                in_square + tl.sum(center_row * center_row, axis=0))
            in_contraction = pair
            g_center = g_center * _stretch(pair, tl.load(copies_ptr + word))
        loss = tl.full([], 0.0, tl.float32)
        if sampled:
            loss += tl.sum(tl.where(context_valid, _softplus(-dots), 0.0), axis=0)
        g_noise = tl.full([BLOCK_J, BLOCK_K], 0.0, tl.float32)
        for n in range(NEGATIVE):
            pick = k == n
            if SHARED:
                target = tl.sum(tl.where(pick, noise, 0), axis=0)
                row = tl.load(out_ptr + target.to(tl.int64) * out_stride + d, mask=d_valid & (target >= 0),
                              other=0.0)
                noise_dots = tl.sum(x * row[None, :], axis=1)
                valid = context_valid & (target >= 0)
                sigmoid = 1.0 / (1.0 + tl.exp(-noise_dots))
                g = tl.where(valid, -lr * sigmoid, 0.0)
                delta_in += g[:, None] * row[None, :]
                if STRETCH:
                    pair = tl.where(valid, sigmoid * (1.0 - sigmoid) * lr, 0.0) * (
                        in_square + tl.sum(row * row, axis=0))
                    in_contraction += pair
                    g = g * _stretch(pair, tl.load(copies_ptr + tl.maximum(target, 0)))
            else:
                target = tl.sum(tl.where(pick[None, :], noise, 0), axis=1)                       # [BLOCK_J]
                valid = target >= 0
                rows = tl.load(out_ptr + target.to(tl.int64)[:, None] * out_stride + d[None, :],
                               mask=valid[:, None] & d_valid[None, :], other=0.0)
                noise_dots = tl.sum(x * rows, axis=1)
                sigmoid = 1.0 / (1.0 + tl.exp(-noise_dots))
                g = tl.where(valid, -lr * sigmoid, 0.0)
                delta_in += g[:, None] * rows
                if STRETCH:
                    pair = tl.where(valid, sigmoid * (1.0 - sigmoid) * lr, 0.0) * (
                        in_square + tl.sum(rows * rows, axis=1))
                    in_contraction += pair
                    g = g * _stretch(pair, tl.load(copies_ptr + target, mask=valid, other=1))
            g_noise = tl.where(pick[None, :], g[:, None], g_noise)        # the output rows' (stretched) coefficients
            if sampled:
                loss += tl.sum(tl.where(valid, _softplus(noise_dots), 0.0), axis=0)

        # writes: the input rows, then the output rows from the input values still in x. Relaxed atomics are
        # enough for Hogwild and compile to fire-and-forget reductions. On a GPU a later window of this program
        # may still read a row before these adds land (as other programs' windows may): word2vec's races.
        if STRETCH:
            delta_in = delta_in * _stretch(in_contraction, tl.load(copies_ptr + contexts, mask=context_valid,
                                                                   other=1))[:, None]
        tl.atomic_add(in_rows, delta_in, mask=row_mask, sem="relaxed")
        tl.atomic_add(out_ptr + word.to(tl.int64) * out_stride + d, tl.sum(g_center[:, None] * x, axis=0),
                      mask=d_valid & (count > 0), sem="relaxed")
        for n in range(NEGATIVE):
            pick = k == n
            g = tl.sum(tl.where(pick[None, :], g_noise, 0.0), axis=1)                                # [BLOCK_J]
            if SHARED:
                target = tl.sum(tl.where(pick, noise, 0), axis=0)
                tl.atomic_add(out_ptr + target.to(tl.int64) * out_stride + d, tl.sum(g[:, None] * x, axis=0),
                              mask=d_valid & (target >= 0), sem="relaxed")
            else:
                target = tl.sum(tl.where(pick[None, :], noise, 0), axis=1)
                tl.atomic_add(out_ptr + target.to(tl.int64)[:, None] * out_stride + d[None, :], g[:, None] * x,
                              mask=(target >= 0)[:, None] & d_valid[None, :], sem="relaxed")

        pairs += count
        loss_sum += loss.to(tl.float64)
        loss_pairs += tl.where(sampled, count, 0)

    tl.store(stats_ptr + part * 3, pairs.to(tl.float64))
    tl.store(stats_ptr + part * 3 + 1, loss_sum)
    tl.store(stats_ptr + part * 3 + 2, loss_pairs.to(tl.float64))


def _int32_on(tensor, device: torch.device) -> torch.Tensor:
    tensor = torch.as_tensor(tensor)
    return tensor.to(device=device, dtype=torch.int32).contiguous()


def train_windows(input_table: torch.Tensor, output_table: torch.Tensor, launch: WindowLaunch,
                  alias_threshold: torch.Tensor, alias: torch.Tensor, rule: WindowRule,
                  lr_start: float, lr_end: float) -> LaunchResult:
    """sgns_reference.train_windows on fp32 tables on a GPU (or on CPU under TRITON_INTERPRET=1): one program per
    part of the launch, all at once, updating both tables in place."""
    if input_table.dtype != torch.float32 or output_table.dtype != torch.float32:
        raise ValueError(f"the Triton kernel takes fp32 tables, not {input_table.dtype} / {output_table.dtype}")
    if input_table.stride(1) != 1 or output_table.stride(1) != 1:
        raise ValueError("the tables' rows must be contiguous")
    if rule.window < 1 or rule.negative < 1:
        raise ValueError(f"window and negative must be at least 1, not {rule.window} and {rule.negative}")
    dim = output_table.shape[1]
    total = launch.centers
    parts = launch.parts.numel() - 1
    if total == 0 or parts <= 0:
        return LaunchResult(0, 0.0, 0)
    device = input_table.device
    alias_threshold, alias = _int32_on(alias_threshold, device), _int32_on(alias, device)
    stats = torch.zeros((parts, 3), dtype=torch.float64, device=device)
    block_j = triton.next_power_of_2(2 * rule.window)
    block_d = triton.next_power_of_2(dim)
    copies = alias if rule.copies is None else _int32_on(rule.copies, device)  # not read when not stretched
    _sgns_windows_kernel[(parts,)](
        input_table, output_table, input_table.stride(0), output_table.stride(0),
        launch.words, launch.positions, launch.word_chunk, launch.chunk_start, launch.chunk_end,
        launch.chunk_key, launch.parts.to(device), alias_threshold, alias, copies,
        stats, alias.numel(), total, dim, float(lr_start), float(lr_end),
        WINDOW=rule.window, NEGATIVE=rule.negative, SHARED=bool(rule.shared_negatives),
        SLOTS=draw_slots(rule.window, rule.negative), STRETCH=rule.copies is not None, SAMPLE=LOSS_SAMPLE,
        BLOCK_J=block_j, BLOCK_K=triton.next_power_of_2(rule.negative), BLOCK_D=block_d,
        # a few registers per element of the [BLOCK_J, BLOCK_D] tiles: more warps for wider rows
        num_warps=max(1, min(8, block_j * block_d // 512)))
    pairs, loss_sum, loss_pairs = stats.sum(dim=0).tolist()     # the launch's one device-to-host sync
    return LaunchResult(int(pairs), float(loss_sum), int(loss_pairs))
