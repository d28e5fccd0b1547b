"""The run directory: every stage's datasets (named by datasets.RunLayout) plus one `manifest.json` that says which
stages are complete, and for which inputs and settings.

A stage writes into a private staging folder inside the run directory, then commits: it moves its datasets into
place and rewrites the manifest (write to a temporary file, then rename) with the stage's record, whose last field
is `completed`. A stage is complete only when the manifest says so, so a killed job leaves at worst a staging
folder and a stage marked incomplete, never a dataset a later stage could mistake for finished work.

A stage's record carries the `fingerprint` of what decides its output: its inputs (the corpus files, or when the
stages it reads completed) and its settings. `RunDir.up_to_date` alone decides whether a stage has work to do: each
command, and the pipeline, skips a stage that is complete for the same fingerprint, and `force=true` redoes it.

One process at a time works on a run directory: it holds an exclusive `flock` on `RUN_DIR/.lock` for the whole
command (`RunDir.locked`), and the kernel releases it when the process dies, however it dies. A second process is
refused at once with the holder's pid and host, so no run ever clears staging folders that a live run is writing.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import shutil
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from w2vdist import __version__
from w2vdist.datasets import RunLayout
from w2vdist.errors import RunDirBusy, RunDirError, write_failure, writing

MANIFEST = "manifest.json"
STAGING = "_staging"
LOCK = ".lock"


@dataclass
class _Held:
    fd: int
    depth: int
    created: bool  # this process created the run directory: remove it again if nothing was written into it


# Locks this process holds, by resolved run directory. A pipeline's stages take the lock their command already
# holds, and flock refuses a second descriptor of the same file even within one process: nested takes are counted.
_HELD: dict[Path, _Held] = {}
_HELD_GUARD = threading.Lock()
# Staging folders whose begin() took a lock reference that their commit() or abandon() gives back.
_STAGING_LOCKS: set[Path] = set()


def fingerprint(payload: Any) -> str:
    """A stable digest of the settings and inputs that determine a stage's output."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class RunDir(RunLayout):
    def __init__(self, path: str | os.PathLike, *, create: bool = False):
        super().__init__(path)
        self.created = False
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"run directory '{self.path}' is a file, not a directory: choose another --out")
        if create and not self.path.is_dir():
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise write_failure(exc, self.path) or RunDirError(
                    f"cannot create run directory '{self.path}': {exc.strerror}") from None
            self.created = True
        elif not self.path.is_dir():
            raise RunDirError(f"run directory '{self.path}' does not exist")

    # --- the lock: one process per run directory ----------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.path / LOCK

    @contextlib.contextmanager
    def locked(self, command: str) -> Iterator["RunDir"]:
        """Hold the run directory's lock while the block runs; re-entrant within this process.

        Raises RunDirBusy, naming the holder, when another process holds it. When this process created the
        directory and leaves it with nothing but the lock file in it (a run that failed before writing anything),
        the directory is removed again.
        """
        self._acquire(command)
        try:
            yield self
        finally:
            self._release()

    def _acquire(self, command: str) -> None:
        key = self.path.resolve()
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None:
                held.depth += 1
                return
            fd = self._lock_file(command)
            _HELD[key] = _Held(fd, 1, self.created)

    def _lock_file(self, command: str) -> int:
        for _ in range(3):
            with writing(self.path):
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe_holder(fd)
                os.close(fd)
                raise RunDirBusy(f"run directory '{self.path}' is in use by another w2vdist run ({holder}; lock "
                                 f"'{self.lock_path}'): one run per run directory at a time; wait for it to end "
                                 f"or choose another run directory") from None
            except OSError as exc:
                os.close(fd)
                raise RunDirError(f"cannot lock run directory '{self.path}' ({exc.strerror}): w2vdist needs a file "
                                  f"system whose flock works (local disks, NFSv4)") from None
            try:
                same_file = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # the holder removed a directory it had created; lock the file that exists now
                os.close(fd)
                self.path.mkdir(parents=True, exist_ok=True)
                continue
            info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                               "since": _now()})
            try:
                with writing(self.lock_path):
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, (info + "\n").encode("utf-8"), 0)
            except BaseException:
                os.close(fd)
                raise
            return fd
        raise RunDirError(f"could not lock run directory '{self.path}': its lock file kept being replaced")

    def _release(self) -> None:
        key = self.path.resolve()
        with _HELD_GUARD:
            held = _HELD[key]
            held.depth -= 1
            if held.depth:
                return
            del _HELD[key]
            if held.created:
                self._remove_if_unused()
            os.close(held.fd)

    def _remove_if_unused(self) -> None:
        """Remove a directory this process created if it holds nothing but the lock (still held: no one else can
        have started writing into it)."""
        try:
            if [p.name for p in self.path.iterdir()] == [LOCK]:
                self.lock_path.unlink()
                self.path.rmdir()
        except OSError:
            pass

    # --- manifest ----------------------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"w2vdist_version": __version__, "stages": {}}
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RunDirError(f"'{self.manifest_path}' is not readable JSON ({exc}); remove it to start afresh") from None
        data.setdefault("stages", {})
        return data

    def _write_manifest(self, data: dict[str, Any]) -> None:
        data["w2vdist_version"] = __version__
        tmp = self.path / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
        try:
            with writing(self.manifest_path):
                tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
                os.replace(tmp, self.manifest_path)
        finally:
            tmp.unlink(missing_ok=True)

    def stage(self, name: str) -> dict[str, Any] | None:
        return self.manifest()["stages"].get(name)

    def is_complete(self, name: str) -> bool:
        record = self.stage(name)
        return bool(record and record.get("completed"))

    def up_to_date(self, name: str, fingerprint: str, force: bool = False) -> dict[str, Any] | None:
        """The record of stage `name` when it is complete for the inputs and settings that `fingerprint` stands for,
        so that running it again would make the same output; None when it has work to do: it never ran, did not
        complete (killed or failed), ran on other inputs or settings, or `force` asks to redo it."""
        record = self.stage(name)
        if force or not record or not record.get("completed") or record.get("fingerprint") != fingerprint:
            return None
        return record

    def require_complete(self, name: str, needed_by: str) -> dict[str, Any]:
        record = self.stage(name)
        if record is None:
            raise RunDirError(f"run directory '{self.path}' has no {name} output, which {needed_by} needs: "
                              f"run `w2vdist {name}` first")
        if not record.get("completed"):
            raise RunDirError(f"run directory '{self.path}': the {name} stage did not complete (killed or failed); "
                              f"run `w2vdist {name}` again before {needed_by}")
        return record

    # --- staging and commit ------------------------------------------------------------------------------------
    def begin(self, name: str) -> Path:
        """Mark `name` incomplete and return an empty staging folder for its outputs.

        Holds the run directory's lock until commit() or abandon() (the command usually holds it already), so the
        staging folders left by a killed run of the same stage, which are removed here, are nobody's.
        """
        self._acquire(f"stage {name}")
        try:
            for stale in (self.path / STAGING).glob(f"{name}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            data = self.manifest()
            if name in data["stages"]:
                data["stages"][name] = {"completed": None, "started": _now()}
                self._write_manifest(data)
            staging = self.path / STAGING / f"{name}-{uuid.uuid4().hex[:8]}"
            with writing(self.path):
                staging.mkdir(parents=True)
        except BaseException:
            self._release()
            raise
        _STAGING_LOCKS.add(staging)
        return staging

    def commit(self, name: str, staging: Path, outputs: list[str], record: dict[str, Any]) -> dict[str, Any]:
        """Move `outputs` (names inside `staging`) into the run directory, then record the stage as complete."""
        for output in outputs:
            if not (staging / output).exists():
                raise RunDirError(f"stage {name} produced no '{output}' in '{staging}'")
        data = self.manifest()
        if name not in data["stages"]:
            # The outputs move into place before their record is written; until it is, the manifest must call
            # the stage incomplete (begin() marks only stages that had a record already).
            data["stages"][name] = {"completed": None, "started": _now()}
            self._write_manifest(data)
        with writing(self.path):
            trash = staging.with_name(staging.name + "-replaced")
            trash.mkdir()
            for output in outputs:
                target = self.path / output
                if target.exists():
                    os.replace(target, trash / output)
                os.replace(staging / output, target)
        record = {k: v for k, v in record.items() if k != "completed"}
        record["completed"] = _now()
        data = self.manifest()
        data["stages"][name] = record
        self._write_manifest(data)
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        self._remove_empty_staging_root()
        self._release_staging(staging)
        return record

    def abandon(self, staging: Path) -> None:
        """Throw away a failed stage's staging folder; the stage stays marked incomplete."""
        shutil.rmtree(staging, ignore_errors=True)
        self._remove_empty_staging_root()
        self._release_staging(staging)

    def _release_staging(self, staging: Path) -> None:
        if staging in _STAGING_LOCKS:
            _STAGING_LOCKS.discard(staging)
            self._release()

    def _remove_empty_staging_root(self) -> None:
        try:
            (self.path / STAGING).rmdir()
        except OSError:
            pass


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _describe_holder(fd: int) -> str:
    """Who holds a lock, from what the holder wrote into the lock file when it took it."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {info['pid']} on host {info['host']}, `w2vdist {info['command']}` since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said who it is yet"
