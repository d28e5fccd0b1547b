"""Failures a scheduler or a user meets: each is one line naming the file or setting, the pipeline's last line on
stdout is always its summary, and a failed write leaves nothing that looks complete."""

from __future__ import annotations

import errno
import gzip
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from w2vdist.cli import main
from w2vdist.errors import one_line
from w2vdist.pipeline import PipelineResult
from w2vdist.vectors import Vectors

WORDS = ["paris", "france", "rome", "italy"]
MATRIX = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.1, 0.9, 0.1]], np.float32)


def pipeline(*words):
    done = subprocess.run([sys.executable, "-m", "w2vdist.cli", "pipeline", str(REPO / "conf" / "local.yaml"),
                           *words], capture_output=True, text=True, timeout=120, cwd=REPO)
    return done.returncode, done.stdout.splitlines(), done.stderr


@pytest.mark.parametrize("words, code, start, names", [
    (["sample=nan"], 2, "w2vdist pipeline FAILED at settings: | invalid settings: override 'sample=nan'", "'sample'"),
    (["--no-such-option"], 2, "w2vdist pipeline FAILED at settings: the command line is wrong", ""),
    # the input is checked with every stage's settings and files before the first stage starts
    (["input=CUT"], 2, "w2vdist pipeline FAILED at settings: OUT: | ", "cannot be decompressed"),
])
def test_the_pipelines_only_line_on_stdout_is_its_summary_whatever_fails(tmp_path, words, code, start, names):
    cut = gzip.compress(b"a few words on a line\n" * 20000)
    (tmp_path / "cut.txt.gz").write_bytes(cut[:len(cut) // 2])
    words = [w.replace("CUT", str(tmp_path / "cut.txt.gz")) for w in words] + [f"out={tmp_path / 'run'}"]
    returncode, out, err = pipeline(*words)
    assert returncode == code, err
    assert len(out) == 1, out
    assert out[0].startswith(start.replace("OUT", str(tmp_path / "run"))) and names in out[0]
    assert not (tmp_path / "run").exists()


def test_an_unexpected_error_is_cut_to_one_line_in_the_summary():
    java = RuntimeError("An error occurred while calling o91.parquet.\n: org.apache.spark.SparkException: "
                       "Job aborted due to stage failure\n\tat org.apache.spark.Something(Some.scala:1)\n" * 40)
    line = one_line(java)
    assert line == "RuntimeError: org.apache.spark.SparkException: Job aborted due to stage failure"
    result = PipelineResult("runs/x", {"preprocess": "failed"}, failed="preprocess", error=str(java))
    assert "\n" not in result.summary() and result.summary().startswith("w2vdist pipeline FAILED at preprocess")


def test_an_export_to_a_full_disk_is_one_line_and_leaves_no_file(tmp_path, monkeypatch, capsys):
    source = tmp_path / "vectors.txt"
    Vectors(WORDS, MATRIX).save(source, "word2vec")

    def full(table, handle):  # the writer gets the open (temporary) file
        handle.write(b"half a fi")
        raise OSError(errno.ENOSPC, "No space left on device", handle.name)

    monkeypatch.setattr("w2vdist.formats._write_word2vec_binary", full)
    out = tmp_path / "out" / "vectors.bin"
    assert main(["export", str(source), "--format", "word2vec-binary", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("w2vdist export: error: cannot write '") and "no space left on the device" in err
    assert len(err.splitlines()) == 1
    assert list(out.parent.iterdir()) == []  # neither the file nor its temporary


def test_evaluating_a_run_directory_takes_its_lock(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "vectors").mkdir(parents=True)
    Vectors(WORDS, MATRIX).save(run / "vectors" / "part-00000.parquet", "parquet")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("paris\tfrance\t9\nparis\trome\t5\nrome\titaly\t9\nfrance\titaly\t5\n")
    hold = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom w2vdist.rundir import RunDir\n"
                             "with RunDir(sys.argv[1]).locked('train'):\n    print('locked', flush=True)\n"
                             "    time.sleep(600)", str(run)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert hold.stdout.readline().strip() == "locked"
        assert main(["evaluate", str(run), "--similarity", str(pairs)]) == 2
        assert f"pid {hold.pid}" in capsys.readouterr().err
        assert not (run / "eval").exists()
    finally:
        hold.kill()
        hold.wait()
    assert main(["evaluate", str(run), "--similarity", str(pairs)]) == 0
    assert (run / "eval" / "evaluation.json").is_file()
