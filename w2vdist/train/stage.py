"""The train stage's bookkeeping on the run directory, done by the driver (the launcher, or a run without Ray).

Before training: a fresh start clears the last run's checkpoints and metrics; a resume checks that the latest
whole checkpoint was made from this preprocess output with the same result settings, and removes every other
checkpoint and Ray Train's record of them, so that the one it checked is the one the workers restore. Either way
the stage is marked incomplete in the manifest while it trains. After training: vectors/ is written from the last
checkpoint (verified again) and committed with the stage's record. The stage is complete, and `w2vdist train`
skips it, while the manifest says so for the same fingerprint: this preprocess output, the result settings and the
base run.

    RUN_DIR/train/checkpoints/        Ray Train's checkpoints (checkpoint-<n>/ with tables.pt, state.json)
    RUN_DIR/train/checkpoints-local/  the same, for runs without Ray
    RUN_DIR/train/metrics.jsonl       one line per finished epoch (loop.Progress.end_epoch)
    RUN_DIR/train/workers/rank-R.json the process, host, device and kernel of each worker
    RUN_DIR/vectors/                  datasets.VECTORS: id, word, count, vector, ordered by id
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from w2vdist.datasets import VECTORS, RunLayout, read_vocabulary, write_vectors_dataset
from w2vdist.errors import CheckpointError, ConfigError, RunDirError, writing
from w2vdist import rundir
from w2vdist.rundir import RunDir
from w2vdist.train import checkpoints as ckpt
from w2vdist.train.plan import TrainPlan

log = logging.getLogger("w2vdist.train")

STAGE = "train"
ROWS_PER_BLOCK = 1 << 16


def fingerprint(plan: TrainPlan) -> str:
    """What decides the trained vectors: the preprocess output, the result settings, the base run."""
    return rundir.fingerprint({"preprocess_completed": plan.preprocess_completed,
                               "settings": plan.settings.result_settings(), "base": plan.base_checkpoint})


def completed_record(plan: TrainPlan, force: bool) -> dict[str, Any] | None:
    """The stage's record when training is complete for this preprocess output and these settings (and not
    forced): then there is nothing to do, as for a complete preprocess stage."""
    run = RunDir(plan.run_dir)
    done = run.up_to_date(STAGE, fingerprint(plan), force)
    if done is not None:
        log.info("train: %s is complete for this preprocess output and these settings; skipped (force=true "
                 "redoes it)", run.path)
    return done


def prepare(plan: TrainPlan, resume: bool, checkpoint_root: Path) -> Path | None:
    """Ready the run directory for training; with `resume`, return the checkpoint to restore, the only one left
    under `checkpoint_root`."""
    run = RunDir(plan.run_dir)
    run.diverged_note.unlink(missing_ok=True)  # other settings (or a resume) deserve a new try
    folder = None
    if resume:
        folder = check_resumable(plan, checkpoint_root)
        # Ray Train would restore from its own record of checkpoints, which need not name the one checked here
        _remove_all_but(checkpoint_root, folder)
    else:
        shutil.rmtree(checkpoint_root, ignore_errors=True)
        shutil.rmtree(run.workers, ignore_errors=True)
        run.train_metrics.unlink(missing_ok=True)
        run.probe_records.unlink(missing_ok=True)  # a fresh start's probes begin anew
    run.train_dir.mkdir(exist_ok=True)
    run.abandon(run.begin(STAGE))  # marks the stage incomplete until finish() commits
    return folder


def _remove_all_but(root: Path, keep: Path) -> None:
    for entry in root.iterdir():
        if entry == keep:
            continue
        if keep.is_relative_to(entry):
            _remove_all_but(entry, keep)
        elif entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def check_resumable(plan: TrainPlan, checkpoint_root: Path) -> Path:
    """The checkpoint a resume continues from: the newest whole one, made from this preprocess output with these
    result settings."""
    folder = ckpt.latest(checkpoint_root)
    if folder is None:
        damaged = sorted(f.name for f in checkpoint_root.rglob(f"{ckpt.PREFIX}*")) if checkpoint_root.is_dir() else []
        found = f" (only damaged ones: {', '.join(damaged)})" if damaged else ""
        raise CheckpointError(f"resume=true but '{checkpoint_root}' holds no complete checkpoint{found}: train "
                              f"with resume=false to start afresh")
    state = ckpt.read_state(folder)
    if state["preprocess_completed"] != plan.preprocess_completed:
        raise RunDirError(f"resume=true but checkpoint '{folder}' was made from an earlier preprocess output "
                          f"(completed {state['preprocess_completed']}, now {plan.preprocess_completed}): "
                          f"train with resume=false")
    now = plan.settings.result_settings()
    changed = [f"'{key}' was {state['settings'].get(key)!r}, now {value!r}"
               for key, value in now.items() if state["settings"].get(key) != value]
    if changed:
        raise ConfigError(f"resume=true but checkpoint '{folder}' was trained with other settings: "
                          f"{'; '.join(changed)}. Resume with the same settings, or resume=false to start afresh")
    return folder


def finish(plan: TrainPlan, folder: Path, run_info: dict[str, Any]) -> dict[str, Any]:
    """Write vectors/ from checkpoint `folder` and commit the stage with its record."""
    run = RunDir(plan.run_dir)
    ckpt.verify(folder)
    state = ckpt.read_state(folder)
    staging = run.begin(STAGE)
    try:
        with writing(run.path):
            write_vectors_dataset(RunLayout(staging).vectors, read_vocabulary(run.vocab), _vector_blocks(folder))
        epochs = state["epochs"]
        seconds = sum(e["seconds"] for e in epochs)
        record = {
            "fingerprint": fingerprint(plan),
            "config": dataclasses.asdict(plan.settings),
            "inputs": {"preprocess_completed": plan.preprocess_completed, "vocab_size": plan.vocab_size,
                       "raw_tokens": plan.raw_tokens},
            "stats": {"words": state["words_done"], "epochs": epochs, "checkpoint": str(folder), **run_info,
                      "syncs": sum(e.get("syncs", 0) for e in epochs),
                      "sync_seconds": round(sum(e.get("sync_s", 0.0) for e in epochs), 3),
                      "sync_wait_seconds": round(sum(e.get("sync_wait_s", 0.0) for e in epochs), 3),
                      "sync_mb": round(sum(e.get("sync_mb", 0.0) for e in epochs), 3),
                      "words_per_s": round(plan.raw_tokens * len(epochs) / seconds, 1) if seconds else None,
                      "final_loss": epochs[-1]["loss"] if epochs else None},
            "seconds": {"train": round(seconds, 2)},
        }
        return run.commit(STAGE, staging, [VECTORS.folder], record)
    except BaseException:
        run.abandon(staging)
        raise


def _vector_blocks(folder: Path) -> Iterator[np.ndarray]:
    """The word vectors of checkpoint `folder`, ROWS_PER_BLOCK rows at a time: the table is memory-mapped, so the
    whole of it is never in memory."""
    table = ckpt.input_table(folder)
    for first in range(0, table.shape[0], ROWS_PER_BLOCK):
        yield table[first:first + ROWS_PER_BLOCK].contiguous().numpy()
