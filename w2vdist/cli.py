"""The `w2vdist` command. Each subcommand parses its arguments here and hands a Config to its stage's module."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import traceback
from typing import Callable, Iterator

from w2vdist import __version__, commands
from w2vdist.config import DEFAULT_CONFIG_PATH, LOG_LEVELS, SAMPLE_PROFILE, SETTINGS, load_config
from w2vdist.errors import UsageError, one_line
from w2vdist.logs import OVERRIDES_HELP, configure_logging

log = logging.getLogger("w2vdist")

DESCRIPTION = f"""Distributed word2vec (skip-gram with negative sampling): Spark prepares a corpus, Ray trains the
vectors, and the other commands query, evaluate, export and draw them.

first run:  w2vdist pipeline --sample        (the bundled sample language into runs/sample, about a minute)
then:       w2vdist analogy runs/sample man king woman
            w2vdist similar runs/sample paris "New York"

Every setting, with its default and meaning: {DEFAULT_CONFIG_PATH}"""
_SETTING_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", default=[], metavar="YAML",
                        help="a settings file; may be given more than once, later files win")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)


def is_setting(word: str) -> bool:
    """Whether a command-line word is a `key=value` setting rather than a path. A path may hold `=` (Hive-style
    partitions: data/lang=en, s3a://bucket/year=2024): a word is a setting when its key is one, or when its key could
    be one and no such path exists, so that a misspelt setting is reported with a suggestion."""
    key, sep, _ = word.partition("=")
    if not sep:
        return False
    return key in SETTINGS or (_SETTING_KEY.fullmatch(key) is not None and not os.path.exists(word))


def _split_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    """Positional words are inputs unless they are settings."""
    overrides = [item for item in items if is_setting(item)]
    return [item for item in items if not is_setting(item)], overrides


# --- preprocess ------------------------------------------------------------------------------------------------
def _add_preprocess(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preprocess", help="Spark: tokenize, count, phrases, subsample, skip-gram pairs to Parquet",
                       description="Read a corpus and write vocab/, phrases/, corpus/, pairs/ and manifest.json "
                                   "into the run directory. Example: w2vdist preprocess corpus/ --out runs/wiki "
                                   "min_count=10")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="corpus files or folders (text, .gz, .bz2, Parquet, "
                                                                "JSON lines; data/lang=en is a folder); a word whose "
                                                                "key is a setting (min_count=10) is a setting")
    p.add_argument("--out", help="the run directory (setting `out`)")
    p.add_argument("--force", action="store_true", help="redo even if a complete output matches (setting `force`)")
    p.add_argument("--config", action="append", default=[], metavar="YAML",
                   help="a settings file; may be given more than once, later files win")
    p.add_argument("--submitted", action="store_true", help=argparse.SUPPRESS)  # set by jobs/preprocess.py
    p.set_defaults(handler=_run_preprocess)


def _run_preprocess(args: argparse.Namespace) -> int:
    from w2vdist.preprocess.job import run_preprocess

    inputs, overrides = _split_overrides(args.inputs)
    values: dict = {}
    if inputs:
        values["input"] = inputs
    if args.out:
        values["out"] = args.out
    if args.force:
        values["force"] = True
    config = load_config(args.config, overrides, values)
    configure_logging(config.log_level)
    run_preprocess(config, submitted=args.submitted)
    return 0


# --- train -----------------------------------------------------------------------------------------------------
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="Ray Train: skip-gram negative sampling on a preprocessed run directory",
                       description="Train the input and output tables on the run directory's corpus/ (or pairs/, "
                                   "setting pair_source), on num_workers Ray Train workers (data-parallel replicas "
                                   "x column_shards), and write vectors/ into the run directory. Example: w2vdist "
                                   "train runs/wiki epochs=5 num_workers=2")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory with a complete preprocess output")
    _config_args(p)
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from w2vdist.train.launcher import run_train

    config = load_config(args.config, args.overrides, {"out": args.run_dir})
    configure_logging(config.log_level)
    run_train(config)
    return 0


# --- pipeline --------------------------------------------------------------------------------------------------
def _add_pipeline(sub: argparse._SubParsersAction) -> None:
    from w2vdist.pipeline import STAGES

    p = sub.add_parser("pipeline", help="preprocess, train, export, evaluate and plot into one run directory",
                       description="Run every stage into the run directory `out`, skipping those whose output is "
                                   "complete for the same inputs and settings; every stage's settings, files and "
                                   "optional packages are checked before the first starts. Prints one summary "
                                   "line; exit code 0 done, 1 a stage failed, 2 bad settings or input. Example: "
                                   "w2vdist pipeline conf/local.yaml, or w2vdist pipeline --sample")
    p.add_argument("config_file", nargs="?", metavar="CONFIG",
                   help="a settings file (conf/local.yaml, conf/cluster.yaml ...)")
    p.add_argument("--sample", action="store_true", help=f"run the bundled sample profile ({SAMPLE_PROFILE}) "
                                                         f"instead of CONFIG: the sample language into runs/sample")
    p.add_argument("--config", action="append", default=[], metavar="YAML", help="more settings files, applied "
                                                                                  "after CONFIG (conf/gpu.yaml)")
    p.add_argument("--stage", action="append", choices=STAGES, dest="stages", metavar="STAGE",
                   help=f"run only this stage (one of {', '.join(STAGES)}; may be repeated), the earlier ones "
                        f"being complete: one scheduler task per stage")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP + " (input=..., out=...)")
    p.set_defaults(handler=_run_pipeline)


def _run_pipeline(args: argparse.Namespace) -> int:
    from w2vdist.pipeline import PipelineResult, StageFailed, run_pipeline

    result, code = PipelineResult(run_dir=None), 0
    with _stdout_to_stderr():
        try:
            if args.sample and args.config_file and is_setting(args.config_file):  # argparse fills CONFIG first
                args.overrides, args.config_file = [args.config_file, *args.overrides], None
            if args.sample == bool(args.config_file):
                raise UsageError("give a settings file (w2vdist pipeline conf/local.yaml) or --sample, not both")
            config = load_config([SAMPLE_PROFILE if args.sample else args.config_file, *args.config],
                                 args.overrides)
            configure_logging(config.log_level)
            result.run_dir = config.out
            result = run_pipeline(config, args.stages)
        except StageFailed as failed:
            result, code = failed.result, failed.exit_code
            if isinstance(failed.cause, UsageError):  # the log has the others' traces; this is the user's to fix
                print(f"w2vdist pipeline: error: {' '.join(str(failed.cause).split())}", file=sys.stderr)
        except UsageError as exc:
            result.failed, result.error, code = "settings", str(exc), exc.exit_code
        except Exception as exc:
            log.exception("pipeline failed")
            result.failed, result.error, code = result.failed or "pipeline", one_line(exc), 1
    print(result.summary())
    return code


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send everything written to file descriptor 1 meanwhile (Spark's JVM, Ray's processes, libraries) to
    stderr, so that the summary printed afterwards is the only line on stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_preprocess,
    _add_train,
    _add_pipeline,
    *commands.SUBCOMMANDS,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="w2vdist", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="what to log to stderr (default: the setting "
                                                                "log_level, info); debug also shows Ray's and "
                                                                "Spark's own logs")
    parser.add_argument("-v", "--verbose", dest="log_level", action="store_const", const="debug",
                        help="the same as --log-level debug")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line as the handlers take it."""
    parser = build_parser()
    # Settings may follow options (`--out RUN key=value`), which argparse leaves over after the positionals.
    args, extra = parser.parse_known_args(argv)
    unknown = [word for word in extra if "=" not in word or word.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        for name in ("inputs", "overrides"):
            if hasattr(args, name):
                setattr(args, name, getattr(args, name) + extra)
                break
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exit:
        words = sys.argv[1:] if argv is None else argv
        if exit.code and "pipeline" in words:
            print("w2vdist pipeline FAILED at settings: the command line is wrong (usage above)")
        raise
    for name in ("overrides", "inputs"):  # one setting, whichever way it is given; the settings files come first
        if args.log_level and hasattr(args, name):
            setattr(args, name, [*getattr(args, name), f"log_level={args.log_level}"])
            break
    configure_logging(args.log_level or "info")
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"w2vdist {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"w2vdist {args.command}: interrupted; completed stages stay usable", file=sys.stderr)
        return 130
    except Exception as exc:  # not the user's to fix: the trace for a bug report, then the one line that matters
        traceback.print_exc()
        print(f"w2vdist {args.command}: failed: {one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
