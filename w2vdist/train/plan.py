"""What a training run needs, checked before any work starts.

`build_plan` reads the run directory's manifest, the vocabulary and the metadata of every pairs file (row counts and
the min/max statistics of both id columns, so a pairs file that does not match the vocabulary is found without
reading it), and checks that the settings can work together. Everything wrong is reported at once, naming the file
or the setting. The plan is a plain dict-able record that the launcher hands to every worker.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from w2vdist.config import Config
from w2vdist.errors import ConfigError, RunDirError
from w2vdist.rundir import RunDir

# The settings that decide the trained vectors: a resumed run must keep every one of them.
RESULT_SETTINGS = ["dim", "negative", "epochs", "alpha", "min_alpha", "batch_size", "streams", "pair_source", "seed"]
# The settings recorded with the stage besides those; they change how the run goes, not what it computes.
RUN_SETTINGS = ["num_workers", "use_gpu", "checkpoint_interval_s", "max_failures", "max_steps", "probe_words",
                "probe_every"]

VOCAB_SCHEMA = pa.schema([("id", pa.int32()), ("word", pa.string()), ("count", pa.int64())])
PAIRS_SCHEMA = pa.schema([("center", pa.int32()), ("context", pa.int32())])
CORPUS_SCHEMA = pa.schema([("chunk_id", pa.int64()), ("ids", pa.list_(pa.int32()))])


@dataclasses.dataclass
class TrainPlan:
    run_dir: str
    settings: dict[str, Any]          # RESULT_SETTINGS and RUN_SETTINGS
    vocab_size: int
    raw_tokens: int                   # corpus words per epoch (before min_count): the words of words/s
    pairs_per_epoch: int              # pairs/ holds these; pair_source=corpus generates about as many
    pair_files: list[str]             # pair_source=pairs: paths, in name order
    pair_rows: list[int]              # rows of each file
    corpus_files: list[str]           # pair_source=corpus: paths, in name order
    corpus_chunks: list[int]          # chunks (rows) of each file
    window: int                       # preprocess's window, which pair_source=corpus draws from
    preprocess_completed: str         # which preprocess output this run trains on
    base_checkpoint: str | None = None  # retraining: the base run's last checkpoint, whose rows start the tables

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainPlan":
        return cls(**data)


def build_plan(config: Config) -> TrainPlan:
    if not config.out:
        raise ConfigError("setting 'out' is required: the run directory to train on (w2vdist train RUN_DIR)")
    run = RunDir(Path(config.out).resolve())  # workers run elsewhere: Ray Train gives each its own cwd
    record = run.require_complete("preprocess", "training")
    stats = record.get("stats") or {}
    missing = [key for key in ("raw_tokens", "pairs") if not isinstance(stats.get(key), int)]
    if missing:
        raise RunDirError(f"'{run.manifest_path}': stages.preprocess.stats lacks {', '.join(missing)}; "
                          f"run `w2vdist preprocess` again")
    vocab_size = len(read_vocabulary(run.path / "vocab"))
    pair_files, pair_rows, corpus_files, corpus_chunks = [], [], [], []
    if config.pair_source == "pairs":
        pair_files, pair_rows = scan_pairs(run.path / "pairs", vocab_size)
        if sum(pair_rows) != stats["pairs"]:
            raise RunDirError(f"'{run.path / 'pairs'}' holds {sum(pair_rows):,} pairs but the manifest says "
                              f"{stats['pairs']:,}: the pairs are not the ones preprocess wrote; run it again")
    else:
        corpus_files, corpus_chunks = scan_corpus(run.path / "corpus", vocab_size)
    problems = settings_problems(config)
    if problems:
        raise ConfigError("invalid settings for training:\n  " + "\n  ".join(problems))
    return TrainPlan(run_dir=str(run.path), settings=config.subset(RESULT_SETTINGS + RUN_SETTINGS),
                     vocab_size=vocab_size, raw_tokens=stats["raw_tokens"], pairs_per_epoch=stats["pairs"],
                     pair_files=[str(f) for f in pair_files], pair_rows=pair_rows,
                     corpus_files=[str(f) for f in corpus_files], corpus_chunks=corpus_chunks,
                     window=int(record["config"]["window"]), preprocess_completed=record["completed"],
                     base_checkpoint=_base_checkpoint(record.get("base_run"), config.dim))


def _base_checkpoint(base_run: dict[str, Any] | None, dim: int) -> str | None:
    """The checkpoint a retraining starts from: the base run's last one, if it is still the one it finished with."""
    if not base_run:
        return None
    base = RunDir(base_run["path"])
    trained = base.require_complete("train", "retraining (setting 'base_run')")
    if trained["completed"] != base_run["train_completed"]:
        raise RunDirError(f"base run '{base.path}' was trained again after this run's preprocess merged its "
                          f"vocabulary: run `w2vdist preprocess` again")
    if trained["config"]["dim"] != dim:
        raise ConfigError(f"setting 'dim' ({dim}) must equal the base run's ({trained['config']['dim']}) to "
                          f"start from its vectors (setting 'base_run' = {base.path})")
    folder = Path(trained["stats"]["checkpoint"])
    if not folder.is_dir():
        raise RunDirError(f"base run '{base.path}': its last checkpoint '{folder}' is gone")
    return str(folder)


def settings_problems(config: Config) -> list[str]:
    """Settings that each pass their own check but cannot work together."""
    problems = []
    if config.dim % config.num_workers:
        problems.append(f"setting 'dim' ({config.dim}) must be divisible by 'num_workers' ({config.num_workers}): "
                        f"each worker owns dim/num_workers columns of both tables")
    if config.pair_source == "pairs" and config.num_workers > config.streams:
        problems.append(f"setting 'num_workers' ({config.num_workers}) must not exceed 'streams' "
                        f"({config.streams}): each worker reads at least one stream of pairs")
    if config.pair_source == "pairs" and config.batch_size < config.streams:
        problems.append(f"setting 'batch_size' ({config.batch_size}) must be at least 'streams' "
                        f"({config.streams}): every step takes pairs from every stream")
    return problems


def read_vocabulary(path: Path) -> pa.Table:
    """vocab/ as a table with ids 0..V-1 in order; a clear error for anything else."""
    if not path.is_dir():
        raise RunDirError(f"'{path}' does not exist: the preprocess output is incomplete; run it again")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise RunDirError(f"'{path}' is not a readable Parquet dataset: {exc}") from None
    for field in VOCAB_SCHEMA:
        if field.name not in table.schema.names or table.schema.field(field.name).type != field.type:
            raise RunDirError(f"'{path}' must have columns id int32, word string, count int64; got {table.schema}")
    table = table.select(VOCAB_SCHEMA.names).sort_by("id")
    ids = table.column("id").to_numpy()
    if len(ids) == 0:
        raise RunDirError(f"'{path}' is empty: no word reached min_count")
    if not np.array_equal(ids, np.arange(len(ids))):
        raise RunDirError(f"'{path}': ids must be 0..{len(ids) - 1} without gaps or repeats")
    if table.column("count").to_numpy().min() < 0 or table.column("count").to_numpy().max() < 1:
        raise RunDirError(f"'{path}': counts must not be negative and some must be positive (0 is a retrained "
                          f"run's word that its new corpus lacks)")
    return table


def scan_pairs(path: Path, vocab_size: int) -> tuple[list[Path], list[int]]:
    """The pairs files with their row counts, each checked against the schema and the vocabulary's ids."""
    files, rows = _scan_dataset(path, "pairs", PAIRS_SCHEMA, vocab_size)
    if sum(rows) == 0:
        raise RunDirError(f"'{path}' holds no pairs: the corpus is too small for the window")
    return files, rows


def scan_corpus(path: Path, vocab_size: int) -> tuple[list[Path], list[int]]:
    """The corpus files (pair_source=corpus) with their chunk counts, checked like the pairs files."""
    files, rows = _scan_dataset(path, "corpus", CORPUS_SCHEMA, vocab_size)
    if sum(rows) == 0:
        raise RunDirError(f"'{path}' holds no chunks: nothing to train on")
    return files, rows


def _scan_dataset(path: Path, name: str, schema: pa.Schema, vocab_size: int) -> tuple[list[Path], list[int]]:
    files = sorted(path.glob("part-*.parquet")) if path.is_dir() else []
    if not files:
        raise RunDirError(f"'{path}' holds no part-*.parquet files: the preprocess output is incomplete")
    expected = ", ".join(f"{field.name} {field.type}" for field in schema)
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
                got = ", ".join(f"{field.name} {field.type}" for field in found)
                raise RunDirError(f"{name} file '{file}' must have columns {expected}; got {got}")
        for column in id_columns:
            low, high = _id_range(file, parquet, column, name)
            if low < 0 or high >= vocab_size:
                raise RunDirError(f"{name} file '{file}': column {column} holds ids from {low} to {high} but the "
                                  f"vocabulary has ids 0..{vocab_size - 1}: the file does not match vocab/; run "
                                  f"preprocess again")
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
