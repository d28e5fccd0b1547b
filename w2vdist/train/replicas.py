"""Every collective of training, in one place: the replicas' table sync, the column shards' sums, and agreements.

Workers form a grid of replicas x column shards (types.Placement: ranks r * S .. r * S + S - 1 are the S shards of
replica r), and `worker_groups` makes its process groups once, with torch.distributed.new_group:

    ReplicaGroup  the replicas holding one shard index: the tables' sync (below), and the sums of progress, so
                  each replica's words count once, not once per shard
    ShardGroup    the shards of one replica: the sharded step's sums (sgns_sharded.py), and the whole tables
                  gathered from their columns for checkpoints and probes

Each replica trains its own blocks on its own copy of both tables (a worker: of its shard's columns). After every
round (`sync_every` corpus words over all replicas) the tables are brought together with one all-reduce per table
(gloo on CPUs, NCCL on GPUs), by the rule of setting `sync_rule`:

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
              One more all-reduce, of 2 V numbers, per sync.

With one worker every call is a no-op and torch.distributed is never needed.
"""

from __future__ import annotations

import torch

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

AGREED_STEP = 1.5  # between the mean (1) and the stability limit (2); chosen by measurement (README, Data parallel)


def agreement_scale(own_squares: torch.Tensor, total_squares: torch.Tensor, floor: float | torch.Tensor,
                    step: float = AGREED_STEP) -> torch.Tensor:
    """The agreement rule's factor for each row's summed change: step x sum_i |d_i|^2 / |sum_i d_i|^2, in
    [floor, 1]. `own_squares` holds sum_i |d_i|^2 per row, `total_squares` |sum_i d_i|^2; `floor` is 1 / the
    number of changes (R replicas here; a batch's windows of the row in sgns_sharded.py)."""
    ratio = step * own_squares / total_squares.clamp_min(torch.finfo(total_squares.dtype).tiny)
    return torch.minimum(torch.maximum(ratio, torch.as_tensor(floor, dtype=ratio.dtype, device=ratio.device)),
                         torch.ones_like(ratio))


class ReplicaGroup:
    """The replicas holding one shard index; `rank` is this worker's replica."""

    def __init__(self, rank: int, replicas: int, rule: str, group=None):
        self.rank = rank
        self.replicas = replicas
        self.rule = rule
        self.group = group                    # a torch.distributed group; None: every worker
        self.sync_seconds = 0.0
        self.syncs = 0
        self._synced: Tables | None = None   # the tables at the last sync (rules "changes" and "agreement")

    def start(self, tables: Tables) -> None:
        """Remember the tables every replica starts from (identical on all: seeded, or a checkpoint)."""
        if self.replicas > 1 and self.rule != "average":
            self._synced = Tables(tables.input.clone(), tables.output.clone())

    def sync(self, tables: Tables) -> None:
        """Bring every replica's tables to the same values, by the group's rule."""
        if self.replicas == 1:
            return
        import time

        import torch.distributed as dist

        started = time.perf_counter()
        if self.rule == "agreement":
            self._sync_by_agreement(tables)
        else:
            for name in ("input", "output"):
                table = getattr(tables, name)
                dist.all_reduce(table, group=self.group)
                if self.rule == "average":
                    table.div_(self.replicas)
                else:  # sum of replicas - (R - 1) x last sync = last sync + the sum of the changes
                    synced = getattr(self._synced, name)
                    table.sub_(synced, alpha=self.replicas - 1)
                    synced.copy_(table)
        self.sync_seconds += time.perf_counter() - started
        self.syncs += 1

    def _sync_by_agreement(self, tables: Tables) -> None:
        import torch.distributed as dist

        changes = [tables.input.sub_(self._synced.input), tables.output.sub_(self._synced.output)]
        own_squares = torch.cat([change.pow(2).sum(1) for change in changes])
        for change in changes:
            dist.all_reduce(change, group=self.group)
        dist.all_reduce(own_squares, group=self.group)
        rows = len(tables.input)
        for part, (change, synced) in enumerate(zip(changes, (self._synced.input, self._synced.output))):
            scale = agreement_scale(own_squares[part * rows:(part + 1) * rows], change.pow(2).sum(1),
                                    1.0 / self.replicas)
            change.mul_(scale.unsqueeze(1)).add_(synced)
            synced.copy_(change)

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """The sums over all replicas of a few numbers (words, pairs, loss of a round)."""
        if self.replicas == 1:
            return values
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor, group=self.group)
        return tensor.tolist()

    @staticmethod
    def bytes_per_sync(vocab_size: int, dim: int, replicas: int, rule: str, column_shards: int = 1) -> int:
        """Bytes each worker sends per sync with a ring all-reduce of its slices of both fp32 tables (the widest
        shard's), and for rule agreement of the 2 V squared norms: 2 (R - 1) / R of them."""
        columns = len(shard_columns(dim, column_shards)[0]) + (1 if rule == "agreement" else 0)
        return int(2 * (replicas - 1) / max(replicas, 1) * 2 * vocab_size * columns * 4)


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
