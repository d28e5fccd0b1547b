"""Training probes: what the recorder writes, how a resumed run reads back, the picture and `w2vdist probes`."""

import json

import matplotlib.image
import numpy as np
import pytest
import torch

from w2vdist.cli import main
from w2vdist.errors import UnknownWordsError
from w2vdist.probes import ProbeRecorder, epoch_ends, plot_probes, probe_figure, read_probes
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
    # `bbb~ccc` is how the probe_words setting names a pair; `pairs=` adds pairs the same way.
    recorder = ProbeRecorder(["bbb~ccc", "mmm"], WORDS, every=10, out_dir=tmp_path / "probes", topn=3,
                             pairs=[("bbb", "zzz")])
    assert recorder.words == ["bbb", "mmm"] and recorder.pairs == [("bbb", "ccc"), ("bbb", "zzz")]
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
        unit = matrices[record["step"]] / np.linalg.norm(matrices[record["step"]], axis=1, keepdims=True)
        cosines = np.delete(unit @ unit[1], 1)  # bbb with every other word
        for (a, b, cosine, rank, mean), other in zip(record["pairs"], ["ccc", "zzz"]):
            assert (a, b) == ("bbb", other)
            assert cosine == pytest.approx(vectors.similarity("bbb", other), abs=1e-5)
            assert rank == 1 + int((cosines > cosines[WORDS.index(other) - 1]).sum())
            assert mean == pytest.approx(cosines.mean(), abs=1e-5)
    assert [w for w, _ in records[-1]["neighbours"]["bbb"]] == ["aaa", "ccc", "ddd"]
    assert [p[3] for p in records[-1]["pairs"]] == [2, 25]  # ccc is bbb's second neighbour, zzz its last of 25


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
    recorder = ProbeRecorder(["bbb~ccc", "mmm"], WORDS, every=5, out_dir=run / "probes", topn=4)
    for step, matrix in enumerate(_matrices(41)):
        recorder.maybe_record(step, 3.0 / (1 + step), lambda matrix=matrix: matrix)
    assert main(["probes", str(run)]) == 0
    out = capsys.readouterr().out
    assert "9 records, steps 0 to 40" in out
    assert "bbb: aaa" in out and "bbb ~ ccc: cosine" in out and ", rank 2 (mean with all words" in out
    image = matplotlib.image.imread(run / "probes" / "probes.png")
    assert image.shape[1] > 1000 and image[..., :3].std() > 0.05
    assert plot_probes(run / "probes", tmp_path / "elsewhere.png").stat().st_size > 20_000
    assert main(["probes", str(tmp_path)]) == 2
    assert "holds no probes.jsonl" in capsys.readouterr().err


def test_epochs_are_placed_on_the_steps_by_the_records_clock(tmp_path):
    """The loop hands the recorder steps only: epoch ends come from train/metrics.jsonl's times."""
    records = [{"step": step, "time": 1000.0 + step / 10} for step in range(0, 101, 10)]  # 10 steps per second
    assert epoch_ends(tmp_path / "probes", records) == []  # no run directory around the probes: no marks
    (tmp_path / "train").mkdir()
    lines = [{"epoch": 1, "time": 1003.0}, {"epoch": 2, "time": 1006.55}, {"epoch": 3, "time": 1010.0}]
    (tmp_path / "train" / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines)
                                                      + '{"epoch": 4, "ti')  # a line being written
    assert epoch_ends(tmp_path / "probes", records) == [(1, 30.0), (2, pytest.approx(65.5)), (3, 100.0)]


def test_the_picture_shows_learning_with_epoch_marks(tmp_path):
    run = tmp_path / "run"
    recorder = ProbeRecorder(["bbb~ccc", "mmm~nnn"], WORDS, every=1, out_dir=run / "probes")
    matrices = _matrices(12)
    records = [recorder.record(step, matrix, loss=1.0 / step) for step, matrix in enumerate(matrices, start=1)]
    (run / "train").mkdir()
    (run / "train" / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "time": records[5]["time"]}) + "\n")
    fig = probe_figure(run / "probes")
    loss_ax, sim_ax, rank_ax = fig.axes
    assert [line.get_label() for line in sim_ax.get_lines()[:4]] == [
        "bbb ~ ccc", "bbb ~ all words (mean)", "mmm ~ nnn", "mmm ~ all words (mean)"]
    ranks = rank_ax.get_lines()[0].get_ydata()
    assert ranks[-1] < ranks[0] and rank_ax.yaxis_inverted()  # the rank falls to 1: the line rises
    pair, mean = (np.asarray(line.get_ydata()) for line in sim_ax.get_lines()[:2])
    assert (pair - mean)[-1] > (pair - mean)[0]  # the pair pulls away from the average word
    marks = [line for line in loss_ax.get_lines() if line.get_linestyle() == ":"]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == pytest.approx(6, abs=0.5)
