"""The run directory: every stage's datasets plus one `manifest.json` that says which stages are complete.

A stage writes into a private staging folder inside the run directory, then commits: it moves its datasets into
place and rewrites the manifest (write to a temporary file, then rename) with the stage's record, whose last field
is `completed`. A stage is complete only when the manifest says so, so a killed job leaves at worst a staging
folder and a stage marked incomplete, never a dataset a later stage could mistake for finished work.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from w2vdist import __version__
from w2vdist.errors import RunDirError

MANIFEST = "manifest.json"
STAGING = "_staging"


def fingerprint(payload: Any) -> str:
    """A stable digest of the settings and inputs that determine a stage's output."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class RunDir:
    def __init__(self, path: str | os.PathLike, *, create: bool = False):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"run directory '{self.path}' is a file, not a directory: choose another --out")
        if create:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RunDirError(f"cannot create run directory '{self.path}': {exc.strerror}") from None
        elif not self.path.is_dir():
            raise RunDirError(f"run directory '{self.path}' does not exist")

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
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.manifest_path)

    def stage(self, name: str) -> dict[str, Any] | None:
        return self.manifest()["stages"].get(name)

    def is_complete(self, name: str, fingerprint: str | None = None) -> bool:
        record = self.stage(name)
        if not record or not record.get("completed"):
            return False
        return fingerprint is None or record.get("fingerprint") == fingerprint

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

        Staging folders left by a killed run of the same stage are removed: one run per run directory at a time.
        """
        for stale in (self.path / STAGING).glob(f"{name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        data = self.manifest()
        if name in data["stages"]:
            data["stages"][name] = {"completed": None, "started": _now()}
            self._write_manifest(data)
        staging = self.path / STAGING / f"{name}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        return staging

    def commit(self, name: str, staging: Path, outputs: list[str], record: dict[str, Any]) -> dict[str, Any]:
        """Move `outputs` (names inside `staging`) into the run directory, then record the stage as complete."""
        for output in outputs:
            if not (staging / output).exists():
                raise RunDirError(f"stage {name} produced no '{output}' in '{staging}'")
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
        return record

    def abandon(self, staging: Path) -> None:
        """Throw away a failed stage's staging folder; the stage stays marked incomplete."""
        shutil.rmtree(staging, ignore_errors=True)
        self._remove_empty_staging_root()

    def _remove_empty_staging_root(self) -> None:
        try:
            (self.path / STAGING).rmdir()
        except OSError:
            pass


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
