"""Training without Ray: the draws, the update rule (reference and numba kernel), the loop on its own, resume and
the checks of bad input. The Ray tests (replicas, killed workers) are in test_train_ray.py; the Triton kernel's
in test_sgns_triton.py."""

from __future__ import annotations

import dataclasses

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from scipy import stats

from tests.train_fixtures import (assert_topics_learned, build_run_dir, cyclic_copies, read_vectors,
                                  two_topic_sentences)
from w2vdist import random_streams
from w2vdist.cli import main as cli_main
from w2vdist.config import load_config
from w2vdist.datasets import read_vocabulary
from w2vdist.errors import ConfigError, RunDirError
from w2vdist.preprocess.pairs import draw_pairs
from w2vdist.preprocess.subsample import keep_probabilities, keep_thresholds
from w2vdist.random_streams import Stream, stream_key
from w2vdist.rundir import RunDir
from w2vdist.train import checkpoints as ckpt
from w2vdist.train import sgns_numba, sgns_reference
from w2vdist.train.corpus_windows import build_launch
from w2vdist.train.engine import Tables
from w2vdist.train.launcher import _resources
from w2vdist.train.local import main as local_main
from w2vdist.train.loop import _learning_rate
from w2vdist.train.noise import NoiseTable
from w2vdist.train.plan import build_plan, train_settings
from w2vdist.train.stretch import row_copies
from w2vdist.train.types import WindowRule

REPO = Path(__file__).resolve().parents[1]
SMALL = ["dim=16", "epochs=4", "alpha=0.05"]


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: the numba kernel is then deterministic (no races between threads), so runs can be compared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_launch(seed: int = 0, vocab: int = 50, tokens: int = 1500, sample_threshold: int = 1 << 23, parts: int = 1):
    rng = np.random.default_rng(seed)
    ids = torch.from_numpy(rng.integers(0, vocab, tokens).astype(np.int32))
    offsets = np.array([0, tokens // 4, tokens // 2, tokens], dtype=np.int64)
    launch = build_launch(np.array([3, 70, 9_000_000_000]), offsets, ids,
                          torch.full((vocab,), sample_threshold, dtype=torch.int32), 11, 22, parts)
    noise = NoiseTable.from_counts(rng.integers(1, 1000, vocab))
    return launch, torch.from_numpy(noise.threshold), torch.from_numpy(noise.alias)


# --- the draws ---------------------------------------------------------------------------------------------------
def test_numpy_torch_and_numba_draw_the_same_bits():
    keys = random_streams.chunk_keys(stream_key(5, Stream.WINDOW, 3), np.array([0, 1, 2 ** 40, 2 ** 62]))
    counters = np.array([0, 7, 123_456_789, 2 ** 40])
    expected = random_streams.bits_numpy(keys, counters)
    by_torch = random_streams.bits_torch(torch.from_numpy(keys), torch.from_numpy(counters))
    assert np.array_equal(by_torch.numpy(), expected.view(np.int64))
    by_numba = [sgns_numba._bits(np.uint64(k), np.uint64(c)) for k, c in zip(keys, counters)]
    assert np.array_equal(np.array(by_numba, dtype=np.uint64), expected)
    # and a Python-int SplitMix64, the definition
    state = (int(keys[1]) + (int(counters[1]) + 1) * random_streams.GAMMA) & ((1 << 64) - 1)
    assert random_streams.splitmix64(state) == int(expected[1])


def test_the_reach_is_uniform_in_one_to_window():
    bits = random_streams.bits_numpy(np.full(60_000, 12345, dtype=np.int64), np.arange(60_000))
    reach = random_streams.reach_numpy(bits, 5)
    observed = np.bincount(reach, minlength=6)[1:]
    assert reach.min() == 1 and reach.max() == 5
    assert stats.chisquare(observed).pvalue > 1e-3


def test_noise_words_follow_count_to_the_three_quarters():
    counts = np.array([1000, 300, 50, 7, 1, 0, 4000])
    table = NoiseTable.from_counts(counts)
    expected = counts ** 0.75 / (counts ** 0.75).sum()
    np.testing.assert_allclose(table.probabilities(), expected, atol=1e-6)
    bits = random_streams.bits_torch(987654321, torch.arange(200_000))
    words = random_streams.noise_torch(bits, torch.from_numpy(table.threshold), torch.from_numpy(table.alias))
    observed = np.bincount(words.numpy(), minlength=len(counts))
    assert observed[5] == 0
    nonzero = expected > 0
    assert stats.chisquare(observed[nonzero], expected[nonzero] * len(words)).pvalue > 1e-3


def test_subsampling_keeps_words_with_word2vecs_probability_and_is_drawn_afresh_each_epoch():
    counts = np.array([50_000, 5_000, 500, 50])
    p_keep = keep_probabilities(counts, 1e-3)
    expected = (np.sqrt(counts / (1e-3 * counts.sum())) + 1) * (1e-3 * counts.sum()) / counts
    np.testing.assert_allclose(p_keep, np.minimum(expected, 1.0))
    ids = torch.from_numpy(np.repeat(np.arange(4), counts).astype(np.int32))
    offsets = np.append(np.arange(0, len(ids), 1000), len(ids)).astype(np.int64)
    thresholds = torch.from_numpy(keep_thresholds(counts, 1e-3))

    def kept(epoch: int) -> torch.Tensor:
        launch = build_launch(np.arange(len(offsets) - 1), offsets, ids, thresholds,
                              stream_key(1, Stream.SUBSAMPLE, epoch), 0, 1)
        return launch.positions.long() + 1000 * launch.word_chunk.long()  # which tokens survived

    first, second = kept(0), kept(1)
    rate = np.bincount(ids[first].numpy(), minlength=4) / counts
    np.testing.assert_allclose(rate, np.minimum(p_keep, 1.0), rtol=0.05)
    assert not torch.equal(first, second) and torch.equal(first, kept(0))


def test_preprocess_pairs_and_training_windows_follow_one_law():
    """pairs/ draw K holds exactly the (center, context) pairs that training's epoch K trains."""
    rng = np.random.default_rng(3)
    chunks = [rng.integers(0, 30, n).tolist() for n in (40, 1, 17, 90)]
    counts = np.bincount(np.concatenate(chunks), minlength=30) + 1
    thresholds = keep_thresholds(counts, 0.05)
    chunk_ids = np.array([4, 8, 15, 16], dtype=np.int64)
    for draw in (0, 2):
        centers, contexts = draw_pairs(chunk_ids, pa.array(chunks, pa.list_(pa.int32())), thresholds, seed=9,
                                       draw=draw, window=4)
        offsets = np.concatenate(([0], np.cumsum([len(c) for c in chunks])))
        launch = build_launch(chunk_ids, offsets, torch.tensor(np.concatenate(chunks), dtype=torch.int32),
                              torch.from_numpy(thresholds), stream_key(9, Stream.SUBSAMPLE, draw),
                              stream_key(9, Stream.WINDOW, draw), 1)
        words = launch.words.tolist()
        trained = Counter((words[i], words[i + d]) for i in range(launch.centers)
                          for d in sgns_reference.window_offsets(launch, i, 4))
        assert trained == Counter(zip(centers.tolist(), contexts.tolist()))


# --- the update rule ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shared,stretch", [(True, 1), (False, 1), (False, 8)])
@pytest.mark.parametrize("dim", [16, 21])
def test_the_numba_kernel_equals_the_reference(shared, stretch, dim):
    launch, threshold, alias = tiny_launch()
    generator = torch.Generator().manual_seed(dim)
    # with stretch: rows of squared norm ~dim / 12, so that the stretched updates (stretch.py) reach well beyond one
    start_in = (torch.rand((50, dim), generator=generator) - 0.5) / (1 if stretch > 1 else dim)
    start_out = (torch.rand((50, dim), generator=generator) - 0.5) / (1 if stretch > 1 else dim)
    rule = WindowRule(4, 5, shared, cyclic_copies(50, stretch))
    ref_in, ref_out = start_in.clone(), start_out.clone()
    expected = sgns_reference.train_windows(ref_in, ref_out, launch, threshold, alias, rule, 0.025, 0.02)
    got_in, got_out = start_in.clone(), start_out.clone()
    result = sgns_numba.train_windows(got_in, got_out, launch, threshold, alias, rule, 0.025, 0.02)
    assert result.pairs == expected.pairs and result.loss_pairs == expected.loss_pairs
    assert result.loss_sum == pytest.approx(expected.loss_sum, rel=1e-5)
    torch.testing.assert_close(got_in, ref_in, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got_out, ref_out, atol=1e-6, rtol=1e-5)
    assert not torch.equal(got_in, start_in) and not torch.equal(got_out, start_out)


@pytest.mark.parametrize("kernel", [sgns_reference, sgns_numba])
def test_stretched_steps_that_barely_contract_their_rows_add_up(kernel):
    """With a tiny learning rate every update contracts its row by next to nothing, so k copies of it add up: the
    stretched launch moves each row of both tables its k times as far as word2vec's (first order in lr; a large
    vocabulary, so that few updates meet on one row)."""
    launch, threshold, alias = tiny_launch(vocab=2000, tokens=300)
    generator = torch.Generator().manual_seed(5)
    start_in = torch.rand((2000, 16), generator=generator) - 0.5
    start_out = torch.rand((2000, 16), generator=generator) - 0.5
    copies = cyclic_copies(2000, 8)
    moved = []
    for rule in (WindowRule(4, 5, False), WindowRule(4, 5, False, copies)):
        tables = start_in.clone(), start_out.clone()
        kernel.train_windows(*tables, launch, threshold, alias, rule, 1e-4, 1e-4)
        moved.append([tables[0] - start_in, tables[1] - start_out])
    expected_factor = copies.unsqueeze(1).float()
    for plain, stretched in zip(*moved):
        assert plain.abs().max() > 0
        assert (stretched - expected_factor * plain).norm() < 0.01 * (expected_factor * plain).norm()
        assert (stretched - 8 * plain).norm() > 0.1 * (8 * plain).norm()  # the rows' own copies, not the most


def test_one_window_is_the_sgns_gradient_step():
    """One center, two contexts, shared negatives, checked against autograd on the SGNS loss of its pairs."""
    ids = torch.tensor([3, 1, 4], dtype=torch.int32)
    launch = build_launch(np.array([0]), np.array([0, 3]), ids, torch.full((6,), 1 << 24, dtype=torch.int32),
                          0, 5, 1)
    noise = NoiseTable.from_counts(np.ones(6))
    threshold, alias = torch.from_numpy(noise.threshold), torch.from_numpy(noise.alias)
    generator = torch.Generator().manual_seed(0)
    start_in, start_out = torch.randn((6, 4), generator=generator), torch.randn((6, 4), generator=generator)
    # find center 1 (word 1)'s contexts and negatives as the kernel draws them
    offsets = sgns_reference.window_offsets(launch, 1, 1)
    assert offsets == [-1, 1]
    key = int(launch.chunk_key[0])
    base = int(launch.positions[1]) * (1 << 20)
    negatives = random_streams.noise_torch(random_streams.bits_torch(key, base + 1 + torch.arange(2)), threshold,
                                           alias)
    lr = 0.1 * 1 / 3 + 0.1 * (1 - 1 / 3)  # lr_start = lr_end = 0.1
    inputs, outputs = start_in.clone().requires_grad_(), start_out.clone().requires_grad_()
    loss = 0
    for context in (3, 4):
        loss = loss - torch.nn.functional.logsigmoid(inputs[context] @ outputs[1])
        for n in negatives.tolist():
            if n != 1:
                loss = loss - torch.nn.functional.logsigmoid(-(inputs[context] @ outputs[n]))
    loss.backward()
    # the kernel trains all three centers; train only the middle one by a launch restricted to it
    launch.parts = torch.tensor([1, 2])
    got_in, got_out = start_in.clone(), start_out.clone()
    sgns_numba.train_windows(got_in, got_out, launch, threshold, alias, WindowRule(1, 2, True), 0.1, 0.1)
    torch.testing.assert_close(got_in, start_in - lr * inputs.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_out, start_out - lr * outputs.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stretch", [1, 3])
def test_the_numba_pair_kernel_equals_the_reference(stretch):
    rng = np.random.default_rng(1)
    centers = torch.from_numpy(rng.integers(0, 40, 500).astype(np.int32))
    contexts = torch.from_numpy(rng.integers(0, 40, 500).astype(np.int32))
    keys = torch.from_numpy(np.repeat(random_streams.chunk_keys(77, np.array([0, 1])), [200, 300]))
    rows = torch.from_numpy(np.concatenate([np.arange(200), np.arange(300)]).astype(np.int64))
    noise = NoiseTable.from_counts(rng.integers(1, 100, 40))
    threshold, alias = torch.from_numpy(noise.threshold), torch.from_numpy(noise.alias)
    start_in, start_out = torch.rand((40, 12)) - 0.5, torch.rand((40, 12)) - 0.5
    ref_in, ref_out = start_in.clone(), start_out.clone()
    expected = sgns_reference.train_pairs(ref_in, ref_out, centers, contexts, keys, rows, threshold, alias, 4,
                                          0.03, 0.01, cyclic_copies(40, stretch))
    got_in, got_out = start_in.clone(), start_out.clone()
    result = sgns_numba.train_pairs(got_in, got_out, centers, contexts, keys, rows, threshold, alias, 4, 0.03,
                                    0.01, [0, 500], copies=cyclic_copies(40, stretch))
    assert result.pairs == expected.pairs == 500 and result.loss_sum == pytest.approx(expected.loss_sum, rel=1e-5)
    torch.testing.assert_close(got_in, ref_in, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got_out, ref_out, atol=1e-6, rtol=1e-5)


def test_threads_share_the_parts_of_a_launch_and_train_every_window():
    launch, threshold, alias = tiny_launch(tokens=6000, parts=32)
    rule = WindowRule(5, 5, True)
    one_in, one_out = torch.zeros((50, 8)) + 0.01, torch.zeros((50, 8))
    one = sgns_numba.train_windows(one_in, one_out, launch, threshold, alias, rule, 0.025, 0.025, threads=1)
    two_in, two_out = torch.zeros((50, 8)) + 0.01, torch.zeros((50, 8))
    two = sgns_numba.train_windows(two_in, two_out, launch, threshold, alias, rule, 0.025, 0.025, threads=2)
    assert two.pairs == one.pairs and two.loss_pairs == one.loss_pairs
    # the parts run in another order (and threads may race on a row), so the tables differ a little, not the loss
    assert two.loss_sum == pytest.approx(one.loss_sum, rel=0.05)
    assert torch.isfinite(two_in).all() and (two_in - one_in).abs().max() < 0.2 * one_in.abs().max()


def test_initialisation_is_word2vecs():
    tables = Tables.initial(1000, 50, seed=3, device=torch.device("cpu"))
    assert tables.input.shape == (1000, 50) and torch.all(tables.output == 0)
    assert tables.input.abs().max() < 0.5 / 50 and tables.input.std() == pytest.approx(1 / 50 / 12 ** 0.5, rel=0.05)
    assert torch.equal(tables.input, Tables.initial(1000, 50, seed=3, device=torch.device("cpu")).input)
    shard = Tables.initial(1000, 50, seed=3, device=torch.device("cpu"), columns=range(17, 34))
    assert torch.equal(shard.input, tables.input[:, 17:34]) and shard.output.shape == (1000, 17)


def test_the_learning_rate_decays_linearly_over_the_run():
    settings = train_settings(load_config([], ["alpha=0.1", "min_alpha=0.001", "epochs=4"]))
    assert _learning_rate(settings, 0) == pytest.approx(0.1)
    assert _learning_rate(settings, 2) == pytest.approx(0.1 - 0.099 / 2)
    assert _learning_rate(settings, 4) == pytest.approx(0.001)


# --- the loop on its own -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("pair_source", ["pairs", "corpus"])
def test_the_loop_runs_without_ray_pyspark_or_numba_and_learns_the_topics(tmp_path, pair_source):
    """Only torch and pyarrow: the kernel is then the torch reference."""
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=400), pair_draws=4)
    blocked = ("import sys; sys.modules.update({'ray': None, 'pyspark': None, 'numba': None}); "
               "from w2vdist.train.local import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", blocked, str(run), *SMALL,
                           f"pair_source={pair_source}"], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "numba is not installed" in done.stderr
    assert json.loads((run / "train" / "workers" / "rank-0.json").read_text())["kernel"] == "torch"
    record = RunDir(run).stage("train")
    losses = [epoch["loss"] for epoch in record["stats"]["epochs"]]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.7 * 6 * np.log(2)  # 6 log 2 at the start
    table = pq.read_table(run / "vectors")
    assert table.schema == pa.schema([("id", pa.int32()), ("word", pa.string()), ("count", pa.int64()),
                                      ("vector", pa.list_(pa.float32()))])
    assert table.column("id").to_pylist() == list(range(table.num_rows))
    assert_topics_learned(*read_vectors(run))


@pytest.mark.parametrize("pair_source", ["pairs", "corpus"])
def test_the_numba_loop_learns_the_topics_with_default_settings(tmp_path, pair_source):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(), pair_draws=5)
    assert local_main([str(run), f"pair_source={pair_source}"]) == 0
    assert json.loads((run / "train" / "workers" / "rank-0.json").read_text())["kernel"] == "numba"
    assert_topics_learned(*read_vectors(run))


def test_a_stopped_run_resumes_and_ends_where_an_uninterrupted_run_ends(tmp_path):
    sentences = two_topic_sentences(count=400)
    whole = build_run_dir(tmp_path / "whole", sentences)
    assert local_main([str(whole), *SMALL, "sync_every=1000"]) == 0
    parts = build_run_dir(tmp_path / "parts", sentences)
    assert local_main([str(parts), *SMALL, "sync_every=1000", "max_words=6000"]) == 0
    root = parts / "train" / "checkpoints-local"
    stopped = ckpt.read_state(ckpt.latest(root))
    assert 6000 <= stopped["words_done"] < 9000 and stopped["epoch"] == 1 and stopped["current"]["words"] > 0
    assert not (parts / "vectors").exists() and not RunDir(parts).is_complete("train")
    assert local_main([str(parts), *SMALL, "sync_every=1000", "resume=true"]) == 0
    np.testing.assert_array_equal(read_vectors(parts)[1], read_vectors(whole)[1])
    resumed = RunDir(parts).stage("train")["stats"]["epochs"]
    uninterrupted = RunDir(whole).stage("train")["stats"]["epochs"]
    assert [e["words"] for e in resumed] == [e["words"] for e in uninterrupted]  # the resumed epoch counts whole
    assert [e["pairs"] for e in resumed] == [e["pairs"] for e in uninterrupted]


def test_a_complete_unchanged_run_is_not_trained_again(tmp_path, caplog):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=100))
    assert local_main([str(run), *SMALL]) == 0
    completed = RunDir(run).stage("train")["completed"]
    caplog.set_level("INFO")
    assert cli_main(["train", str(run), *SMALL]) == 0
    assert RunDir(run).stage("train")["completed"] == completed and "skipped" in caplog.text
    assert local_main([str(run), *SMALL, "epochs=1"]) == 0
    assert len(RunDir(run).stage("train")["stats"]["epochs"]) == 1


def test_a_truncated_checkpoint_is_never_resumed_from(tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=200))
    assert local_main([str(run), *SMALL, "epochs=2"]) == 0
    root = run / "train" / "checkpoints-local"
    newest = ckpt.latest(root)
    tables = newest / ckpt.TABLES_FILE
    tables.write_bytes(tables.read_bytes()[:100])
    assert "bytes, not the" in ckpt.problem(newest)
    assert ckpt.latest(root) != newest and ckpt.latest(root) is not None


def test_resume_with_other_result_settings_is_refused(tmp_path):
    from w2vdist.train import stage

    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=300))
    assert local_main([str(run), *SMALL, "sync_every=1000", "max_words=2000"]) == 0
    plan = build_plan(load_config([], [*SMALL, "dim=8", "resume=true"], {"out": str(run)}))
    with pytest.raises(ConfigError, match="'dim' was 16, now 8"):
        stage.check_resumable(plan, run / "train" / "checkpoints-local")
    # one worker never syncs: its sync settings do not decide its vectors, and a resume may change them
    plan = build_plan(load_config([], [*SMALL, "sync_every=5000", "sync_rule=average", "resume=true"],
                                  {"out": str(run)}))
    assert stage.check_resumable(plan, run / "train" / "checkpoints-local").is_dir()
    assert "sync_rule" in dataclasses.replace(plan.settings, num_workers=2).result_settings()


def test_the_plan_gives_rows_copies_only_to_replicas_that_stretch_their_updates(tmp_path):
    """plan.update_copies: stretch.row_copies of the run's vocabulary, corpus words, sync_every and replicas with
    sync_rule=stretched and several replicas; word2vec's rule (None) for one worker or another rule."""
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=300))
    counts = read_vocabulary(RunDir(run).vocab).column("count").to_numpy()

    def plan(*settings):
        return build_plan(load_config([], [*SMALL, *settings], {"out": str(run)}))

    assert plan().update_copies(counts) is None
    assert plan("num_workers=4", "sync_rule=average").update_copies(counts) is None
    stretched = plan("num_workers=4", "sync_every=2000")
    copies = stretched.update_copies(counts)
    raw_tokens = int(json.loads((run / "manifest.json").read_text())["stages"]["preprocess"]["stats"]["raw_tokens"])
    assert copies.tolist() == row_copies(counts, stretched.settings.sample, 2000, raw_tokens, 4).tolist()
    assert 1 <= copies.min() < copies.max() <= 4 and np.all(np.diff(copies) <= 0)  # the vocabulary: by count
    # rounds longer than the corpus: every replica meets every word many times, so every row gets 4
    assert plan("num_workers=4", "sync_every=100000").update_copies(counts).tolist() == [4] * len(counts)


# --- bad input ---------------------------------------------------------------------------------------------------
def test_missing_or_incomplete_preprocessing_is_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunDirError, match="no preprocess output"):
        build_plan(load_config([], [], {"out": str(empty)}))
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=50))
    RunDir(run).begin("preprocess")  # as if a new preprocess had been killed
    with pytest.raises(RunDirError, match="preprocess stage did not complete"):
        build_plan(load_config([], [], {"out": str(run)}))


def test_pairs_that_do_not_match_the_vocabulary_are_named(tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=50))
    bad = run / "pairs" / "draw=0" / "part-00000.parquet"
    table = pq.read_table(bad)
    pq.write_table(table.set_column(1, "context", pa.array([10_000] * table.num_rows, pa.int32())), bad)
    settings = load_config([], ["pair_source=pairs"], {"out": str(run)})
    with pytest.raises(RunDirError, match=r"part-00000.parquet': column context holds ids from 10000 to 10000 .* "
                                          r"ids 0\.\.24"):
        build_plan(settings)
    bad.unlink()
    with pytest.raises(RunDirError, match="holds no part"):
        build_plan(settings)


def test_a_missing_corpus_is_named_before_training(tmp_path):
    import shutil

    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=50))
    shutil.rmtree(run / "corpus")
    with pytest.raises(RunDirError, match="corpus"):
        build_plan(load_config([], [], {"out": str(run)}))


@pytest.mark.parametrize("overrides, words", [
    (["kernel=triton", "use_gpu=false"], ["'kernel' is triton", "'use_gpu' is false"]),
    (["pair_source=pairs", "use_gpu=true"], ["'pair_source' is pairs", "pair_source=corpus"]),
    (["negative=0"], ["'negative'", ">= 1"]),
    (["num_workers=2", "column_shards=2", "pair_source=pairs"], ["'pair_source' is pairs", "column_shards=2"]),
    (["num_workers=2", "column_shards=2", "kernel=numba"], ["'kernel' is numba", "column_shards=2"]),
])
def test_settings_that_cannot_work_are_named_before_any_work(tmp_path, capsys, overrides, words):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=50))
    assert cli_main(["train", str(run), *overrides]) == 2
    err = capsys.readouterr().err
    assert all(word in err for word in words), err
    assert "Traceback" not in err and not (run / "train").exists()


@pytest.mark.parametrize("memory, workers, shards",
                         [(10 ** 9, 4, 1), (3.0, 4, 2), (1.5, 4, 4), (1.5, 3, 3), (0.8, 6, 6), (2.0, 6, 3)])
def test_column_shards_auto_takes_the_fewest_shards_whose_slices_fit(tmp_path, monkeypatch, caplog, memory, workers,
                                                                     shards):
    """`memory` in units of both tables' bytes, of which a worker may take half: its slice, and with several
    replicas 2.5 times its slice (the copy at the last sync, and the sync's buffer of one table's rows). 1.5 units
    would hold half the tables of 2 shards, but not with their replicas' copies: 4 shards of 1 replica."""
    from w2vdist.train import plan as plan_module

    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=50))
    tables_bytes = 2 * 25 * 100 * 4  # 25 words at dim 100
    monkeypatch.setattr(plan_module, "device_memory", lambda use_gpu: (int(memory * tables_bytes), "GPU"))
    caplog.set_level("INFO")
    plan = build_plan(load_config([], [f"num_workers={workers}", "column_shards=auto"], {"out": str(run)}))
    assert plan.vocab_size == 25
    assert (plan.settings.column_shards, plan.settings.replicas) == (shards, workers // shards)
    assert f"column_shards=auto: {shards} shard(s) per replica" in caplog.text


def test_column_shards_auto_says_when_no_slice_fits(tmp_path, monkeypatch):
    from w2vdist.train import plan as plan_module

    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=50))
    monkeypatch.setattr(plan_module, "device_memory", lambda use_gpu: (4000, "GPU"))
    with pytest.raises(ConfigError, match=r"'column_shards' is auto, but even 2 shards .* do not fit.*GPU's"):
        build_plan(load_config([], ["num_workers=2", "column_shards=auto"], {"out": str(run)}))


@pytest.mark.parametrize("overrides, cluster, words", [
    (["use_gpu=true"], {"CPU": 2}, ["'use_gpu' is true", "no GPU"]),
    (["num_workers=3"], {"CPU": 2}, ["'num_workers' (3)", "CPUs (2)"]),
    (["num_workers=2", "use_gpu=true"], {"CPU": 8, "GPU": 1}, ["'num_workers' (2)", "GPUs (1)"]),
])
def test_resources_a_cluster_lacks_are_named(overrides, cluster, words):
    with pytest.raises(ConfigError) as info:
        _resources(load_config([], overrides), cluster)
    assert all(word in str(info.value) for word in words)


def test_resources_fit_workers_to_the_cluster():
    assert _resources(load_config([], ["num_workers=2"]), {"CPU": 8}) == (False, 4)
    assert _resources(load_config([], ["num_workers=2"]), {"CPU": 32, "GPU": 2}) == (True, 4)
    assert _resources(load_config([], ["use_gpu=false"]), {"CPU": 2, "GPU": 1}) == (False, 2)


def test_a_gpu_asked_for_where_there_is_none_stops_the_loop_without_ray(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=50))
    assert local_main([str(run), "use_gpu=true"]) == 2
    assert "'use_gpu' is true" in capsys.readouterr().err


def test_the_metrics_file_has_one_record_per_epoch(tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=100))
    assert local_main([str(run), *SMALL, "epochs=2"]) == 0
    records = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(r["words_per_s"] > 0 and r["pairs_per_s"] > 0 and r["loss"] > 0 for r in records)
    assert all(r["words"] == sum(len(s) for s in two_topic_sentences(count=100)) for r in records)
    assert records[-1]["lr"] < 0.05 / 10


def test_probe_words_are_recorded_while_training(tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=100))
    assert local_main([str(run), *SMALL, "epochs=2", "probe_words=[cat, hammer]", "probe_every=500",
                       "sync_every=1000"]) == 0
    records = [json.loads(line) for line in (run / "probes" / "probes.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert len(steps) >= 3 and steps == sorted(steps) and steps[-1] == 2 * 1400
    assert set(records[-1]["neighbours"]) == {"cat", "hammer"} and records[-1]["loss"] > 0


def test_the_ray_job_script_is_the_train_command(tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=50))
    done = subprocess.run([sys.executable, "jobs/train.py", str(run), "kernel=triton", "use_gpu=false"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "w2vdist train: error" in done.stderr and "'kernel' is triton" in done.stderr


def test_a_diverging_run_stops_with_a_message_naming_the_settings(tmp_path, capsys):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=200))
    code = local_main([str(run), "epochs=1", "alpha=1e30", "use_gpu=false"])
    err = capsys.readouterr().err
    assert code == 2
    assert "diverged in epoch 1" in err and "'alpha' (now 1e+30)" in err
    assert not (run / "vectors").exists()
