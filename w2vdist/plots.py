"""Pictures of the vector space: a labelled 2-D PNG and an interactive 3-D HTML page of chosen words.

Words come from lists (a file of words, coloured by file), from the command line, or are the N most frequent.
Their unit-length vectors are projected by PCA, or by t-SNE (cosine distance) for at most `MAX_TSNE_WORDS` words.
The PNG's labels are pushed apart until none overlaps (`repel_labels`), each joined to its point by a thin line
when it had to move, for up to `MAX_REPELLED_LABELS` words: a picture of hundreds of words is a cloud to hover over
in the HTML page anyway, and repelling them takes longer than it is worth.
The HTML page embeds plotly.js, so it opens offline and never fetches a script.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from w2vdist.errors import UnknownWordsError, UsageError, read_text_file

if TYPE_CHECKING:
    from w2vdist.vectors import Vectors

METHODS = ("pca", "tsne")
MAX_TSNE_WORDS = 5000
SMALL_TSNE = 1000
MIN_WORDS = 3  # a 3-D projection needs three points
MAX_REPELLED_LABELS = 120
REPEL_ITERATIONS = 3000  # measured: enough for 100 labels of a PCA of frequent words (2 s); 30 need 0.3 s
LABEL_PAD = 2.0  # display units kept free around each label


@dataclass
class Selection:
    words: list[str]
    groups: list[str]  # the list each word came from, parallel to words
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (i, j): words[i] and words[j] are joined


def read_word_list(path: str | os.PathLike) -> list[str]:
    """Words separated by white space or newlines."""
    return read_text_file(path, "word list").split()


def select_words(vectors: Vectors, words: Sequence[str] = (), lists: Sequence[str | os.PathLike] = (),
                 top: int | None = None, skip_unknown: bool = False) -> Selection:
    """The words to draw and their groups: each list file is a group (named by its file name), `words` is the group
    'words', and the `top` most frequent words fill the group 'top N'. A word is drawn once, in its first group.
    Two list files of the same length are pairs, word by word (countries.txt and capitals.txt in the same order):
    the picture joins each pair whose words are both drawn."""
    groups: list[tuple[str, list[str]]] = [(Path(p).stem, read_word_list(p)) for p in lists]
    if words:
        groups.append(("words", list(words)))
    if top:
        groups.append((f"top {top}", vectors.index_to_key[:top]))
    if not groups:
        raise UsageError("choose the words to draw: give words, --list files or --top N")
    chosen: dict[str, str] = {}
    unknown: list[str] = []
    for name, members in groups:
        for word in members:
            if word in vectors:
                chosen.setdefault(word, name)
            elif word not in unknown:
                unknown.append(word)
    if unknown and not skip_unknown:
        hints = {w: hint for w in unknown if (hint := vectors.suggestion(w))}
        raise UnknownWordsError(unknown, f"{vectors.source} (--skip-unknown leaves them out)", hints)
    if len(chosen) < MIN_WORDS:
        raise UsageError(f"only {len(chosen)} known word(s) to draw; a picture needs at least {MIN_WORDS}")
    place = {word: i for i, word in enumerate(chosen)}
    pairs = []
    if len(lists) == 2 and len(groups[0][1]) == len(groups[1][1]):
        pairs = [(place[a], place[b]) for a, b in zip(groups[0][1], groups[1][1]) if a in place and b in place
                 and a != b]
    return Selection(list(chosen), list(chosen.values()), pairs)


def project(matrix: np.ndarray, method: str, dims: int, seed: int = 1) -> np.ndarray:
    """Rows of `matrix` (unit vectors) projected to `dims` dimensions."""
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=dims, random_state=seed).fit_transform(matrix)
    if method == "tsne":
        from sklearn.manifold import TSNE

        if len(matrix) > MAX_TSNE_WORDS:
            raise UsageError(f"t-SNE of {len(matrix)} words would take very long: choose at most "
                             f"{MAX_TSNE_WORDS}, or use --method pca")
        from threadpoolctl import threadpool_limits

        perplexity = min(30.0, (len(matrix) - 1) / 3)  # t-SNE needs perplexity well below the number of points
        tsne = TSNE(n_components=dims, metric="cosine", init="pca", perplexity=perplexity, random_state=seed)
        # Below ~1000 points OpenMP's threads cost more than the work they share, and on a busy machine their
        # spinning turns a fraction of a second into many seconds.
        with threadpool_limits(limits=1 if len(matrix) < SMALL_TSNE else None, user_api="openmp"):
            return tsne.fit_transform(matrix)
    raise UsageError(f"unknown projection '{method}': expected one of {', '.join(METHODS)}")


def plot_space(vectors: Vectors, selection: Selection, out_prefix: str | os.PathLike, method: str = "pca",
               seed: int = 1) -> tuple[Path, Path]:
    """Write OUT_PREFIX.png (2-D, labelled) and OUT_PREFIX.html (3-D, interactive); returns both paths."""
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    unit = vectors.unit_vectors(selection.words)
    if method == "pca":
        points3 = project(unit, method, 3, seed)
        points2 = points3[:, :2]  # PCA components are nested: the 2-D picture is the 3-D one seen from above
    else:
        points2 = project(unit, method, 2, seed)
        points3 = project(unit, method, 3, seed)
    title = f"{method.upper() if method == 'pca' else 't-SNE'} of {len(selection.words)} words, {vectors.source}"
    png = out_prefix.with_name(out_prefix.name + ".png")
    page = out_prefix.with_name(out_prefix.name + ".html")
    _write_png(selection, points2, title, png)
    _write_html(selection, points3, title, page)
    return png, page


def _group_indices(selection: Selection) -> dict[str, np.ndarray]:
    groups = np.array(selection.groups)
    return {name: np.flatnonzero(groups == name) for name in dict.fromkeys(selection.groups)}


def _write_png(selection: Selection, points: np.ndarray, title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, _ = draw_png(selection, points, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_png(selection: Selection, points: np.ndarray, title: str):
    """The labelled 2-D figure and its labels (matplotlib Text objects), laid out so the labels do not overlap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    side = min(24.0, 7.0 + len(selection.words) / 40)  # room for the labels of larger selections
    fig, ax = plt.subplots(figsize=(side, side))
    for i, j in selection.pairs:
        ax.annotate("", points[j], points[i], zorder=1,
                    arrowprops={"arrowstyle": "->", "color": "lightgrey", "shrinkA": 4, "shrinkB": 4})
    for name, members in _group_indices(selection).items():
        ax.scatter(points[members, 0], points[members, 1], s=14, label=name, zorder=3)
    beside = ax.transData + matplotlib.transforms.ScaledTranslation(3 / 72, 3 / 72, fig.dpi_scale_trans)
    labels = [ax.text(x, y, word, fontsize=9, transform=beside) for word, (x, y) in zip(selection.words, points)]
    ax.set_title(title)
    if len(set(selection.groups)) > 1:
        ax.legend(loc="best")
    fig.tight_layout()
    if len(labels) <= MAX_REPELLED_LABELS:
        for label, moved, (x, y) in zip(labels, repel_labels(ax, labels), points):
            if moved:
                ax.plot([x, label.get_position()[0]], [y, label.get_position()[1]], color="lightgrey",
                        linewidth=0.6, zorder=1)
    return fig, labels


def repel_labels(ax, labels: list, iterations: int = REPEL_ITERATIONS) -> np.ndarray:
    """Move the labels (matplotlib Text objects of `ax`) apart until no two overlap, inside the axes; returns which
    moved visibly. Each round, every overlapping pair is pushed apart along the axis where it overlaps least, each
    label half the overlap (damped, so that crowds settle instead of swinging); boxes are measured in display units
    once, as the layout of the figure is final."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in labels]
    anchors = np.array([ax.transData.transform(label.get_position()) for label in labels])
    start = np.array([[box.x0, box.y0] for box in boxes]) - LABEL_PAD
    size = np.array([[box.width, box.height] for box in boxes]) + 2 * LABEL_PAD
    frame = ax.get_window_extent(renderer)
    low = np.array([frame.x0, frame.y0])
    high = np.maximum(np.array([frame.x1, frame.y1]) - size, low)
    count = len(labels)
    # Labels exactly on top of each other are told apart by their order, so that their pushes do not cancel.
    order = np.sign(np.arange(count)[:, None] - np.arange(count)[None, :])[:, :, None]
    position = start.copy()
    for _ in range(iterations):
        centres = position + size / 2
        apart = centres[:, None, :] - centres[None, :, :]
        overlap = (size[:, None, :] + size[None, :, :]) / 2 - np.abs(apart)
        hit = (overlap > 0).all(axis=2)
        np.fill_diagonal(hit, False)
        if not hit.any():
            break
        direction = np.where(apart == 0, order, np.sign(apart))
        least = np.argmin(overlap, axis=2)[:, :, None] == np.arange(2)
        push = np.where(hit[:, :, None] & least, direction * overlap / 2, 0.0).sum(axis=1)
        position = np.clip(position + 0.6 * push, low, high)
    inverse = ax.transData.inverted()
    for label, new, anchor, old in zip(labels, position, anchors, start):
        label.set_position(inverse.transform(new + (anchor - old)))
    return np.linalg.norm(position - start, axis=1) > 2 * LABEL_PAD


def _write_html(selection: Selection, points: np.ndarray, title: str, path: Path) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    if selection.pairs:  # one trace of segments, broken by None between pairs
        ends = [(points[i], points[j]) for i, j in selection.pairs]
        xyz = [[c for a, b in ends for c in (a[k], b[k], None)] for k in range(3)]
        fig.add_trace(go.Scatter3d(x=xyz[0], y=xyz[1], z=xyz[2], mode="lines", line={"color": "lightgrey"},
                                   hoverinfo="skip", showlegend=False))
    for name, members in _group_indices(selection).items():
        fig.add_trace(go.Scatter3d(x=points[members, 0], y=points[members, 1], z=points[members, 2],
                                   mode="markers+text", name=name, text=[selection.words[i] for i in members],
                                   hovertext=[selection.words[i] for i in members], hoverinfo="text",
                                   marker={"size": 3}, textfont={"size": 10}))
    fig.update_layout(title=title, showlegend=len(set(selection.groups)) > 1,
                      margin={"l": 0, "r": 0, "t": 40, "b": 0})
    page = fig.to_html(include_plotlyjs=True, full_html=True)
    # plotly writes no <title>, and browsers then name the tab after the first SVG title in the page (its logo).
    page = page.replace("<head>", f"<head><title>{html.escape(title)}</title>", 1)
    path.write_text(page, encoding="utf-8")


def plot_evaluation(results: dict, path: str | os.PathLike) -> Path:
    """A bar per analogy section (accuracy, with correct/total) and per word-pair file (Spearman's rho), the figures
    of `evaluation.evaluate`; a section without questions says n/a, and a low coverage is written under the bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from w2vdist.evaluation import coverage_warnings

    analogy, similarity = results.get("analogy"), results.get("similarity") or {}
    panels = [p for p in ("analogy", "similarity") if results.get(p)]
    if not panels:
        raise UsageError("no evaluation results to draw")
    rows = len(analogy["sections"]) + 1 if analogy else 0
    fig, axes = plt.subplots(len(panels), 1, squeeze=False,
                             figsize=(9, 1.2 + 0.4 * (rows + len(similarity)) + 1.0 * len(panels)))
    axes = iter(axes[:, 0])
    if analogy:
        ax = next(axes)
        items = list(analogy["sections"].items()) + [("total", analogy)]
        names = [name for name, _ in items][::-1]
        values = [100 * (row["accuracy"] or 0) for _, row in items][::-1]
        bars = ax.barh(names, values, color=["#ff7f0e"] + ["#1f77b4"] * (len(items) - 1))  # total, at the bottom
        for bar, (_, row) in zip(bars, items[::-1]):
            label = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.1%} ({row['correct']}/{row['total']})"
            ax.annotate(label, (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=8)
        ax.set_xlim(0, 115)
        ax.set(title=f"analogies: {Path(analogy['file']).name} ({analogy['method']}), accuracy in %", xlabel="%")
    if similarity:
        ax = next(axes)
        names = [Path(name).name for name in similarity]
        values = [row["spearman"] or 0 for row in similarity.values()]
        bars = ax.barh(names, values)
        for bar, row in zip(bars, similarity.values()):
            label = "n/a" if row["spearman"] is None else f"{row['spearman']:.3f} ({row['pairs']} pairs)"
            ax.annotate(label, (max(bar.get_width(), 0), bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=8)
        ax.set_xlim(min(0, *values) - 0.05, 1.15)
        ax.set(title="word-pair similarity: Spearman's rho", xlabel="rho")
    warnings = coverage_warnings(results)
    if warnings:
        fig.text(0.01, 0.01, "\n".join(f"warning: {w}" for w in warnings), fontsize=7, color="darkred", va="bottom")
    fig.tight_layout(rect=(0, 0.04 * len(warnings), 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
