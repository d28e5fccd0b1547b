"""Training on this machine without Ray: `python -m w2vdist.train.local RUN_DIR [key=value ...]`.

One replica, the same loop as under Ray Train, checkpoints under RUN_DIR/train/checkpoints-local/. Needs torch,
pyarrow and PyYAML only (numba for the fast CPU kernel, Triton for the GPU one).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

import torch

from w2vdist.config import Config, load_config
from w2vdist.errors import ConfigError, UsageError
from w2vdist.logs import OVERRIDES_HELP, configure_logging
from w2vdist.rundir import RunDir
from w2vdist.train import checkpoints as ckpt
from w2vdist.train import stage
from w2vdist.train.loop import train_loop_per_worker
from w2vdist.train.plan import build_plan
from w2vdist.train.types import WorkerInfo

log = logging.getLogger("w2vdist.train")


def main(argv: list[str] | None = None) -> int:
    """Train one replica on this machine, without Ray."""
    parser = argparse.ArgumentParser(prog="python -m w2vdist.train.local", description=main.__doc__)
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--config", action="append", default=[], metavar="YAML")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        config = load_config(args.config, args.overrides, {"out": args.run_dir})
        if config.num_workers != 1 or config.column_shards not in (1, "auto"):
            log.info("without Ray there is one worker: num_workers=%d and column_shards=%s ignored",
                     config.num_workers, config.column_shards)
            config = dataclasses.replace(config, num_workers=1, column_shards=1)
        with RunDir(config.out).locked("train"):
            _train(config)
    except UsageError as exc:
        print(f"w2vdist train: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def _train(config: Config) -> None:
    plan = build_plan(config)
    if stage.completed_record(plan, config.force or config.resume) is not None:
        return
    if config.use_gpu is True and not torch.cuda.is_available():
        raise ConfigError("setting 'use_gpu' is true but torch sees no GPU here: use use_gpu=auto or false")
    device = torch.device("cuda" if config.use_gpu is not False and torch.cuda.is_available() else "cpu")
    root = RunDir(plan.run_dir).local_checkpoints
    stage.prepare(plan, config.resume, root)
    worker = WorkerInfo(rank=0, workers=1, threads=torch.get_num_threads())
    state = train_loop_per_worker(plan, worker, ckpt.LocalCheckpoints(root), device)
    if state.finished:
        record = stage.finish(plan, ckpt.latest(root), {"workers": 1, "device": device.type})
        log.info("trained in %.1f s: %s", record["seconds"]["train"], RunDir(plan.run_dir).vectors)


if __name__ == "__main__":
    sys.exit(main())
