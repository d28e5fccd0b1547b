"""Processes for tests/test_cluster.py: free ports, services started in their own process group with a log file,
bounded waits that fail with the log's tail, and a /proc scan for processes left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 now (all sockets held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class Service:
    """A command started with its own session (so its process group holds it and what it forks), output to `log`."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike | None = None):
        self.name, self.argv, self.log = name, argv, Path(log)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=cwd, start_new_session=True)
        self.pgid = self.proc.pid  # a new session's leader: its pid is the group's id

    def describe(self) -> str:
        return f"{self.name} (exit code {self.proc.poll()}); last lines of {self.log}:\n{tail(self.log)}"

    def stop(self, grace: float = 10.0) -> None:
        stop_group(self.pgid, grace)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, pgid) of a process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "
    return fields[0], int(fields[2])


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    out = []
    for pid in _pids():
        st = _stat(pid)
        if st is not None and st[1] == pgid and st[0] != "Z":
            out.append(pid)
    return out


def stop_group(pgid: int, grace: float = 10.0) -> None:
    """SIGTERM the group, SIGKILL what is left after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and group_members(pgid):
            time.sleep(0.2)
        if not group_members(pgid):
            return


def cmdline(pid: int) -> str:
    try:
        # Each argument ends in a space (NUL in /proc), so a marker ending in a space matches whole arguments only.
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def processes_mentioning(markers: Iterable[str]) -> dict[int, str]:
    """Live processes (not this one) whose command line contains any of `markers`: pid -> command line."""
    markers = [m for m in markers if m]
    found = {}
    for pid in _pids():
        if pid == os.getpid():
            continue
        st = _stat(pid)
        if st is None or st[0] == "Z":
            continue
        line = cmdline(pid)
        if any(m in line for m in markers):
            found[pid] = line
    return found


def kill_processes_mentioning(markers: Iterable[str], grace: float = 10.0) -> dict[int, str]:
    """Stop every live process whose command line names one of `markers` (SIGTERM, then SIGKILL); return those
    that were still there, to report them."""
    markers = list(markers)
    left = processes_mentioning(markers)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes_mentioning(markers):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and processes_mentioning(markers):
            time.sleep(0.2)
    return left


def wait_for(what: str, check: Callable[[], T], timeout: float, diagnose: Callable[[], str] = lambda: "",
             interval: float = 0.5) -> T:
    """Poll `check` until it returns something truthy; fail with `what`, the time limit and `diagnose()` after
    `timeout` seconds. Exceptions from `check` count as not yet (the last one is reported)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # a service that is not up yet refuses connections
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            raise AssertionError(f"{what} within {timeout:.0f} s{detail}\n{diagnose()}")
        time.sleep(interval)
