"""`w2vdist pipeline CONFIG`: preprocess, train, export, evaluate and plot into one run directory, for schedulers.

Before the first stage starts, every stage's settings, files and optional packages are checked (`check`), so bad
settings fail in seconds, not after hours of preprocessing. Each stage is skipped when the manifest says its
output is complete for the same inputs and settings, so a scheduled re-run does only what changed, and a stage that
fails leaves the earlier ones complete for the next try. `stages` runs some of them only (one scheduler task per
stage). The exit code (0 done, 1 a stage failed, 2 bad settings or input) and one summary line on stdout are what a
scheduler reads; the log goes to stderr. With `tracking`, the run is logged to MLflow (`tracking.Tracker`): the
epochs while training runs, everything else at the end, and nothing new when every stage was skipped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from w2vdist.config import Config
from w2vdist.datasets import EVALUATION_DIR, EXPORT_DIR, PLOTS_DIR, RunLayout
from w2vdist.errors import ConfigError, UsageError, one_line, writing
from w2vdist.rundir import RunDir, fingerprint

if TYPE_CHECKING:
    from w2vdist.tracking import Tracker

log = logging.getLogger(__name__)

STAGES = ("preprocess", "train", "export", "evaluate", "plot")


@dataclass
class PipelineResult:
    run_dir: str | None
    stages: dict[str, str] = field(default_factory=dict)  # stage -> "done" | "skipped" | "failed"
    seconds: dict[str, float] = field(default_factory=dict)
    failed: str | None = None
    error: str | None = None
    scores: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line, whatever the error said: a scheduler shows the last line of the output."""
        parts = [f"{name} {state}" + (f" {self.seconds[name]:.1f}s" if state == "done" else "")
                 for name, state in self.stages.items()]
        line = "w2vdist pipeline " + ("OK" if self.failed is None else f"FAILED at {self.failed}") + ":"
        line += f" {self.run_dir}:" if self.run_dir else ""
        line += f" {', '.join(parts)}" if parts else ""
        line += f" | {', '.join(self.scores)}" if self.scores else ""
        line += f" | {' '.join(self.error.split())}" if self.error else ""
        return line

    @property
    def ran(self) -> bool:
        return any(state == "done" for state in self.stages.values())


def run_pipeline(config: Config, stages: Sequence[str] | None = None) -> PipelineResult:
    """Run `stages` (all by default, in pipeline order) into `config.out`; raises StageFailed, holding the result so
    far, when one fails, or when the checks find a problem before any (then "at settings", nothing written)."""
    if not config.out:
        raise ConfigError("setting 'out' is required: the run directory (out=RUN_DIR)")
    selected = [name for name in STAGES if not stages or name in stages]
    result = PipelineResult(run_dir=config.out)
    _attempt(result, "settings", lambda: check(config, selected))
    tracker: Tracker | None = None
    work: dict[str, Callable[[Config, Tracker | None], bool]] = {
        "preprocess": _preprocess, "train": _train, "export": _export, "evaluate": _evaluate, "plot": _plot}
    with contextlib.ExitStack() as stack:
        _attempt(result, "start", lambda: stack.enter_context(RunDir(config.out, create=True).locked("pipeline")))
        if config.tracking:
            from w2vdist.tracking import Tracker

            tracker = _attempt(result, "tracking", lambda: Tracker(config, RunDir(config.out)))
        for name in selected:
            started = time.monotonic()
            ran = _attempt(result, name, lambda: work[name](config, tracker), tracker)
            result.stages[name] = "done" if ran else "skipped"
            result.seconds[name] = round(time.monotonic() - started, 2)
        result.scores = summary_scores((RunDir(config.out).stage("evaluate") or {}).get("stats") or {})
        if tracker is not None:
            run_id = _attempt(result, "tracking", lambda: tracker.finish(result.ran))
            if run_id:
                log.info("tracking: logged to MLflow run %s", run_id)
            else:
                log.info("tracking: every stage was up to date and is logged already; no new MLflow run")
    return result


def _attempt(result: PipelineResult, name: str, work: Callable[[], Any], tracker: Tracker | None = None) -> Any:
    """`work()`, or StageFailed with `result` recording that `name` failed and why, in one line (and the MLflow
    run, if one started, ended as failed)."""
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
    if tracker is not None:
        try:
            tracker.fail()
        except Exception:
            log.exception("tracking: could not mark the MLflow run failed")
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


# --- checks before any work --------------------------------------------------------------------------------------
def check(config: Config, stages: Sequence[str] = STAGES) -> None:
    """Everything the stages will need that can be known before the first starts: the settings that must agree,
    the files they name and the optional packages they use (the corpus only when preprocess is one of `stages`).
    Raises one ConfigError listing every problem."""
    problems: list[str] = []

    def run(test: Callable[[], None]) -> None:
        try:
            test()
        except UsageError as exc:
            problems.append(str(exc).replace("\n", "\n  "))

    if not config.out:
        problems.append("setting 'out' is required: the run directory (out=RUN_DIR)")
    if "preprocess" in stages:
        from w2vdist.preprocess.inputs import discover_inputs
        from w2vdist.preprocess.job import base_run_record

        run(lambda: discover_inputs(config.input, config))
        if config.out:
            run(lambda: base_run_record(config))
    # The later stages' settings are checked even when only an earlier stage runs (one scheduler task per stage):
    # the first task then fails on them within seconds, not after hours of work.
    from w2vdist.evaluation import read_analogies, read_word_pairs
    from w2vdist.plots import read_word_list
    from w2vdist.train.plan import settings_problems

    problems.extend(settings_problems(config))
    if not (config.ray_address or os.environ.get("RAY_ADDRESS")) and config.num_workers > (os.cpu_count() or 1):
        problems.append(f"setting 'num_workers' ({config.num_workers}) asks for more workers than the local Ray "
                        f"will have CPUs ({os.cpu_count()}): lower it, or join a cluster with ray_address")
    if config.eval_analogies:
        run(lambda: read_analogies(config.eval_analogies))
    for path in config.eval_similarity:
        run(lambda path=path: read_word_pairs(path))
    for path in _list_files(config):
        run(lambda path=path: read_word_list(path))
    if config.tracking:
        from w2vdist.tracking import check_installed

        run(check_installed)
    if problems:
        raise ConfigError("the pipeline cannot start: " + "; ".join(problems))


# --- stages ------------------------------------------------------------------------------------------------------
def _preprocess(config: Config, tracker: Tracker | None) -> bool:
    from w2vdist.preprocess.job import run_preprocess

    run = RunDir(config.out, create=True)
    before = (run.stage("preprocess") or {}).get("completed")
    record = run_preprocess(config)
    return record.get("completed") != before


def _train(config: Config, tracker: Tracker | None) -> bool:
    from w2vdist.train.launcher import run_train

    run = RunDir(config.out)
    run.require_complete("preprocess", "train")
    before = (run.stage("train") or {}).get("completed")
    if tracker is not None:  # the MLflow run starts with the first epoch's line, if training does not skip
        with tracker.following_epochs():
            record = run_train(config)
    else:
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
    if run.up_to_date(name, stamp, config.force) is not None:
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


def _export(config: Config, tracker: Tracker | None) -> bool:
    from w2vdist.vectors import Vectors

    def work(staging: Path) -> dict:
        vectors = Vectors.from_run(config.out)
        outputs = RunLayout(staging)
        outputs.export.mkdir()
        files = []
        for fmt in config.export_formats:
            files += [p.name for p in vectors.save(outputs.export_file(fmt), fmt)]
        return {"files": files, "words": len(vectors), "dim": vectors.dim}

    return _derived_stage(config, "export", EXPORT_DIR, {"export_formats": config.export_formats}, work)


def _file_stamps(paths: Sequence[str]) -> list[tuple[str, int, float]]:
    return [(path, os.stat(path).st_size, os.stat(path).st_mtime) for path in paths]


def _evaluate(config: Config, tracker: Tracker | None) -> bool:
    if not config.eval_analogies and not config.eval_similarity:
        return False
    from w2vdist.evaluation import coverage_warnings, evaluate, save_results
    from w2vdist.vectors import Vectors

    files = [f for f in [config.eval_analogies, *config.eval_similarity] if f]

    def work(staging: Path) -> dict:
        results = evaluate(Vectors.from_run(config.out), config.eval_analogies, config.eval_similarity)
        save_results(results, RunLayout(staging).evaluation)
        for warning in coverage_warnings(results):
            log.warning("evaluate: %s", warning)
        return _flat_scores(results)

    return _derived_stage(config, "evaluate", EVALUATION_DIR, {"files": _file_stamps(files)}, work)


def _list_files(config: Config) -> list[str]:
    return [path for item in config.plot_lists for path in ([item] if isinstance(item, str) else item)]


def _plot(config: Config, tracker: Tracker | None) -> bool:
    """RUN_DIR/plots/: a picture of each plot_lists item (NAME.png, NAME.html: the lists' names joined by -), of
    the plot_top most frequent words (top.png, top.html), of the training probes (probes.png) and of the evaluation
    (evaluation.png), whichever there are."""
    run = RunDir(config.out)
    probes = run.probe_records
    evaluation = run.evaluation
    if not (config.plot_lists or config.plot_top or probes.is_file() or evaluation.is_file()):
        return False

    def work(staging: Path) -> dict:
        import json

        from w2vdist.plots import plot_evaluation, plot_space, read_word_list, select_words
        from w2vdist.probes import plot_probes
        from w2vdist.vectors import Vectors

        folder = RunLayout(staging).plots
        folder.mkdir()
        drawn = []
        if config.plot_lists or config.plot_top:
            vectors = Vectors.from_run(config.out)
            listed = [word for path in _list_files(config) for word in read_word_list(path)]
            missing = [word for word in dict.fromkeys(listed) if word not in vectors]
            if missing:
                log.warning("plot: %d listed word(s) are not in the vocabulary and are left out: %s", len(missing),
                            ", ".join(missing[:20]))
            pictures = [([item] if isinstance(item, str) else item, None) for item in config.plot_lists]
            for lists, top in pictures + ([([], config.plot_top)] if config.plot_top else []):
                name = "-".join(Path(path).stem for path in lists) if lists else "top"
                selection = select_words(vectors, (), lists, top, skip_unknown=True)
                drawn += plot_space(vectors, selection, folder / name, config.plot_method, config.seed)
        if probes.is_file():
            drawn.append(plot_probes(probes.parent, folder / "probes.png"))
        if evaluation.is_file():
            drawn.append(plot_evaluation(json.loads(evaluation.read_text(encoding="utf-8")),
                                         folder / "evaluation.png"))
        log.info("plot: drew %s", ", ".join(str(run.plots / path.name) for path in drawn))
        return {"files": [path.name for path in drawn]}

    payload = {"plot_lists": config.plot_lists, "files": _file_stamps(_list_files(config)),
               "plot_top": config.plot_top, "plot_method": config.plot_method, "seed": config.seed,
               "probes": _file_stamps([str(probes)]) if probes.is_file() else None,
               "evaluate": (run.stage("evaluate") or {}).get("completed")}
    return _derived_stage(config, "plot", PLOTS_DIR, payload, work)


# --- scores ------------------------------------------------------------------------------------------------------
def _flat_scores(results: dict[str, Any]) -> dict[str, float]:
    scores = {}
    if "analogy" in results:
        analogy = results["analogy"]
        scores.update(analogy_accuracy=analogy["accuracy"], analogy_correct=analogy["correct"],
                      analogy_total=analogy["total"], analogy_coverage=analogy["coverage"])
    for path, figures in results.get("similarity", {}).items():
        scores[f"{Path(path).stem}_spearman"] = figures["spearman"]
    return scores


def summary_scores(stats: dict[str, Any]) -> list[str]:
    """The evaluation's figures as the summary line shows them: analogy_accuracy 72.5% (574/792), ..."""
    shown = []
    for key, value in stats.items():
        if key == "analogy_accuracy" and value is not None:
            shown.append(f"{key} {value:.1%} ({stats.get('analogy_correct')}/{stats.get('analogy_total')})")
        elif key.endswith("_spearman") and value is not None:
            shown.append(f"{key} {value:.4f}")
    return shown
