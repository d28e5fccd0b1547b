"""The run directory's lock: one process at a time, released when the holder dies, refused with the holder named;
and the one decision whether a stage is up to date."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from w2vdist.errors import RunDirBusy
from w2vdist.rundir import LOCK, STAGING, RunDir

HOLD = """
import sys, time
from w2vdist.rundir import RunDir
with RunDir(sys.argv[1], create=True).locked("holder"):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process that holds the lock of tmp_path/run until it is killed."""
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True, cwd=REPO,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    assert process.stdout.readline().strip() == "locked"
    yield run, process
    process.kill()
    process.wait()


def test_a_second_process_is_refused_with_the_holder_named_until_the_holder_dies(holder):
    run, process = holder
    with pytest.raises(RunDirBusy) as info:
        with RunDir(run).locked("preprocess"):
            pass
    message = str(info.value)
    assert f"pid {process.pid} on host {socket.gethostname()}" in message and "`w2vdist holder`" in message
    assert str(run / LOCK) in message
    with pytest.raises(RunDirBusy):
        RunDir(run).begin("preprocess")  # a stage alone takes the lock too
    process.send_signal(signal.SIGKILL)
    process.wait()
    with RunDir(run).locked("preprocess"):  # the kernel released the dead holder's lock
        assert json.loads((run / LOCK).read_text())["pid"] == os.getpid()


def test_staging_of_a_live_run_is_never_cleared_but_a_dead_runs_is(holder):
    run, process = holder
    live = run / STAGING / "preprocess-live"
    live.mkdir(parents=True)
    with pytest.raises(RunDirBusy):
        RunDir(run).begin("preprocess")
    assert live.is_dir()
    process.kill()
    process.wait()
    staging = RunDir(run).begin("preprocess")
    assert not live.exists() and staging.is_dir()
    RunDir(run).abandon(staging)


def test_the_lock_is_reentrant_within_a_process_and_released_at_the_outermost_exit(tmp_path):
    (tmp_path / "run").mkdir()
    run = RunDir(tmp_path / "run")
    check = [sys.executable, "-c", "import sys; from w2vdist.rundir import RunDir\n"
             "with RunDir(sys.argv[1]).locked('probe'): pass", str(run.path)]

    def free() -> bool:
        return subprocess.run(check, capture_output=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}).returncode == 0

    with run.locked("pipeline"):
        with RunDir(run.path).locked("preprocess"):
            staging = run.begin("preprocess")
            run.abandon(staging)
        assert not free()
    assert free()


def test_a_directory_the_run_created_is_removed_when_the_run_wrote_nothing_into_it(tmp_path):
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        with RunDir(fresh, create=True).locked("preprocess"):
            raise RuntimeError("failed before writing anything")
    assert not fresh.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with RunDir(existing, create=True).locked("preprocess"):
        pass
    assert existing.is_dir()


def test_a_pipeline_on_a_busy_run_directory_prints_its_summary_and_exits_2(holder):
    run, process = holder
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "w2vdist.cli", "pipeline", str(REPO / "conf" / "local.yaml"),
                           f"out={run}"], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2, done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith(f"w2vdist pipeline FAILED at start: {run}:") and f"pid {process.pid}" in last
    assert len(done.stdout.splitlines()) == 1 and "Traceback" not in done.stderr
    assert time.monotonic() - started < 60  # refused at once, before Spark starts


def test_a_stage_is_up_to_date_only_when_complete_for_the_same_fingerprint_and_not_forced(tmp_path):
    run = RunDir(tmp_path / "run", create=True)
    assert run.up_to_date("export", "abc") is None  # never ran
    run.commit("export", run.begin("export"), [], {"fingerprint": "abc", "stats": {"files": 1}})
    record = run.up_to_date("export", "abc")
    assert record == run.stage("export") and record["completed"] and record["stats"] == {"files": 1}
    assert run.up_to_date("export", "other") is None  # other inputs or settings
    assert run.up_to_date("export", "abc", force=True) is None
    run.abandon(run.begin("export"))  # begun again, then killed or failed: incomplete until it commits
    assert run.up_to_date("export", "abc") is None
