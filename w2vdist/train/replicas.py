"""Every collective of training, in one place: the replicas' table sync, the column shards' sums, and agreements.

Workers form a grid of replicas x column shards (types.Placement: ranks r * S .. r * S + S - 1 are the S shards of
replica r), and `worker_groups` makes its process groups once, with torch.distributed.new_group:

    ReplicaGroup  the replicas holding one shard index: the tables' sync (below), and the sums of progress, so
                  each replica's words count once, not once per shard
    ShardGroup    the shards of one replica: the sharded step's sums (sgns_sharded.py), and the whole tables
                  gathered from their columns for checkpoints and probes

Each replica trains its own blocks on its own copy of both tables (a worker: of its shard's columns). After every
round (`sync_every` corpus words over all replicas) the tables are brought together (gloo on CPUs, NCCL on GPUs):
one all-reduce of each row's squared change since the last sync, which tells every replica which rows some
replica changed, then one all-reduce per table of just those rows' changes, combined by the rule of setting
`sync_rule`:

    stretched (default) row w moves by the sum of the replicas' changes divided by k_w, its copies: each replica
              has taken every update of the row stretched to the reach of k_w copies of it taken one after the
              other (stretch.py, in the kernels). k_w is R for a word that every replica meets many times in a
              round (the mean of the replicas' tables, as `average`), 1 for one met once. A row that few updates
              touch moves as if the R replicas' updates had been added, as with `changes`, and a row that each
              replica's updates settle moves to where they settle it, as with `average`
    changes   every replica's tables become the tables of the last sync plus the sum of every replica's change
              since then: each replica's words count fully, as if the replicas had trained one after the other
              on tables a round old
    average   the mean of the replicas' tables (model averaging, as Spark MLlib does once per iteration): each
              replica's change counts 1/R, so a round moves the tables as far as one replica's share of it
    agreement each row moves by the sum of the replicas' changes to it, scaled by how much they agree:
              s = AGREED_STEP x sum_i |d_i|^2 / |sum_i d_i|^2, clipped to [1/R, 1]. Changes in unrelated
              directions (a row few updates touched, or one replica only) add up as with `changes`; R changes in
              one direction (a frequent word that every replica moved toward the same place in its round) move
              the row AGREED_STEP times one replica's change instead of R times, which overshoots and diverges
              beyond 2 replicas (on a locally quadratic loss a step more than twice the way to the minimum grows).

All four are agreement.agreement_scale with a (floor, step) of their own (agreement.rule_scale).

With one worker every call is a no-op and torch.distributed is never needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from w2vdist.train.agreement import AGREED_STEP, agreement_scale, rule_scale
from w2vdist.train.engine import Tables
from w2vdist.train.types import Placement, shard_columns


def worker_groups(column_shards: int, dim: int, rule: str) -> tuple[Placement, "ReplicaGroup", "ShardGroup"]:
    """This worker's place, its replica group (sync by `rule`) and its shard group (of `dim` columns in all), from
    torch.distributed when it is initialised (Ray Train does), else the one worker there is."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return Placement(0, 0, 1, 1), ReplicaGroup(0, 1, rule), ShardGroup(0, [0], dim)
    place = Placement.of_rank(dist.get_rank(), dist.get_world_size(), column_shards)
    shards, replicas = place.shards, place.replicas
    replica_ranks = [[r * shards + s for s in range(shards)] for r in range(replicas)]   # the shards of replica r
    index_ranks = [[r * shards + s for r in range(replicas)] for s in range(shards)]     # the replicas at shard s
    # every worker calls new_group for every group, in the same order, as torch.distributed requires; None is the
    # world group: with one shard, the replicas' group is all workers
    shard_group = replica_group = None
    if shards > 1:
        shard_group = [dist.new_group(ranks) for ranks in replica_ranks][place.replica]
        if replicas > 1:
            replica_group = [dist.new_group(ranks) for ranks in index_ranks][place.shard]
    return (place, ReplicaGroup(place.replica, replicas, rule, replica_group),
            ShardGroup(place.shard, replica_ranks[place.replica], dim, shard_group))


def agree(flag: bool, device: torch.device) -> bool:
    """Rank 0's decision, for all workers: a checkpoint is taken by every worker at the same round or by none."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    tensor = torch.tensor([int(flag)], device=device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())

def change_squares_torch(table: torch.Tensor, synced: torch.Tensor, squares: torch.Tensor) -> None:
    """squares[r] = |table[r] - synced[r]|^2, and the smallest positive float where a change's square underflows:
    zero means unchanged. The reference for sync_numba's kernel, and the GPU's way."""
    change = table - synced
    squares.copy_(torch.linalg.vector_norm(change, dim=1).square_())
    squares[(squares == 0) & change.ne(0).any(1)] = torch.finfo(squares.dtype).tiny


def pack_changes_torch(table: torch.Tensor, synced: torch.Tensor, rows: torch.Tensor, packed: torch.Tensor) -> None:
    """packed[i] = table[rows[i]] - synced[rows[i]]."""
    torch.sub(table[rows], synced[rows], out=packed)


def apply_rows_torch(table: torch.Tensor, synced: torch.Tensor, rows: torch.Tensor, summed: torch.Tensor,
                     own_squares: torch.Tensor, floors: torch.Tensor, step: float) -> None:
    """Row rows[i] of both tables becomes synced + agreement_scale x summed[i] (every replica's change to it added
    up; own_squares[rows[i]] the sum of their squared norms; the floor of row r floors[r])."""
    scale = agreement_scale(own_squares[rows], torch.linalg.vector_norm(summed, dim=1).square_(), floors[rows], step)
    moved = synced[rows] + scale.unsqueeze(1) * summed
    table[rows] = moved
    synced[rows] = moved


@dataclass(frozen=True)
class SyncTotals:
    """What a worker's syncs took so far; the difference of two is an epoch's share (its metrics record)."""
    syncs: int = 0
    seconds: float = 0.0        # in syncs, waits included
    wait_seconds: float = 0.0   # in the first all-reduce of each sync: mostly waiting for the slowest replica
    sent_bytes: float = 0.0     # by this worker: its ring all-reduce share of the changed rows and squared norms

    def __sub__(self, other: "SyncTotals") -> "SyncTotals":
        return SyncTotals(self.syncs - other.syncs, self.seconds - other.seconds,
                          self.wait_seconds - other.wait_seconds, self.sent_bytes - other.sent_bytes)

    def record(self) -> dict[str, float]:
        """The fields of an epoch's metrics record (README, Progress and metrics)."""
        return {"syncs": self.syncs, "sync_s": round(self.seconds, 3), "sync_wait_s": round(self.wait_seconds, 3),
                "sync_mb": round(self.sent_bytes / 1e6, 3)}


def _ring_bytes(replicas: int, numbers: int, element_size: int = 4) -> float:
    """Bytes each member sends in a ring all-reduce of `numbers` elements: 2 (R - 1) / R of them."""
    return 2 * (replicas - 1) / max(replicas, 1) * numbers * element_size


class ReplicaGroup:
    """The replicas holding one shard index; `rank` is this worker's replica."""

    def __init__(self, rank: int, replicas: int, rule: str, group=None):
        self.rank = rank
        self.replicas = replicas
        self.rule = rule
        self.group = group                    # a torch.distributed group; None: every worker
        self.totals = SyncTotals()
        self._synced: Tables | None = None    # the tables at the last sync, the same on every replica
        self._packed: torch.Tensor | None = None
        self._kernels = None                  # (change_squares, pack_changes, apply_rows) for the tables' device
        self._floors: torch.Tensor | None = None  # each row's floor of the rule's scale
        self._step = 0.0

    def start(self, tables: Tables, copies: torch.Tensor | None = None) -> None:
        """Remember the tables every replica starts from (identical on all: seeded, or a checkpoint), and the rows'
        copies of sync_rule=stretched (stretch.row_copies, on the tables' device)."""
        if self.replicas == 1:
            return
        self._synced = Tables(tables.input.clone(), tables.output.clone())
        floor, self._step = rule_scale(self.rule, self.replicas, copies)
        self._floors = torch.as_tensor(floor, dtype=tables.input.dtype, device=tables.input.device).expand(
            len(tables.input)).contiguous()
        if tables.input.device.type == "cpu":
            from w2vdist.train import sync_numba

            self._kernels = sync_numba.change_squares, sync_numba.pack_changes, sync_numba.apply_rows
        else:
            self._kernels = change_squares_torch, pack_changes_torch, apply_rows_torch

    def sync(self, tables: Tables) -> None:
        """Bring every replica's tables to the same values, by the group's rule: the rows some replica changed
        since the last sync become the last sync's plus the rule's share of the sum of their changes; only those
        rows cross the wire, after one all-reduce of every row's squared change that tells all replicas which."""
        if self.replicas == 1:
            return
        import torch.distributed as dist

        change_squares, pack_changes, apply_rows = self._kernels
        started = time.perf_counter()
        pairs = [(tables.input, self._synced.input), (tables.output, self._synced.output)]
        vocab = len(tables.input)
        own_squares = torch.empty(2 * vocab, dtype=tables.input.dtype, device=tables.input.device)
        squares = [own_squares[:vocab], own_squares[vocab:]]
        for (table, synced), part in zip(pairs, squares):
            change_squares(table, synced, part)
        arrived = time.perf_counter()
        dist.all_reduce(own_squares, group=self.group)  # the same on every replica: so are the rows chosen below
        waited = time.perf_counter() - arrived
        sent = own_squares.numel()
        for (table, synced), part in zip(pairs, squares):
            rows = torch.nonzero(part).squeeze(1)
            packed = self._buffer(len(rows), table)
            pack_changes(table, synced, rows, packed)
            dist.all_reduce(packed, group=self.group)
            apply_rows(table, synced, rows, packed, part, self._floors, self._step)
            sent += packed.numel()
        t = self.totals
        self.totals = SyncTotals(t.syncs + 1, t.seconds + time.perf_counter() - started, t.wait_seconds + waited,
                                 t.sent_bytes + _ring_bytes(self.replicas, sent, tables.input.element_size()))

    def _buffer(self, rows: int, table: torch.Tensor) -> torch.Tensor:
        if self._packed is None or len(self._packed) < rows:
            self._packed = torch.empty((len(table), table.shape[1]), dtype=table.dtype, device=table.device)
        return self._packed[:rows]

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """The sums over all replicas of a few numbers (words, pairs, loss of a round)."""
        if self.replicas == 1:
            return values
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor, group=self.group)
        return tensor.tolist()

    @staticmethod
    def tables_held(replicas: int) -> float:
        """How many times its slices of both tables a worker holds: with several replicas also their copy at the
        last sync and the buffer of one table's changed rows."""
        return 1.0 if replicas == 1 else 2.5

    @staticmethod
    def bytes_per_sync(vocab_size: int, dim: int, replicas: int, column_shards: int = 1) -> int:
        """The most bytes each worker sends per sync, when every row changed: a ring all-reduce's 2 (R - 1) / R of
        the 2 V squared norms and of its slices (the widest shard's) of both fp32 tables. `totals.sent_bytes` counts
        what the syncs sent."""
        columns = len(shard_columns(dim, column_shards)[0]) + 1
        return int(_ring_bytes(replicas, 2 * vocab_size * columns))


class ShardGroup:
    """The column shards of one replica, of `dim` columns in all; `shard` is this worker's, `ranks` the world ranks
    of all of them."""

    def __init__(self, shard: int, ranks: list[int], dim: int, group=None):
        self.shard = shard
        self.ranks = ranks
        self.dim = dim
        self.group = group  # a torch.distributed group; None with one shard

    @property
    def shards(self) -> int:
        return len(self.ranks)

    def sum_(self, tensor: torch.Tensor) -> None:
        """Sum `tensor` over the shards, in place (types.ShardSum)."""
        if self.shards > 1:
            import torch.distributed as dist

            dist.all_reduce(tensor, group=self.group)

    def whole(self, columns: torch.Tensor) -> torch.Tensor | None:
        """Every shard calls it with its columns of a table: shard 0 gets the whole table (on the CPU when there
        are several shards), the others send theirs and get None. One shard's columns at a time cross the wire, so
        no device ever holds more than its own slice and one other."""
        if self.shards == 1:
            return columns
        import torch.distributed as dist

        if self.shard != 0:
            dist.send(columns.contiguous(), dst=self.ranks[0], group=self.group)
            return None
        parts = [columns.cpu()]
        for shard, width in enumerate(len(c) for c in shard_columns(self.dim, self.shards)):
            if shard:
                part = torch.empty((columns.shape[0], width), dtype=columns.dtype, device=columns.device)
                dist.recv(part, src=self.ranks[shard], group=self.group)
                parts.append(part.cpu())
        return torch.cat(parts, dim=1)
