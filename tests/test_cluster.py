"""Cluster submission for real, on 127.0.0.1: `spark-submit jobs/preprocess.py` to a Spark standalone master with
one worker, and `ray job submit -- python jobs/train.py` to a Ray head plus a second Ray node, every process
started here in its own process group and stopped (and checked gone) in the fixtures' teardown.

    python -m pytest -q -m cluster tests/test_cluster.py

Needs Java 17 (Spark) and the Ray dashboard's packages (`ray[default]`: the job server lives in the dashboard).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq
import pytest

from tests.cluster_procs import (Service, free_ports, group_members, kill_processes_mentioning, processes_mentioning,
                                 stop_group, tail, wait_for)

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[1]
CORPUS = "w2vdist/data/sample/corpus.txt.gz"  # relative to REPO, where the jobs are submitted from
SUBMIT_TIMEOUT = 300  # seconds for one spark-submit or one Ray job
TRAIN_ARGS = ["num_workers=2", "dim=8", "epochs=1", "max_failures=0"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # each command gets its address explicitly
    env.update(extra)
    return env


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _require(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"`{program}` is not on PATH (it comes with the pyspark / ray packages)")
    return path


def _run(name: str, argv: list[str], log: Path, timeout: float, env: dict[str, str]) -> int:
    """Run a client command in its own process group, output to `log`; kill the group when it overruns."""
    service = Service(name, argv, log, env=env, cwd=REPO)
    try:
        return service.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{name} did not finish within {timeout:.0f} s\n{service.describe()}") from None
    finally:
        service.stop(grace=5)


# --- Spark standalone --------------------------------------------------------------------------------------------
@dataclass
class SparkCluster:
    master_url: str      # spark://127.0.0.1:PORT
    status_url: str      # the master's JSON status
    env: dict[str, str]
    root: Path
    describe: Callable[[], str]


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    _require("spark-class")
    root = tmp_path_factory.mktemp("spark")
    port, ui_port, worker_port, worker_ui_port = free_ports(4)
    env = _env(SPARK_LOCAL_IP="127.0.0.1", SPARK_WORKER_DIR=str(root / "work"), SPARK_LOCAL_DIRS=str(root / "local"),
               PYSPARK_PYTHON=sys.executable)
    master_url, status_url = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}/json/"
    services: list[Service] = []

    def describe() -> str:
        return "\n".join(s.describe() for s in services)

    try:
        services.append(Service("Spark master", ["spark-class", "org.apache.spark.deploy.master.Master",
                                                 "--host", "127.0.0.1", "--port", str(port),
                                                 "--webui-port", str(ui_port)], root / "master.log", env))
        wait_for(f"the Spark master did not answer at {status_url}", lambda: _get_json(status_url), 90, describe)
        services.append(Service("Spark worker", ["spark-class", "org.apache.spark.deploy.worker.Worker", master_url,
                                                 "--host", "127.0.0.1", "--port", str(worker_port),
                                                 "--webui-port", str(worker_ui_port), "--cores", "2",
                                                 "--memory", "2g"], root / "worker.log", env))
        wait_for("the Spark worker did not register with the master",
                 lambda: [w for w in _get_json(status_url)["workers"] if w["state"] == "ALIVE"], 60, describe)
        yield SparkCluster(master_url, status_url, env, root, describe)
    finally:
        for service in reversed(services):
            service.stop()
        # Executors and their Python workers run in the worker's process group; anything else naming the cluster's
        # addresses would have escaped it.
        markers = [f"spark://127.0.0.1:{port} ", f"spark://Worker@127.0.0.1:{worker_port} "]
        left = kill_processes_mentioning(markers)
        left.update({pid: "(in a Spark process group)" for s in services for pid in group_members(s.pgid)})
        assert not left, f"Spark processes were still running after the cluster was stopped: {left}"


@dataclass
class Submitted:
    returncode: int | None  # None: killed after SUBMIT_TIMEOUT (`error` says so)
    error: str
    log: Path
    run_dir: Path
    apps_before: set[str]
    status: dict


@pytest.fixture(scope="module")
def spark_submitted(spark_cluster, tmp_path_factory) -> Submitted:
    """`spark-submit jobs/preprocess.py` of the bundled corpus, as the README shows it; asserted on by the Spark
    test, and its run directory trained on by the Ray test."""
    _require("spark-submit")
    run_dir = tmp_path_factory.mktemp("run") / "sample"
    before = {a["id"] for a in _get_json(spark_cluster.status_url)["completedapps"]}
    log = spark_cluster.root / "spark-submit.log"
    argv = ["spark-submit", "--master", spark_cluster.master_url,
            "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
            "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=4",
            "jobs/preprocess.py", CORPUS, "--out", str(run_dir)]
    code, error = None, ""
    try:
        code = _run("spark-submit", argv, log, SUBMIT_TIMEOUT, spark_cluster.env)
    except AssertionError as exc:  # reported by the Spark test; the Ray test falls back to a local preprocess
        error = str(exc)
    # The master moves an application to completedapps when its driver disconnects; give it a moment.
    deadline = time.monotonic() + 15
    while True:
        status = _get_json(spark_cluster.status_url)
        if {a["id"] for a in status["completedapps"]} - before or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return Submitted(code, error, log, run_dir, before, status)


def _manifest(run_dir: Path) -> dict:
    path = run_dir / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def test_spark_submit_preprocess_runs_on_the_standalone_cluster(spark_cluster, spark_submitted):
    sub = spark_submitted
    assert not sub.error, sub.error
    assert sub.returncode == 0, f"spark-submit exited with {sub.returncode}:\n{tail(sub.log, 60)}"
    record = _manifest(sub.run_dir).get("stages", {}).get("preprocess", {})
    assert record.get("completed"), f"manifest has no completed preprocess stage: {record}\n{tail(sub.log)}"
    assert record["stats"]["pairs"] > 0 and (sub.run_dir / "pairs").is_dir()
    # It really ran on the cluster, not in local mode: the master lists a new finished application that had
    # executors on our worker, and the worker wrote that application's executor folder.
    new = [a for a in sub.status["completedapps"] if a["id"] not in sub.apps_before]
    assert len(new) == 1, f"the master lists no new completed application: {sub.status}\n{tail(sub.log)}"
    app = new[0]
    assert app["state"] == "FINISHED", app
    executor_dirs = list((spark_cluster.root / "work" / app["id"]).glob("*/stderr"))
    assert executor_dirs, f"the worker ran no executor for {app['id']}:\n{spark_cluster.describe()}"


# --- Ray ---------------------------------------------------------------------------------------------------------
# Ray 2.60's `ray start` replaces 127.0.0.1 (and localhost) in --node-ip-address and --address by the machine's
# outward address, so the two nodes take other loopback addresses, which it keeps as given. (Ray's GCS and raylets
# then listen on all interfaces, as they do for any node address but 127.0.0.1; the dashboard stays on 127.0.0.1.)
# Token authentication, which Ray 2.60 turns on whenever a token is found, is on, with a token of this cluster's own
# in the environment of every process started here, so nothing reads or writes ~/.ray/auth_token.
HEAD_IP, NODE_IP = "127.0.0.2", "127.0.0.3"


@dataclass
class RayCluster:
    dashboard: str       # http://127.0.0.1:PORT: the job server and the state API
    gcs: str             # HEAD_IP:PORT
    token: str
    env: dict[str, str]
    root: Path
    describe: Callable[[], str]

    def api(self, path: str, **query: str) -> dict:
        """GET a dashboard endpoint (the job server's /api/jobs/..., the state API's /api/v0/...)."""
        url = f"{self.dashboard}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def state(self, resource: str, **query: str) -> list[dict]:
        return self.api(f"/api/v0/{resource}", limit="1000", **query)["data"]["result"]["result"]

    def alive_nodes(self) -> list[dict]:
        return [n for n in self.state("nodes") if n["state"] == "ALIVE"]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    _require("ray")
    try:
        from ray._private.utils import get_dashboard_dependency_error

        missing = get_dashboard_dependency_error()
    except ImportError:  # another Ray version: `ray start` says it below
        missing = None
    if missing:
        pytest.fail(f"the Ray dashboard (which serves `ray job submit`) cannot start: {missing}; install "
                    f"ray[default] of the installed Ray version")
    root = tmp_path_factory.mktemp("ray")
    # Ray's socket paths must stay short (about 107 bytes), so its session folders go under /tmp, one per node.
    temp = Path(tempfile.mkdtemp(prefix="w2v-ray-", dir="/tmp"))
    (gcs_port, dash_port, client_port, *node_ports) = free_ports(11)
    token = secrets.token_hex(32)
    env = _env(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token,
               GLOO_SOCKET_IFNAME="lo",  # the workers' gloo collectives over loopback too
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")  # SIGTERM stops a node at once instead of draining 30 s
    gcs, dashboard = f"{HEAD_IP}:{gcs_port}", f"http://127.0.0.1:{dash_port}"
    common = ["--num-cpus", "2", "--num-gpus", "0", "--object-store-memory", str(256 << 20),
              "--disable-usage-stats", "--block"]

    def ports(i: int) -> list[str]:  # both nodes share the machine, so none of their fixed ports may collide
        agent, agent_grpc, runtime_env, metrics = node_ports[4 * i:4 * i + 4]
        return ["--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
                "--runtime-env-agent-port", str(runtime_env), "--metrics-export-port", str(metrics)]

    services: list[Service] = []

    def describe() -> str:
        logs = [f"{p}:\n{tail(p, 15)}" for p in sorted(temp.glob("*/session_latest/logs/*.err"))
                if p.stat().st_size]
        return "\n".join([s.describe() for s in services] + logs)

    cluster = RayCluster(dashboard, gcs, token, env, root, describe)
    try:
        services.append(Service("Ray head", ["ray", "start", "--head", "--node-ip-address", HEAD_IP,
                                             "--port", str(gcs_port), "--dashboard-host", "127.0.0.1",
                                             "--dashboard-port", str(dash_port), "--include-dashboard", "true",
                                             "--ray-client-server-port", str(client_port),
                                             "--temp-dir", str(temp / "h"), *common, *ports(0)],
                                root / "head.log", env))
        wait_for(f"the Ray head's dashboard did not list the head node at {dashboard}", cluster.alive_nodes, 120,
                 describe)
        services.append(Service("Ray node", ["ray", "start", "--address", gcs, "--node-ip-address", NODE_IP,
                                             "--temp-dir", str(temp / "w"), *common, *ports(1)],
                                root / "node.log", env))
        wait_for("the second Ray node did not join the head (2 alive nodes)",
                 lambda: len(cluster.alive_nodes()) == 2, 90, describe)
        yield cluster
    finally:
        for service in reversed(services):
            service.stop(grace=15)
        for logs in temp.glob("*/session_latest/logs"):
            shutil.copytree(logs, root / "logs" / logs.parts[-3], ignore_dangling_symlinks=True, dirs_exist_ok=True)
        # `ray start --block` stops its node's processes, and they stay in its process group unless Ray gave one a
        # group of its own; every one names its node's temp folder on its command line.
        left = kill_processes_mentioning([f"{temp}/"])
        left.update({pid: "(in a Ray process group)" for s in services for pid in group_members(s.pgid)})
        for s in services:
            stop_group(s.pgid, grace=2)
        survivors = processes_mentioning([f"{temp}/"])
        shutil.rmtree(temp, ignore_errors=True)
        assert not survivors, f"Ray processes survived SIGKILL: {survivors}"
        assert not left, f"Ray processes were still running after `ray start --block` was stopped: {left}"


@pytest.fixture(scope="module")
def preprocessed(spark_submitted, tmp_path_factory) -> Path:
    """A completed preprocess run directory: the spark-submit test's, or one made with local Spark if that failed
    (so the Ray test reports on Ray alone)."""
    if _manifest(spark_submitted.run_dir).get("stages", {}).get("preprocess", {}).get("completed"):
        return spark_submitted.run_dir
    run_dir = tmp_path_factory.mktemp("run-local") / "sample"
    log = run_dir.parent / "preprocess.log"
    code = _run("w2vdist preprocess", [sys.executable, "-m", "w2vdist.cli", "preprocess", CORPUS, "--out",
                                       str(run_dir), "spark_master=local[2]"], log, SUBMIT_TIMEOUT, _env())
    assert code == 0, f"local preprocess failed:\n{tail(log)}"
    return run_dir


def test_ray_job_submit_trains_on_two_nodes(ray_cluster, preprocessed):
    run_dir = preprocessed
    job_id = f"w2vdist-cluster-test-{uuid.uuid4().hex[:8]}"
    log = ray_cluster.root / "ray-job-submit.log"
    argv = ["ray", "job", "submit", "--address", ray_cluster.dashboard, "--submission-id", job_id,
            "--working-dir", ".", "--", "python", "jobs/train.py", str(run_dir), *TRAIN_ARGS]
    started = time.monotonic()
    try:
        code = _run("ray job submit", argv, log, SUBMIT_TIMEOUT, ray_cluster.env)
    except AssertionError:
        subprocess.run(["ray", "job", "stop", "--address", ray_cluster.dashboard, job_id], env=ray_cluster.env,
                       capture_output=True, timeout=60)
        raise
    finally:  # the entrypoint runs in a session of its own; it names the run directory
        left = kill_processes_mentioning([f"jobs/train.py {run_dir} "])
    job = ray_cluster.api(f"/api/jobs/{job_id}")
    job_log = ray_cluster.api(f"/api/jobs/{job_id}/logs")["logs"]
    assert job["status"] == "SUCCEEDED", (f"job {job_id} ended {job['status']} ({job.get('message')}); `ray job "
                                          f"submit` exited {code} after {time.monotonic() - started:.0f} s; the "
                                          f"job's log:\n{job_log[-6000:]}\n{ray_cluster.describe()}")
    assert code == 0, tail(log)
    assert not left, f"the job's entrypoint was still running after the job ended: {left}"

    record = _manifest(run_dir)["stages"].get("train", {})
    assert record.get("completed"), f"manifest has no completed train stage: {record}\n{job_log[-3000:]}"
    assert record["stats"]["workers"] == 2
    vectors = pq.read_table(run_dir / "vectors")
    assert vectors.num_rows == _manifest(run_dir)["stages"]["preprocess"]["stats"]["vocab_size"]
    assert len(vectors.column("vector")[0]) == 8

    # Each rank ran on its own node: rank-R.json names the worker's pid, Ray's state API the node of that pid (the
    # nodes share this machine, so pids are unique across them).
    ranks = {}
    for path in (run_dir / "train" / "workers").glob("rank-*.json"):
        info = json.loads(path.read_text())
        ranks[info["rank"]] = info
    assert sorted(ranks) == [0, 1], ranks
    nodes = {}
    for rank, info in ranks.items():
        found = ray_cluster.state("workers", detail="1", filter_keys="pid", filter_predicates="=",
                                  filter_values=str(info["pid"]))
        assert found, f"Ray knows no worker with pid {info['pid']} (rank {rank})"
        nodes[rank] = found[0]["node_id"]
        assert info["ray_node"] == nodes[rank]  # the node the worker recorded itself
    cluster_nodes = {n["node_id"]: n["node_ip"] for n in ray_cluster.alive_nodes()}
    assert set(nodes.values()) == set(cluster_nodes), (f"ranks ran on nodes {nodes}; the cluster's nodes: "
                                                       f"{cluster_nodes}")
    # The job's driver joined this cluster (RAY_ADDRESS from `ray job submit`), not a Ray of its own.
    assert job["driver_node_id"] in cluster_nodes, job


def test_pipeline_conf_cluster_yaml_uses_both_clusters(spark_cluster, ray_cluster, tmp_path):
    """`w2vdist pipeline conf/cluster.yaml`, its addresses from the environment as the file documents."""
    out = tmp_path / "run"
    env = {**spark_cluster.env, **ray_cluster.env,
           "W2VDIST_INPUT": str(REPO / CORPUS), "W2VDIST_OUT": str(out), "W2VDIST_WORKERS": "2",
           "SPARK_MASTER_URL": spark_cluster.master_url, "SPARK_DRIVER_HOST": "127.0.0.1",
           "SPARK_DRIVER_MEMORY": "1g", "SPARK_EXECUTOR_MEMORY": "1g", "RAY_ADDRESS": ray_cluster.gcs}
    before = {a["id"] for a in _get_json(spark_cluster.status_url)["completedapps"]}
    log = tmp_path / "pipeline.log"
    code = _run("w2vdist pipeline", [sys.executable, "-m", "w2vdist.cli", "pipeline", "conf/cluster.yaml",
                                     "dim=8", "epochs=1", "max_failures=0", "phrase_passes=0"],
                log, SUBMIT_TIMEOUT, env)
    assert code == 0, f"w2vdist pipeline exited with {code}:\n{tail(log, 60)}"
    stages = _manifest(out)["stages"]
    assert all(stages[s].get("completed") for s in ("preprocess", "train", "export")), stages.keys()
    assert stages["train"]["stats"]["workers"] == 2
    assert {a["id"] for a in _get_json(spark_cluster.status_url)["completedapps"]} - before, \
        "the preprocess stage did not run on the Spark master"
