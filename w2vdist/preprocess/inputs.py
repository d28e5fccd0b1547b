"""Finding and checking corpus inputs on the driver, then reading them as a DataFrame of documents.

Local paths are checked before Spark starts any work (missing, empty, binary, a folder with nothing to read), so a
bad input is one clear message. Paths with a URI scheme (hdfs://, s3a://) go to Spark unchecked.
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from w2vdist.config import Config
from w2vdist.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SNIFF_BYTES = 64 * 1024
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_PARQUET = (".parquet", ".pq")
_JSON = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz", ".json.bz2", ".jsonl.bz2")


@dataclass(frozen=True)
class InputFile:
    path: str
    format: str  # text | parquet | json
    size: int | None  # bytes on disk; None for remote URIs

    def as_record(self) -> dict:
        return {"path": self.path, "format": self.format, "bytes": self.size,
                "mtime": _mtime(self.path)}


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _format_of(path: str, forced: str) -> str:
    if forced != "auto":
        return forced
    lower = path.lower()
    if lower.endswith(_PARQUET):
        return "parquet"
    if lower.endswith(_JSON):
        return "json"
    return "text"


def _open_decompressed(path: Path):
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def _check_text_file(path: Path) -> None:
    try:
        with _open_decompressed(path) as handle:
            head = handle.read(SNIFF_BYTES)
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(f"input file '{path}' cannot be read as compressed text: {exc}") from None
    if not head:
        raise InputError(f"input file '{path}' is empty (after decompression)")
    if b"\x00" in head:
        raise InputError(f"input file '{path}' looks binary (it has NUL bytes in its first 64 KiB); "
                         f"w2vdist reads UTF-8 text, Parquet or JSON lines")


def discover_inputs(paths: list[str], config: Config) -> list[InputFile]:
    """Expand folders, check every local file, and return the files in a stable order."""
    if not paths:
        raise InputError("no input given: name corpus files or folders (setting `input`)")
    found: list[InputFile] = []
    for raw in paths:
        if _URI.match(raw) and not raw.startswith("file://"):
            found.append(InputFile(raw, _format_of(raw, config.input_format), None))
            continue
        path = Path(raw.removeprefix("file://"))
        if not path.exists():
            raise InputError(f"input '{raw}' does not exist")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file()
                           and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts))
            files = [p for p in files if p.stat().st_size > 0]
            if not files:
                raise InputError(f"input folder '{raw}' holds no non-empty files to read")
        else:
            if path.stat().st_size == 0:
                raise InputError(f"input file '{raw}' is empty")
            files = [path]
        for file in files:
            fmt = _format_of(str(file), config.input_format)
            if fmt == "text":
                _check_text_file(file)
            found.append(InputFile(str(file.resolve()), fmt, file.stat().st_size))
    return found


def read_documents(spark: "SparkSession", files: list[InputFile], config: Config) -> "DataFrame":
    """One row per document: `text` (invalid UTF-8 replaced by U+FFFD) and `undecodable` (it had to be)."""
    from pyspark.sql import functions as F

    frames = []
    for fmt in ("text", "parquet", "json"):
        paths = [f.path for f in files if f.format == fmt]
        if not paths:
            continue
        if fmt == "text":
            frame = spark.read.text(paths).select(F.col("value").alias("raw"))
        else:
            frame = spark.read.parquet(*paths) if fmt == "parquet" else spark.read.json(paths)
            frame = frame.select(_text_column(frame, config.text_column, paths).alias("raw"))
        frames.append(frame)
    docs = frames[0]
    for frame in frames[1:]:
        docs = docs.unionByName(frame)
    return docs.select(
        F.make_valid_utf8("raw").alias("text"),
        (~F.is_valid_utf8("raw")).alias("undecodable"),
    ).where(F.col("text").isNotNull())


def _text_column(frame: "DataFrame", name: str, paths: list[str]):
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    fields = {f.name: f for f in frame.schema.fields}
    shown = ", ".join(paths[:3]) + (" ..." if len(paths) > 3 else "")
    if name not in fields:
        raise InputError(f"input {shown}: no column '{name}' (setting `text_column`); columns are: "
                         f"{', '.join(fields) or 'none'}")
    if not isinstance(fields[name].dataType, StringType):
        raise InputError(f"input {shown}: column '{name}' (setting `text_column`) holds "
                         f"{fields[name].dataType.simpleString()}, expected string")
    return F.col(name)
