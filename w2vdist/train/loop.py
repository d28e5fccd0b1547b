"""The training loop of one worker, `train_loop_per_worker`: the same code under Ray Train (one call per worker,
torch.distributed set up by Ray) and without Ray (local.py).

Workers are data-parallel replicas, each on `column_shards` workers (replicas.py: ranks r * S .. r * S + S - 1
hold replica r; with one shard, a worker holds both whole tables, else its slice of their columns). An epoch's
blocks are grouped into rounds (blocks.py): in each round every replica trains its own blocks with word2vec's rule
(engine.py: each window's update applied at once, threads or GPU programs writing without locks; or the
synchronous sharded step, every shard of the replica on the same block), then the replicas sync their tables,
shard by shard (replicas.py). The learning rate decays linearly from alpha to min_alpha with the place of a block
in the run, the same for every replica, so it follows the progress of all replicas together. Checkpoints are taken
right after a sync, at each epoch end and every checkpoint_interval_s (rank 0's clock, agreed by all), from replica
0's tables (gathered from its shards: checkpoints always hold the whole tables).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, TypeVar

import torch

from w2vdist.datasets import RunLayout, append_record, read_vocabulary
from w2vdist.errors import TrainingDiverged
from w2vdist.train import checkpoints as ckpt
from w2vdist.train.blocks import BLOCK_SOURCES, BlockSource, EpochLayout, ReadAhead
from w2vdist.train.checkpoints import EpochTotals, TrainState
from w2vdist.train.engine import Engine, Tables, choose_kernel
from w2vdist.train.plan import TrainPlan
from w2vdist.train.replicas import ShardGroup, agree, worker_groups
from w2vdist.train.types import LaunchResult, Placement, WorkerInfo

log = logging.getLogger("w2vdist.train")

PROGRESS_EVERY_S = 5.0
CACHE_FRACTION = 0.25           # of the device's free memory (or the machine's) that may hold the input files

T = TypeVar("T")


class CheckpointStore(Protocol):
    """Where checkpoints go: Ray Train's storage (launcher.RayCheckpoints) or a folder (LocalCheckpoints). Every
    worker calls save; `directory` is None on the workers that write no files (all but rank 0)."""

    def restore(self, load: Callable[[Path], T]) -> T | None: ...

    def save(self, directory: Path | None, number: int, metrics: dict[str, Any]) -> None: ...


def train_loop_per_worker(plan: TrainPlan, worker: WorkerInfo, store: CheckpointStore,
                          device: torch.device) -> TrainState:
    """Train until the last epoch ends (or max_words); return the last checkpoint's state."""
    settings = plan.settings
    run = RunLayout(plan.run_dir)
    place, group, shards = worker_groups(settings.column_shards, settings.dim, settings.sync_rule)  # group: replicas
    leader = place.rank == 0
    kernel = choose_kernel(settings.kernel, device, settings.column_shards)
    _record_worker(run, place, device, kernel, worker)
    diverged = run.diverged_note  # a diverged run's message: a restarted worker stops at once instead of retraining
    if diverged.is_file():  # Ray Train restarts failed workers; a divergence would only happen again
        raise TrainingDiverged(diverged.read_text(encoding="utf-8"))

    vocab = read_vocabulary(run.vocab)
    columns = place.columns(settings.dim)
    restored = store.restore(lambda folder: (ckpt.load_tables(folder, device, columns), ckpt.read_state(folder)))
    if restored is None:
        tables = Tables.initial(plan.vocab_size, settings.dim, settings.seed, device, columns)
        if plan.base_checkpoint:  # retraining: the base run's words keep their trained rows of both tables
            base_input, base_output = ckpt.load_tables(Path(plan.base_checkpoint), device, columns)
            tables.input[:len(base_input)] = base_input
            tables.output[:len(base_output)] = base_output
        state = TrainState()
    else:
        (input_table, output_table), saved = restored
        tables, state = Tables(input_table, output_table), TrainState.from_dict(saved)
        if leader:
            log.info("resuming in epoch %d at block %d (%s words trained)", state.epoch + 1, state.next_block,
                     f"{state.words_done:,.0f}")
    counts = vocab.column("count").to_numpy()
    copies = plan.update_copies(counts)  # of each row's updates (stretch.py): the kernels and the sync share them
    copies = None if copies is None else torch.from_numpy(copies).to(device)
    group.start(tables, copies)
    engine = Engine(tables, counts, settings, plan.window, kernel, worker.threads, shards, copies)
    probing = bool(settings.probe_words) and place.replica == 0  # replica 0's shards gather rank 0's probe table
    probes = _probe_recorder(plan, vocab, run) if leader else None
    progress = Progress(plan, enabled=leader)
    block_sources = [BLOCK_SOURCES[settings.pair_source](list(files), _cache_budget(device), device)
                     for files in plan.input_files]
    last_checkpoint = time.monotonic()
    next_probe, probed = state.words_done, None

    def checkpoint(finished: bool = False) -> None:
        nonlocal last_checkpoint
        state.finished = finished
        _save_checkpoint(store, tables, state, plan, place, shards, number=round(state.words_done))
        last_checkpoint = time.monotonic()

    while state.epoch < settings.epochs and not state.finished:
        epoch = state.epoch
        source = plan.epoch_input(epoch)  # corpus/, or this epoch's pairs draw
        layout = EpochLayout(list(plan.input_rows[source]), epoch, settings.seed, plan.rows_per_block[source],
                             group.replicas, plan.blocks_per_replica(epoch))
        first_round = state.next_block // layout.round_size
        progress.start_epoch(epoch, state.current)
        syncs_before = group.totals
        reader = ReadAhead(lambda: _read_blocks(layout, first_round, group.rank, block_sources[source]))
        try:
            for round_index in range(first_round, layout.rounds):
                result, words = LaunchResult(0, 0.0, 0), 0.0
                for block in layout.blocks_of(round_index, group.rank):
                    data = reader.get()
                    lr_start = _learning_rate(settings, epoch + layout.progress(block.index))
                    lr_end = _learning_rate(settings, epoch + layout.progress(block.index + 1))
                    if settings.pair_source == "corpus":
                        result += engine.train_corpus(data, epoch, lr_start, lr_end)
                    else:
                        result += engine.train_pairs(data, epoch, lr_start, lr_end)
                    words += data.block.rows * plan.words_per_row[source]
                    progress.block_done(lr_end)
                group.sync(tables)
                words, pairs, loss_sum, loss_pairs = group.sum(
                    [words, result.pairs, result.loss_sum, result.loss_pairs], device)
                state.words_done += words
                state.next_block = min((round_index + 1) * layout.round_size, len(layout.blocks))
                progress.add(words, int(pairs), loss_sum, int(loss_pairs))
                progress.maybe_log()
                if probing and state.words_done >= next_probe:
                    _record_probes(probes, shards.whole(tables.input), state.words_done, progress)
                    next_probe = (state.words_done // settings.probe_every + 1) * settings.probe_every
                    probed = state.words_done
                if settings.max_words is not None and state.words_done >= settings.max_words:
                    state.current = progress.totals(reader.waited_s)
                    checkpoint()
                    if leader:
                        log.info("stopped at max_words=%s (resume=true goes on)", f"{settings.max_words:,}")
                    return state
                due = time.monotonic() - last_checkpoint >= settings.checkpoint_interval_s
                if round_index + 1 < layout.rounds and agree(due, device):
                    state.current = progress.totals(reader.waited_s)
                    checkpoint()
        finally:
            reader.close()
        record = progress.end_epoch(reader.waited_s)
        record.update((group.totals - syncs_before).record())
        if not math.isfinite(record["loss"]):  # before its checkpoint: a resume starts before it
            error = TrainingDiverged.in_epoch(epoch + 1, settings.alpha)
            if leader:
                diverged.write_text(str(error), encoding="utf-8")
            raise error
        state.epochs.append(record)
        state.epoch, state.next_block, state.current = epoch + 1, 0, EpochTotals()
        checkpoint(finished=state.epoch == settings.epochs)
        if leader:
            append_record(run.train_metrics, record)
    if probing and probed != state.words_done:
        _record_probes(probes, shards.whole(tables.input), state.words_done, progress)
    return state


def _read_blocks(layout: EpochLayout, first_round: int, rank: int, source: BlockSource) -> Iterator[Any]:
    """This replica's blocks from `first_round` on, read (and put on the device) ahead of the kernels."""
    for round_index in range(first_round, layout.rounds):
        for block in layout.blocks_of(round_index, rank):
            yield source.read(block)


def _learning_rate(settings, epochs_done: float) -> float:
    """word2vec's linear decay, from alpha at the start to min_alpha at the end of the last epoch."""
    return settings.alpha - (settings.alpha - settings.min_alpha) * min(1.0, epochs_done / settings.epochs)


def _cache_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * CACHE_FRACTION)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * CACHE_FRACTION)


class Progress:
    """Rank 0's words/s (all replicas together), loss, learning rate and ETA: a log line every few seconds, a
    record per epoch. words/s counts corpus words as word2vec and gensim do (before min_count and subsampling).
    The rate and the ETA leave out the first block of the run, which is mostly the kernels' compilation."""

    def __init__(self, plan: TrainPlan, enabled: bool):
        self.plan = plan
        self.enabled = enabled
        self.epochs = plan.settings.epochs
        self.lr = plan.settings.alpha
        self.recent_loss_sum, self.recent_loss_pairs = 0.0, 0
        self.warm_since: float | None = None
        self.warm_words = 0.0
        self.last_log = time.monotonic()

    def start_epoch(self, epoch: int, before: EpochTotals) -> None:
        self.epoch = epoch
        self.before = before
        self.totals_now = EpochTotals()
        self.started = time.monotonic()

    def block_done(self, lr: float) -> None:
        self.lr = lr
        if self.warm_since is None:
            self.warm_since = time.monotonic()

    def add(self, words: float, pairs: int, loss_sum: float, loss_pairs: int) -> None:
        now = self.totals_now
        now.words += words
        now.pairs += pairs
        now.loss_sum += loss_sum
        now.loss_pairs += loss_pairs
        self.recent_loss_sum += loss_sum
        self.recent_loss_pairs += loss_pairs
        if self.warm_since is not None:
            self.warm_words += words

    def totals(self, input_wait_s: float) -> EpochTotals:
        """The epoch so far, this run's part and the part before a resume together."""
        now, before = self.totals_now, self.before
        return EpochTotals(before.words + now.words, before.pairs + now.pairs, before.loss_sum + now.loss_sum,
                           before.loss_pairs + now.loss_pairs, before.seconds + time.monotonic() - self.started,
                           before.input_wait_s + input_wait_s)

    def recent_loss(self) -> float | None:
        """Mean loss per pair since the last call (for probes)."""
        if not self.recent_loss_pairs:
            return None
        value = self.recent_loss_sum / self.recent_loss_pairs
        self.recent_loss_sum, self.recent_loss_pairs = 0.0, 0
        return value

    def maybe_log(self) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last_log < PROGRESS_EVERY_S or self.warm_since is None:
            return
        self.last_log = now
        totals = self.totals(0.0)
        epoch_words = self.plan.raw_tokens
        rate = self.warm_words / max(now - self.warm_since, 1e-9)
        left = (self.epochs - self.epoch) * epoch_words - totals.words
        log.info("epoch %d/%d %5.1f%% | %s words/s | loss %.4f | lr %.6f | ETA %s", self.epoch + 1, self.epochs,
                 100 * min(totals.words / epoch_words, 1.0), f"{rate:,.0f}",
                 totals.loss_sum / max(totals.loss_pairs, 1), self.lr,
                 _duration(left / rate) if self.warm_words else "...")

    def end_epoch(self, input_wait_s: float) -> dict[str, Any]:
        totals = self.totals(input_wait_s)
        seconds = max(totals.seconds, 1e-9)
        record = {"epoch": self.epoch + 1, "words": round(totals.words), "pairs": totals.pairs,
                  "seconds": round(totals.seconds, 3), "words_per_s": round(totals.words / seconds, 1),
                  "pairs_per_s": round(totals.pairs / seconds, 1),
                  "loss": round(totals.loss_sum / totals.loss_pairs, 6) if totals.loss_pairs else float("nan"),
                  "lr": self.lr, "input_wait_s": round(totals.input_wait_s, 3), "time": time.time()}
        if self.enabled:
            log.info("epoch %d/%d done in %s: %s words/s, loss %.4f", self.epoch + 1, self.epochs,
                     _duration(seconds), f"{record['words_per_s']:,.0f}", record["loss"])
        return record


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _record_worker(run: RunLayout, place: Placement, device: torch.device, kernel: str, worker: WorkerInfo) -> None:
    """RUN_DIR/train/workers/rank-R.json: which process is worker R (replica R // column_shards, shard R mod
    column_shards), on which host and Ray node (operators, and the killed-worker test)."""
    run.workers.mkdir(parents=True, exist_ok=True)
    info = {"rank": place.rank, "replica": place.replica, "shard": place.shard, "pid": os.getpid(),
            "host": socket.gethostname(), "ray_node": worker.ray_node, "device": str(device), "kernel": kernel,
            "threads": worker.threads, "started": time.time()}
    run.worker_record(place.rank).write_text(json.dumps(info) + "\n", encoding="utf-8")


def _record_probes(probes, whole_input: torch.Tensor | None, words: float, progress: "Progress") -> None:
    """Rank 0 records the probes on the whole input table; replica 0's other shards only sent their columns."""
    if probes is not None:
        probes.record(round(words), whole_input, progress.recent_loss())


def _save_checkpoint(store: CheckpointStore, tables: Tables, state: TrainState, plan: TrainPlan, place: Placement,
                     shards: ShardGroup, number: int) -> None:
    """Rank 0 writes replica 0's (synced) tables, whole, and the state; every worker reports, as Ray Train wants."""
    metrics = {"words": state.words_done, "epoch": state.epoch, "finished": state.finished}
    whole = [shards.whole(table) for table in (tables.input, tables.output)] if place.replica == 0 else None
    if place.rank != 0:
        store.save(None, number, metrics)
        return
    folder = Path(tempfile.mkdtemp(prefix="w2vdist-checkpoint-"))
    try:
        ckpt.save(folder, *whole, state,
                  {"settings": plan.settings.result_settings(), "preprocess_completed": plan.preprocess_completed})
        store.save(folder, number, metrics)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _probe_recorder(plan: TrainPlan, vocab, run: RunLayout):
    if not plan.settings.probe_words:
        return None
    from w2vdist.probes import ProbeRecorder

    return ProbeRecorder(list(plan.settings.probe_words), vocab.column("word").to_pylist(),
                         plan.settings.probe_every, run.probes)
