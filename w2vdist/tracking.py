"""Experiment tracking with MLflow (the optional extra `w2vdist[mlflow]`): one MLflow run per pipeline run.

Logged: every setting as a parameter; the preprocess statistics; per epoch (step = epoch) the loss, words/s,
pairs/s and learning rate from RUN_DIR/train/metrics.jsonl; the evaluation scores; and as artifacts the exported
vectors, the evaluation JSON and every picture (PNG, HTML) in the run directory. By default the store is a local
MLflow file store in RUN_DIR/mlruns (`mlflow ui --backend-store-uri RUN_DIR/mlruns` shows it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from w2vdist.config import Config
from w2vdist.errors import ConfigError
from w2vdist.rundir import RunDir

EPOCH_METRICS = ("loss", "words_per_s", "pairs_per_s", "lr")
PREPROCESS_METRICS = ("raw_tokens", "tokens_after_min_count", "expected_tokens_after_subsampling", "vocab_size",
                      "pairs")
MAX_PARAM_CHARS = 500


def log_run(config: Config, run: RunDir) -> str:
    """Log the run directory's state to MLflow; return the MLflow run id."""
    try:
        import mlflow
    except ImportError:
        raise ConfigError("setting 'tracking' is true but MLflow is not installed: pip install 'w2vdist[mlflow]'") \
            from None
    uri = config.tracking_uri
    if uri is None:
        # MLflow 3 keeps its file store only behind this switch; a file store under the run directory needs no
        # server or database, which is what a local default should be.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = (run.path / "mlruns").resolve().as_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(config.experiment_name)
    manifest = run.manifest()["stages"]
    with mlflow.start_run(run_name=run.path.name) as active:
        mlflow.log_params({k: _param(v) for k, v in config.to_dict().items()})
        stats = (manifest.get("preprocess") or {}).get("stats", {})
        mlflow.log_metrics({f"preprocess_{k}": float(stats[k]) for k in PREPROCESS_METRICS if k in stats})
        for epoch in _epochs(run.path / "train" / "metrics.jsonl"):
            mlflow.log_metrics({k: float(epoch[k]) for k in EPOCH_METRICS if k in epoch}, step=int(epoch["epoch"]))
        scores = (manifest.get("evaluate") or {}).get("stats", {})
        mlflow.log_metrics({k: float(v) for k, v in scores.items() if isinstance(v, (int, float))})
        for folder in ("export", "eval"):
            if (run.path / folder).is_dir():
                mlflow.log_artifacts(str(run.path / folder), artifact_path=folder)
        for picture in sorted(p for p in run.path.rglob("*") if p.suffix in (".png", ".html")
                              and "mlruns" not in p.parts):
            mlflow.log_artifact(str(picture), artifact_path=str(picture.parent.relative_to(run.path)))
        return active.info.run_id


def _param(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[:MAX_PARAM_CHARS - 3] + "..."


def _epochs(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    epochs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            epochs[record["epoch"]] = record  # after a resume, the last record of an epoch wins
    return [epochs[k] for k in sorted(epochs)]
