"""The agreement rule: how several changes of one row become one, by how much they agree. Its arithmetic only, shared
by the replicas' sync (replicas.py, sync_numba.py) and the sharded step's batches (sgns_sharded.py).

A row changed by d_1..d_n moves by (sum_i d_i) x s, s = step x sum_i |d_i|^2 / |sum_i d_i|^2 clipped to
[floor, 1]: changes in unrelated directions add up, changes in one direction move the row `step` times one of
them. The replicas' rules are (floor, step) pairs of it (rule_scale).
"""

from __future__ import annotations

import torch

AGREED_STEP = 1.5  # between the mean (1) and the stability limit (2); chosen by measurement (README, Data parallel)


def agreement_scale(own_squares: torch.Tensor, total_squares: torch.Tensor, floor: float | torch.Tensor,
                    step: float = AGREED_STEP) -> torch.Tensor:
    """The agreement rule's factor for each row's summed change: step x sum_i |d_i|^2 / |sum_i d_i|^2, in
    [floor, 1]. `own_squares` holds sum_i |d_i|^2 per row, `total_squares` |sum_i d_i|^2; `floor` is 1 / the
    number of changes (R replicas in replicas.py; a batch's windows of the row in sgns_sharded.py)."""
    ratio = step * own_squares / total_squares.clamp_min(torch.finfo(total_squares.dtype).tiny)
    return torch.minimum(torch.maximum(ratio, torch.as_tensor(floor, dtype=ratio.dtype, device=ratio.device)),
                         torch.ones_like(ratio))


def rule_scale(rule: str, replicas: int, copies: torch.Tensor | None = None) -> tuple[float | torch.Tensor, float]:
    """(floor, step) of agreement_scale that make `rule`: changes always 1, average always 1 / R; stretched 1 / k_w
    for row w, whose updates the kernels stretched to k_w = copies[w] copies (stretch.py; it needs `copies`)."""
    if rule == "stretched":
        if copies is None:
            raise ValueError("sync_rule=stretched divides each row's change by its copies: pass them")
        return 1.0 / copies.to(torch.float32), 0.0
    return {"changes": (1.0, 0.0), "average": (1.0 / replicas, 0.0), "agreement": (1.0 / replicas, AGREED_STEP)}[rule]
