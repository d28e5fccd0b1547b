"""The training loop of one worker, `train_loop_per_worker`: the same code under Ray Train (one call per worker,
torch.distributed set up by Ray) and without Ray (`python -m w2vdist.train.loop RUN_DIR [key=value ...]`: one
worker on this machine; needs torch, pyarrow and PyYAML only).

Each step: take the global batch (pair_source=pairs: read this worker's share on a read-ahead thread and all-gather
it; pair_source=corpus: generated from corpus/ on this device, corpus_stream), draw the negatives (seeded by the
step), compute the partial dot products over this worker's columns, all-reduce them,
turn them into gradient coefficients with the learning rate of the step, and update this worker's columns.
The learning rate decays linearly from alpha to min_alpha over all planned pairs of all epochs (word2vec's
schedule). Checkpoints are taken at each epoch end and every checkpoint_interval_s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar

import torch

from w2vdist.errors import TrainingDiverged
from w2vdist.train import checkpoints as ckpt
from w2vdist.train.corpus_stream import CorpusLayout, CorpusReader
from w2vdist.train.data import PairsInput
from w2vdist.train.model import EmbeddingShard, NoiseSampler
from w2vdist.train.plan import RESULT_SETTINGS, TrainPlan, read_vocabulary
from w2vdist.train.sharding import ColumnSharding

log = logging.getLogger("w2vdist.train")

PROGRESS_EVERY_S = 5.0
CONTROL_EVERY = 32        # steps between two agreements of all workers on "checkpoint now?" (rank 0's clock)
METRICS_FILE = "metrics.jsonl"
WORKERS_DIR = "workers"
DIVERGED_FILE = "diverged.txt"  # a diverged run's message: a restarted worker stops at once instead of retraining

T = TypeVar("T")


class CheckpointStore(Protocol):
    """Where checkpoints go: Ray Train's storage (launcher.RayCheckpoints) or a folder (LocalCheckpoints)."""

    def restore(self, load: Callable[[Path], T]) -> T | None: ...

    def save(self, directory: Path, step: int, metrics: dict[str, Any]) -> None: ...


def train_loop_per_worker(config: dict[str, Any], store: CheckpointStore, device: torch.device) -> dict[str, Any]:
    """Train until the last epoch ends (or `max_steps`); return rank 0's last checkpoint state."""
    plan = TrainPlan.from_dict(config["plan"])
    settings = plan.settings
    run_dir = Path(plan.run_dir)
    dim, negative, batch_size = (settings[k] for k in ("dim", "negative", "batch_size"))
    sharding = ColumnSharding.from_process_group(dim)
    rank = sharding.rank
    leader = rank == 0
    kernel = choose_kernel(device, config["threads"])
    _record_worker(run_dir, rank, device, kernel, config.get("ray_node"))
    diverged = run_dir / "train" / DIVERGED_FILE
    if diverged.is_file():  # Ray Train restarts failed workers; a divergence would only happen again
        raise TrainingDiverged(diverged.read_text(encoding="utf-8"))

    vocab = read_vocabulary(run_dir / "vocab")
    sampler = NoiseSampler(vocab.column("count").to_numpy(), settings["seed"], device, compiled=kernel == "numba")
    restored = store.restore(lambda folder: (ckpt.load_columns(folder, sharding.columns, device),
                                             ckpt.read_state(folder)))
    if restored is None:
        shard = EmbeddingShard.initial(plan.vocab_size, dim, sharding.columns, settings["seed"], device, kernel)
        if plan.base_checkpoint:  # retraining: the base run's words keep their trained rows of both tables
            base_input, base_output = ckpt.load_columns(Path(plan.base_checkpoint), sharding.columns, device)
            shard.input[:len(base_input)] = base_input
            shard.output[:len(base_output)] = base_output
        state = {"step": 0, "epoch": 0, "step_in_epoch": 0, "finished": False, "epochs": []}
    else:
        (input_table, output_table), state = restored
        shard = EmbeddingShard(input_table, output_table, kernel)
        if leader:
            log.info("resuming at step %d (epoch %d, step %d of it)", state["step"], state["epoch"] + 1,
                     state["step_in_epoch"])
    probes = _probe_recorder(settings, vocab, run_dir) if leader else None

    pairs_per_epoch = plan.pairs_per_epoch
    total_pairs = settings["epochs"] * pairs_per_epoch
    progress = Progress(plan, total_pairs, enabled=leader)
    step = state["step"]
    last_checkpoint = time.monotonic()

    def checkpoint(epoch: int, step_in_epoch: int, finished: bool) -> None:
        state.update(step=step, epoch=epoch, step_in_epoch=step_in_epoch, finished=finished)
        _save_checkpoint(store, shard, sharding, state, plan)

    while state["epoch"] < settings["epochs"] and not state["finished"]:
        epoch = state["epoch"]
        first_step = state["step_in_epoch"]
        source = open_epoch(plan, epoch, first_step, sharding, device)
        progress.start_epoch(epoch, epoch * pairs_per_epoch + source.pairs_before(first_step))
        try:
            for step_in_epoch, (batch, pairs) in enumerate(source, start=first_step):
                done_before = epoch * pairs_per_epoch + source.pairs_before(step_in_epoch)
                lr = learning_rate(settings["alpha"], settings["min_alpha"], done_before, total_pairs)
                centers, contexts = batch[0], batch[1]
                valid = centers >= 0
                centers.clamp_(min=0)
                contexts.clamp_(min=0)
                targets = sampler.targets(contexts, step, negative)
                loss = shard.step(centers, targets, valid, lr, sharding)
                step += 1
                progress.add(pairs, loss, lr)
                progress.maybe_log(source.steps, step_in_epoch + 1)

                if settings["probe_words"] and step % settings["probe_every"] == 0:
                    matrix = sharding.gather_columns(shard.input)
                    if probes is not None:
                        probes.maybe_record(step, progress.recent_loss(), lambda: matrix)
                if settings["max_steps"] is not None and step >= settings["max_steps"]:
                    checkpoint(epoch, step_in_epoch + 1, finished=False)
                    if leader:
                        log.info("stopped at max_steps=%d (resume=true goes on)", step)
                    return state
                if step % CONTROL_EVERY == 0:
                    due = time.monotonic() - last_checkpoint >= settings["checkpoint_interval_s"]
                    if sharding.agree([due], device)[0]:
                        checkpoint(epoch, step_in_epoch + 1, finished=False)
                        last_checkpoint = time.monotonic()
        finally:
            source.close()
        state["epochs"].append(progress.end_epoch(source.waited_s))
        if not math.isfinite(state["epochs"][-1]["loss"]):  # before its checkpoint: a resume starts before it
            error = TrainingDiverged.in_epoch(epoch + 1, batch_size, settings["alpha"])
            if leader:
                diverged.write_text(str(error), encoding="utf-8")
            raise error
        checkpoint(epoch + 1, 0, finished=epoch + 1 == settings["epochs"])
        last_checkpoint = time.monotonic()
        if leader:
            with open(run_dir / "train" / METRICS_FILE, "a", encoding="utf-8") as out:
                out.write(json.dumps(state["epochs"][-1]) + "\n")
    if settings["probe_words"] and step % settings["probe_every"]:  # once more after the last step
        matrix = sharding.gather_columns(shard.input)
        if probes is not None:
            probes.record(step, matrix, progress.recent_loss())
    return state


def open_epoch(plan: TrainPlan, epoch: int, first_step: int, sharding: ColumnSharding,
               device: torch.device) -> PairsInput | CorpusReader:
    """The epoch's global batches from `first_step`, from pairs/ or generated from corpus/ (pair_source)."""
    settings = plan.settings
    if settings["pair_source"] == "corpus":
        layout = CorpusLayout(plan.corpus_chunks, epoch, settings["seed"], settings["batch_size"],
                              plan.pairs_per_epoch)
        return CorpusReader(plan.corpus_files, layout, epoch, first_step, plan.window, settings["seed"], device)
    return PairsInput(plan.pair_files, plan.pair_rows, epoch, first_step, settings, sharding, device)


def learning_rate(alpha: float, min_alpha: float, pairs_done: int, pairs_total: int) -> float:
    """word2vec's linear decay, from alpha at the first pair to min_alpha after the last planned pair."""
    return alpha - (alpha - min_alpha) * min(1.0, pairs_done / pairs_total)


def choose_kernel(device: torch.device, threads: int) -> str:
    """numba's compiled step on CPUs when numba is installed (about 4x faster there), torch's ops otherwise; and
    the threads each may use on CPUs."""
    if device.type != "cpu":
        return "torch"
    try:
        import numba
    except ImportError:
        log.warning("numba is not installed: training on CPU with torch's ops, several times slower")
        torch.set_num_threads(threads)
        return "torch"
    # numba and torch share one OpenMP runtime, and starting numba's threads sets its thread count for both; so
    # numba first, then torch's own count: one thread, as its ops here are small and a parallel region on a busy
    # machine waits for its slowest thread.
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(1)
    return "numba"


class Progress:
    """Rank 0's words/s, pairs/s, loss, learning rate and ETA: a log line every few seconds, a record per epoch.
    words/s counts corpus words (preprocess's raw_tokens per epoch) in proportion to the pairs trained."""

    def __init__(self, plan: TrainPlan, total_pairs: int, enabled: bool):
        self.words_per_pair = plan.raw_tokens / plan.pairs_per_epoch
        self.pairs_per_epoch = plan.pairs_per_epoch
        self.total_pairs = total_pairs
        self.epochs = plan.settings["epochs"]
        self.enabled = enabled
        self.lr = plan.settings["alpha"]
        self.recent_loss_sum, self.recent_pairs = 0.0, 0

    def start_epoch(self, epoch: int, pairs_done: int) -> None:
        self.epoch = epoch
        self.pairs_done = pairs_done
        self.epoch_pairs = 0
        self.started = self.last_log = time.monotonic()
        self.loss_sum = 0.0

    def add(self, pairs: int, loss: torch.Tensor, lr: float) -> None:
        self.pairs_done += pairs
        self.epoch_pairs += pairs
        self.recent_pairs += pairs
        self.loss_sum = self.loss_sum + loss        # stays on the device: read only when logged
        self.recent_loss_sum = self.recent_loss_sum + loss
        self.lr = lr

    def recent_loss(self) -> float | None:
        """Mean loss per pair since the last call (for probes)."""
        if not self.recent_pairs:
            return None
        value = float(self.recent_loss_sum) / self.recent_pairs
        self.recent_loss_sum, self.recent_pairs = 0.0, 0
        return value

    def maybe_log(self, steps: int, steps_done: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last_log < PROGRESS_EVERY_S:
            return
        seconds = now - self.started
        pairs_per_s = self.epoch_pairs / seconds
        eta = (self.total_pairs - self.pairs_done) / max(pairs_per_s, 1e-9)
        log.info("epoch %d/%d %5.1f%% | %s words/s | %s pairs/s | loss %.4f | lr %.6f | ETA %s",
                 self.epoch + 1, self.epochs, 100 * steps_done / steps,
                 f"{pairs_per_s * self.words_per_pair:,.0f}", f"{pairs_per_s:,.0f}",
                 float(self.loss_sum) / max(self.epoch_pairs, 1), self.lr, _duration(eta))
        self.last_log = now

    def end_epoch(self, input_wait_s: float) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        pairs_per_s = self.epoch_pairs / max(seconds, 1e-9)
        record = {"epoch": self.epoch + 1, "pairs": self.epoch_pairs, "seconds": round(seconds, 3),
                  "words_per_s": round(pairs_per_s * self.words_per_pair, 1), "pairs_per_s": round(pairs_per_s, 1),
                  "loss": round(float(self.loss_sum) / max(self.epoch_pairs, 1), 6), "lr": self.lr,
                  "input_wait_s": round(input_wait_s, 3), "time": time.time()}
        if self.enabled:
            log.info("epoch %d/%d done in %s: %s words/s, %s pairs/s, loss %.4f", self.epoch + 1, self.epochs,
                     _duration(seconds), f"{record['words_per_s']:,.0f}", f"{record['pairs_per_s']:,.0f}",
                     record["loss"])
        return record


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _record_worker(run_dir: Path, rank: int, device: torch.device, kernel: str, ray_node: str | None) -> None:
    """RUN_DIR/train/workers/rank-R.json: which process trains shard R, on which host and Ray node (operators,
    and the killed-worker test)."""
    import os
    import socket

    folder = run_dir / "train" / WORKERS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    info = {"rank": rank, "pid": os.getpid(), "host": socket.gethostname(), "ray_node": ray_node,
            "device": str(device), "kernel": kernel, "started": time.time()}
    (folder / f"rank-{rank}.json").write_text(json.dumps(info) + "\n", encoding="utf-8")


def _save_checkpoint(store: CheckpointStore, shard: EmbeddingShard, sharding: ColumnSharding,
                     state: dict[str, Any], plan: TrainPlan) -> None:
    folder = Path(tempfile.mkdtemp(prefix="w2vdist-checkpoint-"))
    try:
        ckpt.save_shard(folder, sharding.rank, sharding.columns, shard.input, shard.output)
        if sharding.rank == 0:
            ckpt.save_state(folder, {**state, "world_size": sharding.world_size,
                                     "settings": {k: plan.settings[k] for k in RESULT_SETTINGS},
                                     "preprocess_completed": plan.preprocess_completed})
        metrics = {"step": state["step"], "epoch": state["epoch"], "finished": state["finished"]}
        store.save(folder, state["step"], metrics)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _probe_recorder(settings: dict[str, Any], vocab, run_dir: Path):
    if not settings["probe_words"]:
        return None
    from w2vdist.probes import ProbeRecorder

    return ProbeRecorder(settings["probe_words"], vocab.column("word").to_pylist(), settings["probe_every"],
                         run_dir / "probes")


def main(argv: list[str] | None = None) -> int:
    """Train one worker on this machine, without Ray: `python -m w2vdist.train.loop RUN_DIR [key=value ...]`."""
    from w2vdist.cli import OVERRIDES_HELP, configure_logging
    from w2vdist.config import load_config
    from w2vdist.errors import ConfigError, UsageError
    from w2vdist.train import stage
    from w2vdist.train.plan import build_plan

    parser = argparse.ArgumentParser(prog="python -m w2vdist.train.loop", description=main.__doc__)
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--config", action="append", default=[], metavar="YAML")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        config = load_config(args.config, args.overrides, {"out": args.run_dir})
        if config.num_workers != 1:
            log.info("without Ray there is one worker: num_workers=%d ignored", config.num_workers)
            config = dataclasses.replace(config, num_workers=1)
        plan = build_plan(config)
        if config.use_gpu is True and not torch.cuda.is_available():
            raise ConfigError("setting 'use_gpu' is true but torch sees no GPU here: use use_gpu=auto or false")
        device = torch.device("cuda" if config.use_gpu is not False and torch.cuda.is_available() else "cpu")
        root = Path(plan.run_dir) / stage.TRAIN_DIR / stage.LOCAL_CHECKPOINTS
        stage.prepare(plan, config.resume, root)
        state = train_loop_per_worker({"plan": plan.to_dict(), "threads": torch.get_num_threads()},
                                      ckpt.LocalCheckpoints(root), device)
        if state["finished"]:
            record = stage.finish(plan, ckpt.latest(root), {"workers": 1, "device": device.type})
            log.info("trained in %.1f s: %s", record["seconds"]["train"], Path(plan.run_dir) / "vectors")
    except UsageError as exc:
        print(f"w2vdist train: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
