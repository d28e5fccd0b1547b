"""Experiment tracking with MLflow (the optional extra `w2vdist[mlflow]`): one MLflow run per pipeline run that did
some work.

Logged: every setting as a parameter; the preprocess statistics; per epoch (step = epoch) the loss, words/s,
pairs/s and learning rate from RUN_DIR/train/metrics.jsonl, while training runs (a thread follows the file); the
evaluation scores; and as artifacts the exported vectors, the evaluation JSON and every picture (PNG, HTML) in the
run directory. The MLflow run is created when the first stage that does work starts or ends; a pipeline run whose
stages were all skipped logs nothing new when the manifest's `tracking` record shows that this state of the run
directory is logged already. By default the store is a local MLflow file store in RUN_DIR/mlruns
(`mlflow ui --backend-store-uri RUN_DIR/mlruns` shows it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from typing import Any, Iterator

from w2vdist.config import Config
from w2vdist.datasets import read_epoch_metrics
from w2vdist.errors import ConfigError
from w2vdist.rundir import RunDir, fingerprint

log = logging.getLogger(__name__)

STAGE = "tracking"  # the manifest record of what was logged last
EPOCH_METRICS = ("loss", "words_per_s", "pairs_per_s", "lr")
PREPROCESS_METRICS = ("raw_tokens", "tokens_after_min_count", "expected_tokens_after_subsampling", "vocab_size",
                      "pairs")
LOGGED_STAGES = ("preprocess", "train", "export", "evaluate", "plot")
MAX_PARAM_CHARS = 500
FOLLOW_EVERY_S = 2.0


def check_installed() -> None:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError("setting 'tracking' is true but MLflow is not installed: pip install 'w2vdist[mlflow]'") \
            from None


class Tracker:
    def __init__(self, config: Config, run: RunDir):
        check_installed()
        from mlflow.tracking import MlflowClient

        self.config = config
        self.run = run
        uri = config.tracking_uri
        if uri is None:
            # MLflow 3 keeps its file store only behind this switch; a file store under the run directory needs no
            # server or database, which is what a local default should be.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = run.mlruns.resolve().as_uri()
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id: str | None = None
        self._logged_epochs: set[int] = set()
        self._lock = threading.Lock()  # the epoch follower and the main thread both log epochs

    def start(self) -> str:
        """The MLflow run of this pipeline run, created on the first call."""
        if self.run_id is None:
            experiment = self.client.get_experiment_by_name(self.config.experiment_name)
            experiment_id = (experiment.experiment_id if experiment is not None
                             else self.client.create_experiment(self.config.experiment_name))
            self.run_id = self.client.create_run(experiment_id, run_name=self.run.path.name).info.run_id
            from mlflow.entities import Param

            params = [Param(k, _param(v)) for k, v in self.config.to_dict().items()]
            for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
                self.client.log_batch(self.run_id, params=params[start:start + 100])
        return self.run_id

    @contextlib.contextmanager
    def following_epochs(self) -> Iterator[None]:
        """While the body trains, log each epoch's metrics as its line appears in train/metrics.jsonl; the MLflow
        run starts with the first, so a training that finds itself complete and skips starts none."""
        since = time.time()  # lines of an earlier run, before training clears the file, are not this run's
        stop = threading.Event()

        def follow() -> None:
            while not stop.wait(FOLLOW_EVERY_S):
                try:
                    self.log_epochs(since)
                except Exception:  # a lost metric must not stop training; finish() logs the rest
                    log.debug("tracking: could not log the epochs yet", exc_info=True)

        thread = threading.Thread(target=follow, name="w2vdist-tracking", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def log_epochs(self, since: float | None = None) -> None:
        """Log the epochs of train/metrics.jsonl not logged yet (those that ended after `since`, when given)."""
        from mlflow.entities import Metric

        with self._lock:
            new = [e for e in read_epoch_metrics(self.run.train_metrics)
                   if e["epoch"] not in self._logged_epochs and (since is None or e.get("time", since) >= since)]
            metrics = [Metric(key, float(epoch[key]), int(epoch.get("time", time.time()) * 1000), int(epoch["epoch"]))
                       for epoch in new for key in EPOCH_METRICS if key in epoch]
            if metrics:
                self.client.log_batch(self.start(), metrics=metrics)
            self._logged_epochs.update(e["epoch"] for e in new)

    def finish(self, ran: bool) -> str | None:
        """Log the run directory's state and end the MLflow run; returns its id, or None when nothing ran and this
        state is logged already."""
        manifest = self.run.manifest()["stages"]
        stamp = fingerprint({"uri": self.uri, "experiment": self.config.experiment_name,
                             "stages": {name: (manifest.get(name) or {}).get("completed") for name in LOGGED_STAGES}})
        if not ran and self.run_id is None and self.run.up_to_date(STAGE, stamp) is not None:
            return None
        from mlflow.entities import Metric

        run_id = self.start()
        self.log_epochs()
        now = int(time.time() * 1000)
        stats = (manifest.get("preprocess") or {}).get("stats", {})
        scores = (manifest.get("evaluate") or {}).get("stats", {})
        metrics = [Metric(f"preprocess_{k}", float(stats[k]), now, 0) for k in PREPROCESS_METRICS if k in stats]
        metrics += [Metric(k, float(v), now, 0) for k, v in scores.items() if isinstance(v, (int, float))]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)
        for folder in (self.run.export, self.run.evaluation.parent):
            if folder.is_dir():
                self.client.log_artifacts(run_id, str(folder), artifact_path=folder.name)
        for picture in sorted(p for p in self.run.path.rglob("*") if p.suffix in (".png", ".html")
                              and not p.is_relative_to(self.run.mlruns)):
            self.client.log_artifact(run_id, str(picture), artifact_path=str(picture.parent.relative_to(self.run.path)))
        self.client.set_terminated(run_id, "FINISHED")
        staging = self.run.begin(STAGE)
        self.run.commit(STAGE, staging, [], {"fingerprint": stamp, "run_id": run_id, "tracking_uri": self.uri})
        self.run_id = None
        return run_id

    def fail(self) -> None:
        """End the MLflow run, if one was started, as failed, with the epochs trained so far."""
        if self.run_id is not None:
            self.log_epochs()
            self.client.set_terminated(self.run_id, "FAILED")
            self.run_id = None


def _param(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[:MAX_PARAM_CHARS - 3] + "..."

