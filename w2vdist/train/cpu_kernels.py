"""The SGNS step and the noise draws for CPU tables, compiled with numba: model.py's arithmetic without its large
temporaries or its per-operation overhead.

PyTorch's gather / bmm / index_add_ on CPU materialise batch x (1+K) x dim tensors and run several passes over
them, which makes the step memory-bound at about a quarter of gensim's speed. These loops touch each row once per
use, like word2vec's C loop. The passes that write rows split the rows between threads (`_owner`), so there are
no races and the result does not depend on the number of threads. Each loop asks for the rows it will need a few
pairs ahead (`_prefetch_row`): the rows are random, and waiting on memory for them was a third of the step.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from w2vdist.train import random_streams

# random_streams' SplitMix64: draw i of a key is the same here and in torch
_GAMMA = np.uint64(random_streams.GAMMA)
_MIX1 = np.uint64(random_streams.MIX1)
_MIX2 = np.uint64(random_streams.MIX2)
_OWNER_HASH = np.uint64(0x9E3779B1)
AHEAD = 4  # pairs between asking for a row and using it


@intrinsic
def _prefetch(typingctx, address, for_writing):
    """LLVM's prefetch of the cache line at `address` into every cache level. Only rows about to be written are
    fetched for writing: that takes the line from the other cores' caches, where it may be in use."""
    def codegen(context, builder, signature, args):
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        prefetch = builder.module.declare_intrinsic(
            "llvm.prefetch", [byte_pointer], ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]))
        builder.call(prefetch, [builder.inttoptr(args[0], byte_pointer), i32(int(for_writing.literal_value)), i32(3),
                                i32(1)])
        return context.get_dummy_value()
    if not isinstance(for_writing, types.BooleanLiteral):
        raise numba.errors.TypingError("for_writing must be a literal True or False")
    return types.void(types.uintp, for_writing), codegen


@njit(inline="always")
def _prefetch_row(table, row, for_writing):  # pragma: no cover - compiled
    start = table[row].ctypes.data
    for offset in range(0, table.shape[1] * table.itemsize, 64):
        _prefetch(start + offset, for_writing)


@njit(inline="always")
def _splitmix64(state):  # pragma: no cover - compiled
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _noise_word(key, index, threshold, alias):  # pragma: no cover - compiled
    # No fastmath here: the float steps must round as torch's do (random_streams.uniform).
    size = alias.shape[0]
    bits = _splitmix64(np.uint64(key) + np.uint64(index + 1) * _GAMMA)
    scaled = np.float64(bits >> np.uint64(11)) * 1.1102230246251565e-16 * size  # 2**-53
    column = min(np.int64(scaled), size - 1)
    return column if scaled - column < threshold[column] else alias[column]


@njit(parallel=True, cache=True)
def draw_targets(key, threshold, alias, contexts, targets):  # pragma: no cover - compiled
    """targets[b] = contexts[b], then draws b * K to (b + 1) * K - 1 of this key (model.NoiseSampler)."""
    negative = targets.shape[1] - 1
    for b in prange(targets.shape[0]):
        targets[b, 0] = contexts[b]
        for k in range(negative):
            targets[b, 1 + k] = _noise_word(key, b * negative + k, threshold, alias)


@njit(cache=True)
def alias_table(probabilities):  # pragma: no cover - compiled
    """Vose's alias method: column i is word i with probability threshold[i], else word alias[i]."""
    size = probabilities.shape[0]
    scaled = probabilities * size
    alias = np.arange(size)
    small = np.empty(size, np.int64)
    large = np.empty(size, np.int64)
    n_small = n_large = 0
    for i in range(size):
        if scaled[i] < 1.0:
            small[n_small] = i
            n_small += 1
        else:
            large[n_large] = i
            n_large += 1
    while n_small and n_large:
        n_small -= 1
        n_large -= 1
        low, high = small[n_small], large[n_large]
        alias[low] = high
        scaled[high] -= 1.0 - scaled[low]
        if scaled[high] < 1.0:
            small[n_small] = high
            n_small += 1
        else:
            large[n_large] = high
            n_large += 1
    for i in range(n_small):  # what is left is 1 up to rounding
        scaled[small[i]] = 1.0
    for i in range(n_large):
        scaled[large[i]] = 1.0
    return scaled.astype(np.float32), alias


@njit(inline="always")
def _owner(row, owners):  # pragma: no cover - compiled
    """The thread that writes `row`. Rows go by blocks of 16, which start on a cache line whatever the dim, so two
    threads never write one line (row-by-row ownership split the lines between rows, and the hottest rows, the
    frequent words, are neighbours). A multiplicative hash, not a modulo: an integer division per update cost more
    than the update."""
    block = np.uint64(row >> 4)
    return np.int64(((block * _OWNER_HASH) & np.uint64(0xFFFFFFFF)) * np.uint64(owners) >> np.uint64(32))


@njit(parallel=True, fastmath=True, cache=True)
def partial_dots(words, contexts, centers, targets, dots):  # pragma: no cover - compiled
    # Row views (words[c]) rather than words[c, j]: numba then drops the per-element index checks and
    # vectorises the inner loops, about 15x faster.
    batch, per_pair = targets.shape
    for b in prange(batch):
        if b + AHEAD < batch:
            _prefetch_row(words, centers[b + AHEAD], False)
            for t in range(per_pair):
                _prefetch_row(contexts, targets[b + AHEAD, t], False)
        word = words[centers[b]]
        for t in range(per_pair):
            context = contexts[targets[b, t]]
            total = np.float32(0.0)
            for j in range(word.shape[0]):
                total += word[j] * context[j]
            dots[b, t] = total


@njit(parallel=True, fastmath=True, cache=True)
def _word_updates(contexts, targets, coefficients, word_updates):  # pragma: no cover
    batch, per_pair = targets.shape
    # 1. the words' updates, from the context rows before the step
    for b in prange(batch):
        if b + AHEAD < batch:
            for t in range(per_pair):
                _prefetch_row(contexts, targets[b + AHEAD, t], False)
        update = word_updates[b]
        update[:] = 0.0
        for t in range(per_pair):
            g = coefficients[b, t]
            if g != 0.0:
                context = contexts[targets[b, t]]
                for j in range(update.shape[0]):
                    update[j] += g * context[j]


@njit(parallel=True, fastmath=True, cache=True)
def _update_contexts(words, contexts, centers, targets, coefficients, owners):  # pragma: no cover
    # 2. the context rows, from the word rows before the step (not yet changed). Thread k applies the updates of
    # the rows it owns, in batch order: no two threads write one row, and each row sees the same additions in the
    # same order whatever the number of threads.
    batch, per_pair = targets.shape
    flat_targets = targets.reshape(-1)
    flat_coefficients = coefficients.reshape(-1)
    pair_of = np.empty((owners, batch * per_pair), np.int64)
    update_of = np.empty((owners, batch * per_pair), np.int64)
    for owner in prange(owners):
        # This thread's updates, listed without a branch: a branch per update, mispredicted half the time, cost
        # more than the update.
        mine = 0
        for b in range(batch):
            for t in range(per_pair):
                i = b * per_pair + t
                pair_of[owner, mine] = b
                update_of[owner, mine] = i
                mine += (flat_coefficients[i] != 0.0) & (owners == 1 or _owner(flat_targets[i], owners) == owner)
        for m in range(mine):
            if m + AHEAD * per_pair < mine:
                _prefetch_row(contexts, flat_targets[update_of[owner, m + AHEAD * per_pair]], True)
            i = update_of[owner, m]
            g = flat_coefficients[i]
            word = words[centers[pair_of[owner, m]]]
            context = contexts[flat_targets[i]]
            for j in range(word.shape[0]):
                context[j] += g * word[j]


@njit(parallel=True, fastmath=True, cache=True)
def _update_words(words, centers, word_updates, owners):  # pragma: no cover
    # 3. the word rows, once every context row has read them (a kernel of its own: numba would fuse two
    # parallel loops of one function, and a word row could then change before a context row reads it)
    pair_of = np.empty((owners, centers.shape[0]), np.int64)
    for owner in prange(owners):
        mine = 0
        for b in range(centers.shape[0]):
            pair_of[owner, mine] = b
            mine += owners == 1 or _owner(centers[b], owners) == owner
        for m in range(mine):
            if m + AHEAD < mine:
                _prefetch_row(words, centers[pair_of[owner, m + AHEAD]], True)
            b = pair_of[owner, m]
            word = words[centers[b]]
            update = word_updates[b]
            for j in range(word.shape[0]):
                word[j] += update[j]


@njit(parallel=True, fastmath=True, cache=True)
def _whole_step(words, contexts, centers, targets, valid, lr, coefficients, word_updates,
                losses):  # pragma: no cover
    # With one shard the dot products are complete at once, so the coefficients, the words' updates and the loss
    # come out of the same pass over the context rows as the dots (model.sgns_coefficients and pass 1, fused).
    batch, per_pair = targets.shape
    for b in prange(batch):
        if b + AHEAD < batch:
            _prefetch_row(words, centers[b + AHEAD], False)
            for t in range(per_pair):
                _prefetch_row(contexts, targets[b + AHEAD, t], False)
        update = word_updates[b]
        update[:] = 0.0
        losses[b] = 0.0
        if not valid[b]:
            coefficients[b, :] = 0.0
            continue
        word = words[centers[b]]
        # -log sigmoid(d_0) - sum_k log sigmoid(-d_k) = sum_t log(1 + exp(-d_t)) + sum_{k>0} d_k: one log per
        # pair, of a product kept in float64 so that it neither overflows nor loses the small terms
        product = 1.0
        noise_dots = 0.0
        for t in range(per_pair):
            o = targets[b, t]
            if t > 0 and o == targets[b, 0]:
                coefficients[b, t] = 0.0
                continue
            context = contexts[o]
            dot = np.float32(0.0)
            for j in range(word.shape[0]):
                dot += word[j] * context[j]
            e = np.exp(-dot)
            product *= 1.0 + np.float64(e)
            if t > 0:
                noise_dots += dot
            label = np.float32(1.0) if t == 0 else np.float32(0.0)
            g = (label - np.float32(1.0) / (np.float32(1.0) + e)) * lr
            coefficients[b, t] = g
            for j in range(word.shape[0]):
                update[j] += g * context[j]
        losses[b] = np.log(product) + noise_dots


def apply_update(words: np.ndarray, contexts: np.ndarray, centers: np.ndarray, targets: np.ndarray,
                 coefficients: np.ndarray) -> None:
    word_updates = np.empty((len(centers), words.shape[1]), dtype=np.float32)
    _word_updates(contexts, targets, coefficients, word_updates)
    _update_contexts(words, contexts, centers, targets, coefficients, numba.get_num_threads())
    _update_words(words, centers, word_updates, numba.get_num_threads())


def whole_step(words: np.ndarray, contexts: np.ndarray, centers: np.ndarray, targets: np.ndarray,
               valid: np.ndarray, lr: float) -> float:
    """The whole step of an unsharded table; returns the batch's summed loss (from the tables before the step)."""
    coefficients = np.empty(targets.shape, dtype=np.float32)
    word_updates = np.empty((len(centers), words.shape[1]), dtype=np.float32)
    losses = np.empty(len(centers), dtype=np.float64)
    _whole_step(words, contexts, centers, targets, valid, np.float32(lr), coefficients, word_updates, losses)
    _update_contexts(words, contexts, centers, targets, coefficients, numba.get_num_threads())
    _update_words(words, centers, word_updates, numba.get_num_threads())
    return float(losses.sum())
