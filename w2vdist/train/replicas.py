"""Every collective of training, in one place: the replicas' table sync and their agreements.

Each replica trains its own blocks on its own copy of both tables. After every round (`sync_every` corpus words
over all replicas) the tables are brought together with one all-reduce per table (gloo on CPUs, NCCL on GPUs), by
the rule of setting `sync_rule`:

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

With one replica every call is a no-op and torch.distributed is never needed.
"""

from __future__ import annotations

import torch

from w2vdist.train.engine import Tables

AGREED_STEP = 1.5  # between the mean (1) and the stability limit (2); chosen by measurement (README, Data parallel)


def agreement_scale(own_squares: torch.Tensor, total_change: torch.Tensor, replicas: int) -> torch.Tensor:
    """Rule agreement's factor for each row's summed change: AGREED_STEP x sum_i |d_i|^2 / |sum_i d_i|^2, in
    [1/R, 1]. `own_squares` holds sum_i |d_i|^2 per row, `total_change` the rows' sum_i d_i."""
    total_squares = total_change.pow(2).sum(1).clamp_min(torch.finfo(total_change.dtype).tiny)
    return (AGREED_STEP * own_squares / total_squares).clamp(1.0 / replicas, 1.0)


class ReplicaGroup:
    def __init__(self, rank: int, replicas: int, rule: str = "changes"):
        self.rank = rank
        self.replicas = replicas
        self.rule = rule
        self.sync_seconds = 0.0
        self.syncs = 0
        self._synced: Tables | None = None   # the tables at the last sync (rules "changes" and "agreement")

    @classmethod
    def from_process_group(cls, rule: str) -> "ReplicaGroup":
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), rule)
        return cls(0, 1, rule)

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
                dist.all_reduce(table)
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
            dist.all_reduce(change)
        dist.all_reduce(own_squares)
        rows = len(tables.input)
        for part, (change, synced) in enumerate(zip(changes, (self._synced.input, self._synced.output))):
            scale = agreement_scale(own_squares[part * rows:(part + 1) * rows], change, self.replicas)
            change.mul_(scale.unsqueeze(1)).add_(synced)
            synced.copy_(change)

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """The sums over all replicas of a few numbers (words, pairs, loss of a round)."""
        if self.replicas == 1:
            return values
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def agree(self, flag: bool, device: torch.device) -> bool:
        """Rank 0's decision, for all: a checkpoint is taken by every replica at the same round or by none."""
        if self.replicas == 1:
            return flag
        import torch.distributed as dist

        tensor = torch.tensor([int(flag)], device=device)
        dist.broadcast(tensor, src=0)
        return bool(tensor.item())

    @staticmethod
    def bytes_per_sync(vocab_size: int, dim: int, replicas: int) -> int:
        """Bytes each replica sends per sync with a ring all-reduce of both fp32 tables: 2 (R - 1) / R of them."""
        return int(2 * (replicas - 1) / max(replicas, 1) * 2 * vocab_size * dim * 4)
