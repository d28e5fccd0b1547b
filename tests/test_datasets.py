"""The run directory's contracts: the README's table of datasets says what datasets.py declares, column by column and
type by type; the layout has a path for every entry the table lists; Spark's schemas are the Arrow ones; the
vocabulary's reader refuses what training could not use, naming it."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO
from w2vdist.datasets import CORPUS, PAIRS, PARQUET_DATASETS, VOCAB, read_vocabulary, write_vocabulary
from w2vdist.errors import RunDirError
from w2vdist.rundir import RunDir

SECTION = "## Run directory and dataset schemas"


def readme_table() -> list[dict[str, str]]:
    """The rows of the first table after SECTION, as {column heading: cell}, backticks kept."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no section '{SECTION}'"
    lines = text.split(SECTION, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    heading, rows = table[0], table[2:]  # table[1] is the |---| line
    return [dict(zip(heading, row)) for row in rows]


def arrow_type(text: str) -> pa.DataType:
    """`int32`, `list<float32>`, ... as the README writes them."""
    inner = re.fullmatch(r"list<(.+)>", text)
    return pa.list_(arrow_type(inner.group(1))) if inner else pa.type_for_alias(text)


def readme_schemas() -> dict[str, list[tuple[str, pa.DataType]]]:
    """The rows whose schema is a list of `name: type` columns (the Parquet datasets), by path."""
    schemas = {}
    for row in readme_table():
        columns = row["schema"].strip("`")
        if re.fullmatch(r"\w+: [\w<>]+(, \w+: [\w<>]+)*", columns):
            schemas[row["path"].strip("`")] = [(name, arrow_type(kind)) for name, kind in
                                               (column.split(": ") for column in columns.split(", "))]
    return schemas


def test_the_readme_documents_every_parquet_dataset_with_its_columns_and_types():
    documented = readme_schemas()
    assert sorted(documented) == sorted(f"{dataset.folder}/" for dataset in PARQUET_DATASETS)
    for dataset in PARQUET_DATASETS:
        columns = documented[f"{dataset.folder}/"]
        assert [name for name, _ in columns] == dataset.schema.names, dataset.folder
        for (name, kind), field in zip(columns, dataset.schema):
            assert kind.equals(field.type), f"{dataset.folder}/ column {name}: README {kind}, datasets.py {field.type}"


def test_the_layout_names_every_entry_of_the_readme_table(tmp_path):
    run = RunDir(tmp_path, create=True)
    named = {value.relative_to(run.path).as_posix() for value in vars(run).values()
             if hasattr(value, "relative_to") and value != run.path}
    named |= {run.manifest_path.name, run.lock_path.name}
    for row in readme_table():
        assert row["path"].strip("`").rstrip("/") in named, row["path"]


def test_spark_writes_with_the_arrow_schemas():
    from pyspark.sql.pandas.types import from_arrow_schema

    for dataset in PARQUET_DATASETS:
        columns = ",".join(column.replace(" ", ":") for column in dataset.spark_schema.split(", "))
        assert from_arrow_schema(dataset.schema).simpleString() == f"struct<{columns}>"
    assert CORPUS.spark_schema == "chunk_id bigint, ids array<int>" and PAIRS.spark_schema == "center int, context int"


def _vocabulary(ids, counts, id_type=pa.int32()) -> pa.Table:
    return pa.table({"id": pa.array(ids, id_type), "word": [f"w{i}" for i in range(len(ids))],
                     "count": pa.array(counts, pa.int64())})


def test_the_vocabulary_reader_gives_ids_in_order_and_names_what_is_wrong(tmp_path):
    write_vocabulary(tmp_path / "good", _vocabulary([1, 0, 2], [5, 9, 0]))
    table = read_vocabulary(tmp_path / "good")
    assert table.schema.equals(VOCAB.schema) and table.column("id").to_pylist() == [0, 1, 2]
    (tmp_path / "gap").mkdir()
    pq.write_table(_vocabulary([0, 2], [3, 2]), tmp_path / "gap" / "part-00000.parquet")
    with pytest.raises(RunDirError, match=r"gap': ids must be 0..1 without gaps or repeats"):
        read_vocabulary(tmp_path / "gap")
    (tmp_path / "wide").mkdir()
    pq.write_table(_vocabulary([0, 1], [3, 2], pa.int64()), tmp_path / "wide" / "part-00000.parquet")
    with pytest.raises(RunDirError, match=r"wide' must have columns id int32, word string, count int64"):
        read_vocabulary(tmp_path / "wide")
    with pytest.raises(RunDirError, match="does not exist"):
        read_vocabulary(tmp_path / "missing")
    with pytest.raises(ValueError, match="vocab/ must have columns id int32"):
        write_vocabulary(tmp_path / "bad", _vocabulary([0], [1], pa.int64()))
