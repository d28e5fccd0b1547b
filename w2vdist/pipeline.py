"""`w2vdist pipeline CONFIG`: preprocess, train, export and evaluate into one run directory, for schedulers.

Each stage is skipped when the manifest says its output is complete for the same inputs and settings, so a
scheduled re-run does only what changed, and a stage that fails leaves the earlier ones complete for the next try.
The exit code (0 done, 1 a stage failed, 2 bad settings or input) and one summary line on stdout are what a
scheduler reads; the log goes to stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from w2vdist.config import Config
from w2vdist.errors import ConfigError, UsageError, one_line, writing
from w2vdist.preprocess.job import run_preprocess
from w2vdist.rundir import RunDir, fingerprint

log = logging.getLogger(__name__)

EXPORT_NAMES = {"word2vec": "vectors.txt", "word2vec-binary": "vectors.bin", "parquet": "vectors.parquet",
                "npy": "vectors.npy"}
STAGES = ("preprocess", "train", "export", "evaluate")


@dataclass
class PipelineResult:
    run_dir: str | None
    stages: dict[str, str] = field(default_factory=dict)  # stage -> "done" | "skipped" | "failed"
    seconds: dict[str, float] = field(default_factory=dict)
    failed: str | None = None
    error: str | None = None
    scores: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One line, whatever the error said: a scheduler shows the last line of the output."""
        parts = [f"{name} {state}" + (f" {self.seconds[name]:.1f}s" if state == "done" else "")
                 for name, state in self.stages.items()]
        scores = ", ".join(f"{k} {v:.4g}" for k, v in self.scores.items())
        line = "w2vdist pipeline " + ("OK" if self.failed is None else f"FAILED at {self.failed}") + ":"
        line += f" {self.run_dir}:" if self.run_dir else ""
        line += f" {', '.join(parts)}" if parts else ""
        line += f" | {scores}" if scores else ""
        line += f" | {' '.join(self.error.split())}" if self.error else ""
        return line


def run_pipeline(config: Config) -> PipelineResult:
    """Run every stage into `config.out`; raises StageFailed, holding the result so far, when one fails."""
    if not config.out:
        raise ConfigError("setting 'out' is required: the run directory (out=RUN_DIR)")
    result = PipelineResult(run_dir=config.out)
    with contextlib.ExitStack() as stack:
        _attempt(result, "start", lambda: stack.enter_context(RunDir(config.out, create=True).locked("pipeline")))
        for name, stage in zip(STAGES, (_preprocess, _train, _export, _evaluate)):
            started = time.monotonic()
            ran = _attempt(result, name, lambda: stage(config))
            result.stages[name] = "done" if ran else "skipped"
            result.seconds[name] = round(time.monotonic() - started, 2)
        result.scores = _scores(RunDir(config.out))
        if config.tracking:
            from w2vdist.tracking import log_run

            run_id = _attempt(result, "tracking", lambda: log_run(config, RunDir(config.out)))
            log.info("tracking: logged to MLflow run %s", run_id)
    return result


def _attempt(result: PipelineResult, name: str, work: Callable[[], Any]) -> Any:
    """`work()`, or StageFailed with `result` recording that `name` failed and why, in one line."""
    try:
        return work()
    except UsageError as exc:
        error: str = str(exc)
        cause: BaseException = exc
    except KeyboardInterrupt as exc:
        error, cause = "interrupted", exc
    except Exception as exc:  # a scheduler needs the summary line, whatever broke; the trace goes to the log
        log.exception("pipeline: %s failed", name)
        error, cause = one_line(exc), exc
    if name in STAGES:
        result.stages[name] = "failed"
    result.failed, result.error = name, error
    raise StageFailed(result, cause) from cause


class StageFailed(Exception):
    def __init__(self, result: PipelineResult, cause: BaseException):
        super().__init__(result.summary())
        self.result = result
        self.cause = cause

    @property
    def exit_code(self) -> int:
        """2 for bad settings or input, 130 when interrupted, 1 for any other failure."""
        if isinstance(self.cause, KeyboardInterrupt):
            return 130
        return self.cause.exit_code if isinstance(self.cause, UsageError) else 1


def _preprocess(config: Config) -> bool:
    run = RunDir(config.out, create=True)
    before = (run.stage("preprocess") or {}).get("completed")
    record = run_preprocess(config)
    return record.get("completed") != before


def _train(config: Config) -> bool:
    from w2vdist.train.launcher import run_train

    run = RunDir(config.out)
    run.require_complete("preprocess", "train")
    before = (run.stage("train") or {}).get("completed")
    record = run_train(config)
    if record is None:
        raise UsageError("training stopped before its last epoch (max_words); run the pipeline again with "
                         "resume=true to finish it")
    return record.get("completed") != before


def _derived_stage(config: Config, name: str, output: str, payload: dict[str, Any],
                   work: Callable[[Path], dict]) -> bool:
    """Run `work(staging)`, which writes `output` into the staging folder, as stage `name` unless it is complete
    for the same trained vectors and `payload`."""
    run = RunDir(config.out)
    trained = run.require_complete("train", name)
    stamp = fingerprint({"train": trained["completed"], **payload})
    if not config.force and run.is_complete(name, stamp):
        log.info("%s: up to date; skipped", name)
        return False
    staging = run.begin(name)
    try:
        with writing(run.path):
            stats = work(staging)
            run.commit(name, staging, [output], {"fingerprint": stamp, "config": payload, "stats": stats})
    except BaseException:
        run.abandon(staging)
        raise
    return True


def _export(config: Config) -> bool:
    from w2vdist.vectors import Vectors

    def work(staging: Path) -> dict:
        vectors = Vectors.from_run(config.out)
        (staging / "export").mkdir()
        files = []
        for fmt in config.export_formats:
            files += [p.name for p in vectors.save(staging / "export" / EXPORT_NAMES[fmt], fmt)]
        return {"files": files, "words": len(vectors), "dim": vectors.dim}

    return _derived_stage(config, "export", "export", {"export_formats": config.export_formats}, work)


def _evaluate(config: Config) -> bool:
    if not config.eval_analogies and not config.eval_similarity:
        return False
    from w2vdist.evaluation import evaluate, save_results
    from w2vdist.vectors import Vectors

    files = [f for f in [config.eval_analogies, *config.eval_similarity] if f]
    for path in files:
        if not os.path.isfile(path):
            raise ConfigError(f"evaluation file '{path}' (settings 'eval_analogies' / 'eval_similarity') "
                              f"does not exist")

    def work(staging: Path) -> dict:
        results = evaluate(Vectors.from_run(config.out), config.eval_analogies, config.eval_similarity)
        save_results(results, staging / "eval" / "evaluation.json")
        return _flat_scores(results)

    payload = {"files": [(f, os.stat(f).st_size, os.stat(f).st_mtime) for f in files]}
    return _derived_stage(config, "evaluate", "eval", payload, work)


def _flat_scores(results: dict[str, Any]) -> dict[str, float]:
    scores = {}
    if "analogy" in results:
        scores["analogy_accuracy"] = results["analogy"]["accuracy"]
    for path, figures in results.get("similarity", {}).items():
        scores[f"{Path(path).stem}_spearman"] = figures["spearman"]
    return scores


def _scores(run: RunDir) -> dict[str, float]:
    record = run.stage("evaluate") or {}
    return {k: v for k, v in (record.get("stats") or {}).items() if isinstance(v, (int, float))}
