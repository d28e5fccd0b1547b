"""The run directory's datasets: where each one lives, what it holds, and its one reader and writer.

    RUN_DIR/                              (rundir.RunDir adds manifest.json, .lock and _staging/)
      vocab/part-00000.parquet            VOCAB     preprocess: one row per word, ids 0..V-1
      phrases/part-00000.parquet          PHRASES   preprocess: every bigram joined on each pass
      corpus/part-*.parquet               CORPUS    preprocess (Spark): each chunk's vocabulary ids, before subsampling
      pairs/draw=K/part-*.parquet         PAIRS     preprocess (Spark): pair draw K of (center, context) ids
      vectors/part-00000.parquet          VECTORS   train: the trained input vectors, ordered by id
      train/metrics.jsonl                 train: one JSON record per finished epoch (appended as epochs end)
      train/checkpoints/                  train: Ray Train's checkpoints (train/checkpoints.py)
      train/checkpoints-local/            train: the same, for runs without Ray
      train/workers/rank-R.json           train: the process, host, device and kernel of worker R
      train/diverged.txt                  train: a diverged run's message, so a restarted worker stops at once
      probes/probes.jsonl                 train with probe_words: one JSON record per probe (probes.py)
      export/vectors.EXT                  pipeline: the export_formats, EXT the format's extension (formats.py)
      eval/evaluation.json                evaluate: the scores (evaluation.py)
      plots/                              pipeline: the pictures
      mlruns/                             pipeline with tracking: the MLflow file store

`RunLayout(root)` names these paths under a run directory, or under a stage's staging folder, which holds the same
layout until the stage commits it; `RunDir` is a RunLayout. No other module spells a name of this layout.

The Parquet datasets are the contract between the stages. Each one's schema is declared here once, as Arrow's
(the README's table of datasets shows the same columns and types; a test holds the two equal); Spark writes
corpus/ and pairs/ with the schema derived from it (`ParquetDataset.spark_schema`). The readers check what they
read, against the schema and the vocabulary's ids, and raise RunDirError naming the file, the column and what was
expected, so a damaged or foreign dataset is found before any work starts on it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from w2vdist.errors import RunDirError
from w2vdist.formats import FORMATS

SINGLE_PART = "part-00000.parquet"  # the one file of a dataset written whole by Python
PARTS = "part-*.parquet"
# the folders of the pipeline's stages: what each commits
EXPORT_DIR = "export"
EVALUATION_DIR = "eval"
PLOTS_DIR = "plots"


@dataclass(frozen=True)
class ParquetDataset:
    folder: str        # its folder under the run directory
    schema: pa.Schema

    @property
    def spark_schema(self) -> str:
        """The schema as Spark's DDL (`chunk_id bigint, ids array<int>`), for the DataFrames Spark writes."""
        return ", ".join(f"{field.name} {_spark_type(field.type)}" for field in self.schema)


VOCAB = ParquetDataset("vocab", pa.schema([("id", pa.int32()), ("word", pa.string()), ("count", pa.int64())]))
PHRASES = ParquetDataset("phrases", pa.schema([("phrase", pa.string()), ("count", pa.int64()),
                                               ("score", pa.float64()), ("pass", pa.int32())]))
CORPUS = ParquetDataset("corpus", pa.schema([("chunk_id", pa.int64()), ("ids", pa.list_(pa.int32()))]))
PAIRS = ParquetDataset("pairs", pa.schema([("center", pa.int32()), ("context", pa.int32())]))
VECTORS = ParquetDataset("vectors", pa.schema([("id", pa.int32()), ("word", pa.string()), ("count", pa.int64()),
                                               ("vector", pa.list_(pa.float32()))]))
PARQUET_DATASETS = (VOCAB, PHRASES, CORPUS, PAIRS, VECTORS)

_SPARK_TYPES = {pa.int32(): "int", pa.int64(): "bigint", pa.string(): "string", pa.float32(): "float",
                pa.float64(): "double"}


def _spark_type(arrow: pa.DataType) -> str:
    if pa.types.is_list(arrow):
        return f"array<{_spark_type(arrow.value_type)}>"
    return _SPARK_TYPES[arrow]


def _describe(schema: pa.Schema) -> str:
    """A schema as the errors name it: `center int32, context int32`."""
    return ", ".join(f"{field.name} {field.type}" for field in schema)


class RunLayout:
    """The named paths of the layout under `path`: a run directory, or a staging folder."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.vocab, self.phrases, self.corpus, self.pairs, self.vectors = (
            self.path / dataset.folder for dataset in (VOCAB, PHRASES, CORPUS, PAIRS, VECTORS))
        self.train_dir = self.path / "train"
        self.train_metrics = self.train_dir / "metrics.jsonl"
        self.ray_checkpoints = self.train_dir / "checkpoints"
        self.local_checkpoints = self.train_dir / "checkpoints-local"
        self.workers = self.train_dir / "workers"
        self.diverged_note = self.train_dir / "diverged.txt"
        self.probes = self.path / "probes"
        self.probe_records = probe_records(self.probes)
        self.export = self.path / EXPORT_DIR
        self.evaluation = self.path / EVALUATION_DIR / "evaluation.json"
        self.plots = self.path / PLOTS_DIR
        self.mlruns = self.path / "mlruns"

    def pairs_draw(self, draw: int) -> Path:
        return self.pairs / f"draw={draw}"

    def worker_record(self, rank: int) -> Path:
        return self.workers / f"rank-{rank}.json"

    def export_file(self, format: str) -> Path:
        return self.export / ("vectors" + FORMATS[format])


def probe_records(folder: Path) -> Path:
    """The probe records in a probes folder: the run directory's probes/, or any folder a recorder writes to."""
    return folder / "probes.jsonl"


# --- vocab/ and phrases/: written whole by Python ----------------------------------------------------------------
def write_vocabulary(folder: Path, table: pa.Table) -> None:
    _write_single_part(folder, VOCAB, table)


def write_phrases(folder: Path, table: pa.Table) -> None:
    _write_single_part(folder, PHRASES, table)


def _write_single_part(folder: Path, dataset: ParquetDataset, table: pa.Table) -> None:
    """`table` as the dataset's one file; a table of another schema is its writer's bug, stopped before it reaches
    the run directory and the stages that read it."""
    if not table.schema.equals(dataset.schema):
        raise ValueError(f"{dataset.folder}/ must have columns {_describe(dataset.schema)}; got "
                         f"{_describe(table.schema)}")
    folder.mkdir()
    pq.write_table(table, folder / SINGLE_PART)


def read_vocabulary(path: Path) -> pa.Table:
    """vocab/ as a table with ids 0..V-1 in order; a clear error for anything else."""
    if not path.is_dir():
        raise RunDirError(f"'{path}' does not exist: the preprocess output is incomplete; run it again")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise RunDirError(f"'{path}' is not a readable Parquet dataset: {exc}") from None
    for field in VOCAB.schema:
        if field.name not in table.schema.names or table.schema.field(field.name).type != field.type:
            raise RunDirError(f"'{path}' must have columns {_describe(VOCAB.schema)}; got {table.schema}")
    table = table.select(VOCAB.schema.names).sort_by("id")
    ids = table.column("id").to_numpy()
    if len(ids) == 0:
        raise RunDirError(f"'{path}' is empty: no word reached min_count")
    if not np.array_equal(ids, np.arange(len(ids))):
        raise RunDirError(f"'{path}': ids must be 0..{len(ids) - 1} without gaps or repeats")
    if table.column("count").to_numpy().min() < 0 or table.column("count").to_numpy().max() < 1:
        raise RunDirError(f"'{path}': counts must not be negative and some must be positive (0 is a retrained "
                          f"run's word that its new corpus lacks)")
    return table


# --- corpus/ and pairs/: written by Spark, scanned by training ---------------------------------------------------
def scan_pairs(path: Path, vocab_size: int) -> tuple[list[Path], list[int]]:
    """The pairs files of a draw with their row counts, each checked against the schema and the vocabulary's ids."""
    files, rows = _scan_dataset(path, PAIRS, vocab_size)
    if sum(rows) == 0:
        raise RunDirError(f"'{path}' holds no pairs: the corpus is too small for the window")
    return files, rows


def scan_corpus(path: Path, vocab_size: int) -> tuple[list[Path], list[int]]:
    """The corpus files (pair_source=corpus) with their chunk counts, checked like the pairs files."""
    files, rows = _scan_dataset(path, CORPUS, vocab_size)
    if sum(rows) == 0:
        raise RunDirError(f"'{path}' holds no chunks: nothing to train on")
    return files, rows


def _scan_dataset(path: Path, dataset: ParquetDataset, vocab_size: int) -> tuple[list[Path], list[int]]:
    """The dataset's files and their row counts, from their footers: the schema and the id columns' min/max
    statistics are checked without reading the rows."""
    name, schema = dataset.folder, dataset.schema
    files = sorted(path.glob(PARTS)) if path.is_dir() else []
    if not files:
        raise RunDirError(f"'{path}' holds no {PARTS} files: the preprocess output is incomplete")
    id_columns = [field.name for field in schema if field.type in (pa.int32(), pa.list_(pa.int32()))]
    rows = []
    for file in files:
        try:
            parquet = pq.ParquetFile(file)
        except (pa.ArrowInvalid, OSError) as exc:
            raise RunDirError(f"{name} file '{file}' is not readable Parquet: {exc}") from None
        found = parquet.schema_arrow
        for field in schema:
            if field.name not in found.names or not found.field(field.name).type.equals(field.type,
                                                                                        check_metadata=False):
                raise RunDirError(f"{name} file '{file}' must have columns {_describe(dataset.schema)}; got "
                                  f"{_describe(found)}")
        for column in id_columns:
            low, high = _id_range(file, parquet, column, name)
            if low < 0 or high >= vocab_size:
                raise RunDirError(f"{name} file '{file}': column {column} holds ids from {low} to {high} but the "
                                  f"vocabulary has ids 0..{vocab_size - 1}: the file does not match "
                                  f"{VOCAB.folder}/; run preprocess again")
        rows.append(parquet.metadata.num_rows)
    return files, rows


def _id_range(file: Path, parquet: pq.ParquetFile, column: str, name: str) -> tuple[int, int]:
    """Min and max of an id column (or of the ids in a list column), from the row-group statistics when every row
    group has them."""
    metadata = parquet.metadata
    leaf = next(i for i in range(metadata.num_columns)
                if metadata.schema.column(i).path.split(".")[0] == column)
    lows, highs = [], []
    for group in range(metadata.num_row_groups):
        chunk = metadata.row_group(group).column(leaf)
        if chunk.num_values == 0:
            continue
        stats = chunk.statistics
        if stats is None or not stats.has_min_max or stats.null_count:
            values = parquet.read(columns=[column]).column(column).combine_chunks()
            if isinstance(values, pa.ListArray):
                values = values.flatten()
            if values.null_count:
                raise RunDirError(f"{name} file '{file}' has null {column} ids")
            ids = values.to_numpy()
            return (int(ids.min()), int(ids.max())) if len(ids) else (0, 0)
        lows.append(stats.min)
        highs.append(stats.max)
    return (min(lows), max(highs)) if lows else (0, 0)


# --- vectors/ ----------------------------------------------------------------------------------------------------
def write_vectors_dataset(folder: Path, vocab: pa.Table, blocks: Iterable[np.ndarray]) -> None:
    """vectors/: the vocabulary's rows (read_vocabulary) beside their vectors, `blocks` being consecutive float32
    blocks of rows of the V x dim matrix, in id order (a block at a time: the matrix need not fit in memory)."""
    folder.mkdir()
    with pq.ParquetWriter(folder / SINGLE_PART, VECTORS.schema) as writer:
        start = 0
        for block in blocks:
            rows, dim = block.shape
            values = pa.array(block.reshape(-1), pa.float32())
            offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * dim)
            part = vocab.slice(start, rows)
            writer.write_table(pa.Table.from_arrays(
                [part.column("id"), part.column("word"), part.column("count"),
                 pa.ListArray.from_arrays(offsets, values)], schema=VECTORS.schema))
            start += rows


# --- JSON lines: train/metrics.jsonl, and probes/probes.jsonl (its records are probes.py's) ----------------------
def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line: a reader sees whole records, or a last line cut short by a kill, which it skips."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def read_epoch_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of train/metrics.jsonl by epoch; after a resume, the last record of an epoch wins. Nothing when
    there is no file yet; a line that is not a record (one being written right now) is skipped."""
    if not path.exists():
        return []
    epochs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            epochs[int(record["epoch"])] = record
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return [epochs[k] for k in sorted(epochs)]
