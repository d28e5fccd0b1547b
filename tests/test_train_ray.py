"""Training under Ray Train on CPUs (gloo): 2 workers equal 1, resume through Ray's checkpoints, a killed worker
is replaced. One local Ray for the whole module."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.train_fixtures import build_run_dir, two_topic_sentences
from w2vdist.config import load_config
from w2vdist.errors import TrainingDiverged
from w2vdist.rundir import RunDir
from w2vdist.train import checkpoints as ckpt
from w2vdist.train.launcher import run_train
from w2vdist.train.loop import main as loop_main

SMALL = ["dim=16", "epochs=3", "batch_size=128", "streams=4", "alpha=0.05"]


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield ray
    ray.shutdown()


def vectors(run) -> np.ndarray:
    return np.array(pq.read_table(run / "vectors").column("vector").to_pylist(), dtype=np.float32)


def train(run, *overrides):
    return run_train(load_config([], [*SMALL, *overrides], {"out": str(run)}))


@pytest.mark.parametrize("pair_source", ["pairs", "corpus"])
def test_two_workers_train_the_same_vectors_as_one(ray_session, tmp_path, pair_source):
    sentences = two_topic_sentences(count=300)
    one = build_run_dir(tmp_path / "one", sentences)
    assert loop_main([str(one), *SMALL, f"pair_source={pair_source}"]) == 0
    two = build_run_dir(tmp_path / "two", sentences)
    record = train(two, "num_workers=2", f"pair_source={pair_source}")
    assert record["stats"]["workers"] == 2 and record["completed"]
    workers = [json.loads(p.read_text()) for p in (two / "train" / "workers").glob("rank-*.json")]
    assert {w["rank"] for w in workers} == {0, 1}
    assert {w["ray_node"] for w in workers} == {ray_session.get_runtime_context().get_node_id()}
    np.testing.assert_allclose(vectors(two), vectors(one), atol=2e-5)


def test_a_run_stopped_under_ray_resumes_from_its_checkpoint(ray_session, tmp_path):
    sentences = two_topic_sentences(count=150)
    whole = build_run_dir(tmp_path / "whole", sentences)
    assert loop_main([str(whole), *SMALL]) == 0
    parts = build_run_dir(tmp_path / "parts", sentences)
    assert train(parts, "num_workers=2", "max_steps=20") is None
    root = parts / "train" / "checkpoints"
    assert ckpt.read_state(ckpt.latest(root))["step"] == 20
    assert not RunDir(parts).is_complete("train")
    record = train(parts, "num_workers=2", "resume=true")
    assert record["completed"] and record["stats"]["steps"] > 20
    np.testing.assert_allclose(vectors(parts), vectors(whole), atol=2e-5)


def test_a_killed_worker_is_replaced_and_the_run_finishes(ray_session, tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=600))
    outcome = {}

    def training():
        try:
            outcome["record"] = train(run, "num_workers=2", "epochs=2", "batch_size=32", "checkpoint_interval_s=1",
                                      "max_failures=2")
        except BaseException as exc:  # reported by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=training)
    thread.start()
    worker_file = run / "train" / "workers" / "rank-1.json"
    root = run / "train" / "checkpoints"
    deadline = time.monotonic() + 120
    while ckpt.latest(root) is None and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    killed = json.loads(worker_file.read_text())["pid"]
    state = ckpt.read_state(ckpt.latest(root))
    assert not state["finished"], "the run ended before the worker could be killed: make it longer"
    os.kill(killed, signal.SIGKILL)
    thread.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["record"]["completed"]
    assert json.loads(worker_file.read_text())["pid"] != killed
    assert len(vectors(run)) == RunDir(run).stage("preprocess")["stats"]["vocab_size"]


def test_a_run_diverging_under_ray_stops_with_the_message_naming_the_settings(ray_session, tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=200), pairs_per_file=4000)
    diverging = ["dim=100", "epochs=1", "alpha=5", "batch_size=512", "max_failures=2"]
    with pytest.raises(TrainingDiverged) as info:
        run_train(load_config([], diverging, {"out": str(run)}))
    message = str(info.value)
    assert "diverged in epoch 1" in message and "'batch_size' (now 512)" in message
    assert "Traceback" not in message and not (run / "vectors").exists()
    # Ray restarted the workers twice; each stopped at once on the recorded divergence rather than training the
    # epoch again: the workers' files were written after the first attempt's end
    diverged_at = (run / "train" / "diverged.txt").stat().st_mtime
    starts = [json.loads(p.read_text())["started"] for p in (run / "train" / "workers").glob("rank-*.json")]
    assert starts and all(start > diverged_at for start in starts)
    record = run_train(load_config([], ["dim=100", "epochs=1", "batch_size=512"], {"out": str(run)}))
    assert record["completed"] and not (run / "train" / "diverged.txt").exists()
