"""The types that cross module and process boundaries in training: what a kernel launch takes and returns.

A launch is a run of whole corpus chunks after this epoch's subsampling (corpus_windows.py builds it). Its centers
are split into contiguous parts; a kernel walks each part's centers in order, one CPU thread or one GPU program
per part, all parts at once, writing the tables without locks (word2vec's Hogwild). Processed one part after the
other, every kernel computes the same thing as sgns_reference.py.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    sync_rule: str               # agreement | changes | average (replicas.py)
    seed: int
    num_workers: int             # data-parallel replicas
    checkpoint_interval_s: float
    max_words: int | None
    probe_words: tuple[str, ...]
    probe_every: int             # corpus words between two probe records

    # The settings that decide the trained vectors: a resumed run must keep every one of them.
    RESULT = ("dim", "negative", "epochs", "alpha", "min_alpha", "sample", "shared_negatives", "pair_source",
              "sync_every", "sync_rule", "seed", "num_workers")

    def result_settings(self) -> dict:
        return {name: getattr(self, name) for name in self.RESULT}


@dataclass(frozen=True)
class WorkerInfo:
    """Where one worker runs: its rank among the replicas, its CPU threads, its Ray node (None without Ray)."""
    rank: int
    replicas: int
    threads: int
    ray_node: str | None = None
