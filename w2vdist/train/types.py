"""The types that cross module and process boundaries in training: what a kernel launch takes and returns, where a
worker sits among the replicas and column shards, and the collective the sharded step calls.

A launch is a run of whole corpus chunks after this epoch's subsampling (corpus_windows.py builds it). Its centers
are split into contiguous parts; a kernel walks each part's centers in order, one CPU thread or one GPU program
per part, all parts at once, writing the tables without locks (word2vec's Hogwild). Processed one part after the
other, every kernel computes the same thing as sgns_reference.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from w2vdist.random_streams import CENTER_DRAWS, draw_slots  # noqa: F401 (the kernels' stride)

LOSS_SAMPLE = 8   # the loss is computed on every LOSS_SAMPLE-th center of a launch: a log per pair costs as much
                  # as the rest of the update


def context_slot(offset: int, window: int) -> int:
    """The index of a context offset (-window..-1, 1..window) among a center's 2 * window offsets."""
    return offset + window if offset < 0 else offset + window - 1


@dataclass
class WindowLaunch:
    """The centers of one launch, as tensors on the training device."""
    words: torch.Tensor        # int32 [M]: kept word ids, chunk after chunk, in text order
    positions: torch.Tensor    # int32 [M]: each word's position in its chunk before subsampling (its draws' counter)
    word_chunk: torch.Tensor   # int32 [M]: the index of each word's chunk in the chunk_* tensors
    chunk_start: torch.Tensor  # int32 [C]: a chunk's words are words[chunk_start:chunk_end]
    chunk_end: torch.Tensor    # int32 [C]
    chunk_key: torch.Tensor    # int64 [C]: the chunk's key under the epoch's WINDOW stream key
    parts: torch.Tensor        # int64 [P + 1] (CPU): part p is centers parts[p] .. parts[p + 1] - 1
    corpus_words: int          # corpus words (before min_count and subsampling) the launch stands for: progress

    @property
    def centers(self) -> int:
        return int(self.words.shape[0])


@dataclass(frozen=True)
class WindowRule:
    """The settings of the update rule that a kernel needs."""
    window: int
    negative: int
    shared_negatives: bool
    # [V] int32: how many copies of itself each update of a row reaches as far as (stretch.py), on the tables'
    # device; None: one, word2vec's rule
    copies: torch.Tensor | None = field(default=None, compare=False)


@dataclass(frozen=True)
class LaunchResult:
    pairs: int           # (center, context) pairs trained
    loss_sum: float      # -log sigmoid of the positive and noise dots of the sampled centers' pairs
    loss_pairs: int      # the pairs loss_sum covers

    def __add__(self, other: "LaunchResult") -> "LaunchResult":
        return LaunchResult(self.pairs + other.pairs, self.loss_sum + other.loss_sum,
                            self.loss_pairs + other.loss_pairs)


@dataclass(frozen=True)
class TrainSettings:
    """The training settings a worker needs, typed: what crosses the Ray boundary inside the TrainPlan."""
    dim: int
    negative: int
    epochs: int
    alpha: float
    min_alpha: float
    sample: float
    shared_negatives: bool
    kernel: str                  # auto | numba | triton | torch
    pair_source: str             # corpus | pairs
    sync_every: int              # corpus words, over all replicas, between two syncs of the replicas' tables
    sync_rule: str               # stretched | agreement | changes | average (replicas.py)
    seed: int
    num_workers: int             # Ray Train workers: replicas x column_shards
    column_shards: int           # workers holding one replica's tables, a slice of the columns each (resolved)
    checkpoint_interval_s: float
    max_words: int | None
    probe_words: tuple[str, ...]
    probe_every: int             # corpus words between two probe records

    # The settings that decide the trained vectors: a resumed run must keep every one of them.
    RESULT = ("dim", "negative", "epochs", "alpha", "min_alpha", "sample", "shared_negatives", "pair_source",
              "sync_every", "sync_rule", "seed", "num_workers", "column_shards")

    @property
    def replicas(self) -> int:
        """Data-parallel replicas: each trains its own blocks, on column_shards workers."""
        return self.num_workers // self.column_shards

    @property
    def update_stretch(self) -> int:
        """The most copies of itself an update reaches as far as (stretch.row_copies gives each row its own, up to
        this): the replicas with sync_rule=stretched, else 1 (word2vec's rule)."""
        return self.replicas if self.sync_rule == "stretched" else 1

    def result_settings(self) -> dict:
        """The RESULT settings; sync_every and sync_rule only with several replicas (one never syncs), so that a
        one-worker run resumes whatever their defaults have become."""
        unused = () if self.replicas > 1 else ("sync_every", "sync_rule")
        return {name: getattr(self, name) for name in self.RESULT if name not in unused}


@dataclass(frozen=True)
class WorkerInfo:
    """Where one worker runs: its rank among all workers, their number, its CPU threads, its Ray node (None
    without Ray)."""
    rank: int
    workers: int
    threads: int
    ray_node: str | None = None


@dataclass(frozen=True)
class Placement:
    """A worker's place in the grid of replicas x column shards: ranks r * shards .. r * shards + shards - 1 are
    the shards of replica r."""
    replica: int
    shard: int
    replicas: int
    shards: int

    @classmethod
    def of_rank(cls, rank: int, workers: int, shards: int) -> "Placement":
        return cls(rank // shards, rank % shards, workers // shards, shards)

    @property
    def rank(self) -> int:
        return self.replica * self.shards + self.shard

    def columns(self, dim: int) -> range:
        """The columns of both tables this worker holds: torch.tensor_split(range(dim), shards)[shard]."""
        return shard_columns(dim, self.shards)[self.shard]


def shard_columns(dim: int, shards: int) -> list[range]:
    """Each shard's columns, as torch.tensor_split cuts range(dim): the first dim % shards shards one wider."""
    bounds = [s * (dim // shards) + min(s, dim % shards) for s in range(shards + 1)]
    return [range(bounds[s], bounds[s + 1]) for s in range(shards)]


class ShardSum(Protocol):
    """The collective of the sharded step (sgns_sharded.py): a tensor summed over the column shards of one
    replica, in place, the same sum on every shard (replicas.ShardGroup; nothing to do for one shard)."""

    def sum_(self, tensor: torch.Tensor) -> None: ...
