"""Training under Ray Train on CPUs (gloo): 2 replicas learn what 1 learns, resume through Ray's checkpoints, a
killed worker is replaced. One local Ray for the whole module."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import ListenerWatch, is_loopback
from tests.train_fixtures import TOPICS, assert_topics_learned, build_run_dir, read_vectors, two_topic_sentences
from w2vdist.config import load_config
from w2vdist.errors import TrainingDiverged
from w2vdist.rundir import RunDir
from w2vdist.train import checkpoints as ckpt
from w2vdist.train.launcher import run_train, start_local_ray
from w2vdist.train.local import main as local_main

SMALL = ["dim=16", "epochs=3", "alpha=0.05", "sync_every=2000"]


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    start_local_ray(num_cpus=2, log_to_driver=False)
    yield ray
    ray.shutdown()


def vectors(run) -> np.ndarray:
    return np.array(pq.read_table(run / "vectors").column("vector").to_pylist(), dtype=np.float32)


def train(run, *overrides):
    return run_train(load_config([], [*SMALL, *overrides], {"out": str(run)}))


def nearest_topic_words(words: list[str], vectors_: np.ndarray, word: str, count: int = 5) -> set[str]:
    unit = vectors_ / np.linalg.norm(vectors_, axis=1, keepdims=True)
    members = {w for group in TOPICS.values() for w in group}
    i = words.index(word)
    return set([words[j] for j in np.argsort(-unit @ unit[i]) if words[j] in members and j != i][:count])


@pytest.mark.parametrize("pair_source", ["pairs", "corpus"])
def test_two_replicas_learn_the_neighbours_one_replica_learns(ray_session, tmp_path, pair_source):
    sentences = two_topic_sentences(count=600)
    one = build_run_dir(tmp_path / "one", sentences, pair_draws=3)
    assert local_main([str(one), *SMALL, f"pair_source={pair_source}"]) == 0
    two = build_run_dir(tmp_path / "two", sentences, pair_draws=3)
    watch = ListenerWatch(os.getpid())
    record = train(two, "num_workers=2", f"pair_source={pair_source}")
    listeners = watch.stop()
    # Ray's servers, the workers, gloo's pairs and rank 0's rendezvous store all listen on loopback only
    assert {"gcs_server", "raylet"} <= {name for _, _, name, _ in listeners}
    assert not [entry for entry in listeners if not is_loopback(entry[0])], listeners
    assert record["stats"]["workers"] == 2 and record["completed"]
    workers = [json.loads(p.read_text()) for p in (two / "train" / "workers").glob("rank-*.json")]
    assert {w["rank"] for w in workers} == {0, 1}
    assert {w["ray_node"] for w in workers} == {ray_session.get_runtime_context().get_node_id()}
    assert_topics_learned(*read_vectors(two))
    # every epoch trains the whole corpus once, over both replicas together
    words = sum(len(s) for s in sentences)
    assert [e["words"] for e in record["stats"]["epochs"]] == [words] * 3
    # the neighbourhoods agree with one replica's: of each topic word's 5 nearest topic words, most are the same
    one_words, one_vectors = read_vectors(one)
    two_words, two_vectors = read_vectors(two)
    overlap = [len(nearest_topic_words(one_words, one_vectors, w) & nearest_topic_words(two_words, two_vectors, w))
               for group in TOPICS.values() for w in group]
    assert np.mean(overlap) >= 2.5, overlap


def test_a_run_stopped_under_ray_resumes_from_its_checkpoint(ray_session, tmp_path):
    sentences = two_topic_sentences(count=300)
    whole = build_run_dir(tmp_path / "whole", sentences)
    assert train(whole, "num_workers=2")["completed"]
    parts = build_run_dir(tmp_path / "parts", sentences)
    assert train(parts, "num_workers=2", "max_words=5000") is None
    root = parts / "train" / "checkpoints"
    assert 5000 <= ckpt.read_state(ckpt.latest(root))["words_done"] < 10_000
    assert not RunDir(parts).is_complete("train")
    assert train(parts, "num_workers=2", "max_words=10000", "resume=true") is None
    # The newest checkpoint, the one Ray Train's own record names last, is cut short as by a full disk: the
    # resume goes on from the one before, which it verified, and still ends where the uninterrupted run ends.
    newest = ckpt.latest(root)
    assert ckpt.read_state(newest)["words_done"] >= 10_000
    tables = newest / ckpt.TABLES_FILE
    tables.write_bytes(tables.read_bytes()[:tables.stat().st_size // 2])
    assert ckpt.latest(root) not in (None, newest)
    record = train(parts, "num_workers=2", "resume=true")
    assert record["completed"]
    # each replica trains with one thread, and the sync is a sum of two: the same arithmetic, resumed or not
    np.testing.assert_allclose(vectors(parts), vectors(whole), atol=1e-5)


def test_two_column_shards_train_the_vectors_of_one_through_a_stop_and_resume(ray_session, tmp_path, monkeypatch):
    """One replica on two workers, each holding half the columns of both tables: stopped, resumed (its
    checkpoint holds the whole tables, gathered from both shards, and the resume slices them again), it ends
    with the vectors the sharded step ends with on one worker (the loop without Ray, its kernel forced to the
    sharded step), and counts each word once."""
    from w2vdist.train import loop

    sentences = two_topic_sentences(count=300)
    one = build_run_dir(tmp_path / "one", sentences)
    monkeypatch.setattr(loop, "choose_kernel", lambda requested, device, column_shards=1: "sharded")
    assert local_main([str(one), *SMALL]) == 0
    assert json.loads((one / "train" / "workers" / "rank-0.json").read_text())["kernel"] == "sharded"
    two = build_run_dir(tmp_path / "two", sentences)
    assert train(two, "num_workers=2", "column_shards=2", "max_words=5000") is None
    assert ckpt.load_tables(ckpt.latest(two / "train" / "checkpoints"), "cpu")[0].shape[1] == 16
    record = train(two, "num_workers=2", "column_shards=2", "resume=true")
    assert record["stats"]["column_shards"] == 2 and record["config"]["column_shards"] == 2
    workers = [json.loads(p.read_text()) for p in (two / "train" / "workers").glob("rank-*.json")]
    assert sorted((w["replica"], w["shard"], w["kernel"]) for w in workers) == [(0, 0, "sharded"), (0, 1, "sharded")]
    assert [e["words"] for e in record["stats"]["epochs"]] == [sum(len(s) for s in sentences)] * 3
    np.testing.assert_allclose(vectors(two), vectors(one), rtol=1e-4, atol=1e-5)


def test_a_killed_worker_is_replaced_and_the_run_finishes(ray_session, tmp_path):
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=600))
    outcome = {}

    def training():
        try:
            outcome["record"] = train(run, "num_workers=2", "epochs=12", "sync_every=1000",
                                      "checkpoint_interval_s=1", "max_failures=2")
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
    run = build_run_dir(tmp_path / "run", two_topic_sentences(count=200))
    diverging = ["dim=100", "epochs=1", "alpha=1e30", "max_failures=2"]
    with pytest.raises(TrainingDiverged) as info:
        run_train(load_config([], diverging, {"out": str(run)}))
    message = str(info.value)
    assert "diverged in epoch 1" in message and "'alpha' (now 1e+30)" in message
    assert "Traceback" not in message and not (run / "vectors").exists()
    # Ray restarted the workers twice; each stopped at once on the recorded divergence rather than training the
    # epoch again: the workers' files were written after the first attempt's end
    diverged_at = (run / "train" / "diverged.txt").stat().st_mtime
    starts = [json.loads(p.read_text())["started"] for p in (run / "train" / "workers").glob("rank-*.json")]
    assert starts and all(start > diverged_at for start in starts)
    record = run_train(load_config([], ["dim=100", "epochs=1"], {"out": str(run)}))
    assert record["completed"] and not (run / "train" / "diverged.txt").exists()
