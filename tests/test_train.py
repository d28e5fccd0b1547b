"""Training without Ray: the model's arithmetic, the data layout, the loop run on its own (world size 1), resume
and the checks of bad input. The Ray tests (several workers, killed workers) are in test_train_ray.py."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from scipy import stats

from tests.train_fixtures import assert_topics_learned, build_run_dir, read_vectors, two_topic_sentences
from w2vdist.cli import main as cli_main
from w2vdist.config import load_config
from w2vdist.errors import ConfigError, RunDirError
from w2vdist.rundir import RunDir
from w2vdist.train import checkpoints as ckpt
from w2vdist.train.data import EpochLayout, PairsReader, canonical_order, contribution_width, streams_of
from w2vdist.train.launcher import _resources
from w2vdist.train.loop import learning_rate, main as loop_main
from w2vdist.train.model import EmbeddingShard, NoiseSampler, initial_input_columns, sgns_coefficients
from w2vdist.train.plan import build_plan
from w2vdist.train.sharding import ColumnSharding

REPO = Path(__file__).resolve().parents[1]
SMALL = ["dim=16", "epochs=4", "batch_size=128", "streams=4", "alpha=0.05", "pair_source=pairs"]


@pytest.fixture(autouse=True)
def one_thread():
    """One compute thread: a parallel step waits for its slowest thread, which on a busy 2-core machine (tests
    running beside other work) costs far more than the second thread gives."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def topic_run(tmp_path_factory) -> Path:
    return build_run_dir(tmp_path_factory.mktemp("topics") / "run", two_topic_sentences(), pairs_per_file=4000)


# --- the model's arithmetic --------------------------------------------------------------------------------------
def test_initialisation_is_word2vecs_and_shards_draw_the_columns_of_the_whole_table():
    whole = initial_input_columns(5000, 8, range(0, 8), seed=3, device=torch.device("cpu"))
    assert whole.shape == (5000, 8)
    assert whole.min() >= -0.5 / 8 and whole.max() < 0.5 / 8
    assert stats.kstest(whole.flatten().numpy() * 8 + 0.5, "uniform").pvalue > 1e-3
    halves = [initial_input_columns(5000, 8, columns, seed=3, device=torch.device("cpu"))
              for columns in (range(0, 4), range(4, 8))]
    assert torch.equal(torch.cat(halves, dim=1), whole)
    shard = EmbeddingShard.initial(5000, 8, range(0, 4), seed=3, device=torch.device("cpu"), kernel="torch")
    assert torch.count_nonzero(shard.output) == 0


def test_learning_rate_decays_linearly_over_all_planned_pairs():
    assert learning_rate(0.025, 0.0001, 0, 1000) == 0.025
    assert learning_rate(0.025, 0.0001, 500, 1000) == pytest.approx((0.025 + 0.0001) / 2)
    assert learning_rate(0.025, 0.0001, 1000, 1000) == pytest.approx(0.0001)


def compiled_options() -> list[bool]:
    return [False, True] if importlib.util.find_spec("numba") else [False]


@pytest.mark.parametrize("compiled", compiled_options())
def test_noise_words_follow_count_to_the_three_quarters_and_repeat_per_step(compiled):
    counts = np.array([1000, 400, 120, 50, 20, 7, 3, 1])
    sampler = NoiseSampler(counts, seed=5, device=torch.device("cpu"), compiled=compiled)
    contexts = torch.arange(40_000) % len(counts)
    targets = sampler.targets(contexts, step=11, negative=5)
    assert torch.equal(targets[:, 0], contexts)
    expected = counts ** 0.75 / (counts ** 0.75).sum()
    observed = np.bincount(targets[:, 1:].flatten().numpy(), minlength=len(counts))
    assert stats.chisquare(observed, expected * 200_000).pvalue > 1e-3
    assert torch.equal(sampler.targets(contexts[:64], 11, 5), sampler.targets(contexts[:64], 11, 5))
    assert not torch.equal(sampler.targets(contexts[:64], 11, 5), sampler.targets(contexts[:64], 12, 5))


def test_noise_draws_are_the_same_compiled_and_in_torch():
    """The numba draws (CPUs) and the torch draws (GPUs) are one function of (seed, step, draw index): a run
    moved between the two trains on the same negatives."""
    pytest.importorskip("numba")
    counts = np.random.default_rng(3).zipf(1.3, 50_000).astype(np.int64)
    compiled = NoiseSampler(counts, seed=9, device=torch.device("cpu"), compiled=True)
    in_torch = NoiseSampler(counts, seed=9, device=torch.device("cpu"), compiled=False)
    np.testing.assert_allclose(compiled.threshold.numpy(), in_torch.threshold.numpy(), atol=1e-6)
    contexts = torch.zeros(20_000, dtype=torch.int64)
    for step in (0, 1, 123_456_789):
        assert torch.equal(compiled.targets(contexts, step, 7), in_torch.targets(contexts, step, 7))


def numpy_reference_step(words, contexts, centers, targets, valid, lr):
    """The SGNS batch update, written out pair by pair in float64 from the tables before the step."""
    words, contexts = words.astype(np.float64), contexts.astype(np.float64)
    new_words, new_contexts = words.copy(), contexts.copy()
    for b, c in enumerate(centers):
        if not valid[b]:
            continue
        for k, t in enumerate(targets[b]):
            if k > 0 and t == targets[b, 0]:
                continue
            label = 1.0 if k == 0 else 0.0
            g = (label - 1 / (1 + np.exp(-words[c] @ contexts[t]))) * lr
            new_words[c] += g * contexts[t]
            new_contexts[t] += g * words[c]
    return new_words, new_contexts


@pytest.mark.parametrize("kernel", ["torch", "numba"])
def test_sharded_steps_equal_the_unsharded_numpy_reference(kernel):
    if kernel == "numba":
        pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    vocab, dim, batch, negative, lr = 30, 6, 40, 3, 0.5
    words = rng.normal(0, 0.3, (vocab, dim)).astype(np.float32)
    contexts = rng.normal(0, 0.3, (vocab, dim)).astype(np.float32)
    shards = [EmbeddingShard(torch.tensor(words[:, cols]).contiguous(), torch.tensor(contexts[:, cols]).contiguous(),
                             kernel) for cols in (slice(0, 3), slice(3, 6))]
    for _ in range(3):
        centers = rng.integers(0, vocab, batch)            # repeats on purpose: updates of one row add up
        targets = rng.integers(0, vocab, (batch, 1 + negative))
        targets[0, 1] = targets[0, 0]                      # a noise word equal to the context is skipped
        valid = np.arange(batch) < batch - 2               # the last two are padding
        words, contexts = numpy_reference_step(words, contexts, centers, targets, valid, lr)
        centers_t, targets_t = torch.tensor(centers), torch.tensor(targets)
        dots = sum(shard.partial_dots(centers_t, targets_t) for shard in shards)  # what reduce_dots computes
        coefficients, _ = sgns_coefficients(dots, targets_t, torch.tensor(valid), lr)
        for shard in shards:
            shard.update(centers_t, targets_t, coefficients)
        together = (torch.cat([s.input for s in shards], 1).numpy(), torch.cat([s.output for s in shards], 1).numpy())
        np.testing.assert_allclose(together[0], words, atol=1e-5)
        np.testing.assert_allclose(together[1], contexts, atol=1e-5)


@pytest.mark.parametrize("kernel", ["torch", "numba"])
def test_a_whole_step_of_one_shard_equals_the_numpy_reference(kernel):
    if kernel == "numba":
        pytest.importorskip("numba")  # its one-shard step is a fused kernel of its own
    rng = np.random.default_rng(1)
    vocab, dim, batch, negative, lr = 30, 6, 40, 3, 0.5
    words = rng.normal(0, 0.3, (vocab, dim)).astype(np.float32)
    contexts = rng.normal(0, 0.3, (vocab, dim)).astype(np.float32)
    shard = EmbeddingShard(torch.tensor(words), torch.tensor(contexts), kernel)
    for _ in range(3):
        centers = rng.integers(0, vocab, batch)
        targets = rng.integers(0, vocab, (batch, 1 + negative))
        targets[0, 1] = targets[0, 0]
        valid = np.arange(batch) < batch - 2
        expected_loss = float(sgns_coefficients(torch.tensor(np.einsum("bd,bkd->bk", words[centers],
                                                                       contexts[targets])),
                                                torch.tensor(targets), torch.tensor(valid), lr)[1])
        words, contexts = numpy_reference_step(words, contexts, centers, targets, valid, lr)
        loss = shard.step(torch.tensor(centers), torch.tensor(targets), torch.tensor(valid), lr,
                          ColumnSharding(dim, 0, 1))
        assert float(loss) == pytest.approx(expected_loss, rel=1e-5)
        np.testing.assert_allclose(shard.input.numpy(), words, atol=1e-5)
        np.testing.assert_allclose(shard.output.numpy(), contexts, atol=1e-5)


def test_the_numba_step_does_not_depend_on_the_thread_count():
    numba = pytest.importorskip("numba")
    from w2vdist.train import cpu_kernels

    rng = np.random.default_rng(2)
    words = rng.normal(0, 0.3, (500, 20)).astype(np.float32)
    contexts = rng.normal(0, 0.3, (500, 20)).astype(np.float32)
    centers, targets = rng.integers(0, 500, 3000), rng.integers(0, 500, (3000, 6))
    results = []
    threads = numba.get_num_threads()
    for count in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(count)
        tables = words.copy(), contexts.copy()
        cpu_kernels.whole_step(*tables, centers, targets, np.ones(3000, bool), 0.1)
        cpu_kernels.apply_update(*tables, centers, targets, np.full((3000, 6), 0.01, np.float32))
        results.append(tables)
    numba.set_num_threads(threads)
    assert all(np.array_equal(a, b) for a, b in zip(*results))


def test_sgns_loss_is_the_negative_log_likelihood_of_the_real_pairs():
    dots = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    targets = torch.tensor([[4, 5, 6], [1, 2, 3]])
    _, loss = sgns_coefficients(dots, targets, torch.tensor([True, False]), lr=0.1)
    expected = -(np.log(1 / (1 + np.exp(-2.0))) + np.log(1 / (1 + np.exp(-1.0))) + np.log(1 / (1 + np.exp(0.5))))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_column_wise_sharding_moves_far_fewer_bytes_than_row_wise():
    sizes = ColumnSharding.bytes_per_step(4096, 5, 100, 2)
    assert sizes == {"column_wise": 114688, "row_wise": 11468800}


# --- the data layout ---------------------------------------------------------------------------------------------
def global_batches(files, layout, world_size, streams, batch_size):
    """What every worker holds after gather_batch, simulated without torch.distributed."""
    width = contribution_width(world_size, streams, batch_size)
    readers = [PairsReader(files, layout, streams_of(r, world_size, streams), width, 0, pin_memory=False)
               for r in range(world_size)]
    canonical = canonical_order(world_size, streams, batch_size)
    batches = []
    for contributions in zip(*readers):
        gathered = torch.cat(contributions, dim=1)
        batches.append(gathered if canonical is None else gathered[:, canonical])
    return batches


def test_every_worker_count_trains_on_the_same_batches_and_each_epoch_sees_every_pair_once(topic_run):
    plan = build_plan(load_config([], SMALL, {"out": str(topic_run)}))
    layout = EpochLayout(plan.pair_rows, epoch=0, seed=1, streams=4, batch_size=64)
    one = global_batches(plan.pair_files, layout, 1, 4, 64)
    for workers in (2, 3):
        other = global_batches(plan.pair_files, layout, workers, 4, 64)
        assert len(other) == len(one) == layout.steps
        assert all(torch.equal(a, b) for a, b in zip(one, other))
    pairs = torch.cat(one, dim=1)
    pairs = pairs[:, pairs[0] >= 0]
    table = pq.read_table(Path(plan.run_dir) / "pairs")
    expected = np.stack([table.column("center").to_numpy(), table.column("context").to_numpy()])
    assert pairs.shape[1] == plan.pairs_per_epoch == layout.pairs_before(layout.steps)
    assert sorted(map(tuple, pairs.T.tolist())) == sorted(map(tuple, expected.T.tolist()))
    next_epoch = EpochLayout(plan.pair_rows, epoch=1, seed=1, streams=4, batch_size=64)
    assert not torch.equal(global_batches(plan.pair_files, next_epoch, 1, 4, 64)[0], one[0])


# --- the loop on its own -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("pair_source", ["pairs", "corpus"])
def test_the_loop_runs_without_ray_pyspark_or_numba_and_learns_the_topics(tmp_path, pair_source):
    """Only torch and pyarrow: the step, the noise draws and the pair generation then run torch's ops, the GPU
    code path, on the CPU."""
    run = build_run_dir(tmp_path / "run", two_topic_sentences(), pairs_per_file=4000)
    blocked = ("import sys; sys.modules.update({'ray': None, 'pyspark': None, 'numba': None}); "
               "from w2vdist.train.loop import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", blocked, str(run), *SMALL, f"pair_source={pair_source}"],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "words/s" in done.stderr and "numba is not installed" in done.stderr
    assert json.loads((run / "train" / "workers" / "rank-0.json").read_text())["kernel"] == "torch"

    record = RunDir(run).stage("train")
    assert record["completed"]
    losses = [epoch["loss"] for epoch in record["stats"]["epochs"]]
    assert losses == sorted(losses, reverse=True)
    assert losses[-1] < 0.6 * 6 * np.log(2)  # at the start every one of the 1 + 5 terms is log 2
    assert len((run / "train" / "metrics.jsonl").read_text().splitlines()) == 4

    table = pq.read_table(run / "vectors")
    assert table.schema == pa.schema([("id", pa.int32()), ("word", pa.string()), ("count", pa.int64()),
                                      ("vector", pa.list_(pa.float32()))])
    assert table.column("id").to_pylist() == list(range(table.num_rows))
    assert_topics_learned(*read_vectors(run))


def test_a_stopped_run_resumes_at_its_step_and_ends_where_an_uninterrupted_run_ends(tmp_path):
    sentences = two_topic_sentences(count=200)
    whole = build_run_dir(tmp_path / "whole", sentences)
    assert loop_main([str(whole), *SMALL]) == 0
    parts = build_run_dir(tmp_path / "parts", sentences)
    assert loop_main([str(parts), *SMALL, "max_steps=30"]) == 0
    root = parts / "train" / "checkpoints-local"
    assert ckpt.read_state(ckpt.latest(root))["step"] == 30
    assert not (parts / "vectors").exists() and not RunDir(parts).is_complete("train")
    assert loop_main([str(parts), *SMALL, "resume=true"]) == 0
    assert ckpt.read_state(ckpt.latest(root))["step"] == ckpt.read_state(
        ckpt.latest(whole / "train" / "checkpoints-local"))["step"]
    np.testing.assert_allclose(read_vectors(parts)[1], read_vectors(whole)[1], atol=1e-6)


def test_resume_with_other_result_settings_is_refused(tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=100))
    assert loop_main([str(run), *SMALL, "max_steps=5"]) == 0
    with pytest.raises(ConfigError, match="'dim' was 16, now 8"):
        from w2vdist.train import stage
        plan = build_plan(load_config([], [*SMALL, "dim=8", "resume=true"], {"out": str(run)}))
        stage.check_resumable(plan, run / "train" / "checkpoints-local")


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
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=50), pairs_per_file=1000)
    bad = run / "pairs" / "part-00000.parquet"
    table = pq.read_table(bad)
    pq.write_table(table.set_column(1, "context", pa.array([10_000] * table.num_rows, pa.int32())), bad)
    settings = load_config([], ["pair_source=pairs"], {"out": str(run)})
    with pytest.raises(RunDirError, match=r"part-00000.parquet': column context holds ids from 10000 to 10000 .* "
                                          r"ids 0\.\.24"):
        build_plan(settings)
    (run / "pairs" / "part-00000.parquet").unlink()
    with pytest.raises(RunDirError, match="but the manifest says"):
        build_plan(settings)


@pytest.mark.parametrize("overrides, words", [
    (["dim=10", "num_workers=3"], ["'dim' (10)", "divisible by 'num_workers' (3)"]),
    (["num_workers=5", "streams=4", "pair_source=pairs"], ["'num_workers' (5)", "must not exceed 'streams' (4)"]),
    (["batch_size=8", "streams=16", "pair_source=pairs"], ["'batch_size' (8)", "'streams' (16)"]),
    (["negative=0"], ["'negative'", ">= 1"]),
])
def test_settings_that_cannot_work_are_named_before_any_work(tmp_path, capsys, overrides, words):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=50))
    assert cli_main(["train", str(run), *overrides]) == 2
    err = capsys.readouterr().err
    assert all(word in err for word in words), err
    assert "Traceback" not in err and not (run / "train").exists()


@pytest.mark.parametrize("overrides, cluster, words", [
    (["use_gpu=true"], {"CPU": 2}, ["'use_gpu' is true", "no GPU"]),
    (["num_workers=3", "dim=12"], {"CPU": 2}, ["'num_workers' (3)", "CPUs (2)"]),
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
    assert loop_main([str(run), "use_gpu=true"]) == 2
    assert "'use_gpu' is true" in capsys.readouterr().err


def test_the_metrics_file_has_one_record_per_epoch(topic_run, tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=100))
    assert loop_main([str(run), *SMALL, "epochs=2"]) == 0
    records = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(r["words_per_s"] > 0 and r["pairs_per_s"] > 0 and r["loss"] > 0 for r in records)
    assert records[-1]["lr"] < 0.05 / 10


def test_probe_words_are_recorded_while_training(tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=100))
    assert loop_main([str(run), *SMALL, "epochs=2", "probe_words=[cat, hammer]", "probe_every=10"]) == 0
    records = [json.loads(line) for line in (run / "probes" / "probes.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert steps[:2] == [10, 20] and steps == sorted(steps)
    assert set(records[-1]["neighbours"]) == {"cat", "hammer"} and records[-1]["loss"] > 0


def test_the_ray_job_script_is_the_train_command(tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=50))
    done = subprocess.run([sys.executable, "jobs/train.py", str(run), "dim=10", "num_workers=3"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "w2vdist train: error" in done.stderr and "'dim' (10)" in done.stderr


def test_a_diverging_run_stops_with_a_message_naming_the_settings(tmp_path, capsys):
    from w2vdist.train import loop

    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=200), pairs_per_file=4000)
    code = loop.main([str(run), "dim=100", "epochs=1", "alpha=5", "batch_size=512", "use_gpu=false"])
    err = capsys.readouterr().err
    assert code == 2
    assert "diverged in epoch 1" in err and "'batch_size' (now 512)" in err and "'alpha' (now 5.0)" in err
    assert not (run / "vectors").exists()
