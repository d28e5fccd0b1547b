"""Finding and checking corpus inputs on the driver, then reading them as a DataFrame of documents.

Local paths are checked before Spark starts any work (missing, empty, binary, a folder with nothing to read, a
compressed file damaged anywhere: each is read through to its end, a Parquet file without the text column), so a
bad input is one clear message. Paths with a URI scheme (hdfs://, s3a://) go to Spark unchecked.
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from w2vdist.config import Config
from w2vdist.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Observation, SparkSession

SNIFF_BYTES = 64 * 1024
READ_BLOCK = 1 << 20
_COMPRESSED = (".gz", ".bz2")
MALFORMED = "_malformed_line"  # the column Spark puts a JSON line it cannot parse in
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


def _is_compressed(path: Path) -> bool:
    return path.name.lower().endswith(_COMPRESSED)


def _check_file(path: Path, fmt: str) -> None:
    """A text or JSON file: not empty, not binary (text), and a compressed one whole to its last byte: Spark
    would otherwise fail on damage deep inside it after minutes of work, with a Java trace."""
    done = 0
    try:
        with _open_decompressed(path) as handle:
            head = handle.read(SNIFF_BYTES)
            done = len(head)
            if head and _is_compressed(path):
                while block := handle.read(READ_BLOCK):
                    done += len(block)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        where = f" after {done:,} bytes of text" if done else ""
        raise InputError(f"input file '{path}' is damaged: it cannot be decompressed{where} ({exc})") from None
    if not head:
        raise InputError(f"input file '{path}' is empty (after decompression)")
    if fmt == "text" and b"\x00" in head:
        raise InputError(f"input file '{path}' looks binary (it has NUL bytes in its first 64 KiB); "
                         f"w2vdist reads UTF-8 text, Parquet or JSON lines")


def _check_parquet(path: Path, text_column: str) -> None:
    """A Parquet file's text column, from its footer, before Spark starts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"input file '{path}' is not readable Parquet: {exc}") from None
    if text_column not in schema.names:
        raise InputError(f"input {path}: no column '{text_column}' (setting `text_column`); columns are: "
                         f"{', '.join(schema.names) or 'none'}")
    kind = schema.field(text_column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise InputError(f"input {path}: column '{text_column}' (setting `text_column`) holds {kind}, "
                         f"expected string")


def _check(path: Path, fmt: str, config: Config) -> None:
    if fmt == "parquet":
        _check_parquet(path, config.text_column)
    else:
        _check_file(path, fmt)


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
            found.append(InputFile(str(file.resolve()), _format_of(str(file), config.input_format),
                                   file.stat().st_size))
    local = [(Path(f.path), f.format) for f in found if f.size is not None]
    # Decompression releases the GIL: several compressed files are read through at once.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        checks = [pool.submit(_check, path, fmt, config) for path, fmt in local]
        try:
            for check in checks:
                check.result()  # the first bad file in input order is the one reported
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return found


def read_documents(spark: "SparkSession", files: list[InputFile],
                   config: Config) -> tuple["DataFrame", "Observation | None"]:
    """One row per document: `text` (invalid UTF-8 replaced by U+FFFD) and `undecodable` (it had to be).

    JSON lines that are not JSON objects are skipped; the observation, when JSON input has any, counts them as
    `malformed_json_lines` in the same pass that reads them (its `get` answers once an action has run on the
    documents).
    """
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    frames = []
    observation = None
    for fmt in ("text", "parquet", "json"):
        paths = [f.path for f in files if f.format == fmt]
        if not paths:
            continue
        if fmt == "text":
            frame = spark.read.text(paths).select(F.col("value").alias("raw"))
        elif fmt == "parquet":
            frame = spark.read.parquet(*paths)
            frame = frame.select(_text_column(frame, config.text_column, paths).alias("raw"))
        else:
            frame = spark.read.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", MALFORMED).json(paths)
            text = _text_column(frame, config.text_column, paths)
            if MALFORMED in frame.columns:  # schema inference saw lines that are not JSON objects
                observation = Observation("json input")
                frame = frame.observe(observation, F.count_if(F.col(MALFORMED).isNotNull())
                                      .alias("malformed_json_lines"))
            frame = frame.select(text.alias("raw"))
        frames.append(frame)
    docs = frames[0]
    for frame in frames[1:]:
        docs = docs.unionByName(frame)
    docs = docs.select(
        F.make_valid_utf8("raw").alias("text"),
        (~F.is_valid_utf8("raw")).alias("undecodable"),
    ).where(F.col("text").isNotNull())
    return docs, observation


def _text_column(frame: "DataFrame", name: str, paths: list[str]):
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    fields = {f.name: f for f in frame.schema.fields}
    shown = ", ".join(paths[:3]) + (" ..." if len(paths) > 3 else "")
    if name not in fields:
        columns = ", ".join(f for f in fields if f != MALFORMED) or "none"
        also = "; some lines are not JSON objects" if MALFORMED in fields else ""
        raise InputError(f"input {shown}: no column '{name}' (setting `text_column`); columns are: {columns}{also}")
    if not isinstance(fields[name].dataType, StringType):
        raise InputError(f"input {shown}: column '{name}' (setting `text_column`) holds "
                         f"{fields[name].dataType.simpleString()}, expected string")
    return F.col(name)
