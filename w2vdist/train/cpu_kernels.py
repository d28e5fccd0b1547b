"""The SGNS step for CPU tables, compiled with numba: model.py's arithmetic without its large temporaries.

PyTorch's gather / bmm / index_add_ on CPU materialise batch x (1+K) x dim tensors and run several passes over
them, which makes the step memory-bound at about a quarter of gensim's speed. These loops touch each row once per
use, like word2vec's C loop. The passes that write rows split the rows between threads (row id modulo the thread
count), so there are no races and the result does not depend on the number of threads.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange


@njit(parallel=True, fastmath=True, cache=True)
def partial_dots(words, contexts, centers, targets, dots):  # pragma: no cover - compiled
    # Row views (words[c]) rather than words[c, j]: numba then drops the per-element index checks and
    # vectorises the inner loops, about 15x faster.
    for b in prange(targets.shape[0]):
        word = words[centers[b]]
        for t in range(targets.shape[1]):
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
    # the rows whose id is k modulo `owners`, in batch order: no two threads write one row, and each row sees
    # the same additions in the same order whatever the number of threads.
    batch, per_pair = targets.shape
    for owner in prange(owners):
        for b in range(batch):
            word = words[centers[b]]
            for t in range(per_pair):
                o = targets[b, t]
                g = coefficients[b, t]
                if g != 0.0 and o % owners == owner:
                    context = contexts[o]
                    for j in range(word.shape[0]):
                        context[j] += g * word[j]


@njit(parallel=True, fastmath=True, cache=True)
def _update_words(words, centers, word_updates, owners):  # pragma: no cover
    # 3. the word rows, once every context row has read them (a kernel of its own: numba would fuse two
    # parallel loops of one function, and a word row could then change before a context row reads it)
    for owner in prange(owners):
        for b in range(centers.shape[0]):
            c = centers[b]
            if c % owners == owner:
                word = words[c]
                update = word_updates[b]
                for j in range(word.shape[0]):
                    word[j] += update[j]


@njit(parallel=True, fastmath=True, cache=True)
def _whole_step(words, contexts, centers, targets, valid, lr, dots, coefficients, word_updates):  # pragma: no cover
    # With one shard the dot products are complete at once, so the coefficients and the words' updates come out
    # of the same pass over the context rows as the dots (model.sgns_coefficients and pass 1 above, fused).
    batch, per_pair = targets.shape
    for b in prange(batch):
        update = word_updates[b]
        update[:] = 0.0
        word = words[centers[b]]
        for t in range(per_pair):
            o = targets[b, t]
            context = contexts[o]
            dot = np.float32(0.0)
            for j in range(word.shape[0]):
                dot += word[j] * context[j]
            dots[b, t] = dot
            if not valid[b] or (t > 0 and o == targets[b, 0]):
                coefficients[b, t] = 0.0
                continue
            label = np.float32(1.0) if t == 0 else np.float32(0.0)
            g = (label - np.float32(1.0) / (np.float32(1.0) + np.exp(-dot))) * lr
            coefficients[b, t] = g
            for j in range(word.shape[0]):
                update[j] += g * context[j]


def apply_update(words: np.ndarray, contexts: np.ndarray, centers: np.ndarray, targets: np.ndarray,
                 coefficients: np.ndarray) -> None:
    word_updates = np.empty((len(centers), words.shape[1]), dtype=np.float32)
    _word_updates(contexts, targets, coefficients, word_updates)
    _update_contexts(words, contexts, centers, targets, coefficients, numba.get_num_threads())
    _update_words(words, centers, word_updates, numba.get_num_threads())


def whole_step(words: np.ndarray, contexts: np.ndarray, centers: np.ndarray, targets: np.ndarray,
               valid: np.ndarray, lr: float, dots: np.ndarray) -> None:
    """The whole step of an unsharded table: fills `dots` (before the step) and applies the update."""
    coefficients = np.empty(targets.shape, dtype=np.float32)
    word_updates = np.empty((len(centers), words.shape[1]), dtype=np.float32)
    _whole_step(words, contexts, centers, targets, valid, np.float32(lr), dots, coefficients, word_updates)
    _update_contexts(words, contexts, centers, targets, coefficients, numba.get_num_threads())
    _update_words(words, centers, word_updates, numba.get_num_threads())
