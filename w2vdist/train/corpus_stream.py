"""pair_source=corpus: each epoch's skip-gram pairs generated from corpus/ on the training device.

pairs/ holds about 2 * E[window] pairs, 8 bytes each, per kept corpus word; corpus/ holds the kept word ids, 4
bytes each, and the pairs follow from them by word2vec's dynamic window. Reading corpus/ moves about 12 times fewer
bytes, and the windows are drawn afresh every epoch, as word2vec does (pairs/ repeats one draw every epoch).

An epoch is laid out the same way on every worker:

1. the corpus files in a seeded order (a new one each epoch), the chunks of each file in order;
2. blocks of `chunks_per_block` consecutive chunks, about BLOCK_STEPS * batch_size pairs each;
3. a block's pairs: the center at position p of chunk c reaches 1 + floor(u * window) words on either side inside
   its chunk, u being draw p of the key for (seed, epoch, c) (random_streams), so distance d has weight
   window - d + 1 as in preprocess's pairs; then a seeded random order, and the block's steps take consecutive,
   nearly equal slices of it (round(expected pairs / batch_size) steps per block).

Every worker reads and generates every block: with tables sharded by columns each worker needs the whole global
batch anyway, and generating it costs less than the all-gather of pairs it replaces. The batches, and with them
the vectors, do not depend on the number of workers, and a resumed run regenerates the block it stopped in.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from w2vdist.train import random_streams
from w2vdist.train.data import FILE_ORDER_STREAM, ReadAhead

BLOCK_STEPS = 256      # steps whose pairs are generated and shuffled together
READ_AHEAD_BLOCKS = 2


@dataclass(frozen=True)
class Block:
    segments: list[tuple[int, int, int]]  # (file index, first row, row after the last)
    chunks: int
    steps: int
    first_step: int


class CorpusLayout:
    """How one epoch's chunks are cut into blocks and steps; the same for any number of workers."""

    def __init__(self, file_chunks: list[int], epoch: int, seed: int, batch_size: int, pairs_per_epoch: int):
        order = np.random.default_rng([seed, FILE_ORDER_STREAM, epoch]).permutation(len(file_chunks))
        pairs_per_chunk = pairs_per_epoch / sum(file_chunks)
        chunks_per_block = max(1, round(BLOCK_STEPS * batch_size / max(pairs_per_chunk, 1e-9)))
        segments: list[list[tuple[int, int, int]]] = [[] for _ in range(-(-sum(file_chunks) // chunks_per_block))]
        before = 0  # chunks of the files before this one, in this epoch's order
        for file in (int(f) for f in order):
            row = 0
            while row < file_chunks[file]:
                block = (before + row) // chunks_per_block
                stop = min(file_chunks[file], (block + 1) * chunks_per_block - before)
                segments[block].append((file, row, stop))
                row = stop
            before += file_chunks[file]
        self.blocks: list[Block] = []
        first_step = 0
        for parts in segments:
            chunks = sum(stop - start for _, start, stop in parts)
            steps = max(1, round(chunks * pairs_per_chunk / batch_size))
            self.blocks.append(Block(parts, chunks, steps, first_step))
            first_step += steps
        self.steps = first_step
        self.pairs_per_epoch = pairs_per_epoch

    def pairs_before(self, step: int) -> int:
        """The planned pairs before `step` (the learning rate's schedule; the generated count differs a little)."""
        return round(step * self.pairs_per_epoch / self.steps)

    def block_of(self, step: int) -> int:
        return bisect.bisect_right([block.first_step for block in self.blocks], step) - 1


def window_pairs(tokens: torch.Tensor, lengths: torch.Tensor, chunk_ids: torch.Tensor, window: int,
                 epoch_key: int) -> torch.Tensor:
    """The (2, P) [centers; contexts] of chunks laid end to end in `tokens` (`lengths` words each), by the
    dynamic window of the module doc, in the dtype of `tokens`; pairs never cross from one chunk to another."""
    device = tokens.device
    chunk_of = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)
    index = torch.arange(len(tokens), device=device)
    position = index - (torch.cumsum(lengths, 0) - lengths)[chunk_of]
    remaining = lengths[chunk_of] - position - 1
    keys = random_streams.draw_keys(epoch_key, chunk_ids)[chunk_of]
    reach = 1 + (random_streams.uniform(keys, position) * window).to(torch.int64)
    centers, contexts = [], []
    for distance in range(1, window + 1):
        within = reach >= distance
        ahead = index[within & (remaining >= distance)]
        behind = index[within & (position >= distance)]
        # index_select: a third of the time of [] on CPUs
        centers += [tokens.index_select(0, ahead), tokens.index_select(0, behind)]
        contexts += [tokens.index_select(0, ahead + distance), tokens.index_select(0, behind - distance)]
    return torch.stack([torch.cat(centers), torch.cat(contexts)])


class CorpusReader:
    """Iterates over an epoch's global batches from `first_step`: ((2, B) int64 ids on `device`, B). A thread
    reads and generates blocks ahead of the training loop."""

    def __init__(self, files: list[str], layout: CorpusLayout, epoch: int, first_step: int, window: int, seed: int,
                 device: torch.device):
        self.files = files
        self.layout = layout
        self.epoch = epoch
        self.first_step = first_step
        self.window = window
        self.seed = seed
        self.device = device
        self.steps = layout.steps
        self.pairs_before = layout.pairs_before
        self._ahead = ReadAhead(self._read, READ_AHEAD_BLOCKS, "corpus-read-ahead")

    @property
    def waited_s(self) -> float:
        """Time the training loop waited for input."""
        return self._ahead.waited_s

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        if self.first_step >= self.steps:
            return
        for block in self.layout.blocks[self.layout.block_of(self.first_step):]:
            pairs = self._ahead.get()
            total = pairs.shape[1]
            for step in range(max(block.first_step, self.first_step), block.first_step + block.steps):
                j = step - block.first_step
                batch = pairs[:, j * total // block.steps:(j + 1) * total // block.steps].long()
                yield batch, batch.shape[1]

    def close(self) -> None:
        self._ahead.close()

    def _read(self) -> Iterator[torch.Tensor]:
        """Each block's pairs from the one of `first_step` on, generated and shuffled on the device."""
        if self.first_step >= self.steps:
            return
        epoch_key = random_streams.stream_seed(self.seed, random_streams.WINDOW_STREAM, self.epoch)
        tables: dict[int, pa.Table] = {}
        first_block = self.layout.block_of(self.first_step)
        for number, block in enumerate(self.layout.blocks[first_block:], start=first_block):
            tokens, lengths, chunk_ids = self._block_tokens(block, tables)
            pairs = window_pairs(tokens.to(self.device), lengths.to(self.device), chunk_ids.to(self.device),
                                 self.window, epoch_key)
            generator = torch.Generator(device=self.device)
            generator.manual_seed(random_streams.stream_seed(self.seed, random_streams.PAIR_ORDER_STREAM,
                                                             (self.epoch << 32) + number))
            order = torch.randperm(pairs.shape[1], generator=generator, device=self.device)
            yield torch.stack([pairs[0].index_select(0, order), pairs[1].index_select(0, order)])

    def _block_tokens(self, block: Block,
                      tables: dict[int, pa.Table]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The block's chunks as (ids end to end, chunk lengths, chunk ids)."""
        ids, lengths, chunk_ids = [], [], []
        for file, start, stop in block.segments:
            if file not in tables:
                tables.clear()  # blocks go through the files in order: one file is open at a time
                tables[file] = pq.read_table(self.files[file], columns=["chunk_id", "ids"])
            rows = tables[file].slice(start, stop - start)
            lists = rows.column("ids").combine_chunks()
            offsets = lists.offsets.to_numpy()
            ids.append(lists.values.slice(offsets[0], offsets[-1] - offsets[0]).to_numpy(zero_copy_only=False))
            lengths.append(np.diff(offsets))
            chunk_ids.append(rows.column("chunk_id").to_numpy())
        return (torch.from_numpy(np.concatenate(ids)),  # int32: half the bytes to shuffle
                torch.from_numpy(np.concatenate(lengths).astype(np.int64)),
                torch.from_numpy(np.concatenate(chunk_ids).astype(np.int64)))
