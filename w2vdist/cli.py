"""The `w2vdist` command. Each subcommand parses its arguments here and hands a Config to its stage's module."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from typing import Callable, Iterator

from w2vdist import commands
from w2vdist.config import load_config
from w2vdist.errors import UsageError, one_line
from w2vdist.logs import OVERRIDES_HELP, configure_logging

log = logging.getLogger("w2vdist")


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", default=[], metavar="YAML",
                        help="a settings file; may be given more than once, later files win")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)


def _split_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    """Positional words are inputs unless they look like key=value."""
    overrides = [item for item in items if "=" in item and not item.startswith(("/", "."))]
    others = [item for item in items if item not in overrides]
    return others, overrides


# --- preprocess ------------------------------------------------------------------------------------------------
def _add_preprocess(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preprocess", help="Spark: tokenize, count, phrases, subsample, skip-gram pairs to Parquet",
                       description="Read a corpus and write vocab/, phrases/, corpus/, pairs/ and manifest.json "
                                   "into the run directory.")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="corpus files or folders; key=value words are "
                                                                "settings")
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
    run_preprocess(config, submitted=args.submitted)
    return 0


# --- train -----------------------------------------------------------------------------------------------------
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="Ray Train: skip-gram negative sampling on the run directory's pairs/",
                       description="Train the input and output tables, sharded by columns over num_workers Ray "
                                   "Train workers, and write vectors/ into the run directory.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory with a complete preprocess output")
    _config_args(p)
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from w2vdist.train.launcher import run_train

    run_train(load_config(args.config, args.overrides, {"out": args.run_dir}))
    return 0


# --- pipeline --------------------------------------------------------------------------------------------------
def _add_pipeline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="preprocess, train, export and evaluate into one run directory",
                       description="Run every stage into the run directory `out`, skipping those whose output is "
                                   "complete for the same inputs and settings. Prints one summary line; exit code "
                                   "0 done, 1 a stage failed, 2 bad settings or input.")
    p.add_argument("config_file", metavar="CONFIG", help="a settings file (conf/local.yaml, conf/cluster.yaml ...)")
    p.add_argument("--config", action="append", default=[], metavar="YAML", help="more settings files, applied "
                                                                                  "after CONFIG (conf/gpu.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP + " (input=..., out=...)")
    p.set_defaults(handler=_run_pipeline)


def _run_pipeline(args: argparse.Namespace) -> int:
    from w2vdist.pipeline import PipelineResult, StageFailed, run_pipeline

    result, code = PipelineResult(run_dir=None), 0
    with _stdout_to_stderr():
        try:
            config = load_config([args.config_file, *args.config], args.overrides)
            result.run_dir = config.out
            result = run_pipeline(config)
        except StageFailed as failed:
            result, code = failed.result, failed.exit_code
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
    parser = argparse.ArgumentParser(prog="w2vdist", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = _parse_args(parser, argv)
    except SystemExit as exit:
        words = sys.argv[1:] if argv is None else argv
        if exit.code and next((w for w in words if not w.startswith("-")), None) == "pipeline":
            print("w2vdist pipeline FAILED at settings: the command line is wrong (usage above)")
        raise
    configure_logging(args.verbose)
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


def _parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
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


if __name__ == "__main__":
    sys.exit(main())
