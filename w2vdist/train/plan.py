"""What a training run needs, checked before any work starts.

`build_plan` reads the run directory's manifest, the vocabulary and the metadata of every corpus (or pairs) file
(row counts and the min/max statistics of the id columns, so a file that does not match the vocabulary is found
without reading it), and checks that the settings can work together. Everything wrong is reported at once, naming
the file or the setting. The plan, with its typed settings, is what the launcher hands to every worker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from w2vdist.config import Config
from w2vdist.datasets import read_vocabulary, scan_corpus, scan_pairs
from w2vdist.errors import ConfigError, RunDirError
from w2vdist.rundir import RunDir
from w2vdist.train.replicas import ReplicaGroup
from w2vdist.train.stretch import row_copies
from w2vdist.train.types import TrainSettings, shard_columns

log = logging.getLogger("w2vdist.train")

BLOCK_WORDS = 1 << 20     # corpus words per block (one kernel launch): a second or two of a CPU thread's work
MIN_BLOCKS_PER_REPLICA = 4
TABLES_SHARE = 0.5        # of a device's memory that a worker's slices of the tables (with several replicas, also
                          # their sync's copies) may take (column_shards=auto): the rest holds the input files, the
                          # launches and the sharded step's batches


@dataclasses.dataclass(frozen=True)
class TrainPlan:
    run_dir: str
    settings: TrainSettings
    vocab_size: int
    raw_tokens: int                   # corpus words per epoch (before min_count): the words of words/s
    window: int                       # preprocess's window: the largest reach
    input_files: tuple[tuple[str, ...], ...]   # corpus/ files (one list), or pairs/draw=K/ files (one per draw)
    input_rows: tuple[tuple[int, ...], ...]    # rows (chunks or pairs) of each file
    rows_per_block: tuple[int, ...]   # per input list
    words_per_row: tuple[float, ...]  # corpus words one row stands for, per input list
    preprocess_completed: str         # which preprocess output this run trains on
    base_checkpoint: str | None = None  # retraining: the base run's last checkpoint, whose rows start the tables

    def epoch_input(self, epoch: int) -> int:
        """Which input list epoch `epoch` reads: corpus/, or pairs draw epoch mod pair_draws."""
        return epoch % len(self.input_files)

    def update_copies(self, counts: np.ndarray) -> np.ndarray | None:
        """With sync_rule=stretched and several replicas, each row's k (stretch.row_copies) from the vocabulary's
        counts; else None (word2vec's rule)."""
        settings = self.settings
        if settings.update_stretch == 1:
            return None
        return row_copies(counts, settings.sample, settings.sync_every, self.raw_tokens, settings.update_stretch)

    def blocks_per_replica(self, epoch: int) -> int:
        """Blocks each replica trains between two syncs: sync_every words over all replicas."""
        k = self.epoch_input(epoch)
        block_words = self.words_per_row[k] * self.rows_per_block[k]
        return max(1, round(self.settings.sync_every / self.settings.replicas / max(block_words, 1.0)))


def train_settings(config: Config) -> TrainSettings:
    """The typed settings of `config`, whose column_shards is a number (build_plan resolves auto)."""
    if not isinstance(config.column_shards, int):
        raise ValueError(f"column_shards={config.column_shards!r} must be resolved first (resolve_column_shards)")
    return TrainSettings(
        dim=config.dim, negative=config.negative, epochs=config.epochs, alpha=config.alpha,
        min_alpha=config.min_alpha, sample=config.sample, shared_negatives=config.shared_negatives,
        kernel=config.kernel, pair_source=config.pair_source, sync_every=config.sync_every,
        sync_rule=config.sync_rule, seed=config.seed,
        num_workers=config.num_workers, column_shards=config.column_shards,
        checkpoint_interval_s=config.checkpoint_interval_s,
        max_words=config.max_words, probe_words=tuple(config.probe_words), probe_every=config.probe_every)


def build_plan(config: Config) -> TrainPlan:
    if not config.out:
        raise ConfigError("setting 'out' is required: the run directory to train on (w2vdist train RUN_DIR)")
    run = RunDir(Path(config.out).resolve())  # workers run elsewhere: Ray Train gives each its own cwd
    record = run.require_complete("preprocess", "training")
    stats = record.get("stats") or {}
    needed = ["raw_tokens", "tokens_after_min_count"] + (["pairs_per_draw"] if config.pair_source == "pairs" else [])
    missing = [key for key in needed if stats.get(key) is None]
    if missing:
        raise RunDirError(f"'{run.manifest_path}': stages.preprocess.stats lacks {', '.join(missing)}; "
                          f"run `w2vdist preprocess` again")
    vocab_size = len(read_vocabulary(run.vocab))
    raw_tokens = int(stats["raw_tokens"])
    if config.pair_source == "pairs":
        files, rows = [], []
        for draw, expected in enumerate(stats["pairs_per_draw"]):
            draw_files, draw_rows = scan_pairs(run.pairs_draw(draw), vocab_size)
            if sum(draw_rows) != expected:
                raise RunDirError(f"'{run.pairs_draw(draw)}' holds {sum(draw_rows):,} pairs but the "
                                  f"manifest says {expected:,}: the pairs are not the ones preprocess wrote; run it "
                                  f"again")
            files.append(tuple(str(f) for f in draw_files))
            rows.append(tuple(draw_rows))
        words_per_row = [raw_tokens / max(sum(r), 1) for r in rows]
    else:
        corpus_files, corpus_chunks = scan_corpus(run.corpus, vocab_size)
        files, rows = [tuple(str(f) for f in corpus_files)], [tuple(corpus_chunks)]
        words_per_row = [raw_tokens / max(sum(corpus_chunks), 1)]
    config = dataclasses.replace(config, column_shards=resolve_column_shards(config, vocab_size))
    problems = settings_problems(config)
    if problems:
        raise ConfigError("invalid settings for training:\n  " + "\n  ".join(problems))
    if config.pair_source == "pairs" and len(files) < config.epochs:
        log.warning("pairs/ holds %d draw(s) of windows for %d epochs: epochs repeat draws, which costs quality "
                    "(preprocess with pair_draws=%d, or train with pair_source=corpus)", len(files), config.epochs,
                    config.epochs)
    # a block is one kernel launch: about BLOCK_WORDS words, fewer when a replica's share of a round is smaller,
    # and at least MIN_BLOCKS_PER_REPLICA blocks per replica and epoch
    settings = train_settings(config)
    replica_round_words = config.sync_every / settings.replicas
    rows_per_block = tuple(
        max(1, min(round(min(BLOCK_WORDS, replica_round_words) / max(w, 1e-9)),
                   sum(r) // (MIN_BLOCKS_PER_REPLICA * settings.replicas)))
        for w, r in zip(words_per_row, rows))
    return TrainPlan(run_dir=str(run.path), settings=settings, vocab_size=vocab_size,
                     raw_tokens=raw_tokens, window=int(record["config"]["window"]), input_files=tuple(files),
                     input_rows=tuple(rows), rows_per_block=rows_per_block, words_per_row=tuple(words_per_row),
                     preprocess_completed=record["completed"],
                     base_checkpoint=_base_checkpoint(record.get("base_run"), config.dim))


def resolve_column_shards(config: Config, vocab_size: int) -> int:
    """column_shards as a number: the setting's, or for auto the fewest shards (a divisor of num_workers, at most
    dim) whose largest slice of both tables fits TABLES_SHARE of one device's memory."""
    if isinstance(config.column_shards, int):
        return config.column_shards
    memory, device = device_memory(config.use_gpu)
    tables_bytes = 2 * vocab_size * config.dim * 4
    candidates = [shards for shards in range(1, min(config.num_workers, config.dim) + 1)
                  if config.num_workers % shards == 0]
    for shards in candidates:
        slice_bytes = 2 * vocab_size * len(shard_columns(config.dim, shards)[0]) * 4  # the widest slice
        held = slice_bytes * ReplicaGroup.tables_held(config.num_workers // shards)
        if held <= memory * TABLES_SHARE:
            log.info("column_shards=auto: %d shard(s) per replica, %d replica(s): both tables take %s, a worker "
                     "holds %s (its slice, and with several replicas the sync's copies), within %.0f%% of the %s's "
                     "%s", shards, config.num_workers // shards, _gigabytes(tables_bytes), _gigabytes(held),
                     100 * TABLES_SHARE, device, _gigabytes(memory))
            return shards
    raise ConfigError(f"setting 'column_shards' is auto, but even {candidates[-1]} shards (the most that "
                      f"num_workers={config.num_workers} and dim={config.dim} allow) do not fit: both tables take "
                      f"{_gigabytes(tables_bytes)} (2 x {vocab_size:,} words x dim {config.dim} x 4 bytes), and a "
                      f"worker's slice (with several replicas, and the sync's copies of it) more than "
                      f"{TABLES_SHARE:.0%} of the {device}'s {_gigabytes(memory)}; use more "
                      f"workers, a smaller dim or max_vocab_size")


def device_memory(use_gpu: bool | str) -> tuple[int, str]:
    """The memory of one training device as this machine sees it, and its name: the first GPU's when training may
    use GPUs and torch sees one here, else the machine's."""
    import torch

    if use_gpu is not False and torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory, "GPU"
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "machine"


def _gigabytes(count: float) -> str:
    return f"{count / 1e9:.3g} GB"


def _base_checkpoint(base_run: dict[str, Any] | None, dim: int) -> str | None:
    """The checkpoint a retraining starts from: the base run's last one, if it is still the one it finished with."""
    if not base_run:
        return None
    base = RunDir(base_run["path"])
    trained = base.require_complete("train", "retraining (setting 'base_run')")
    if trained["completed"] != base_run["train_completed"]:
        raise RunDirError(f"base run '{base.path}' was trained again after this run's preprocess merged its "
                          f"vocabulary: run `w2vdist preprocess` again")
    if trained["config"]["dim"] != dim:
        raise ConfigError(f"setting 'dim' ({dim}) must equal the base run's ({trained['config']['dim']}) to "
                          f"start from its vectors (setting 'base_run' = {base.path})")
    folder = Path(trained["stats"]["checkpoint"])
    if not folder.is_dir():
        raise RunDirError(f"base run '{base.path}': its last checkpoint '{folder}' is gone")
    return str(folder)


def settings_problems(config: Config) -> list[str]:
    """Settings that each pass their own check but cannot work together."""
    problems = []
    if config.kernel == "numba" and config.use_gpu is True:
        problems.append("setting 'kernel' is numba, which runs on CPUs, but 'use_gpu' is true: use kernel=auto or "
                        "triton")
    if config.kernel == "triton" and config.use_gpu is False:
        problems.append("setting 'kernel' is triton, which runs on CUDA GPUs, but 'use_gpu' is false: use "
                        "kernel=auto or numba")
    if config.pair_source == "pairs" and (config.kernel == "triton" or config.use_gpu is True):
        problems.append("setting 'pair_source' is pairs, which trains with the CPU kernels only: use "
                        "pair_source=corpus on GPUs")
    sharded = isinstance(config.column_shards, int) and config.column_shards > 1
    if sharded and config.pair_source == "pairs":
        problems.append(f"setting 'pair_source' is pairs, which column shards do not train (column_shards="
                        f"{config.column_shards}): use pair_source=corpus")
    if sharded and config.kernel in ("numba", "triton"):
        problems.append(f"setting 'kernel' is {config.kernel}, but column shards (column_shards="
                        f"{config.column_shards}) train with their own step (sgns_sharded, torch on any device): "
                        f"use kernel=auto or torch")
    return problems
