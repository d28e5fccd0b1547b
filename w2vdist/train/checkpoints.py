"""Checkpoint folders: one shard file per worker and the training state, and the store of a run without Ray.

A checkpoint folder holds

    shard-RRRR.pt   worker R's columns of both tables: {"columns": [low, high], "input": V x w, "output": V x w}
    state.json      written by worker 0: the position (global step, epoch, step in the epoch), whether training
                    finished, the per-epoch metrics so far, and the settings and preprocess output it belongs to

Ray Train merges the folders every worker reports into one (RUN_DIR/train/checkpoints/checkpoint-<step>/); a run
without Ray writes the same folders under RUN_DIR/train/checkpoints-local/. A shard is loaded by columns, so a run
can resume with another number of workers: each worker copies its columns out of whichever files hold them.
Negatives and file orders are seeded by step and epoch, so the position is all the random state there is.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import torch

STATE_FILE = "state.json"
PREFIX = "checkpoint-"
KEEP = 2

T = TypeVar("T")


def folder_name(step: int) -> str:
    return f"{PREFIX}{step:010d}"


def save_shard(directory: Path, rank: int, columns: range, input_table: torch.Tensor,
               output_table: torch.Tensor) -> None:
    torch.save({"columns": [columns.start, columns.stop], "input": input_table.cpu(), "output": output_table.cpu()},
               directory / f"shard-{rank:04d}.pt")


def save_state(directory: Path, state: dict[str, Any]) -> None:
    (directory / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")


def read_state(directory: Path) -> dict[str, Any]:
    return json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))


def _shards(directory: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.glob("shard-*.pt")):
        yield torch.load(path, mmap=True, weights_only=True)


def load_columns(directory: Path, columns: range, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns `columns` of both tables, gathered from the shard files that hold them."""
    tables: dict[str, torch.Tensor] = {}
    covered = 0
    for shard in _shards(directory):
        low, high = shard["columns"]
        start, stop = max(low, columns.start), min(high, columns.stop)
        if start >= stop:
            continue
        for name in ("input", "output"):
            if name not in tables:
                tables[name] = torch.empty((shard[name].shape[0], len(columns)), device=device)
            tables[name][:, start - columns.start:stop - columns.start] = shard[name][:, start - low:stop - low]
        covered += stop - start
    if covered != len(columns):
        raise FileNotFoundError(f"checkpoint '{directory}' lacks columns of {columns}")
    return tables["input"], tables["output"]


def input_row_blocks(directory: Path, rows_per_block: int) -> Iterator[torch.Tensor]:
    """The whole input table, all columns, `rows_per_block` rows at a time (memory-mapped shards)."""
    shards = sorted(_shards(directory), key=lambda shard: shard["columns"][0])
    vocab_size = shards[0]["input"].shape[0]
    for start in range(0, vocab_size, rows_per_block):
        yield torch.cat([shard["input"][start:start + rows_per_block] for shard in shards], dim=1)


def is_complete(directory: Path) -> bool:
    """A folder whose state and every shard were written (the state names how many shards there are)."""
    try:
        state = read_state(directory)
    except (OSError, ValueError):
        return False
    return all((directory / f"shard-{rank:04d}.pt").is_file() for rank in range(state["world_size"]))


def latest(root: Path) -> Path | None:
    """The complete checkpoint folder with the highest step under `root`, if any."""
    if not root.is_dir():
        return None
    for folder in sorted(root.glob(f"{PREFIX}*"), reverse=True):
        if folder.is_dir() and is_complete(folder):
            return folder
    return None


class LocalCheckpoints:
    """Checkpoints of a run without Ray (one worker): folders under `root`, the last KEEP kept."""

    def __init__(self, root: Path):
        self.root = root

    def restore(self, load: Callable[[Path], T]) -> T | None:
        folder = latest(self.root)
        return None if folder is None else load(folder)

    def save(self, directory: Path, step: int, metrics: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / folder_name(step)
        staging = self.root / f".{target.name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(directory, staging)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        for old in sorted(self.root.glob(f"{PREFIX}*"))[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
