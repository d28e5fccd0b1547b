"""Every collective of training, in one place: the replicas' table sync and their agreements.

Each replica trains its own blocks on its own copy of both tables. After every round (`sync_every` corpus words
over all replicas) the tables are brought together by averaging them: all-reduce the sum, divide by the number of
replicas (gloo on CPUs, NCCL on GPUs). Averaging, rather than adding every replica's change since the last sync,
keeps each row's step no larger than one replica's: a frequent word that every replica moves the same way would
otherwise move R times as far, which is what made batch sums overshoot. With one replica every call is a no-op
and torch.distributed is never needed.
"""

from __future__ import annotations

import torch

from w2vdist.train.engine import Tables


class ReplicaGroup:
    def __init__(self, rank: int, replicas: int):
        self.rank = rank
        self.replicas = replicas
        self.sync_seconds = 0.0
        self.syncs = 0

    @classmethod
    def from_process_group(cls) -> "ReplicaGroup":
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls(0, 1)

    def average(self, tables: Tables) -> None:
        """Replace every replica's tables by their mean."""
        if self.replicas == 1:
            return
        import time

        import torch.distributed as dist

        started = time.perf_counter()
        for table in (tables.input, tables.output):
            dist.all_reduce(table)
            table.div_(self.replicas)
        self.sync_seconds += time.perf_counter() - started
        self.syncs += 1

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
