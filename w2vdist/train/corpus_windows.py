"""A block of corpus chunks to a kernel launch: this epoch's subsampling, then the layout the kernels walk.

word2vec draws subsampling afresh in every epoch, and a dropped word leaves no gap: the window of a center reaches
over it. So each launch first draws the keep decision of every token (random_streams: a draw of (epoch, chunk,
position)), compacts the kept words, and records for each the chunk it belongs to and its position before
subsampling, which keys its window and noise draws. Vectorised torch, on the training device.
"""

from __future__ import annotations

import numpy as np
import torch

from w2vdist import random_streams
from w2vdist.train.types import WindowLaunch


def build_launch(chunk_ids: np.ndarray, offsets: np.ndarray, ids: torch.Tensor, keep_threshold: torch.Tensor,
                 subsample_key: int, window_key: int, parts: int) -> WindowLaunch:
    """chunk_ids int64 [C], offsets int64 [C + 1] into `ids` (int32 token ids on the device, before subsampling),
    keep_threshold int32 [V] on the device -> the launch, its centers cut into `parts` nearly equal parts."""
    device = ids.device
    lengths = torch.from_numpy(np.diff(offsets)).to(device)
    chunk_count = len(chunk_ids)
    token_chunk = torch.repeat_interleave(torch.arange(chunk_count, device=device), lengths)
    starts = torch.from_numpy(np.asarray(offsets[:-1], dtype=np.int64)).to(device)
    positions = torch.arange(len(ids), device=device) - starts[token_chunk] + int(offsets[0])
    subsample_keys = torch.from_numpy(random_streams.chunk_keys(subsample_key, chunk_ids)).to(device)
    bits = random_streams.bits_torch(subsample_keys[token_chunk], positions)
    keep = random_streams.keep_torch(bits, keep_threshold[ids.long()])
    words = ids[keep].to(torch.int32)
    word_chunk = token_chunk[keep]
    kept = torch.bincount(word_chunk, minlength=chunk_count)
    chunk_end = torch.cumsum(kept, 0)
    centers = len(words)
    return WindowLaunch(
        words=words.contiguous(),
        positions=positions[keep].to(torch.int32).contiguous(),
        word_chunk=word_chunk.to(torch.int32).contiguous(),
        chunk_start=(chunk_end - kept).to(torch.int32).contiguous(),
        chunk_end=chunk_end.to(torch.int32).contiguous(),
        chunk_key=torch.from_numpy(random_streams.chunk_keys(window_key, chunk_ids)).to(device),
        parts=torch.from_numpy(np.linspace(0, centers, max(1, parts) + 1).round().astype(np.int64)),
        corpus_words=int(offsets[-1] - offsets[0]),
    )
