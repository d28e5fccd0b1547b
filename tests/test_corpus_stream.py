"""pair_source=corpus: pairs generated from corpus/ by the dynamic window, the epoch layout, the reader, and the
loop trained on them (resume, topics)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from scipy import stats

from tests.train_fixtures import assert_topics_learned, build_run_dir, read_vectors, two_topic_sentences
from w2vdist.config import load_config
from w2vdist.errors import RunDirError
from w2vdist.train import checkpoints as ckpt
from w2vdist.train.corpus_stream import CorpusLayout, CorpusReader, window_pairs
from w2vdist.train.loop import main as loop_main
from w2vdist.train.plan import build_plan

SMALL = ["dim=16", "epochs=4", "batch_size=128", "alpha=0.05", "pair_source=corpus"]


def chunked_positions(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor, list[range]]:
    """Tokens that are their own global positions, so every pair tells where its words stand."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return (torch.arange(sum(lengths)), torch.tensor(lengths),
            [range(int(s), int(s) + n) for s, n in zip(starts, lengths)])


def test_each_center_pairs_with_a_uniform_window_of_words_inside_its_chunk():
    window = 5
    lengths = [1, 2, 7, 30, 400, 3000, 11, 5000]
    tokens, sizes, chunks = chunked_positions(lengths)
    pairs = window_pairs(tokens, sizes, torch.arange(100, 100 + len(lengths)), window, epoch_key=12345)
    contexts = defaultdict(set)
    for center, context in pairs.T.tolist():
        contexts[center].add(context)
    assert pairs.shape[1] == sum(len(c) for c in contexts.values())  # no pair twice
    reaches = []
    for chunk in chunks:
        for p in chunk:
            found = contexts.pop(p, set())
            if len(chunk) == 1:
                assert not found
                continue
            # the contexts are every word of the chunk at distance 1..r for one r in 1..window
            r = max(abs(q - p) for q in found)
            assert 1 <= r <= window
            assert found == {q for q in chunk if 0 < abs(q - p) <= r}, p
            if chunk.start + window <= p < chunk.stop - window:
                reaches.append(r)
    assert not contexts  # no center outside the chunks
    observed = np.bincount(reaches, minlength=window + 1)[1:]
    assert stats.chisquare(observed).pvalue > 1e-3


def test_windows_are_drawn_afresh_per_epoch_key_and_repeat_for_the_same_key():
    tokens, sizes, _ = chunked_positions([500, 700])
    chunk_ids = torch.tensor([3, 9])
    first = window_pairs(tokens, sizes, chunk_ids, 5, epoch_key=1)
    assert torch.equal(first, window_pairs(tokens, sizes, chunk_ids, 5, epoch_key=1))
    other = window_pairs(tokens, sizes, chunk_ids, 5, epoch_key=2)
    assert not (other.shape == first.shape and torch.equal(other, first))
    # a chunk's windows depend on its id, not on the chunks beside it in the block
    alone = window_pairs(tokens[500:] - 500, sizes[1:], chunk_ids[1:], 5, epoch_key=1)
    assert {tuple(p) for p in (alone + 500).T.tolist()} == {tuple(p) for p in first.T.tolist() if p[0] >= 500}


def test_an_epoch_layout_takes_every_chunk_once_in_a_new_order_each_epoch():
    file_chunks = [5, 7, 3, 9, 4, 6]
    layouts = [CorpusLayout(file_chunks, epoch, seed=1, batch_size=50, pairs_per_epoch=34_000) for epoch in (0, 1)]
    for layout in layouts:
        rows = [(f, r) for block in layout.blocks for f, start, stop in block.segments for r in range(start, stop)]
        assert sorted(rows) == [(f, r) for f, n in enumerate(file_chunks) for r in range(n)]
        assert layout.steps == sum(block.steps for block in layout.blocks)
        assert [b.first_step for b in layout.blocks] == list(np.cumsum([0] + [b.steps for b in layout.blocks])[:-1])
        assert layout.pairs_before(0) == 0 and layout.pairs_before(layout.steps) == 34_000
        # about batch_size planned pairs per step: 34,000 / 34 chunks = 1,000 per chunk
        assert all(abs(b.chunks * 1000 / b.steps - 50) <= 50 / 2 for b in layout.blocks)
    assert [b.segments for b in layouts[0].blocks] != [b.segments for b in layouts[1].blocks]


def read_epoch(plan, epoch: int, first_step: int = 0) -> list[torch.Tensor]:
    settings = plan.settings
    layout = CorpusLayout(plan.corpus_chunks, epoch, settings["seed"], settings["batch_size"], plan.pairs_per_epoch)
    reader = CorpusReader(plan.corpus_files, layout, epoch, first_step, plan.window, settings["seed"],
                          torch.device("cpu"))
    try:
        return [batch.clone() for batch, count in reader if count == batch.shape[1]]
    finally:
        reader.close()


@pytest.mark.parametrize("block_steps", [256, 8])
def test_the_reader_gives_every_chunks_pairs_once_an_epoch_and_resumes_mid_block(tmp_path, monkeypatch,
                                                                                 block_steps):
    monkeypatch.setattr("w2vdist.train.corpus_stream.BLOCK_STEPS", block_steps)
    sentences = two_topic_sentences(count=300)
    run = build_run_dir(tmp_path / "run", sentences, corpus_files=3)
    plan = build_plan(load_config([], [*SMALL, "batch_size=64"], {"out": str(run)}))
    batches = read_epoch(plan, epoch=0)
    pairs = torch.cat(batches, dim=1)
    # the same law as preprocess's pairs: about as many, and each a pair of words within `window` in a chunk
    assert abs(pairs.shape[1] - plan.pairs_per_epoch) < 0.1 * plan.pairs_per_epoch
    corpus = pq.read_table(run / "corpus").column("ids").to_pylist()
    allowed = {(c[i], c[j]) for c in corpus for i in range(len(c)) for j in range(len(c))
               if 0 < abs(i - j) <= plan.window}
    assert {tuple(p) for p in pairs.T.tolist()} <= allowed
    assert len(batches) == CorpusLayout(plan.corpus_chunks, 0, 1, 64, plan.pairs_per_epoch).steps
    assert all(0.5 * 64 <= b.shape[1] <= 1.5 * 64 for b in batches)
    # batches are shuffled pairs, not text order: consecutive pairs rarely share their center
    same_center = (pairs[0, 1:] == pairs[0, :-1]).float().mean()
    assert same_center < 0.2
    for first_step in (7, 13):
        resumed = read_epoch(plan, epoch=0, first_step=first_step)
        assert len(resumed) == len(batches) - first_step
        assert all(torch.equal(a, b) for a, b in zip(resumed, batches[first_step:]))


def test_a_run_on_the_corpus_learns_the_topics_and_resumes_where_it_stopped(tmp_path):
    sentences = two_topic_sentences(count=300)
    whole = build_run_dir(tmp_path / "whole", sentences, corpus_files=2)
    assert loop_main([str(whole), *SMALL]) == 0
    parts = build_run_dir(tmp_path / "parts", sentences, corpus_files=2)
    assert loop_main([str(parts), *SMALL, "max_steps=23"]) == 0  # stops inside a block
    assert ckpt.read_state(ckpt.latest(parts / "train" / "checkpoints-local"))["step"] == 23
    assert loop_main([str(parts), *SMALL, "resume=true"]) == 0

    words, trained = read_vectors(whole)
    np.testing.assert_allclose(read_vectors(parts)[1], trained, atol=1e-6)
    assert_topics_learned(words, trained)


def test_a_missing_corpus_is_named_before_training(tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=50))
    for part in (run / "corpus").glob("*.parquet"):
        part.unlink()
    with pytest.raises(RunDirError, match=r"corpus' holds no part-\*\.parquet files"):
        build_plan(load_config([], ["pair_source=corpus"], {"out": str(run)}))
    build_plan(load_config([], ["pair_source=pairs"], {"out": str(run)}))  # pairs/ alone is enough for pairs
