"""`w2vdist plot`: a labelled PNG and an offline 3-D HTML page, words coloured by list; clear errors."""

import re

import numpy as np

import matplotlib.image
import pytest

from tests.vector_helpers import text8_vectors
from w2vdist.cli import main
from w2vdist.errors import UnknownWordsError, UsageError
from w2vdist.plots import select_words

COUNTRIES = ["france", "germany", "italy", "spain", "england", "russia", "china", "japan"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight"]


@pytest.fixture(scope="module")
def vector_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vectors") / "text8.bin"
    text8_vectors().save(path, "word2vec-binary")
    return path


@pytest.fixture
def lists(tmp_path):
    (tmp_path / "countries.txt").write_text("\n".join(COUNTRIES) + "\n")
    (tmp_path / "numbers.txt").write_text(" ".join(NUMBERS))
    return [str(tmp_path / "countries.txt"), str(tmp_path / "numbers.txt")]


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_png_and_offline_html_are_written(vector_file, lists, tmp_path, capsys, method):
    out = tmp_path / "pictures" / f"space-{method}"
    argv = ["plot", str(vector_file), "king", "queen", "--list", lists[0], "--list", lists[1], "--method", method,
            "--out", str(out)]
    assert main(argv) == 0
    assert "drew 18 words" in capsys.readouterr().out
    image = matplotlib.image.imread(out.with_suffix(".png"))
    assert image.shape[0] > 400 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # points and labels, not a blank canvas
    html = out.with_suffix(".html").read_text(encoding="utf-8")
    assert len(html) > 1_000_000  # plotly.js is embedded
    assert not re.search(r"<script[^>]*src=[\"']?https?:", html)
    for word in COUNTRIES + NUMBERS + ["king", "queen"]:
        assert f'"{word}"' in html
    assert '"name":"countries"' in html and '"name":"numbers"' in html and '"type":"scatter3d"' in html


def test_top_words_fill_their_own_group(vector_file, tmp_path):
    vectors = text8_vectors()
    selection = select_words(vectors, [vectors.index_to_key[500], vectors.index_to_key[3]], top=50)
    # a word is drawn in its first group
    assert selection.words[:2] == [vectors.index_to_key[500], vectors.index_to_key[3]]
    assert len(selection.words) == 51 and selection.groups[2:] == ["top 50"] * 49
    assert main(["plot", str(vector_file), "--top", "60", "--out", str(tmp_path / "top")]) == 0
    assert (tmp_path / "top.png").stat().st_size > 20_000


def test_unknown_words_are_listed_unless_skipped(lists, tmp_path):
    vectors = text8_vectors()
    with pytest.raises(UnknownWordsError, match="unknown words 'qqqx', 'France' .did you mean 'france'.*"
                                                "--skip-unknown leaves them out"):
        select_words(vectors, ["qqqx", "France", "king"], lists)
    selection = select_words(vectors, ["qqqx", "France", "king"], lists, skip_unknown=True)
    assert "king" in selection.words and "qqqx" not in selection.words
    assert selection.groups[:len(COUNTRIES)] == ["countries"] * len(COUNTRIES)


def test_too_few_words_or_none_chosen(vector_file, capsys):
    with pytest.raises(UsageError, match="a picture needs at least 3"):
        select_words(text8_vectors(), ["king", "queen"])
    assert main(["plot", str(vector_file), "--out", "x"]) == 2
    assert "choose the words to draw" in capsys.readouterr().err


def _overlapping_labels(fig, labels) -> int:
    fig.canvas.draw()
    boxes = [label.get_window_extent(fig.canvas.get_renderer()) for label in labels]
    return sum(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_labels_are_pushed_apart(tmp_path):
    import matplotlib.pyplot as plt

    from w2vdist.plots import Selection, draw_png

    rng = np.random.default_rng(5)
    # Three tight clusters of ten words, as neighbours lie in a projection: their labels pile up where they are.
    points = np.concatenate([rng.normal(loc, 0.01, size=(10, 2)) for loc in ([0, 0], [1, 0], [0, 1])])
    words = [f"word{i:02d}" for i in range(30)]
    selection = Selection(words, ["a"] * 30)
    fig, ax = plt.subplots()
    piled = [ax.text(x, y, w, fontsize=9) for w, (x, y) in zip(words, points)]
    assert _overlapping_labels(fig, piled) > 20  # the problem is real for these points
    plt.close(fig)
    fig, labels = draw_png(selection, points, "clusters")
    assert _overlapping_labels(fig, labels) == 0
    plt.close(fig)


def test_pairs_of_lists_are_joined_and_the_page_has_a_title(vector_file, tmp_path):
    (tmp_path / "countries.txt").write_text("france\ngermany\nitaly\nspain\n")
    (tmp_path / "capitals.txt").write_text("paris\nberlin\nrome\nqqqx\n")  # an unknown word: its pair is left out
    vectors = text8_vectors()
    selection = select_words(vectors, lists=[tmp_path / "countries.txt", tmp_path / "capitals.txt"],
                             skip_unknown=True)
    assert [(selection.words[i], selection.words[j]) for i, j in selection.pairs] == [
        ("france", "paris"), ("germany", "berlin"), ("italy", "rome")]
    assert select_words(vectors, lists=[tmp_path / "countries.txt"], words=["paris", "rome"]).pairs == []
    argv = ["plot", str(vector_file), "--list", str(tmp_path / "countries.txt"), "--list",
            str(tmp_path / "capitals.txt"), "--skip-unknown", "--out", str(tmp_path / "geo")]
    assert main(argv) == 0
    html = (tmp_path / "geo.html").read_text(encoding="utf-8")
    title = re.search(r"<title>(.*?)</title>", html).group(1)
    assert title.startswith("PCA of 7 words") and "plotly" not in title.lower()
    assert '"mode":"lines"' in html  # the pairs' segments


def test_evaluation_picture(tmp_path):
    from w2vdist.plots import plot_evaluation

    results = {"analogy": {"file": "q.txt", "restrict_vocab": 30000, "method": "add", "accuracy": 0.5,
                           "correct": 2, "total": 4, "oov": 0, "coverage": 1.0,
                           "sections": {"capitals": {"accuracy": 0.5, "correct": 2, "total": 4, "oov": 0,
                                                     "coverage": 1.0},
                                        "empty": {"accuracy": None, "correct": 0, "total": 0, "oov": 3,
                                                  "coverage": 0.0}}},
               "similarity": {"ws.tsv": {"spearman": 0.4, "pairs": 4, "oov": 349, "coverage": 4 / 353}}}
    path = plot_evaluation(results, tmp_path / "evaluation.png")
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image[..., :3].std() > 0.05
