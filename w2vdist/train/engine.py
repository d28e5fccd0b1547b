"""A worker's training engine: its tables (whole, or its shard's columns of them), the noise and subsampling
tables, and the kernel that applies word2vec's rule to a block.

Kernels (setting `kernel`): numba on CPUs (sgns_numba: threads over the parts of a launch), Triton on CUDA
(sgns_triton: one program per part), torch anywhere (sgns_reference: the readable specification, slow). `auto`
takes numba on CPUs when it is installed and Triton on CUDA. Workers holding column shards (column_shards > 1)
train with the synchronous sharded step instead (sgns_sharded: torch, any device).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from w2vdist import random_streams
from w2vdist.errors import ConfigError
from w2vdist.preprocess.subsample import keep_thresholds
from w2vdist.random_streams import Stream, stream_key
from w2vdist.train.blocks import CorpusBlock, PairBlock, pair_noise_key
from w2vdist.train.corpus_windows import build_launch
from w2vdist.train.noise import NoiseTable
from w2vdist.train.types import LaunchResult, ShardSum, TrainSettings, WindowRule

log = logging.getLogger("w2vdist.train")

PARTS_PER_THREAD = 16     # CPU: parts per thread in a launch, so a thread slowed by other work holds none back
CENTERS_PER_PROGRAM = 256  # GPU: centers one Triton program walks in order


def choose_kernel(requested: str, device: torch.device, column_shards: int = 1) -> str:
    """The kernel for `requested` (setting `kernel`) on `device`; a clear error where it cannot run. Column shards
    have one: "sharded" (the plan refused numba and triton for them)."""
    if column_shards > 1:
        return "sharded"
    if requested == "auto":
        if device.type == "cuda":
            return "triton" if _importable("triton") else "torch"
        if _importable("numba"):
            return "numba"
        log.warning("numba is not installed: training on CPU with the torch reference kernel, far slower")
        return "torch"
    if requested == "numba" and device.type != "cpu":
        raise ConfigError("setting 'kernel' is numba, which runs on CPUs, but training runs on a GPU: use "
                          "kernel=auto or triton, or use_gpu=false")
    if requested == "triton" and device.type != "cuda" and not _interpreted():
        raise ConfigError("setting 'kernel' is triton, which runs on CUDA GPUs: use kernel=auto or numba on CPUs")
    if requested in ("numba", "triton") and not _importable(requested):
        raise ConfigError(f"setting 'kernel' is {requested} but {requested} is not installed: pip install "
                          f"{requested}, or kernel=auto")
    return requested


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


@dataclass
class Tables:
    input: torch.Tensor    # [V, dim] float32: the word vectors
    output: torch.Tensor   # [V, dim] float32: the context vectors of negative sampling

    @classmethod
    def initial(cls, vocab_size: int, dim: int, seed: int, device: torch.device,
                columns: range | None = None) -> "Tables":
        """word2vec's initialisation: input uniform in (-0.5/dim, 0.5/dim), each column from its own seeded
        generator; output zeros. `columns`: only these columns of both (a column shard's), as the whole tables
        have them."""
        columns = range(dim) if columns is None else columns
        generator = torch.Generator()
        values = torch.empty((len(columns), vocab_size))
        for row, column in enumerate(columns):
            generator.manual_seed(stream_key(seed, Stream.INIT, column))
            values[row] = torch.rand(vocab_size, generator=generator)
        input_table = ((values - 0.5) / dim).T.contiguous().to(device)
        return cls(input_table, torch.zeros((vocab_size, len(columns)), device=device))


class Engine:
    def __init__(self, tables: Tables, counts: np.ndarray, settings: TrainSettings, window: int, kernel: str,
                 threads: int, shards: ShardSum, copies: torch.Tensor | None = None):
        device = tables.input.device
        self.tables = tables
        self.shards = shards
        self.settings = settings
        self.kernel = kernel
        self.threads = threads
        # copies (stretch.row_copies, on the tables' device): with sync_rule=stretched and several replicas
        self.rule = WindowRule(window, settings.negative, settings.shared_negatives, copies)
        noise = NoiseTable.from_counts(counts)
        self.alias_threshold = torch.from_numpy(noise.threshold).to(device)
        self.alias = torch.from_numpy(noise.alias).to(device)
        self.keep_threshold = torch.from_numpy(keep_thresholds(counts, settings.sample)).to(device)

    def train_corpus(self, block: CorpusBlock, epoch: int, lr_start: float, lr_end: float) -> LaunchResult:
        """Subsample the block's chunks afresh for `epoch`, then train every center's window."""
        seed = self.settings.seed
        launch = build_launch(block.chunk_ids, block.offsets, block.ids, self.keep_threshold,
                              stream_key(seed, Stream.SUBSAMPLE, epoch), stream_key(seed, Stream.WINDOW, epoch),
                              self._parts(len(block.ids)))
        tables = self.tables
        if self.kernel == "numba":
            from w2vdist.train import sgns_numba

            return sgns_numba.train_windows(tables.input, tables.output, launch, self.alias_threshold, self.alias,
                                            self.rule, lr_start, lr_end, self.threads)
        if self.kernel == "triton":
            from w2vdist.train import sgns_triton

            return sgns_triton.train_windows(tables.input, tables.output, launch, self.alias_threshold,
                                             self.alias, self.rule, lr_start, lr_end)
        if self.kernel == "sharded":
            from w2vdist.train import sgns_sharded

            return sgns_sharded.train_windows(tables.input, tables.output, launch, self.alias_threshold,
                                              self.alias, self.rule, lr_start, lr_end, self.shards)
        from w2vdist.train import sgns_reference

        return sgns_reference.train_windows(tables.input, tables.output, launch, self.alias_threshold, self.alias,
                                            self.rule, lr_start, lr_end)

    def train_pairs(self, block: PairBlock, epoch: int, lr_start: float, lr_end: float) -> LaunchResult:
        """Train the block's pairs one at a time, each with its own negatives."""
        device = block.centers.device
        file_keys = random_streams.chunk_keys(pair_noise_key(self.settings.seed, epoch), block.files)
        pair_keys = torch.from_numpy(np.repeat(file_keys, block.lengths)).to(device)
        starts = np.repeat(block.first_rows - np.concatenate(([0], np.cumsum(block.lengths)[:-1])), block.lengths)
        pair_rows = torch.from_numpy(starts + np.arange(int(block.lengths.sum()))).to(device)
        tables, negative = self.tables, self.settings.negative
        if self.kernel == "numba":
            from w2vdist.train import sgns_numba

            parts = np.linspace(0, len(block.centers), self.threads * PARTS_PER_THREAD + 1).round().astype(int)
            return sgns_numba.train_pairs(tables.input, tables.output, block.centers, block.contexts, pair_keys,
                                          pair_rows, self.alias_threshold, self.alias, negative, lr_start, lr_end,
                                          parts.tolist(), self.threads, self.rule.copies)
        if self.kernel == "triton":
            raise ConfigError("pair_source=pairs has no GPU kernel: train on GPUs with pair_source=corpus")
        from w2vdist.train import sgns_reference

        return sgns_reference.train_pairs(tables.input, tables.output, block.centers, block.contexts, pair_keys,
                                          pair_rows, self.alias_threshold, self.alias, negative, lr_start, lr_end,
                                          self.rule.copies)

    def _parts(self, tokens: int) -> int:
        if self.kernel == "numba":
            return self.threads * PARTS_PER_THREAD
        if self.kernel == "triton":
            return max(1, tokens // CENTERS_PER_PROGRAM)
        return 1
