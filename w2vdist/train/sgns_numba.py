"""The update rule compiled with numba for CPU tables: sgns_reference.py's arithmetic, one window at a time, with
no temporaries beyond one window's and no Python per center.

Threads train the parts of a launch at once, each part's centers in order, writing the shared tables without
locks, as word2vec's and gensim's threads do (Hogwild: Recht et al. 2011): two threads may now and then add to the
same row at once and one of the two additions can be lost, which costs nothing measurable in quality, while any
lock or barrier per window would cost most of the speed. A thread takes the next untrained part when it finishes
one, so a thread slowed down by other work on the machine holds no other thread back; only the end of a launch
waits for every thread. The learning rate of a center depends on its index in the launch only, so the schedule
is the same for any number of threads, and with one thread the result equals the reference's.
"""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from w2vdist import random_streams
from w2vdist.train.stretch import MAX_CONTRACTION, SERIES_BELOW
from w2vdist.train.types import LOSS_SAMPLE, LaunchResult, WindowLaunch, WindowRule, draw_slots

_GAMMA = np.uint64(random_streams.GAMMA)
_MIX1 = np.uint64(random_streams.MIX1)
_MIX2 = np.uint64(random_streams.MIX2)
_LOW24 = np.uint64((1 << random_streams.PROBABILITY_BITS) - 1)
# fast-math without 'nnan'/'ninf': the sigmoid's exp may overflow to inf on purpose
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
MAX_DOT = 30.0   # sigmoid(30) is 1 in float32; clipping keeps exp finite
GEOMETRIC_COPIES = 64  # _stretch sums its series term by term up to this many copies
AHEAD = 3        # centers between asking for a center's output rows and using them


@intrinsic
def _prefetch(typingctx, address):
    """LLVM's prefetch of the cache line at `address`, for reading, into every cache level."""
    def codegen(context, builder, signature, args):
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        prefetch = builder.module.declare_intrinsic(
            "llvm.prefetch", [byte_pointer], ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]))
        builder.call(prefetch, [builder.inttoptr(args[0], byte_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(types.uintp), codegen


@njit(inline="always")
def _prefetch_row(table, row):  # pragma: no cover - compiled
    """The output rows are random (the center, its noise words), and waiting for memory was much of a window's
    time: ask for them a few centers ahead."""
    start = table[row].ctypes.data
    for offset in range(0, table.shape[1] * table.itemsize, 64):
        _prefetch(start + offset)


@njit(inline="always")
def _bits(key, counter):  # pragma: no cover - compiled
    z = key + (counter + np.uint64(1)) * _GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _noise(bits, alias_threshold, alias, vocab):  # pragma: no cover - compiled
    column = np.int64(((bits >> np.uint64(32)) * vocab) >> np.uint64(32))
    if np.int64(bits & _LOW24) < alias_threshold[column]:
        return column
    return np.int64(alias[column])


@njit(inline="always", fastmath=_FASTMATH)
def _of_dot(dot, positive, lr):  # pragma: no cover - compiled
    """The pair's (label - sigmoid(dot)) * lr, the signed dot whose -log sigmoid is its loss, and sigmoid(dot)."""
    dot = min(max(dot, np.float32(-MAX_DOT)), np.float32(MAX_DOT))
    label = np.float32(1.0) if positive else np.float32(0.0)
    sigmoid = np.float32(1.0) / (np.float32(1.0) + np.exp(-dot))
    return (label - sigmoid) * lr, dot if positive else -dot, sigmoid


@njit(inline="always", fastmath=_FASTMATH)
def _coefficient(row_in, row_out, positive, lr):  # pragma: no cover - compiled
    """_of_dot of the rows' dot."""
    dot = np.float32(0.0)
    for d in range(row_in.shape[0]):
        dot += row_in[d] * row_out[d]
    return _of_dot(dot, positive, lr)


@njit(inline="always", fastmath=_FASTMATH)
def _stretched_coefficient(row_in, row_out, positive, lr, in_square, copies, most):  # pragma: no cover - compiled
    """_coefficient, and the same stretched to `copies` of the output row (stretch.py), with |row_out|^2 from the
    same pass over the row; also the pair's contraction h, which the input row's stretch sums over its targets."""
    dot = np.float32(0.0)
    out_square = np.float32(0.0)
    for d in range(row_in.shape[0]):
        dot += row_in[d] * row_out[d]
        out_square += row_out[d] * row_out[d]
    g, signed, sigmoid = _of_dot(dot, positive, lr)
    contraction = lr * sigmoid * (np.float32(1.0) - sigmoid) * (in_square + out_square)
    return g, g * _stretch(contraction, copies, most), signed, contraction


@njit(inline="always", fastmath=_FASTMATH)
def _square(row):  # pragma: no cover - compiled
    total = np.float32(0.0)
    for d in range(row.shape[0]):
        total += row[d] * row[d]
    return total


@njit(inline="always", fastmath=_FASTMATH)
def _stretch(contraction, copies, most):  # pragma: no cover - compiled
    """stretch.stretch_torch for one contraction h: (1 - (1 - h)^R) / h as the sum of (1 - h)^i for i < R, by
    Horner's rule (R - 1 multiply-adds of positive terms: nothing cancels); in float64 from a closed form for R
    beyond GEOMETRIC_COPIES. `most`: the largest R of the launch; the loop always runs most - 1 steps and takes
    the last R - 1, a select and no branch, as rows' R differ from one pair to the next."""
    h = min(max(contraction, np.float32(0.0)), np.float32(MAX_CONTRACTION))
    if most > GEOMETRIC_COPIES:
        h64 = np.float64(h)
        if h64 < SERIES_BELOW:
            return np.float32(copies - copies * (copies - 1) / 2 * h64
                              + copies * (copies - 1) * (copies - 2) / 6 * h64 * h64)
        return np.float32(-math.expm1(copies * math.log1p(-h64)) / h64)
    kept = np.float32(1.0) - h
    total = np.float32(1.0)
    skipped = most - copies
    for step in range(most - 1):
        grown = np.float32(1.0) + kept * total
        total = grown if step >= skipped else total
    return total


@njit(inline="always")
def _loss(signed):  # pragma: no cover - compiled
    """-log sigmoid(signed), without overflow."""
    return math.log1p(math.exp(-abs(signed))) + max(-signed, 0.0)


@njit(inline="always", fastmath=_FASTMATH)
def _add_scaled(target, scale, source):  # pragma: no cover - compiled
    for d in range(target.shape[0]):
        target[d] += scale * source[d]


@njit(inline="always")
def _draw_ahead(drawn, out, words, positions, word_chunk, chunk_key, c, slots, window, negative, shared,
                alias_threshold, alias, vocab):  # pragma: no cover - compiled
    """Center c's noise words into `drawn` (draw k of its counters at k - 1), and its output rows asked for, AHEAD
    centers before they are used. Per-context draws: only the slots inside c's reach (offsets -b..-1, 1..b are
    slots window-b..window+b-1)."""
    key = np.uint64(chunk_key[word_chunk[c]])
    base = np.uint64(positions[c]) * slots
    _prefetch_row(out, words[c])
    if shared:
        first_draw, count = 1, negative
    else:
        reach = 1 + np.int64(((_bits(key, base) >> np.uint64(32)) * np.uint64(window)) >> np.uint64(32))
        first_draw, count = 1 + (window - reach) * negative, 2 * reach * negative
    for k in range(first_draw, first_draw + count):
        noise = _noise(_bits(key, base + np.uint64(k)), alias_threshold, alias, vocab)
        drawn[k - 1] = noise
        _prefetch_row(out, noise)


@njit(nogil=True, fastmath=_FASTMATH, cache=True, boundscheck=False)
def train_part(inp, out, words, positions, word_chunk, chunk_start, chunk_end, chunk_key, first, last, total,
               alias_threshold, alias, slots, window, negative, shared, copies, most, lr_start, lr_end,
               loss_sample):  # pragma: no cover
    """Train centers first..last-1 of a launch of `total` centers, each update of row w stretched to copies[w]
    copies (stretch.py; `most` the largest; `copies` empty: word2vec's rule); returns (pairs, loss_sum,
    loss_pairs)."""
    stretching = copies.shape[0] > 0
    dim = inp.shape[1]
    vocab = np.uint64(alias.shape[0])
    slots = np.uint64(slots)
    targets_per = negative + 1
    contexts = np.empty(2 * window, np.int64)
    targets = np.empty((2 * window, targets_per), np.int64)
    coefficient = np.empty((2 * window, targets_per), np.float32)    # of the input rows' updates
    out_coefficient = np.empty((2 * window, targets_per), np.float32)  # of the output rows' updates
    in_stretch = np.ones(2 * window, np.float32)
    gradient = np.empty((2 * window, dim), np.float32)
    drawn = np.empty((AHEAD + 1, negative if shared else 2 * window * negative), np.int64)  # draw k at k - 1
    pairs = 0
    loss_sum = 0.0
    loss_pairs = 0
    for c in range(first, min(first + AHEAD, last)):
        _draw_ahead(drawn[c % (AHEAD + 1)], out, words, positions, word_chunk, chunk_key, c, slots, window,
                    negative, shared, alias_threshold, alias, vocab)
    for i in range(first, last):
        if i + AHEAD < last:
            _draw_ahead(drawn[(i + AHEAD) % (AHEAD + 1)], out, words, positions, word_chunk, chunk_key, i + AHEAD,
                        slots, window, negative, shared, alias_threshold, alias, vocab)
        draws = drawn[i % (AHEAD + 1)]
        chunk = word_chunk[i]
        key = np.uint64(chunk_key[chunk])
        base = np.uint64(positions[i]) * slots
        reach = 1 + np.int64(((_bits(key, base) >> np.uint64(32)) * np.uint64(window)) >> np.uint64(32))
        low = max(np.int64(chunk_start[chunk]), i - reach)
        high = min(np.int64(chunk_end[chunk]), i + reach + 1)
        word = np.int64(words[i])
        n = 0
        for j in range(low, high):
            if j == i:
                continue
            contexts[n] = words[j]
            targets[n, 0] = word
            if shared:
                for k in range(negative):
                    targets[n, k + 1] = draws[k]
            else:
                offset = j - i
                slot = offset + window if offset < 0 else offset + window - 1
                for k in range(negative):
                    targets[n, k + 1] = draws[slot * negative + k]
            n += 1
        if n == 0:
            continue
        lr = np.float32(lr_start + (lr_end - lr_start) * (i / total))
        sampled = i % loss_sample == 0
        for a in range(n):
            row_in = inp[contexts[a]]
            in_square = _square(row_in) if stretching else np.float32(0.0)
            in_contraction = np.float32(0.0)
            for k in range(targets_per):
                target = targets[a, k]
                if k > 0 and target == word:
                    coefficient[a, k] = 0.0
                    out_coefficient[a, k] = 0.0
                    continue
                if stretching:
                    g, out_coefficient[a, k], signed, pair = _stretched_coefficient(
                        row_in, out[target], k == 0, lr, in_square, copies[target], most)
                    in_contraction += pair
                else:
                    g, signed, sigmoid = _coefficient(row_in, out[target], k == 0, lr)
                    out_coefficient[a, k] = g
                coefficient[a, k] = g
                if sampled:
                    loss_sum += _loss(signed)
            if stretching:
                in_stretch[a] = _stretch(in_contraction, copies[contexts[a]], most)
        if sampled:
            loss_pairs += n
        pairs += n
        # every dot of the window was taken above; now the updates, each from the rows as they were before
        for a in range(n):
            gradient[a, :] = 0.0
            for k in range(targets_per):
                if coefficient[a, k] != 0.0:
                    _add_scaled(gradient[a], coefficient[a, k], out[targets[a, k]])
        for a in range(n):
            for k in range(targets_per):
                if out_coefficient[a, k] != 0.0:
                    _add_scaled(out[targets[a, k]], out_coefficient[a, k], inp[contexts[a]])
        for a in range(n):
            _add_scaled(inp[contexts[a]], in_stretch[a], gradient[a])
    return pairs, loss_sum, loss_pairs


@njit(nogil=True, fastmath=_FASTMATH, cache=True, boundscheck=False)
def train_pair_part(inp, out, centers, contexts, pair_keys, pair_rows, first, last, total, alias_threshold, alias,
                    negative, copies, most, lr_start, lr_end, loss_sample):  # pragma: no cover - compiled
    """sgns_reference.train_pairs for pairs first..last-1 of a launch of `total`, `copies` as in train_part; returns
    (pairs, loss, loss pairs)."""
    stretching = copies.shape[0] > 0
    dim = inp.shape[1]
    vocab = np.uint64(alias.shape[0])
    targets = np.empty(negative + 1, np.int64)
    coefficient = np.empty(negative + 1, np.float32)  # of the output rows' updates
    grad = np.empty(dim, np.float32)
    loss_sum = 0.0
    loss_pairs = 0
    for i in range(first, last):
        word = np.int64(centers[i])
        row_in = inp[contexts[i]]
        key = np.uint64(pair_keys[i])
        base = np.uint64(pair_rows[i]) * np.uint64(negative)
        targets[0] = word
        for k in range(negative):
            targets[k + 1] = _noise(_bits(key, base + np.uint64(k)), alias_threshold, alias, vocab)
        lr = np.float32(lr_start + (lr_end - lr_start) * (i / total))
        sampled = i % loss_sample == 0
        for d in range(dim):
            grad[d] = 0.0
        in_square = _square(row_in) if stretching else np.float32(0.0)
        in_contraction = np.float32(0.0)
        for k in range(negative + 1):
            target = targets[k]
            if k > 0 and target == word:
                coefficient[k] = 0.0
                continue
            row_out = out[target]
            if stretching:
                g, coefficient[k], signed, pair = _stretched_coefficient(row_in, row_out, k == 0, lr, in_square,
                                                                         copies[target], most)
                in_contraction += pair
            else:
                g, signed, sigmoid = _coefficient(row_in, row_out, k == 0, lr)
                coefficient[k] = g
            _add_scaled(grad, g, row_out)
            if sampled:
                loss_sum += _loss(signed)
        if sampled:
            loss_pairs += 1
        for k in range(negative + 1):
            if coefficient[k] != 0.0:
                _add_scaled(out[targets[k]], coefficient[k], row_in)
        in_factor = _stretch(in_contraction, copies[contexts[i]], most) if stretching else np.float32(1.0)
        _add_scaled(row_in, in_factor, grad)
    return last - first, loss_sum, loss_pairs


def _run_parts(train, parts: list[int], threads: int) -> LaunchResult:
    """Run `train(first, last)` over the parts, `threads` threads each taking the next part when it is done."""
    next_part = itertools.count()
    results: list[tuple[int, float, int]] = []

    def work() -> None:
        mine = []
        while (part := next(next_part)) < len(parts) - 1:
            mine.append(train(parts[part], parts[part + 1]))
        results.extend(mine)  # list.extend is atomic under the GIL

    if threads <= 1:
        work()
    else:
        pool = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    return LaunchResult(sum(r[0] for r in results), float(sum(r[1] for r in results)),
                        sum(r[2] for r in results))


def _copies(copies) -> tuple[np.ndarray, int]:
    """The kernels' form of rule.copies: int32 (empty for None: not stretched), and the largest."""
    if copies is None:
        return np.empty(0, np.int32), 1
    copies = np.ascontiguousarray(copies.numpy(), dtype=np.int32)
    return copies, int(copies.max())


def train_pairs(input_table, output_table, centers, contexts, pair_keys, pair_rows, alias_threshold, alias,
                negative: int, lr_start: float, lr_end: float, parts: list[int], threads: int = 1,
                copies=None) -> LaunchResult:
    """sgns_reference.train_pairs on CPU tensors, the pairs cut into `parts` shared by `threads` threads."""
    arrays = [t.numpy() for t in (input_table, output_table, centers, contexts, pair_keys, pair_rows)]
    threshold, alias_np = alias_threshold.numpy(), alias.numpy()
    total = max(len(centers), 1)
    copies_np, most = _copies(copies)
    return _run_parts(lambda first, last: train_pair_part(*arrays, first, last, total, threshold, alias_np,
                                                          negative, copies_np, most, lr_start, lr_end, LOSS_SAMPLE),
                      parts, threads)


def train_windows(input_table, output_table, launch: WindowLaunch, alias_threshold, alias, rule: WindowRule,
                  lr_start: float, lr_end: float, threads: int = 1) -> LaunchResult:
    """sgns_reference.train_windows on CPU tensors, `threads` threads taking parts as they finish."""
    arrays = [t.numpy() for t in (input_table, output_table, launch.words, launch.positions, launch.word_chunk,
                                  launch.chunk_start, launch.chunk_end, launch.chunk_key)]
    threshold, alias_np = alias_threshold.numpy(), alias.numpy()
    total = max(launch.centers, 1)
    copies, most = _copies(rule.copies)
    return _run_parts(lambda first, last: train_part(*arrays, first, last, total, threshold, alias_np,
                                                     draw_slots(rule.window, rule.negative), rule.window,
                                                     rule.negative, rule.shared_negatives, copies, most,
                                                     lr_start, lr_end, LOSS_SAMPLE),
                      launch.parts.tolist(), threads)
