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
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

from w2vdist.config import Config
from w2vdist.errors import CheckpointError, ConfigError, TrainingDiverged, UsageError, write_failure
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
    settings = plan.settings
    done = stage.completed_record(plan, config.force or config.resume)
    if done is not None:
        return done
    checkpoint_root = RunDir(plan.run_dir).ray_checkpoints
    if config.resume:  # before Ray starts, to fail fast; prepare() decides once more which one to restore
        stage.check_resumable(plan, checkpoint_root)

    import ray
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    started_here = _connect(config.ray_address, config.log_level)
    try:
        use_gpu, cpus_per_worker = _resources(config, ray.cluster_resources())
        restore_from = stage.prepare(plan, config.resume, checkpoint_root)
        log.info("training %s: %d replica(s) x %d column shard(s) on %s, %s words in the vocabulary, %s corpus "
                 "words per epoch, %d epochs", plan.run_dir, settings.replicas, settings.column_shards,
                 "GPUs (NCCL)" if use_gpu else "CPUs (gloo)", f"{plan.vocab_size:,}", f"{plan.raw_tokens:,}",
                 config.epochs)
        trainer = TorchTrainer(
            _worker,
            train_loop_config={"plan": plan, "threads": cpus_per_worker, "log_level": config.log_level,
                               "restore_from": restore_from and str(restore_from)},
            torch_config=_torch_config("nccl" if use_gpu else "gloo", loopback=_all_on_loopback(ray.nodes())),
            scaling_config=ScalingConfig(num_workers=config.num_workers, use_gpu=use_gpu,
                                         resources_per_worker={"CPU": cpus_per_worker, **({"GPU": 1} if use_gpu
                                                                                          else {})}),
            run_config=RunConfig(name=checkpoint_root.name, storage_path=str(checkpoint_root.parent),
                                 failure_config=FailureConfig(max_failures=config.max_failures),
                                 checkpoint_config=CheckpointConfig(num_to_keep=ckpt.KEEP),
                                 # Ray Train's own lines (resources requested, worker group started, every
                                 # checkpoint) only when asked for: w2vdist logs the progress that matters.
                                 logging_config=LoggingConfig(log_level=_ray_level(config.log_level, "WARNING"))),
        )
        try:
            result = trainer.fit()
        except Exception as exc:
            failure = _worker_error(exc, checkpoint_root)
            if failure is not None:
                raise failure from None
            raise
    finally:
        if started_here:
            ray.shutdown()
    # no checkpoint of this run: it resumed from one that had finished already
    folder = Path(result.checkpoint.path) if result.checkpoint is not None else restore_from
    if not ckpt.read_state(folder)["finished"]:
        log.info("training stopped after %s words; `w2vdist train %s resume=true` goes on",
                 f"{result.metrics['words']:,.0f}", plan.run_dir)
        return None
    run_info = {"workers": settings.num_workers, "column_shards": settings.column_shards,
                "device": "gpu" if use_gpu else "cpu",
                "bytes_per_sync": ReplicaGroup.bytes_per_sync(plan.vocab_size, settings.dim, settings.replicas,
                                                              settings.column_shards)}
    record = stage.finish(plan, folder, run_info)
    log.info("trained in %.1f s (%s words/s): %s", record["seconds"]["train"],
             f"{record['stats']['words_per_s']:,.0f}", RunDir(plan.run_dir).vectors)
    return record


def _worker_error(error: Exception, storage: Path) -> UsageError | None:
    """A worker's error that is the user's to fix, as one line: Ray wraps it in its own with the worker's trace.
    A divergence is the settings' fault, a damaged checkpoint the storage's, a full disk too."""
    text = str(error)
    for kind in (TrainingDiverged, CheckpointError):
        marker = f"{kind.__name__}: "
        if marker in text:
            return kind(text.split(marker)[-1].splitlines()[0])
    return write_failure(error, storage)


def _connect(address: str | None, log_level: str = "info") -> bool:
    """Join the given cluster, or start a local Ray on 127.0.0.1. True when this call started Ray.

    The workers' output reaches this terminal (log_to_driver): w2vdist's progress is logged there. Ray's own
    processes log errors only unless log_level is debug: without the dashboard (not installed with ray[train]) Ray
    Train's placement-group cleaner warns every second that the state API is unavailable."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    logging_config = ray.LoggingConfig(log_level=_ray_level(log_level, "ERROR"))
    if address:
        ray.init(address=address, log_to_driver=True, logging_config=logging_config)
    else:
        start_local_ray(log_to_driver=True, logging_config=logging_config)
    return True


def _ray_level(log_level: str, quiet: str) -> str:
    """The level of Ray's own loggers: everything at log_level debug, else only from `quiet` up."""
    return "DEBUG" if log_level == "debug" else quiet


def start_local_ray(**options: Any) -> None:
    """Start a Ray on this machine with every listener on 127.0.0.1: GCS, raylet, workers, the driver, the
    dashboard agent, the runtime-env agent, the metrics endpoints, and gloo's and NCCL's sockets between workers
    (rank 0's torch.distributed rendezvous store is Ray Train's to create: see `_torch_config`).

    Ray binds all of them to loopback when the node's address is exactly 127.0.0.1, but on Linux `ray.init`
    replaces 127.0.0.1 by the machine's outward address unless its single-machine switch
    (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, the default on macOS and Windows) is set, and then everything listens on
    all interfaces. The switch is read when Ray is imported: the environment carries it to Ray's processes, and
    the constant is set for this process, which may have imported Ray already.
    """
    import ray
    from ray._private import ray_constants

    env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": os.environ.get(
        "RAY_USAGE_STATS_ENABLED", "0"),
           # No node of a one-machine Ray is ever preempted, and Ray Train's preemption watcher prints an error
           # line about its own restart policy at every start.
           "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": os.environ.get("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")}
    if sys.platform.startswith("linux"):  # gloo and NCCL listen on the host name's address unless given one
        for name in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):
            env[name] = os.environ.get(name, "lo")
    saved_env = {name: os.environ.get(name) for name in env}
    saved_switch = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ.update(env)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **options)
    finally:  # Ray's processes have their environment now; leave this process's as it was
        ray_constants.ENABLE_RAY_CLUSTER = saved_switch
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    node_address = ray.util.get_node_ip_address()
    if node_address != "127.0.0.1":
        log.warning("the local Ray took the address %s instead of 127.0.0.1: its services listen on every "
                    "interface of this machine (see README, Training)", node_address)


def _all_on_loopback(nodes: list[dict[str, Any]]) -> bool:
    """Every live node of the Ray cluster is this machine on 127.0.0.1 (a Ray that start_local_ray started)."""
    return all(node["NodeManagerAddress"] == "127.0.0.1" for node in nodes if node.get("Alive", True))


def _torch_config(backend: str, loopback: bool):
    """Ray Train's torch setup; on a local Ray, with rank 0's rendezvous store listening on 127.0.0.1 only."""
    from ray.train.torch import TorchConfig

    if not loopback:  # workers on other machines connect to rank 0's store
        return TorchConfig(backend=backend)
    from ray.train.torch.config import _TorchBackend

    class LoopbackTorchBackend(_TorchBackend):
        def on_start(self, worker_group, backend_config):
            worker_group.execute(bind_rendezvous_to_loopback)
            super().on_start(worker_group, backend_config)

    class LoopbackTorchConfig(TorchConfig):
        @property
        def backend_cls(self):
            return LoopbackTorchBackend

    return LoopbackTorchConfig(backend=backend)


def bind_rendezvous_to_loopback() -> None:
    """In a worker: rank 0's torch.distributed rendezvous store listens on 127.0.0.1 instead of every interface.

    torch's TCPStore binds its server to `::` and has no setting for the address, only for a socket to serve on
    (`master_listen_fd`); Ray Train asks torch for the store with `env://` before any w2vdist code runs in the
    worker. So the function that makes the store for `env://` is wrapped to hand rank 0's store a socket bound to
    127.0.0.1 on the port Ray chose.
    """
    import importlib
    import socket

    from torch.distributed import TCPStore

    # by module name: `torch.distributed.rendezvous` is also the name of a function in torch.distributed
    rendezvous = importlib.import_module("torch.distributed.rendezvous")
    create = rendezvous._create_c10d_store
    if getattr(create, "loopback", False):
        return

    def create_on_loopback(hostname, port, rank, world_size, timeout, use_libuv=True):
        if rank != 0 or hostname != "127.0.0.1":
            return create(hostname, port, rank, world_size, timeout, use_libuv)
        listener = socket.create_server(("127.0.0.1", port), backlog=1024)
        return TCPStore(hostname, port, world_size, True, timeout, multi_tenant=True,
                        master_listen_fd=listener.detach(), use_libuv=use_libuv)

    create_on_loopback.loopback = True
    rendezvous._create_c10d_store = create_on_loopback


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

    configure_logging(config["log_level"])
    context = ray.train.get_context()
    worker = WorkerInfo(rank=context.get_world_rank(), workers=context.get_world_size(), threads=config["threads"],
                        ray_node=ray.get_runtime_context().get_node_id())
    train_loop_per_worker(config["plan"], worker, RayCheckpoints(config.get("restore_from")),
                          ray.train.torch.get_device())


class RayCheckpoints:
    """Checkpoints through Ray Train: each worker reports its folder, Ray merges them in the run's storage.

    A run restores from the last checkpoint it reported itself (Ray Train restarting failed workers), or else
    from `restore_from`, the checkpoint the driver checked for a resume (Ray's record of older runs is cleared).
    """

    def __init__(self, restore_from: str | None = None):
        self.restore_from = restore_from

    def restore(self, load: Callable[[Path], T]) -> T | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None if self.restore_from is None else load(Path(self.restore_from))
        with checkpoint.as_directory() as folder:
            return load(Path(folder))

    def save(self, directory: Path | None, number: int, metrics: dict[str, Any]) -> None:
        import ray.train

        checkpoint = None if directory is None else ray.train.Checkpoint.from_directory(str(directory))
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=ckpt.folder_name(number))

