"""MLflow tracking: epochs reach MLflow while training runs, and a run directory that is logged already is not logged
again. The training is stood in for by a thread that writes train/metrics.jsonl as the loop does."""

import json
import threading
import time

import pytest

from w2vdist.config import load_config
from w2vdist.rundir import RunDir
from w2vdist.tracking import Tracker


def _epoch(run, epoch, loss, at=None):
    with open(run.train_metrics, "a", encoding="utf-8") as f:
        f.write(json.dumps({"epoch": epoch, "loss": loss, "words_per_s": 1000.0, "pairs_per_s": 2000.0,
                            "lr": 0.01, "time": time.time() if at is None else at}) + "\n")


def _commit(run, stage):
    run.commit(stage, run.begin(stage), [], {"stats": {}})


@pytest.fixture
def tracker(tmp_path, monkeypatch):
    monkeypatch.setattr("w2vdist.tracking.FOLLOW_EVERY_S", 0.05)
    run = RunDir(tmp_path / "run", create=True)
    (run.path / "train").mkdir()
    return Tracker(load_config([], ["tracking=true"], {"out": str(run.path)}), run)


def _losses(tracker, run_id):
    if run_id is None:  # no MLflow run yet: it starts with the first epoch
        return []
    return [(m.step, m.value) for m in tracker.client.get_metric_history(run_id, "loss")]


def _wait_for(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_epochs_reach_mlflow_while_training_runs(tracker):
    run = tracker.run
    _epoch(run, 1, 9.0, at=time.time() - 3600)  # an earlier training's line, before this one clears the file
    seen_during_training = []

    def train():
        run.train_metrics.unlink()  # what a fresh training does first
        time.sleep(0.3)
        assert tracker.run_id is None  # nothing trained yet: no MLflow run (a skipped training starts none)
        for epoch, loss in enumerate([3.0, 2.5, 2.2], start=1):
            _epoch(run, epoch, loss)
            _wait_for(lambda: len(_losses(tracker, tracker.run_id)) == epoch)  # logged before the next epoch
            seen_during_training.append(_losses(tracker, tracker.run_id))

    with tracker.following_epochs():
        trainer = threading.Thread(target=train)
        trainer.start()
        trainer.join()
    assert len(seen_during_training) == 3, "the training thread failed"
    assert seen_during_training == [[(1, 3.0)], [(1, 3.0), (2, 2.5)], [(1, 3.0), (2, 2.5), (3, 2.2)]]
    run_id = tracker.run_id
    assert tracker.finish(ran=True) == run_id
    assert _losses(tracker, run_id) == [(1, 3.0), (2, 2.5), (3, 2.2)]  # each epoch once
    assert tracker.client.get_run(run_id).info.status == "FINISHED"


def test_a_run_directory_that_is_logged_already_is_not_logged_again(tracker):
    run = tracker.run
    for stage in ("preprocess", "train"):
        _commit(run, stage)
    _epoch(run, 1, 2.0)
    first = tracker.finish(ran=True)
    assert tracker.finish(ran=False) is None  # every stage skipped, this state is in MLflow: nothing new
    experiment = tracker.client.get_experiment_by_name("w2vdist").experiment_id
    assert [r.info.run_id for r in tracker.client.search_runs([experiment])] == [first]
    _commit(run, "export")  # the run directory changed
    second = tracker.finish(ran=False)
    assert second not in (None, first)
    fresh = Tracker(tracker.config, run)  # the next pipeline run, everything skipped ...
    assert fresh.finish(ran=False) is None  # ... finds the state logged already


def test_a_failed_stage_ends_the_mlflow_run_as_failed(tracker):
    run_id = tracker.start()
    _epoch(tracker.run, 1, 2.0)
    tracker.fail()
    assert tracker.client.get_run(run_id).info.status == "FAILED"
    assert _losses(tracker, run_id) == [(1, 2.0)]
