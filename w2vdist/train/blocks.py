"""An epoch's data as blocks, each replica's share of them, and their reading ahead of the kernels.

An epoch is laid out the same way on every worker:

1. the input files (corpus/, or pairs/draw=K/ with K = epoch mod pair_draws) in a seeded order, a new one each
   epoch; their rows (chunks, or pairs) seen as one sequence;
2. that sequence cut into blocks of about `rows_per_block` rows: one kernel launch each;
3. blocks grouped into rounds of `replicas * blocks_per_replica` blocks. In round j, replica r trains the
   `blocks_per_replica` consecutive blocks starting at j * replicas * blocks_per_replica + r * blocks_per_replica;
   after each round the replicas sync their tables.

So each replica reads only its own blocks, its share moves through the files as the file order changes from one
epoch to the next, and a block's place in the sequence (which sets its learning rate) does not depend on which
replica trains it.

The loop reads its blocks from a `BlockSource`: `CorpusSource` (corpus/ files: blocks of chunks, for
Engine.train_corpus) or `PairsSource` (the files of a pairs/draw=K/: blocks of pairs, for Engine.train_pairs),
`BLOCK_SOURCES[pair_source]`.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from w2vdist.datasets import CORPUS, PAIRS
from w2vdist.random_streams import Stream, stream_key

READ_AHEAD_BLOCKS = 2


@dataclass(frozen=True)
class Block:
    index: int                                  # place in the epoch's sequence of blocks
    segments: tuple[tuple[int, int, int], ...]  # (file index, first row, row after the last)

    @property
    def rows(self) -> int:
        return sum(stop - start for _, start, stop in self.segments)


class EpochLayout:
    def __init__(self, file_rows: list[int], epoch: int, seed: int, rows_per_block: int, replicas: int,
                 blocks_per_replica: int):
        order = np.random.default_rng([seed, int(Stream.FILE_ORDER), epoch]).permutation(len(file_rows))
        total = sum(file_rows)
        count = max(1, round(total / max(rows_per_block, 1)))
        bounds = [b * total // count for b in range(count + 1)]
        segments: list[list[tuple[int, int, int]]] = [[] for _ in range(count)]
        before = 0
        for file in (int(f) for f in order):
            rows = file_rows[file]
            for b in range(count):
                low, high = max(bounds[b], before), min(bounds[b + 1], before + rows)
                if low < high:
                    segments[b].append((file, low - before, high - before))
            before += rows
        self.blocks = [Block(b, tuple(parts)) for b, parts in enumerate(segments)]
        self.replicas = replicas
        self.blocks_per_replica = blocks_per_replica
        self.round_size = replicas * blocks_per_replica
        self.rounds = -(-len(self.blocks) // self.round_size)

    def blocks_of(self, round_index: int, rank: int) -> list[Block]:
        first = round_index * self.round_size + rank * self.blocks_per_replica
        return self.blocks[first:min(first + self.blocks_per_replica, len(self.blocks))]

    def progress(self, block_index: int) -> float:
        """The share of the epoch before block `block_index` (the learning rate's schedule)."""
        return block_index / len(self.blocks)


@dataclass
class CorpusBlock:
    """A block of corpus chunks, ready for corpus_windows.build_launch."""
    block: Block
    chunk_ids: np.ndarray   # int64 [C]
    offsets: np.ndarray     # int64 [C + 1] into ids
    ids: torch.Tensor       # int32 [N], on the training device


@dataclass
class PairBlock:
    """A block of (center, context) pairs, with the key and first row that key the negatives' draws."""
    block: Block
    centers: torch.Tensor   # int32 [P], on the training device
    contexts: torch.Tensor  # int32 [P]
    first_rows: np.ndarray  # int64 [S]: first row of each segment in its file (the draws' counters)
    files: np.ndarray       # int64 [S]: file index of each segment
    lengths: np.ndarray     # int64 [S]


class FileCache:
    """Parquet files read whole, kept in memory (on the device) while their total size fits `budget_bytes`;
    beyond that only the last one read is kept. Blocks go through the files in order, so either way each file
    is read once per epoch at most."""

    def __init__(self, files: list[str], columns: list[str], budget_bytes: int, device: torch.device,
                 convert: Callable[[pa.Table, torch.device], Any]):
        self.files = files
        self.columns = columns
        self.device = device
        self.convert = convert
        self.keep_all = sum(os.path.getsize(f) for f in files) * 2 <= budget_bytes
        self.cache: dict[int, Any] = {}
        self.lock = threading.Lock()

    def get(self, index: int) -> Any:
        with self.lock:
            if index in self.cache:
                return self.cache[index]
        table = pq.read_table(self.files[index], columns=self.columns)
        value = self.convert(table, self.device)
        with self.lock:
            if not self.keep_all:
                self.cache.clear()
            self.cache[index] = value
        return value


def corpus_file(table: pa.Table, device: torch.device) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """A corpus/ file as (chunk ids, offsets, flat ids on the device)."""
    lists = table.column("ids").combine_chunks()
    offsets = lists.offsets.to_numpy().astype(np.int64)
    flat = lists.values.slice(offsets[0], offsets[-1] - offsets[0]).to_numpy(zero_copy_only=False)
    ids = torch.from_numpy(np.array(flat, dtype=np.int32)).to(device)
    return table.column("chunk_id").to_numpy().astype(np.int64), offsets - offsets[0], ids


def pairs_file(table: pa.Table, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    centers = np.array(table.column("center").to_numpy(), dtype=np.int32)  # a writable copy, as torch wants
    contexts = np.array(table.column("context").to_numpy(), dtype=np.int32)
    return torch.from_numpy(centers).to(device), torch.from_numpy(contexts).to(device)


class BlockSource(Protocol):
    """Where the loop reads an epoch's blocks: a list of files (a block's segments index into it), each block read
    onto the training device, ready for its kernel."""

    def read(self, block: Block) -> CorpusBlock | PairBlock: ...


class CorpusSource:
    """corpus/ files (pair_source=corpus): blocks of whole chunks."""

    def __init__(self, files: list[str], budget_bytes: int, device: torch.device):
        self.cache = FileCache(files, CORPUS.schema.names, budget_bytes, device, corpus_file)

    def read(self, block: Block) -> CorpusBlock:
        chunk_ids, offsets, ids = [], [np.zeros(1, np.int64)], []
        total = 0
        for file, start, stop in block.segments:
            file_chunks, file_offsets, file_ids = self.cache.get(file)
            chunk_ids.append(file_chunks[start:stop])
            low, high = file_offsets[start], file_offsets[stop]
            ids.append(file_ids[low:high])
            offsets.append(file_offsets[start + 1:stop + 1] - low + total)
            total += int(high - low)
        return CorpusBlock(block, np.concatenate(chunk_ids), np.concatenate(offsets), torch.cat(ids))


class PairsSource:
    """The files of one pairs/draw=K/ (pair_source=pairs): blocks of (center, context) pairs."""

    def __init__(self, files: list[str], budget_bytes: int, device: torch.device):
        self.cache = FileCache(files, PAIRS.schema.names, budget_bytes, device, pairs_file)

    def read(self, block: Block) -> PairBlock:
        centers, contexts = [], []
        for file, start, stop in block.segments:
            file_centers, file_contexts = self.cache.get(file)
            centers.append(file_centers[start:stop])
            contexts.append(file_contexts[start:stop])
        return PairBlock(block, torch.cat(centers), torch.cat(contexts),
                         np.array([start for _, start, _ in block.segments], np.int64),
                         np.array([file for file, _, _ in block.segments], np.int64),
                         np.array([stop - start for _, start, stop in block.segments], np.int64))


# by the setting pair_source
BLOCK_SOURCES: dict[str, Callable[[list[str], int, torch.device], BlockSource]] = {
    "corpus": CorpusSource, "pairs": PairsSource}


class ReadAhead:
    """Runs the generator `produce` on a daemon thread, up to `depth` items ahead of the consumer, and times how
    long the consumer waits (`waited_s`). An exception in `produce` is raised in the consumer by `get`."""

    def __init__(self, produce: Callable[[], Iterator[Any]], depth: int = READ_AHEAD_BLOCKS,
                 name: str = "read-ahead"):
        self.waited_s = 0.0
        self._produce = produce
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def get(self) -> Any:
        waiting = time.perf_counter()
        item = self._queue.get()
        self.waited_s += time.perf_counter() - waiting
        if isinstance(item, _Failure):
            raise item.error
        return item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a thread waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)

    def _run(self) -> None:
        try:
            for item in self._produce():
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            self._queue.put(_Failure(exc))


@dataclass
class _Failure:
    error: BaseException


def pair_noise_key(seed: int, epoch: int) -> int:
    """The stream key of the negatives of pair_source=pairs in `epoch`: a pair's draws are keyed by its file and
    row, so they do not depend on which replica trains it."""
    return stream_key(seed, Stream.PAIR_NOISE, epoch)
