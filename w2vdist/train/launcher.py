"""`w2vdist train RUN_DIR` and jobs/train.py: Ray Train (TorchTrainer) workers over a run directory.

Everything that can be checked without Ray is checked first (plan.build_plan, and the checkpoint a resume would
continue from); then Ray is joined (ray_address, or RAY_ADDRESS as `ray job submit` sets it) or started locally
on 127.0.0.1, and the settings are checked against its resources before any worker starts. Workers use NCCL on
GPUs and gloo on CPUs; a worker that dies is replaced and the group restarts from the last checkpoint, up to
max_failures times. This is the only module that imports ray.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from w2vdist.config import Config
from w2vdist.errors import ConfigError, TrainingDiverged
from w2vdist.rundir import RunDir
from w2vdist.train import checkpoints as ckpt
from w2vdist.train import stage
from w2vdist.train.plan import build_plan
from w2vdist.train.replicas import ReplicaGroup
from w2vdist.train.types import WorkerInfo

log = logging.getLogger("w2vdist.train")

T = TypeVar("T")
GPU_WORKER_CPUS = 4  # CPUs a GPU worker asks for: the read-ahead thread and the Python loop


def run_train(config: Config) -> dict[str, Any] | None:
    """Train; return the stage's manifest record, or None when the run stopped early (max_words)."""
    if not config.out:
        raise ConfigError("setting 'out' is required: the run directory to train on (w2vdist train RUN_DIR)")
    with RunDir(config.out).locked("train"):
        return _run_train(config)


def _run_train(config: Config) -> dict[str, Any] | None:
    plan = build_plan(config)
    done = stage.completed_record(plan, config.force or config.resume)
    if done is not None:
        return done
    checkpoint_root = Path(plan.run_dir).resolve() / stage.TRAIN_DIR / stage.RAY_CHECKPOINTS
    if config.resume:
        stage.check_resumable(plan, checkpoint_root)

    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    started_here = _connect(config.ray_address)
    try:
        use_gpu, cpus_per_worker = _resources(config, ray.cluster_resources())
        stage.prepare(plan, config.resume, checkpoint_root)
        log.info("training %s: %d replica(s) on %s, %s words in the vocabulary, %s corpus words per epoch, "
                 "%d epochs", plan.run_dir, config.num_workers, "GPUs (NCCL)" if use_gpu else "CPUs (gloo)",
                 f"{plan.vocab_size:,}", f"{plan.raw_tokens:,}", config.epochs)
        trainer = TorchTrainer(
            _worker,
            train_loop_config={"plan": plan, "threads": cpus_per_worker},
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            scaling_config=ScalingConfig(num_workers=config.num_workers, use_gpu=use_gpu,
                                         resources_per_worker={"CPU": cpus_per_worker, **({"GPU": 1} if use_gpu
                                                                                          else {})}),
            run_config=RunConfig(name=stage.RAY_CHECKPOINTS, storage_path=str(checkpoint_root.parent),
                                 failure_config=FailureConfig(max_failures=config.max_failures),
                                 checkpoint_config=CheckpointConfig(num_to_keep=ckpt.KEEP)),
        )
        try:
            result = trainer.fit()
        except Exception as exc:  # Ray wraps the worker's error; a divergence is the settings' fault, not a crash
            if TrainingDiverged.__name__ in str(exc):
                raise TrainingDiverged(str(exc).split(f"{TrainingDiverged.__name__}: ")[-1].splitlines()[0]) \
                    from None
            raise
    finally:
        if started_here:
            ray.shutdown()
    folder = Path(result.checkpoint.path)
    if not ckpt.read_state(folder)["finished"]:
        log.info("training stopped after %s words; `w2vdist train %s resume=true` goes on",
                 f"{result.metrics['words']:,.0f}", plan.run_dir)
        return None
    run_info = {"workers": config.num_workers, "device": "gpu" if use_gpu else "cpu",
                "bytes_per_sync": ReplicaGroup.bytes_per_sync(plan.vocab_size, config.dim, config.num_workers)}
    record = stage.finish(plan, folder, run_info)
    log.info("trained in %.1f s (%s words/s): %s", record["seconds"]["train"],
             f"{record['stats']['words_per_s']:,.0f}", Path(plan.run_dir) / "vectors")
    return record


def _connect(address: str | None) -> bool:
    """Join the given cluster, or start a local Ray on 127.0.0.1. True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # Ray's own processes log errors only: without the dashboard (not installed with ray[train]) Ray Train's
        # placement-group cleaner warns every second that the state API is unavailable. Workers log at INFO.
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=True,
                 logging_config=ray.LoggingConfig(log_level="ERROR"))
    return True


def _resources(config: Config, cluster: dict[str, float]) -> tuple[bool, int]:
    """(use GPUs?, CPUs per worker) for these settings on this cluster; a clear error where they cannot work."""
    gpus, cpus = int(cluster.get("GPU", 0)), int(cluster.get("CPU", 0))
    use_gpu = gpus > 0 if config.use_gpu == "auto" else config.use_gpu
    if use_gpu and gpus == 0:
        raise ConfigError("setting 'use_gpu' is true but the Ray cluster has no GPU: use use_gpu=auto or false")
    if use_gpu and config.num_workers > gpus:
        raise ConfigError(f"setting 'num_workers' ({config.num_workers}) asks for more GPU workers than the Ray "
                          f"cluster has GPUs ({gpus})")
    if config.num_workers > cpus:
        raise ConfigError(f"setting 'num_workers' ({config.num_workers}) asks for more workers than the Ray "
                          f"cluster has CPUs ({cpus})")
    per_worker = min(GPU_WORKER_CPUS, cpus // config.num_workers) if use_gpu else cpus // config.num_workers
    return use_gpu, max(1, per_worker)


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the loop on the device Ray gave it, checkpoints through Ray Train."""
    import ray
    import ray.train.torch

    from w2vdist.logs import configure_logging
    from w2vdist.train.loop import train_loop_per_worker

    configure_logging()
    logging.getLogger("w2vdist").setLevel(logging.INFO)
    context = ray.train.get_context()
    worker = WorkerInfo(rank=context.get_world_rank(), replicas=context.get_world_size(), threads=config["threads"],
                        ray_node=ray.get_runtime_context().get_node_id())
    train_loop_per_worker(config["plan"], worker, RayCheckpoints(), ray.train.torch.get_device())


class RayCheckpoints:
    """Checkpoints through Ray Train: each worker reports its folder, Ray merges them in the run's storage."""

    def restore(self, load: Callable[[Path], T]) -> T | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return load(Path(folder))

    def save(self, directory: Path | None, number: int, metrics: dict[str, Any]) -> None:
        import ray.train

        checkpoint = None if directory is None else ray.train.Checkpoint.from_directory(str(directory))
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=ckpt.folder_name(number))

