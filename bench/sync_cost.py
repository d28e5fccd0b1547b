"""Sync cost: what one replicas' sync of text8-sized tables costs, phase by phase, between 2 gloo processes.

    python bench/sync_cost.py [--vocab 68092] [--dim 100] [--changed 1.0,0.5]

Two processes on loopback each hold both tables, change the first `changed` share of their rows, and sync them
with ReplicaGroup (rule agreement) a few times; prints the fastest and the median sync, then one table's phases
timed alone: the squared norms of the changes, packing the changed rows, their all-reduce, and applying the rule.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYNCS = 6


def replica(rank: int, port: int, vocab: int, dim: int, changed: float) -> None:
    from w2vdist.train import sync_numba
    from w2vdist.train.engine import Tables
    from w2vdist.train.replicas import ReplicaGroup

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    tables = Tables(torch.rand(vocab, dim), torch.rand(vocab, dim))
    group = ReplicaGroup(rank, 2, "agreement")
    group.start(tables)
    rows = torch.arange(int(vocab * changed))
    times = []
    for _ in range(SYNCS):
        tables.input[rows] += 0.01
        tables.output[rows] += 0.01
        dist.barrier()
        started = time.perf_counter()
        group.sync(tables)
        times.append(time.perf_counter() - started)
    table = tables.input
    synced = table.clone()  # after a sync every table is the synced one
    table[rows] += 0.01
    squares, packed = torch.empty(vocab), torch.zeros(len(rows), dim)  # zeros: its pages are touched here
    phases = [time.perf_counter()]
    sync_numba.change_squares(table, synced, squares)
    phases.append(time.perf_counter())
    sync_numba.pack_changes(table, synced, rows, packed)
    phases.append(time.perf_counter())
    dist.barrier()
    phases.append(time.perf_counter())
    dist.all_reduce(packed)
    phases.append(time.perf_counter())
    sync_numba.apply_rows(table, synced, rows, packed, squares, torch.full((vocab,), 0.5), 1.5)
    phases.append(time.perf_counter())
    if rank == 0:
        ms = [1e3 * (b - a) for a, b in zip(phases, phases[1:])]
        later = sorted(times[1:])
        print(f"{changed:8.0%}{1e3 * later[0]:9.1f}{1e3 * later[len(later) // 2]:9.1f}{ms[0]:10.1f}{ms[1]:8.1f}"
              f"{ms[3]:12.1f}{ms[4]:8.1f}", flush=True)
    dist.destroy_process_group()


def main() -> int:
    from tests.train_fixtures import free_port

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=68092)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--changed", default="1.0,0.5")
    args = parser.parse_args()
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    print(f"{'changed':>8s}{'sync ms':>9s}{'median':>9s}{'squares':>10s}{'pack':>8s}{'all-reduce':>12s}{'apply':>8s}"
          f"   (phases: one table of {args.vocab:,} x {args.dim})")
    for changed in (float(c) for c in args.changed.split(",")):
        mp.spawn(replica, args=(free_port(), args.vocab, args.dim, changed), nprocs=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
