"""This worker's share of pairs/, step by step, in a new order each epoch, read ahead on a background thread.

Every step trains on one global batch of `batch_size` pairs, and for 1 and N workers to compute the same vectors
that batch must not depend on N. So each epoch is laid out the same way whatever the number of workers:

1. the pairs files are put in a seeded random order (a new one each epoch) and seen as one sequence of pairs;
2. that sequence is cut into `streams` equal contiguous streams;
3. step t takes the next `share[s]` (about batch_size/streams) pairs of every stream s; the global batch is
   stream 0's share, then stream 1's, and so on (the canonical order, which the negative draws follow).

Worker r reads only streams r, r+N, r+2N, ... (about 1/N of the files, different ones each epoch) and contributes
their shares; `sharding.gather_batch` all-gathers the contributions and puts them in canonical order. A stream
that runs out first is padded with id -1, which the step gives zero weight.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import pyarrow.parquet as pq
import torch

if TYPE_CHECKING:
    from w2vdist.train.sharding import ColumnSharding

PAD = -1
FILE_ORDER_STREAM = 3       # random stream of the per-epoch file order (1 and 2 are preprocess's)
READ_AHEAD_PAIRS = 1 << 21  # pairs per read-ahead chunk (several steps at once: fewer, larger copies)
READ_AHEAD_CHUNKS = 4
READ_BATCH_ROWS = 1 << 16  # rows decoded at a time from a Parquet file


@dataclass(frozen=True)
class Segment:
    file: int    # index into the plan's pair files
    start: int   # first row
    stop: int    # row after the last


class EpochLayout:
    """How one epoch's pairs are dealt into streams and steps; the same for any number of workers."""

    def __init__(self, file_rows: list[int], epoch: int, seed: int, streams: int, batch_size: int):
        order = np.random.default_rng([seed, FILE_ORDER_STREAM, epoch]).permutation(len(file_rows))
        ends = np.cumsum([file_rows[f] for f in order])
        starts = ends - [file_rows[f] for f in order]
        total = int(ends[-1])
        bounds = [s * total // streams for s in range(streams + 1)]
        self.lengths = np.diff(bounds)
        self.share = np.array([batch_size // streams + (s < batch_size % streams) for s in range(streams)])
        self.steps = int(max(math.ceil(length / share) for length, share in zip(self.lengths, self.share)))
        self.pairs = total
        self.segments: list[list[Segment]] = []
        for s in range(streams):
            low, high = bounds[s], bounds[s + 1]
            self.segments.append([Segment(int(f), int(max(low, a) - a), int(min(high, b) - a))
                                  for f, a, b in zip(order, starts, ends) if a < high and b > low])

    def pairs_before(self, step: int) -> int:
        """Real (unpadded) pairs in this epoch's steps before `step`."""
        return int(np.minimum(self.lengths, step * self.share).sum())


def streams_of(rank: int, world_size: int, streams: int) -> list[int]:
    return list(range(rank, streams, world_size))


def contribution_width(world_size: int, streams: int, batch_size: int) -> int:
    """Pairs each worker sends per step: the largest share of any worker, so all contributions have one size."""
    share = [batch_size // streams + (s < batch_size % streams) for s in range(streams)]
    return max(sum(share[s] for s in streams_of(r, world_size, streams)) for r in range(world_size))


def canonical_order(world_size: int, streams: int, batch_size: int) -> torch.Tensor | None:
    """Positions, in the gathered [rank][width] layout, of the global batch's pairs in canonical order."""
    if world_size == 1:
        return None  # one worker reads every stream in order already
    share = [batch_size // streams + (s < batch_size % streams) for s in range(streams)]
    width = contribution_width(world_size, streams, batch_size)
    start = {}
    for rank in range(world_size):
        offset = rank * width
        for s in streams_of(rank, world_size, streams):
            start[s] = offset
            offset += share[s]
    return torch.cat([torch.arange(start[s], start[s] + share[s]) for s in range(streams)])


class ReadAhead:
    """Runs the generator `produce` on a daemon thread, up to `depth` items ahead of the consumer, and times how
    long the consumer waits (`waited_s`). An exception in `produce` is raised in the consumer by `get`."""

    def __init__(self, produce: Callable[[], Iterator[Any]], depth: int, name: str):
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


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class PairsReader:
    """Iterates over this worker's contributions, one (2, width) int32 tensor [centers; contexts] per step,
    from `first_step` to the epoch's end. A thread reads the Parquet files ahead of the training loop."""

    def __init__(self, files: list[str], layout: EpochLayout, my_streams: list[int], width: int,
                 first_step: int, pin_memory: bool):
        self.files = files
        self.layout = layout
        self.my_streams = my_streams
        self.width = width
        self.first_step = first_step
        self.pin_memory = pin_memory
        self.steps_per_chunk = max(1, READ_AHEAD_PAIRS // max(width, 1))
        self._ahead = ReadAhead(self._read, READ_AHEAD_CHUNKS, "pairs-read-ahead")

    @property
    def waited_s(self) -> float:
        """Time the training loop waited for input."""
        return self._ahead.waited_s

    def __iter__(self) -> Iterator[torch.Tensor]:
        for _ in range(self.first_step, self.layout.steps, self.steps_per_chunk):
            yield from self._ahead.get()  # a (steps, 2, width) tensor yields one step at a time

    def close(self) -> None:
        self._ahead.close()

    def _read(self) -> Iterator[torch.Tensor]:
        buffers = [_StreamBuffer(self.files, self.layout.segments[s], self.first_step * int(self.layout.share[s]))
                   for s in self.my_streams]
        shares = [int(self.layout.share[s]) for s in self.my_streams]
        for step in range(self.first_step, self.layout.steps, self.steps_per_chunk):
            steps = min(self.steps_per_chunk, self.layout.steps - step)
            chunk = np.full((2, steps, self.width), PAD, dtype=np.int32)
            offset = 0
            for buffer, share in zip(buffers, shares):
                chunk[:, :, offset:offset + share] = buffer.take(steps * share).reshape(2, steps, share)
                offset += share
            tensor = torch.from_numpy(np.ascontiguousarray(chunk.transpose(1, 0, 2)))
            yield tensor.pin_memory() if self.pin_memory else tensor


class PairsInput:
    """pair_source=pairs: an epoch's global batches from `first_step`, ((2, B) int64 ids on `device`, the real
    pairs among the B), this worker's streams read by a PairsReader and all-gathered in canonical order."""

    def __init__(self, files: list[str], file_rows: list[int], epoch: int, first_step: int, settings: dict,
                 sharding: "ColumnSharding", device: torch.device):
        streams, batch_size = settings["streams"], settings["batch_size"]
        self.layout = EpochLayout(file_rows, epoch, settings["seed"], streams, batch_size)
        self.steps = self.layout.steps
        self.pairs_before = self.layout.pairs_before
        self.first_step = first_step
        self.sharding = sharding
        self.device = device
        canonical = canonical_order(sharding.world_size, streams, batch_size)
        self.canonical = None if canonical is None else canonical.to(device)
        self.reader = PairsReader(files, self.layout, streams_of(sharding.rank, sharding.world_size, streams),
                                  contribution_width(sharding.world_size, streams, batch_size), first_step,
                                  pin_memory=device.type == "cuda")

    @property
    def waited_s(self) -> float:
        return self.reader.waited_s

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        for step, local in enumerate(self.reader, start=self.first_step):
            batch = self.sharding.gather_batch(local.to(self.device, non_blocking=True), self.canonical).long()
            yield batch, self.pairs_before(step + 1) - self.pairs_before(step)

    def close(self) -> None:
        self.reader.close()


class _StreamBuffer:
    """One stream's pairs in order, read row group by row group, starting `skip` pairs in."""

    def __init__(self, files: list[str], segments: list[Segment], skip: int):
        self._pieces = self._read(files, segments, skip)
        self._current = np.empty((2, 0), np.int32)
        self._position = 0

    def take(self, count: int) -> np.ndarray:
        """The next `count` pairs as a (2, count) array, padded with PAD after the stream's end."""
        taken = np.full((2, count), PAD, np.int32)
        filled = 0
        while filled < count:
            if self._position == self._current.shape[1]:
                self._current = next(self._pieces, None)
                self._position = 0
                if self._current is None:
                    self._current = np.empty((2, 0), np.int32)
                    break
            n = min(count - filled, self._current.shape[1] - self._position)
            taken[:, filled:filled + n] = self._current[:, self._position:self._position + n]
            filled += n
            self._position += n
        return taken

    @staticmethod
    def _read(files: list[str], segments: list[Segment], skip: int) -> Iterator[np.ndarray]:
        for segment in segments:
            if skip >= segment.stop - segment.start:
                skip -= segment.stop - segment.start
                continue
            start, stop, skip = segment.start + skip, segment.stop, 0
            # Streamed reads (no pre-buffering of whole column chunks) and small batches: each of a worker's
            # streams then holds about a megabyte, not a row group of millions of pairs.
            parquet = pq.ParquetFile(files[segment.file], pre_buffer=False, buffer_size=1 << 20)
            groups, position, group_start = [], None, 0
            for group in range(parquet.metadata.num_row_groups):
                group_rows = parquet.metadata.row_group(group).num_rows
                if group_start < stop and group_start + group_rows > start:
                    groups.append(group)
                    position = group_start if position is None else position
                group_start += group_rows
            for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, row_groups=groups,
                                              columns=["center", "context"]):
                low, high = max(start, position), min(stop, position + batch.num_rows)
                if low < high:
                    pairs = np.stack([batch.column(0).to_numpy(), batch.column(1).to_numpy()])
                    yield pairs[:, low - position:high - position].astype(np.int32, copy=False)
                position += batch.num_rows
                if position >= stop:
                    break
