"""Training probes: what the recorder writes, how a resumed run reads back, the picture and `w2vdist probes`."""

import json

import matplotlib.image
import numpy as np
import pytest
import torch

from w2vdist.cli import main
from w2vdist.errors import UnknownWordsError
from w2vdist.probes import ProbeRecorder, plot_probes, read_probes
from w2vdist.synth import WORDS
from w2vdist.vectors import Vectors


def _matrices(steps, seed=0):
    """Vectors drifting from random towards a line through the alphabet, as training would pull them."""
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(len(WORDS), 8))
    target = np.zeros_like(start)
    angle = np.pi / 2 * (np.arange(len(WORDS)) / (len(WORDS) - 1)) ** 1.5  # uneven gaps: no tied neighbours
    target[:, 0], target[:, 1] = np.cos(angle), np.sin(angle)
    return [((1 - t) * start + t * target).astype(np.float32) for t in np.linspace(0, 1, steps)]


def test_records_every_n_steps_with_neighbours_pairs_and_mean_loss(tmp_path):
    matrices = _matrices(31)
    recorder = ProbeRecorder(["bbb", "mmm"], WORDS, every=10, out_dir=tmp_path / "probes", topn=3,
                             pairs=[("bbb", "ccc"), ("bbb", "zzz")])
    fetched = []

    def input_matrix(step):
        fetched.append(step)
        return torch.from_numpy(matrices[step])

    for step in range(1, 31):
        recorder.maybe_record(step, float(step), lambda: input_matrix(step))
    assert fetched == [10, 20, 30]  # the table is only fetched when a record is due
    records = read_probes(tmp_path / "probes")
    assert [r["step"] for r in records] == [10, 20, 30]
    assert [r["loss"] for r in records] == [5.5, 15.5, 25.5]  # the mean since the previous record
    for record in records:
        vectors = Vectors(WORDS, matrices[record["step"]])
        expected = dict(zip(["bbb", "mmm"], vectors.neighbours(["bbb", "mmm"], topn=3)))
        for word, neighbours in record["neighbours"].items():
            assert [w for w, _ in neighbours] == [w for w, _ in expected[word]]
            np.testing.assert_allclose([s for _, s in neighbours], [s for _, s in expected[word]], atol=1e-5)
        assert record["pairs"][1][:2] == ["bbb", "zzz"]
        assert record["pairs"][1][2] == pytest.approx(vectors.similarity("bbb", "zzz"), abs=1e-5)
    assert [w for w, _ in records[-1]["neighbours"]["bbb"]] == ["aaa", "ccc", "ddd"]


def test_a_resumed_run_keeps_the_last_record_of_each_step(tmp_path):
    matrices = _matrices(3)
    first = ProbeRecorder(["bbb"], WORDS, every=1, out_dir=tmp_path)
    first.record(1, matrices[0])
    first.record(2, matrices[1])
    resumed = ProbeRecorder(["bbb"], WORDS, every=1, out_dir=tmp_path)
    resumed.record(2, matrices[2])
    with open(tmp_path / "probes.jsonl", "a") as f:
        f.write('{"step": 3, "loss"')  # killed while writing
    records = read_probes(tmp_path)
    assert [r["step"] for r in records] == [1, 2]
    assert records[1]["neighbours"] == json.loads((tmp_path / "probes.jsonl").read_text().splitlines()[2])[
        "neighbours"]


def test_unknown_probe_words_fail_before_training(tmp_path):
    with pytest.raises(UnknownWordsError, match="unknown words 'king', 'queen': not in the vocabulary of the "
                                                "training vocabulary"):
        ProbeRecorder(["bbb", "king"], WORDS, every=5, out_dir=tmp_path, pairs=[("bbb", "queen")])


def test_picture_and_command_show_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    recorder = ProbeRecorder(["bbb", "mmm"], WORDS, every=5, out_dir=run / "probes", topn=4,
                             pairs=[("bbb", "ccc")])
    for step, matrix in enumerate(_matrices(41)):
        recorder.maybe_record(step, 3.0 / (1 + step), lambda matrix=matrix: matrix)
    assert main(["probes", str(run)]) == 0
    out = capsys.readouterr().out
    assert "9 records, steps 0 to 40" in out
    assert "bbb: aaa" in out and "bbb ~ ccc" in out
    image = matplotlib.image.imread(run / "probes" / "probes.png")
    assert image.shape[1] > 1000 and image[..., :3].std() > 0.05
    assert plot_probes(run / "probes", tmp_path / "elsewhere.png").stat().st_size > 20_000
    assert main(["probes", str(tmp_path)]) == 2
    assert "holds no probes.jsonl" in capsys.readouterr().err
