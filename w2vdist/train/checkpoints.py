"""Checkpoint folders, and the checkpoint store of a run without Ray.

A checkpoint is taken right after the replicas synced, so every replica holds the same tables and rank 0 writes
them for all (with column shards, gathered from replica 0's shards first: the format is the same):

    tables.pt    {"input": V x dim, "output": V x dim} float32
    state.json   the position (epoch, next block, words trained), the epoch records so far, the current epoch's
                 totals up to the position, the result settings, the preprocess output it belongs to, and the
                 SHA-256 and size of tables.pt

A folder counts as a checkpoint only when state.json reads and tables.pt has the size and checksum it names: a
run killed while writing, or a disk that filled up, leaves a folder that is never resumed from. Ray Train copies
the folder into RUN_DIR/train/checkpoints/checkpoint-<n>/; a run without Ray writes the same folders under
RUN_DIR/train/checkpoints-local/. The blocks' order, subsampling, windows and negatives are drawn from the epoch
and the block's place, so the position is all the random state there is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from w2vdist.errors import CheckpointError

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
TABLES_FILE = "tables.pt"
PREFIX = "checkpoint-"
KEEP = 2

T = TypeVar("T")


@dataclass
class EpochTotals:
    """What an epoch has trained so far: kept across a resume, so the epoch's record covers all of it."""
    words: float = 0.0
    pairs: int = 0
    loss_sum: float = 0.0
    loss_pairs: int = 0
    seconds: float = 0.0
    input_wait_s: float = 0.0


@dataclass
class TrainState:
    epoch: int = 0
    next_block: int = 0          # the first block of the next round in the epoch's sequence
    words_done: float = 0.0      # corpus words trained over the whole run, all replicas together
    finished: bool = False
    epochs: list[dict[str, Any]] = field(default_factory=list)
    current: EpochTotals = field(default_factory=EpochTotals)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainState":
        data = dict(data)
        data["current"] = EpochTotals(**data.get("current", {}))
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def folder_name(number: int) -> str:
    return f"{PREFIX}{number:010d}"


def save(directory: Path, tables_input: torch.Tensor, tables_output: torch.Tensor, state: TrainState,
         meta: dict[str, Any]) -> None:
    """Write a checkpoint into the empty folder `directory`: the tables, then the state that vouches for them."""
    path = directory / TABLES_FILE
    torch.save({"input": tables_input.cpu(), "output": tables_output.cpu()}, path)
    record = {**dataclasses.asdict(state), **meta, "tables_sha256": _sha256(path), "tables_bytes": path.stat().st_size}
    (directory / STATE_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def read_state(directory: Path) -> dict[str, Any]:
    return json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))


def load_tables(directory: Path, device: torch.device,
                columns: range | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Both tables, or only `columns` of them (a column shard's): read through a memory map, so a worker holds
    no more than its slice."""
    verify(directory)
    tables = torch.load(directory / TABLES_FILE, mmap=True, weights_only=True)
    part = slice(None) if columns is None else slice(columns.start, columns.stop)
    return tuple(tables[name][:, part].to(device, memory_format=torch.contiguous_format, copy=True)
                 for name in ("input", "output"))


def input_table(directory: Path) -> torch.Tensor:
    """The word vectors of a checkpoint, memory-mapped."""
    verify(directory)
    return torch.load(directory / TABLES_FILE, mmap=True, weights_only=True)["input"]


def verify(directory: Path) -> None:
    """Raise CheckpointError, naming the folder and what is wrong, unless `directory` is a whole checkpoint:
    whatever restores from a checkpoint, Ray's pick included, checks it first."""
    found = problem(directory)
    if found is not None:
        raise CheckpointError(f"checkpoint '{directory}' cannot be used: {found}")


def problem(directory: Path) -> str | None:
    """Why `directory` is not a whole checkpoint, or None when it is."""
    try:
        state = read_state(directory)
    except (OSError, ValueError) as exc:
        return f"its {STATE_FILE} is unreadable ({exc})"
    path = directory / TABLES_FILE
    if not path.is_file():
        return f"{TABLES_FILE} is missing"
    if path.stat().st_size != state.get("tables_bytes"):
        return f"{TABLES_FILE} has {path.stat().st_size} bytes, not the {state.get('tables_bytes')} it was written with"
    if _sha256(path) != state.get("tables_sha256"):
        return f"{TABLES_FILE} does not match its SHA-256 in {STATE_FILE}"
    return None


def is_complete(directory: Path) -> bool:
    return problem(directory) is None


def latest(root: Path) -> Path | None:
    """The whole checkpoint folder with the highest number under `root` (searched to any depth), if any; newer
    folders that are not whole are skipped with a warning saying why."""
    if not root.is_dir():
        return None
    for folder in sorted(root.rglob(f"{PREFIX}*"), key=lambda p: p.name, reverse=True):
        if not folder.is_dir():
            continue
        found = problem(folder)
        if found is None:
            return folder
        log.warning("checkpoint %s skipped: %s", folder, found)
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


class LocalCheckpoints:
    """Checkpoints of a run without Ray: folders under `root`, the last KEEP kept."""

    def __init__(self, root: Path):
        self.root = root

    def restore(self, load: Callable[[Path], T]) -> T | None:
        folder = latest(self.root)
        return None if folder is None else load(folder)

    def save(self, directory: Path | None, number: int, metrics: dict[str, Any]) -> None:
        if directory is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / folder_name(number)
        staging = self.root / f".{target.name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(directory, staging)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        for old in sorted(self.root.glob(f"{PREFIX}*"))[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
