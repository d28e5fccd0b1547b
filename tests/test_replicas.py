"""The replicas' sync rules (train/replicas.py), run by two gloo processes on loopback, against the rules' formulas
computed here with NumPy from the same tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.train_fixtures import free_port
from w2vdist.train.engine import Tables
from w2vdist.train import sync_numba
from w2vdist.train.agreement import AGREED_STEP, rule_scale
from w2vdist.train.replicas import (ReplicaGroup, apply_rows_torch, change_squares_torch, pack_changes_torch,
                                    worker_groups)

ROWS, DIM = 6, 4
COPIES = torch.tensor([1, 2, 2, 1, 2, 1], dtype=torch.int32)  # the rows' copies of sync_rule=stretched


def _changes(replicas: int) -> np.ndarray:
    """Each replica's change to the input table: row 0 changed by replica 0 only, row 1 in one direction by all
    (a frequent word), row 2 in opposite directions, rows 3-5 in unrelated directions, row 5 by nobody."""
    rng = np.random.default_rng(7)
    changes = rng.normal(size=(replicas, ROWS, DIM)).astype(np.float32)
    changes[1:, 0] = 0.0
    changes[:, 1] = changes[0, 1]
    changes[1, 2] = -changes[0, 2]
    changes[:, 5] = 0.0
    return changes


def _start() -> Tables:
    generator = torch.Generator().manual_seed(3)
    return Tables(torch.randn(ROWS, DIM, generator=generator), torch.randn(ROWS, DIM, generator=generator))


def _replica(rank: int, replicas: int, port: int, rule: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=replicas)
    try:
        tables = _start()
        _, group, _ = worker_groups(1, DIM, rule)
        group.start(tables, COPIES if rule == "stretched" else None)
        change = torch.from_numpy(_changes(replicas)[rank])
        tables.input.add_(change)
        tables.output.add_(2 * change)
        group.sync(tables)
        results[rank] = (tables.input.numpy().copy(), tables.output.numpy().copy())
    finally:
        dist.destroy_process_group()


def _expected(rule: str, start: np.ndarray, changes: np.ndarray) -> np.ndarray:
    replicas = len(changes)
    total = changes.sum(0)
    if rule == "stretched":  # the kernels stretched row w's updates to k_w copies; the sync divides by k_w
        return start + total / COPIES.numpy()[:, None]
    if rule == "average":
        return start + total / replicas
    if rule == "changes":
        return start + total
    own = (changes ** 2).sum(axis=(0, 2))
    together = np.maximum((total ** 2).sum(1), np.finfo(np.float32).tiny)
    with np.errstate(over="ignore"):  # changes that cancel: any scale leaves the row where it was
        scale = np.clip(AGREED_STEP * own / together, 1 / replicas, 1)
    return start + total * scale[:, None]


@pytest.mark.parametrize("rule", ["stretched", "agreement", "changes", "average"])
def test_two_replicas_sync_by_the_rule(rule):
    replicas = 2
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_replica, args=(replicas, free_port(), rule, results), nprocs=replicas)
        results = dict(results)
    start = _start()
    changes = _changes(replicas)
    want_input = _expected(rule, start.input.numpy(), changes)
    want_output = _expected(rule, start.output.numpy(), 2 * changes)
    for rank in range(replicas):
        np.testing.assert_allclose(results[rank][0], want_input, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(results[rank][1], want_output, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    if rule == "agreement":
        moved = results[0][0] - start.input.numpy()
        np.testing.assert_allclose(moved[0], changes[0, 0], rtol=1e-5)   # one replica's change counts fully
        np.testing.assert_allclose(moved[1], AGREED_STEP * changes[0, 1], rtol=1e-5)  # agreeing: not 2x one
        np.testing.assert_allclose(moved[2], 0.0, atol=1e-6)              # opposite changes cancel
        np.testing.assert_array_equal(moved[5], 0.0)


@pytest.mark.parametrize("rule", ["stretched", "agreement", "changes", "average"])
def test_the_compiled_sync_arithmetic_equals_the_torch_reference(rule):
    """sync_numba (CPUs) against replicas.py's torch functions (the reference, and the GPU's way), on the rows of
    _changes (one replica's, agreeing, cancelling, unrelated and unchanged rows) with three replicas' sum, and a
    change too small for its square (a float32 underflow) that must still count as a change."""
    start, changes = _start().input, torch.from_numpy(_changes(3))
    start[5, 0], changes[0, 5, 0] = 0.0, 1e-30
    floor, step = rule_scale(rule, 3, COPIES)
    floors = torch.as_tensor(floor, dtype=torch.float32).expand(ROWS).contiguous()
    results = []
    for change_squares, pack_changes, apply_rows in (
            (change_squares_torch, pack_changes_torch, apply_rows_torch),
            (sync_numba.change_squares, sync_numba.pack_changes, sync_numba.apply_rows)):
        table, synced, squares = start + changes[0], start.clone(), torch.empty(ROWS)
        change_squares(table, synced, squares)
        assert (squares > 0).tolist() == [True] * ROWS
        own_squares = squares + changes[1:].pow(2).sum((0, 2))   # what the all-reduce adds up
        rows = torch.tensor([0, 1, 2, 3, 5])                      # row 4 left out: it must stay as it is
        packed = torch.empty(len(rows), DIM)
        pack_changes(table, synced, rows, packed)
        np.testing.assert_allclose(packed, (table - start)[rows])
        packed += changes[1:, rows].sum(0)                          # the all-reduce
        before = table[4].clone()
        apply_rows(table, synced, rows, packed, own_squares, floors, step)
        assert torch.equal(table[rows], synced[rows]) and torch.equal(table[4], before)
        results.append((squares, table))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-6, atol=1e-7)
    rows = [0, 1, 2, 3]
    np.testing.assert_allclose(results[0][1][rows], _expected(rule, start.numpy(), changes.numpy())[rows],
                               rtol=1e-5, atol=1e-6)


def test_one_replica_leaves_the_tables_alone():
    tables = _start()
    before = tables.input.clone()
    group = ReplicaGroup(0, 1, "agreement")
    group.start(tables)
    group.sync(tables)
    assert torch.equal(tables.input, before) and group.totals.syncs == 0


def _grid_worker(rank: int, workers: int, port: int, results) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=workers)
    try:
        place, group, shards = worker_groups(2, DIM, "changes")
        columns = slice(place.columns(DIM).start, place.columns(DIM).stop)
        whole = _start()
        tables = Tables(whole.input[:, columns].contiguous(), whole.output[:, columns].contiguous())
        group.start(tables)
        change = torch.from_numpy(_changes(place.replicas)[place.replica])[:, columns]
        tables.input.add_(change)
        tables.output.add_(2 * change)
        group.sync(tables)
        gathered = (shards.whole(tables.input), shards.whole(tables.output))
        if place.shard == 0:
            results[place.replica] = tuple(table.numpy() for table in gathered)
        results["sum", rank] = group.sum([place.replica + 1.0], torch.device("cpu"))[0]
    finally:
        dist.destroy_process_group()


def test_two_replicas_of_two_column_shards_sync_shard_by_shard():
    """Workers 0, 1 are replica 0's shards, workers 2, 3 replica 1's: each shard index syncs its columns with the
    other replica's, the whole tables gathered from a replica's shards are the sync rule's, and a replica's
    progress counts once, not once per shard."""
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_grid_worker, args=(4, free_port(), results), nprocs=4)
        results = dict(results)
    start, changes = _start(), _changes(2)
    for replica in (0, 1):
        np.testing.assert_allclose(results[replica][0], _expected("changes", start.input.numpy(), changes),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(results[replica][1], _expected("changes", start.output.numpy(), 2 * changes),
                                   rtol=1e-5, atol=1e-6)
    assert [results["sum", rank] for rank in range(4)] == [3.0] * 4
