"""The replicas' sync arithmetic on CPU tables, compiled with numba: replicas.py's torch functions (the reference,
and the GPU's way) with one pass over a table and one over its changed rows, and no temporaries.

On 2 cores the sync's own arithmetic took more time than its all-reduces: every torch operation is one more pass
over tens of megabytes. Here one row at a time stays in L1 while its change, squared norm and new value are made.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

_TINY = np.float32(np.finfo(np.float32).tiny)
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # vectorised sums; no 'nnan'/'ninf': NaNs must show


def change_squares(table: torch.Tensor, synced: torch.Tensor, squares: torch.Tensor) -> None:
    """squares[r] = |table[r] - synced[r]|^2; zero only where the row is unchanged."""
    _change_squares(table.numpy(), synced.numpy(), squares.numpy())


def pack_changes(table: torch.Tensor, synced: torch.Tensor, rows: torch.Tensor, packed: torch.Tensor) -> None:
    """packed[i] = table[rows[i]] - synced[rows[i]]."""
    _pack_changes(table.numpy(), synced.numpy(), rows.numpy(), packed.numpy())


def apply_rows(table: torch.Tensor, synced: torch.Tensor, rows: torch.Tensor, summed: torch.Tensor,
               own_squares: torch.Tensor, floors: torch.Tensor, step: float) -> None:
    """Row rows[i] of both tables becomes synced + agreement_scale x summed[i], the floor of row r floors[r]."""
    _apply_rows(table.numpy(), synced.numpy(), rows.numpy(), summed.numpy(), own_squares.numpy(), floors.numpy(),
                step)


@njit(nogil=True, cache=True, boundscheck=False, fastmath=_FASTMATH)
def _change_squares(table, synced, squares):  # pragma: no cover - compiled
    for r in range(table.shape[0]):
        total = np.float32(0.0)
        for c in range(table.shape[1]):
            change = table[r, c] - synced[r, c]
            total += change * change
        if total == 0:  # unchanged, or a change whose square underflows: look again
            for c in range(table.shape[1]):
                if table[r, c] != synced[r, c]:
                    total = _TINY
        squares[r] = total


@njit(nogil=True, cache=True, boundscheck=False, fastmath=_FASTMATH)
def _pack_changes(table, synced, rows, packed):  # pragma: no cover - compiled
    for i in range(rows.shape[0]):
        source, base, target = table[rows[i]], synced[rows[i]], packed[i]
        for c in range(target.shape[0]):
            target[c] = source[c] - base[c]


@njit(nogil=True, cache=True, boundscheck=False, fastmath=_FASTMATH)
def _apply_rows(table, synced, rows, summed, own_squares, floors, step):  # pragma: no cover - compiled
    for i in range(rows.shape[0]):
        r = rows[i]
        change, row, base = summed[i], table[r], synced[r]
        total = np.float32(0.0)
        for c in range(change.shape[0]):
            total += change[c] * change[c]
        scale = min(max(np.float32(step) * own_squares[r] / max(total, _TINY), floors[r]), np.float32(1.0))
        for c in range(change.shape[0]):
            value = base[c] + scale * change[c]
            row[c] = value
            base[c] = value
