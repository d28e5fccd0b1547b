"""The column-sharded step (train/sgns_sharded.py): with batches of one center it is word2vec's rule (the torch
reference), two shards in two gloo processes compute what one shard computes, and the batch's updates of a row are
combined by the agreement rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.test_train import one_thread, tiny_launch  # noqa: F401 (one_thread: an autouse fixture)
from tests.train_fixtures import build_run_dir, cyclic_copies, free_port
from w2vdist.rundir import RunDir
from w2vdist.synth import WORDS, proximity_language
from w2vdist.train import loop, sgns_reference, sgns_sharded
from w2vdist.train.corpus_windows import build_launch
from w2vdist.train.local import main as local_main
from w2vdist.train.noise import NoiseTable
from w2vdist.train.replicas import ShardGroup, worker_groups
from w2vdist.train.types import Placement, WindowRule
from w2vdist.vectors import Vectors

VOCAB = 50


def _start_tables(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(dim)
    return (torch.rand((VOCAB, dim), generator=generator) - 0.5) / dim, \
        (torch.rand((VOCAB, dim), generator=generator) - 0.5) / dim


@pytest.mark.parametrize("shared,stretch", [(True, 1), (False, 1), (False, 8)])
def test_batches_of_one_center_are_the_reference_rule(shared, stretch):
    launch, threshold, alias = tiny_launch(tokens=600)
    rule = WindowRule(4, 5, shared, cyclic_copies(VOCAB, stretch))
    start_in, start_out = _start_tables(16)
    if stretch > 1:  # rows long enough for the stretched factors to spread between 1 and `stretch`
        start_in, start_out = start_in * 16, start_out * 16
    ref_in, ref_out = start_in.clone(), start_out.clone()
    expected = sgns_reference.train_windows(ref_in, ref_out, launch, threshold, alias, rule, 0.025, 0.02)
    got_in, got_out = start_in.clone(), start_out.clone()
    result = sgns_sharded.train_windows(got_in, got_out, launch, threshold, alias, rule, 0.025, 0.02,
                                        ShardGroup(0, [0], 16), batch_centers=1)
    assert result.pairs == expected.pairs and result.loss_pairs == expected.loss_pairs
    assert result.loss_sum == pytest.approx(expected.loss_sum, rel=1e-5)
    torch.testing.assert_close(got_in, ref_in, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got_out, ref_out, atol=1e-6, rtol=1e-5)


def test_a_row_many_windows_move_alike_moves_by_their_mean():
    """Word 0 is always between two 1s: all its 40 windows push its output row the same way, so one batch moves
    the row by one window's update (their mean), where word2vec's rule, one window after the other, moves it by
    about their sum."""
    ids = torch.tensor([1, 0] * 40 + [1], dtype=torch.int32)
    launch = build_launch(np.array([0]), np.array([0, len(ids)]), ids, torch.full((3,), 1 << 24, dtype=torch.int32),
                          0, 5, 1)
    noise = NoiseTable.from_counts(np.array([0, 0, 1]))  # the only noise word is 2, which is never a center
    threshold, alias = torch.from_numpy(noise.threshold), torch.from_numpy(noise.alias)
    start_in = torch.zeros((3, 4))
    start_in[1] = 0.1
    moved = {}
    for batch in (1, sgns_sharded.BATCH_CENTERS):
        input_table, output_table = start_in.clone(), torch.zeros((3, 4))
        sgns_sharded.train_windows(input_table, output_table, launch, threshold, alias, WindowRule(1, 1, True),
                                   0.01, 0.01, ShardGroup(0, [0], 4), batch_centers=batch)
        moved[batch] = float(output_table[0].norm())
    one_window = 2 * 0.01 * 0.5 * 0.2  # two contexts x lr x (1 - sigmoid(0)) x |in[1]|
    assert moved[1] == pytest.approx(40 * one_window, rel=0.05)
    assert moved[sgns_sharded.BATCH_CENTERS] == pytest.approx(one_window, rel=1e-5)


# (shared_negatives, stretch): a stretched step sums the rows' squared norms over the shards as well
RULES = [(True, 1), (False, 1), (False, 3)]


def _train(tables, group, rule: tuple[bool, int]):
    launch, threshold, alias = tiny_launch(tokens=12_000, vocab=VOCAB)
    shared, stretch = rule
    return sgns_sharded.train_windows(*tables, launch, threshold, alias,
                                      WindowRule(5, 5, shared, cyclic_copies(VOCAB, stretch)), 0.025, 0.0, group)


def _shard(rank: int, shards: int, port: int, dim: int, results) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=shards)
    try:
        place, _, group = worker_groups(shards, dim, "agreement")
        columns = place.columns(dim)
        for rule in RULES:
            tables = [table[:, columns.start:columns.stop].contiguous() for table in _start_tables(dim)]
            result = _train(tables, group, rule)
            whole = [group.whole(table) for table in tables]
            if place.shard == 0:
                results[rule] = tuple(table.numpy() for table in whole)
            results[rank, rule] = (result.pairs, result.loss_sum, result.loss_pairs)
    finally:
        dist.destroy_process_group()


def test_two_column_shards_give_the_vectors_of_one():
    dim = 21  # shards of 11 and 10 columns
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_shard, args=(2, free_port(), dim, results), nprocs=2)
        results = dict(results)
    assert tiny_launch(tokens=12_000, vocab=VOCAB)[0].centers > sgns_sharded.BATCH_CENTERS  # several batches
    for rule in RULES:
        one_in, one_out = _start_tables(dim)
        one = _train((one_in, one_out), ShardGroup(0, [0], dim), rule)
        for rank in (0, 1):
            pairs, loss_sum, loss_pairs = results[rank, rule]
            assert (pairs, loss_pairs) == (one.pairs, one.loss_pairs)
            assert loss_sum == pytest.approx(one.loss_sum, rel=1e-5)
        two_in, two_out = results[rule]
        np.testing.assert_allclose(two_in, one_in.numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(two_out, one_out.numpy(), rtol=1e-4, atol=1e-6)
        assert not np.allclose(two_out, 0.0)


@pytest.mark.parametrize("overrides", [[], ["sample=0"], ["sample=0", "shared_negatives=true"]])
def test_the_sharded_step_does_not_diverge_on_the_proximity_language(tmp_path, monkeypatch, overrides):
    """26 words, every one of them in most batches, with default settings; without subsampling, adding up a
    batch's updates of a row diverges here, and the step's agreement scale keeps it from doing so. The language is
    learnt in 5 epochs with shared negatives; with per-context ones (the default) 30 noise words a center make
    every row's batch step an average of many more updates, and bbb's nearest were ccc, ddd, eee."""
    sentences = [[WORDS[letter] for letter in row] for row in proximity_language(3000, seed=3)]
    run = build_run_dir(tmp_path / "run", sentences, window=5)
    monkeypatch.setattr(loop, "choose_kernel", lambda requested, device, column_shards=1: "sharded")
    assert local_main([str(run), "use_gpu=false", *overrides]) == 0
    losses = [epoch["loss"] for epoch in RunDir(run).stage("train")["stats"]["epochs"]]
    assert len(losses) == 5 and max(losses) < 6 * np.log(2)  # 6 log 2: the loss of the initial tables
    if "shared_negatives=true" in overrides:  # subsampled, a batch is one combined step for every word: too few
        nearest = [w for w, _ in Vectors.from_run(run).neighbours(["bbb"], topn=3)[0]]
        assert {"aaa", "ccc"} <= set(nearest), nearest


def test_a_worker_is_placed_by_its_rank():
    assert Placement.of_rank(5, 6, 3) == Placement(replica=1, shard=2, replicas=2, shards=3)
    assert Placement(1, 2, 2, 3).rank == 5
    assert [Placement(0, s, 1, 3).columns(10) for s in range(3)] == [range(0, 4), range(4, 7), range(7, 10)]
