"""The whole preprocess job on small corpora: exact statistics, idempotent commits, bad input."""

import bz2
import errno
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests import reference
from tests.conftest import REPO, spark_test_conf
from w2vdist.cli import main
from w2vdist.config import load_config
from w2vdist.errors import ConfigError, InputError, OutputError, RunDirError
from w2vdist.preprocess import job
from w2vdist.preprocess.job import run_preprocess
from w2vdist.preprocess.pairs import center_stride
from w2vdist.random_streams import Stream, stream_key
from w2vdist.tokenizer import Tokenizer

PHRASE_LINES = [
    "I moved to New York City last year, and New York is large.",
    "The mayor of New York City spoke; York is old.",
    "City life in New York City is busy.",
]


def read_real_slice(shared_data, lines=400):
    with gzip.open(shared_data / "corpora" / "enwiki_2015_first100MB.txt.gz", "rt", encoding="utf-8") as handle:
        return [next(handle).rstrip("\n") for _ in range(lines)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shared_data):
    """One corpus spread over every input kind: plain, gzip and bzip2 text, a folder, Parquet and JSON lines."""
    root = tmp_path_factory.mktemp("corpus")
    real = read_real_slice(shared_data)
    lines = real + PHRASE_LINES * 20 + ["", "   "]
    parts = [lines[i::5] for i in range(5)]
    (root / "plain.txt").write_text("\n".join(parts[0]) + "\n", encoding="utf-8")
    with gzip.open(root / "packed.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(parts[1]))
    (root / "folder" / "nested").mkdir(parents=True)
    (root / "folder" / "nested" / "more.txt.bz2").write_bytes(bz2.compress("\n".join(parts[2]).encode()))
    (root / "folder" / "_SUCCESS").write_text("")
    pq.write_table(pa.table({"id": range(len(parts[3])), "body": parts[3]}), root / "docs.parquet")
    (root / "docs.jsonl").write_text("\n".join(json.dumps({"body": t}) for t in parts[4]) + "\n", encoding="utf-8")
    inputs = [str(root / n) for n in ("plain.txt", "packed.txt.gz", "folder", "docs.parquet", "docs.jsonl")]
    return inputs, lines


def settings(inputs, out, *extra):
    return load_config([], ["min_count=3", "phrase_threshold=[40, 20]", "sample=1e-2", "window=3",
                            "pairs_per_file=1000", "text_column=body", *extra], {"input": inputs, "out": str(out)})


@pytest.fixture(scope="module")
def finished_run(spark, corpus, tmp_path_factory):
    inputs, lines = corpus
    out = tmp_path_factory.mktemp("runs") / "run"
    record = run_preprocess(settings(inputs, out, "pair_draws=2"), spark=spark)
    return out, record, lines


def test_statistics_and_datasets_equal_the_reference(finished_run):
    out, record, lines = finished_run
    chunks = [t for t in (Tokenizer().tokenize(line) for line in lines) if t]
    stats = record["stats"]
    assert stats["raw_tokens"] == sum(len(c) for c in chunks)
    assert stats["documents"] == stats["chunks"] == len(chunks)
    assert stats["undecodable_lines"] == 0 and stats["input_files"] == 5
    first, after_first = reference.phrase_pass(chunks, 3, 40)
    second, after_second = reference.phrase_pass(after_first, 3, 20)
    assert ("new", "york") in first and ("new_york", "city") in second
    assert stats["phrases_per_pass"] == [len(first), len(second)]
    written = pq.read_table(out / "phrases").to_pylist()
    assert {(p["phrase"], p["pass"]) for p in written} == (
        {(f"{a}_{b}", 1) for a, b in first} | {(f"{a}_{b}", 2) for a, b in second})
    vocab = pq.read_table(out / "vocab")
    rows = reference.vocabulary(after_second, 3)
    assert list(zip(*(vocab[c].to_pylist() for c in ("id", "word", "count")))) == rows
    assert stats["vocab_size"] == vocab.num_rows
    assert stats["tokens_after_min_count"] == sum(vocab["count"].to_pylist())

    corpus = pq.read_table(out / "corpus").sort_by("chunk_id")
    assert corpus.schema.field("ids").type == pa.list_(pa.int32())
    chunk_ids, id_lists = corpus["chunk_id"].to_pylist(), corpus["ids"].to_pylist()
    assert Counter(map(tuple, id_lists)) == Counter(map(tuple, reference.ids_after_min_count(after_second, rows)))
    assert stats["tokens_after_min_count"] == sum(map(len, id_lists))
    counts = vocab["count"].to_pylist()
    assert stats["expected_tokens_after_subsampling"] == pytest.approx(
        sum(c * reference.keep_probability(c, sum(counts), 1e-2) for c in counts), abs=0.1)

    assert stats["pair_draws"] == 2 and sorted(p.name for p in (out / "pairs").iterdir()) == ["draw=0", "draw=1"]
    draws = []
    for draw in (0, 1):
        keys = stream_key(1, Stream.SUBSAMPLE, draw), stream_key(1, Stream.WINDOW, draw)
        expected = Counter(reference.draw_pairs(zip(chunk_ids, id_lists), counts, 1e-2, *keys, 3, center_stride(3)))
        files = sorted((out / "pairs" / f"draw={draw}").glob("part-*.parquet"))
        pairs = pa.concat_tables(pq.read_table(f) for f in files)
        assert pairs.schema == pa.schema([("center", pa.int32()), ("context", pa.int32())])
        assert Counter(zip(pairs["center"].to_pylist(), pairs["context"].to_pylist())) == expected
        assert stats["pairs_per_draw"][draw] == pairs.num_rows
        assert len(files) > 1 and max(pq.ParquetFile(f).metadata.num_rows for f in files) <= 2 * 1000
        draws.append((expected, len(files)))
    assert draws[0][0] != draws[1][0]
    assert stats["pairs"] == sum(stats["pairs_per_draw"]) and stats["pair_files"] == draws[0][1] + draws[1][1]
    # each draw keeps about the expected tokens, so it has about (window + 1) pairs per kept token
    for n in stats["pairs_per_draw"]:
        assert 0.8 * 4 * stats["expected_tokens_after_subsampling"] < n < 4 * stats["expected_tokens_after_subsampling"]


def test_manifest_records_inputs_settings_and_completion_last(finished_run, corpus):
    out, record, _ = finished_run
    manifest = json.loads((out / "manifest.json").read_text())
    stage = manifest["stages"]["preprocess"]
    assert list(stage)[-1] == "completed" and stage["completed"]
    assert stage["config"]["window"] == 3 and stage["config"]["phrase_threshold"] == [40.0, 20.0]
    assert stage["config"]["pair_draws"] == 2 and "pair_draws" in job.SETTINGS  # a new pair_draws redoes the stage
    assert {os.path.basename(i["path"]) for i in stage["inputs"]} == \
        {"plain.txt", "packed.txt.gz", "more.txt.bz2", "docs.parquet", "docs.jsonl"}
    assert all(i["bytes"] > 0 for i in stage["inputs"])
    assert set(stage["seconds"]) >= {"tokenize", "count", "phrases", "vocab", "ids", "pairs", "total"}
    assert not (out / "_staging").exists()


def test_rerun_with_the_same_inputs_does_nothing_unless_settings_change_or_forced(spark, corpus, tmp_path):
    inputs, _ = corpus
    out = tmp_path / "run"
    first = run_preprocess(settings(inputs, out, "phrase_passes=0", "phrase_threshold=100"), spark=spark)
    time.sleep(1.1)
    again = run_preprocess(settings(inputs, out, "phrase_passes=0", "phrase_threshold=100"), spark=spark)
    assert again["completed"] == first["completed"]
    changed = run_preprocess(settings(inputs, out, "phrase_passes=0", "phrase_threshold=100", "window=2"),
                             spark=spark)
    assert changed["completed"] != first["completed"] and changed["config"]["window"] == 2
    time.sleep(1.1)
    forced = run_preprocess(settings(inputs, out, "phrase_passes=0", "phrase_threshold=100", "window=2",
                                     "force=true"), spark=spark)
    assert forced["completed"] != changed["completed"]


JAVA_DISK_FULL = RuntimeError(
    "An error occurred while calling o91.parquet.\n: org.apache.spark.SparkException: Job aborted.\n"
    "Caused by: java.io.IOException: No space left on device\n\tat java.base/java.io.FileOutputStream.writeBytes")


def raising(error):
    def fail(*args, **kwargs):
        raise error
    return fail


def test_a_failed_run_leaves_nothing_that_looks_complete(spark, corpus, tmp_path, monkeypatch):
    inputs, _ = corpus
    out = tmp_path / "run"
    run_preprocess(settings(inputs, out, "phrase_passes=0", "phrase_threshold=100"), spark=spark)
    # the disk fills while Spark writes pairs/: Java says so in its trace, which becomes one line naming the run
    monkeypatch.setattr(job, "make_pairs", raising(JAVA_DISK_FULL))
    with pytest.raises(OutputError) as info:
        run_preprocess(settings(inputs, out, "phrase_passes=0", "phrase_threshold=100", "force=true"), spark=spark)
    assert str(info.value) == f"cannot write '{out}': no space left on the device; free some space and run it again"
    assert info.value.exit_code == 1
    stage = json.loads((out / "manifest.json").read_text())["stages"]["preprocess"]
    assert not stage["completed"]
    assert not (out / "_staging").exists()
    # the same from Python (pyarrow, the manifest) in a run directory the run created: nothing is left of it
    fresh = tmp_path / "fresh"
    monkeypatch.setattr(job, "make_pairs", raising(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(OutputError, match="no space left on the device"):
        run_preprocess(settings(inputs, fresh, "phrase_passes=0", "phrase_threshold=100"), spark=spark)
    assert not fresh.exists()


def test_a_killed_job_is_not_mistaken_for_complete_and_reruns_cleanly_while_a_second_run_is_refused(tmp_path):
    out = tmp_path / "run"
    sample = REPO / "w2vdist" / "data" / "sample" / "corpus.txt.gz"
    conf = tmp_path / "spark.yaml"
    conf.write_text(json.dumps({"spark_conf": spark_test_conf(), "spark_master": "local[2]"}))
    command = [sys.executable, "-m", "w2vdist.cli", "preprocess", str(sample), "--out", str(out),
               "--config", str(conf)]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(out.glob("_staging/preprocess-*/tokens/_SUCCESS")) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    manifest = out / "manifest.json"
    assert not manifest.exists() or not json.loads(manifest.read_text())["stages"].get("preprocess", {}).get(
        "completed")
    assert not (out / "pairs").exists()

    # The rerun, and a second run on the same directory started 3 s later: refused at once, naming the lock and
    # its holder, without touching the staging folder the rerun is writing.
    rerun = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    started = time.monotonic()
    while str(rerun.pid) not in ((out / ".lock").read_text() if (out / ".lock").is_file() else ""):
        assert rerun.poll() is None and time.monotonic() - started < 60, rerun.stderr.read()
        time.sleep(0.1)
    time.sleep(max(0.0, 3 - (time.monotonic() - started)))
    second = subprocess.run(command, capture_output=True, text=True, timeout=60)
    _, rerun_err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, rerun_err
    assert second.returncode == 2
    assert f"pid {rerun.pid}" in second.stderr and str(out / ".lock") in second.stderr
    assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
    assert json.loads(manifest.read_text())["stages"]["preprocess"]["completed"]
    assert not (out / "_staging").exists()

    # The rerun's output is what an uninterrupted run writes: the reference chain with the default settings.
    with gzip.open(sample, "rt", encoding="utf-8") as handle:
        chunks = [t for t in (Tokenizer().tokenize(line) for line in handle) if t]
    _, after_first = reference.phrase_pass(chunks, 5, 100)
    _, after_second = reference.phrase_pass(after_first, 5, 100)
    vocab = pq.read_table(out / "vocab")
    assert list(zip(*(vocab[c].to_pylist() for c in ("id", "word", "count")))) == \
        reference.vocabulary(after_second, 5)
    stats = json.loads(manifest.read_text())["stages"]["preprocess"]["stats"]
    assert stats["documents"] == len(chunks) and stats["raw_tokens"] == sum(map(len, chunks))


def test_undecodable_bytes_are_replaced_and_counted(spark, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line here\nbad \xff\xfe bytes here\nanother good line\ncaf\xc3 here\n")
    record = run_preprocess(load_config([], ["min_count=1", "phrase_passes=0"], {"input": [str(path)],
                                                                                 "out": str(tmp_path / "r")}),
                            spark=spark)
    assert record["stats"]["undecodable_lines"] == 2
    words = set(pq.read_table(tmp_path / "r" / "vocab")["word"].to_pylist())
    assert {"bad", "bytes", "caf", "here"} <= words


# Damage past the first 64 KiB of text, where a check of the head alone does not reach.
LONG_TEXT = "".join(f"line {i} of a corpus that goes on for a while\n" for i in range(20000)).encode()
CUT_GZIP = gzip.compress(LONG_TEXT)[:len(gzip.compress(LONG_TEXT)) // 2]
CUT_BZIP2 = bz2.compress(LONG_TEXT)[:len(bz2.compress(LONG_TEXT)) // 2]


def parquet_bytes(table):
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


PARQUET_WITHOUT_TEXT = parquet_bytes(pa.table({"content": ["a b c"]}))


def write(path, data):
    if isinstance(data, bytes):
        path.write_bytes(data)
    elif data is None:
        path.mkdir()
    else:
        path.write_text(data)
    return path


@pytest.mark.parametrize("name, data, message", [
    ("missing.txt", False, "does not exist"),
    ("empty.txt", "", "is empty"),
    ("empty.gz", gzip.compress(b""), "is empty"),
    ("blank", None, "holds no non-empty files"),
    ("model.bin", bytes(range(256)) * 10, "looks binary"),
    ("broken.gz", b"not gzip at all", "is damaged"),
    ("cut.txt.gz", CUT_GZIP, "is damaged: it cannot be decompressed after"),
    ("cut.txt.bz2", CUT_BZIP2, "is damaged: it cannot be decompressed"),
    ("cut.jsonl.gz", CUT_GZIP, "is damaged"),
    ("nocolumn.parquet", PARQUET_WITHOUT_TEXT, "no column 'text' (setting `text_column`); columns are: content"),
], ids=lambda value: value if isinstance(value, str) and "." in value else "")
def test_bad_inputs_get_a_clear_message_and_a_nonzero_exit(tmp_path, capsys, name, data, message):
    path = tmp_path / name if data is False else write(tmp_path / name, data)
    code = main(["preprocess", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and path.name in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "c.txt").write_text("some words here\n")
    (tmp_path / "taken").write_text("a file")
    assert main(["preprocess", str(tmp_path / "c.txt"), "--out", str(tmp_path / "taken")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_min_count_that_leaves_no_vocabulary_is_named(spark, tmp_path):
    (tmp_path / "c.txt").write_text("the cat sat on the mat\n")
    config = load_config([], ["min_count=50", "phrase_passes=0"], {"input": [str(tmp_path / "c.txt")],
                                                                   "out": str(tmp_path / "run")})
    with pytest.raises(ConfigError, match=r"'min_count' = 50 leaves no word.*'the', occurs 2 times"):
        run_preprocess(config, spark=spark)
    assert not json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"] if \
        (tmp_path / "run" / "manifest.json").exists() else True
    assert not (tmp_path / "run" / "vocab").exists()


def test_a_long_word_is_cut_in_the_min_count_message(spark, tmp_path):
    long_word = "x" * 5000
    (tmp_path / "c.txt").write_text(f"the cat {long_word}\n{long_word} {long_word}\n")
    config = load_config([], ["min_count=50", "phrase_passes=0"], {"input": [str(tmp_path / "c.txt")],
                                                                   "out": str(tmp_path / "run")})
    with pytest.raises(ConfigError) as info:
        run_preprocess(config, spark=spark)
    assert f"'{'x' * 40}... (5,000 characters)', occurs 3 times" in str(info.value)
    assert len(str(info.value)) < 300


def test_no_tokens_left_after_dropping_numbers_says_so(spark, tmp_path):
    (tmp_path / "n.txt").write_text("1999 2000\n42\n")
    config = load_config([], ["numbers=drop", "min_count=1", "phrase_passes=0"],
                         {"input": [str(tmp_path / "n.txt")], "out": str(tmp_path / "run")})
    with pytest.raises(InputError, match="after setting 'numbers' = drop removed the numbers"):
        run_preprocess(config, spark=spark)


def test_malformed_json_lines_are_counted_and_warned_about(spark, tmp_path, caplog):
    lines = [json.dumps({"text": f"words of document {i}"}) if i % 10 else '{"text": "cut off' for i in range(90)]
    lines += ["[1, 2]", "not json"]
    (tmp_path / "docs.jsonl").write_text("\n".join(lines) + "\n")
    config = load_config([], ["min_count=1", "phrase_passes=0"], {"input": [str(tmp_path / "docs.jsonl")],
                                                                  "out": str(tmp_path / "run")})
    record = run_preprocess(config, spark=spark)
    assert record["stats"]["malformed_json_lines"] == 9 + 2
    assert record["stats"]["documents"] == 81
    assert "11 JSON lines are not JSON objects and were skipped" in caplog.text
    clean = tmp_path / "clean.jsonl"
    clean.write_text("\n".join(json.dumps({"text": "one two"}) for _ in range(5)) + "\n")
    config = load_config([], ["min_count=1", "phrase_passes=0"], {"input": [str(clean)], "out": str(tmp_path / "c")})
    assert run_preprocess(config, spark=spark)["stats"]["malformed_json_lines"] == 0


def test_an_input_spark_cannot_read_is_one_message_naming_it(spark, tmp_path, monkeypatch):
    path = write(tmp_path / "cut.txt.gz", CUT_GZIP)
    monkeypatch.setattr("w2vdist.preprocess.inputs._check", lambda *args: None)  # as if damaged after the check
    config = load_config([], ["min_count=1", "phrase_passes=0"], {"input": [str(path)], "out": str(tmp_path / "run")})
    with pytest.raises(InputError) as info:
        run_preprocess(config, spark=spark)
    assert str(info.value) == f"input file '{path}' cannot be read: java.io.EOFException: Unexpected end of input stream"
    assert not (tmp_path / "run").exists()


def test_an_output_directory_that_cannot_be_written_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "c.txt").write_text("some words here\n")
    out = tmp_path / "readonly"
    out.mkdir()
    real_open = os.open

    def read_only(path, *args, **kwargs):  # the test runs as root, which chmod does not stop
        if str(path).startswith(str(out)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert main(["preprocess", str(tmp_path / "c.txt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"w2vdist preprocess: error: cannot write '{out / '.lock'}': the file system is "
                           f"read-only; choose another output path")


def test_missing_out_is_an_error():
    with pytest.raises(ConfigError, match="'out'"):
        run_preprocess(load_config([], [], {"input": ["x"]}))


def test_run_dir_refuses_a_file(tmp_path):
    from w2vdist.rundir import RunDir
    (tmp_path / "f").write_text("")
    with pytest.raises(RunDirError, match="is a file"):
        RunDir(tmp_path / "f")
