"""Pictures of the vector space: a labelled 2-D PNG and an interactive 3-D HTML page of chosen words.

Words come from lists (a file of words, coloured by file), from the command line, or are the N most frequent.
Their unit-length vectors are projected by PCA, or by t-SNE (cosine distance) for at most `MAX_TSNE_WORDS` words.
The HTML page embeds plotly.js, so it opens offline and never fetches a script.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


@dataclass
class Selection:
    words: list[str]
    groups: list[str]  # the list each word came from, parallel to words


def read_word_list(path: str | os.PathLike) -> list[str]:
    """Words separated by white space or newlines."""
    return read_text_file(path, "word list").split()


def select_words(vectors: Vectors, words: Sequence[str] = (), lists: Sequence[str | os.PathLike] = (),
                 top: int | None = None, skip_unknown: bool = False) -> Selection:
    """The words to draw and their groups: each list file is a group (named by its file name), `words` is the group
    'words', and the `top` most frequent words fill the group 'top N'. A word is drawn once, in its first group."""
    groups: list[tuple[str, list[str]]] = [(Path(p).stem, read_word_list(p)) for p in lists]
    if words:
        groups.append(("words", list(words)))
    if top:
        groups.append((f"top {top}", vectors.words[:top]))
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
        hints = {w: w.lower() for w in unknown if w.lower() in vectors}
        raise UnknownWordsError(unknown, f"{vectors.source} (--skip-unknown leaves them out)", hints)
    if len(chosen) < MIN_WORDS:
        raise UsageError(f"only {len(chosen)} known word(s) to draw; a picture needs at least {MIN_WORDS}")
    return Selection(list(chosen), list(chosen.values()))


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
    html = out_prefix.with_name(out_prefix.name + ".html")
    _write_png(selection, points2, title, png)
    _write_html(selection, points3, title, html)
    return png, html


def _group_indices(selection: Selection) -> dict[str, np.ndarray]:
    groups = np.array(selection.groups)
    return {name: np.flatnonzero(groups == name) for name in dict.fromkeys(selection.groups)}


def _write_png(selection: Selection, points: np.ndarray, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    side = min(24.0, 6.0 + len(selection.words) / 40)  # room for the labels of larger selections
    fig, ax = plt.subplots(figsize=(side, side))
    for name, members in _group_indices(selection).items():
        ax.scatter(points[members, 0], points[members, 1], s=12, label=name)
    for word, (x, y) in zip(selection.words, points):
        ax.annotate(word, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=8)
    ax.set_title(title)
    if len(set(selection.groups)) > 1:
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write_html(selection: Selection, points: np.ndarray, title: str, path: Path) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, members in _group_indices(selection).items():
        fig.add_trace(go.Scatter3d(x=points[members, 0], y=points[members, 1], z=points[members, 2],
                                   mode="markers+text", name=name, text=[selection.words[i] for i in members],
                                   hovertext=[selection.words[i] for i in members], hoverinfo="text",
                                   marker={"size": 3}, textfont={"size": 10}))
    fig.update_layout(title=title, showlegend=len(set(selection.groups)) > 1,
                      margin={"l": 0, "r": 0, "t": 40, "b": 0})
    fig.write_html(path, include_plotlyjs=True, full_html=True)
