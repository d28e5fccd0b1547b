"""Training probes: the nearest neighbours of chosen words, and how near an expected neighbour comes, over training.

The trainer makes one recorder, and either calls `maybe_record` after every step, or `record` where it decides
(w2vdist's training loop records every probe_every corpus words, the words trained being the step):

    recorder = ProbeRecorder(["king~queen", "paris"], vocabulary, every=1000, out_dir=run.probes)
    for step in ...:
        ...
        recorder.maybe_record(step, loss, lambda: input_table)  # the getter is called only every 1000 steps

- `words`: the `probe_words` setting. `king` records king's nearest neighbours; `king~queen` also records the pair:
  the cosine of king and queen, and queen's rank among king's neighbours (1: the nearest). `pairs=[(a, b)]` adds
  pairs the same way. Unknown words raise `UnknownWordsError` at once, before training starts.
- `vocabulary`: the words in id order (row i of the input matrix is vocabulary[i]).
- `loss`: a float or None; a record stores the mean of the losses passed since the previous record.
- `get_input_matrix()`: returns the V x D input vectors (numpy or torch, any device; gather a sharded table first).
- `record(step, matrix, loss=None)` records unconditionally (and `loss` counts in the record's mean).

Each record is one JSON line appended to OUT_DIR/probes.jsonl:

    {"step": 3000, "loss": 2.61, "time": 1718000000.0,
     "neighbours": {"king": [["queen", 0.71], ["prince", 0.66], ...]},
     "pairs": [["king", "queen", 0.71, 1, 0.12]]}      # a, b, cosine, b's rank among a's neighbours, a's mean cosine

A resumed run appends to the same file; `read_probes` keeps the last record of each step. `plot_probes(out_dir)`
draws OUT_DIR/probes.png: the loss; each pair's cosine beside the first word's mean cosine with all words; and the
expected neighbour's rank; over the steps, with a mark at each epoch's end (from the run directory's
train/metrics.jsonl). A cosine alone misleads: early on all vectors move together and every cosine is high, so a
pair's cosine falls while the vectors spread out, which reads as getting worse; its lead over the mean, and the
rank, show the learning. `w2vdist probes RUN_DIR` draws it and prints the neighbours after the run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from w2vdist.config import probe_parts
from w2vdist.datasets import RunLayout, append_record, probe_records, read_epoch_metrics
from w2vdist.errors import RunDirError, UnknownWordsError

PROBES_PLOT = "probes.png"
STEP_LABEL = "words trained"  # what the training loop passes as a record's step


class ProbeRecorder:
    def __init__(self, words: Sequence[str], vocabulary: Sequence[str], every: int, out_dir: str | os.PathLike,
                 *, topn: int = 10, pairs: Sequence[tuple[str, str]] = ()):
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        index = {word: i for i, word in enumerate(vocabulary)}
        probes = [probe_parts(word) for word in words]
        pairs = [parts for parts in probes if len(parts) == 2] + [(a, b) for a, b in pairs]
        words = list(dict.fromkeys(parts[0] for parts in probes))
        wanted = words + [w for pair in pairs for w in pair]
        unknown = list(dict.fromkeys(w for w in wanted if w not in index))
        if unknown:
            raise UnknownWordsError(unknown, "the training vocabulary (probe words)")
        self.words = words
        self.pairs = pairs
        self.vocabulary = list(vocabulary)
        self.every = every
        self.topn = topn
        self._word_ids = torch.tensor([index[w] for w in self.words], dtype=torch.long)
        self._pair_ids = torch.tensor([[index[a], index[b]] for a, b in self.pairs], dtype=torch.long).view(-1, 2)
        self.path = probe_records(Path(out_dir))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._loss_sum = 0.0
        self._loss_count = 0

    def maybe_record(self, step: int, loss: float | None, get_input_matrix: Callable[[], Any]) -> bool:
        """Add `loss` to the running mean; every `every` steps, record the probes. Returns whether it recorded."""
        self._add_loss(loss)
        if step % self.every:
            return False
        self.record(step, get_input_matrix())
        return True

    def _add_loss(self, loss: float | None) -> None:
        if loss is not None:
            self._loss_sum += float(loss)
            self._loss_count += 1

    def record(self, step: int, matrix: Any, loss: float | None = None) -> dict[str, Any]:
        """Record the probes now, with the mean of the losses added since the last record and `loss`."""
        self._add_loss(loss)
        with torch.no_grad():
            table = torch.as_tensor(matrix).detach().float()
            unit = table / table.norm(dim=1, keepdim=True).clamp_min(1e-12)
            top = torch.topk(_similarities(unit, self._word_ids.to(table.device)),
                             min(self.topn, table.shape[0] - 1), dim=1)
            pair_ids = self._pair_ids.to(table.device)
            pair_rows = _similarities(unit, pair_ids[:, 0])
            pair_sims = pair_rows.gather(1, pair_ids[:, 1:]).squeeze(1)
            # 1 + the words nearer to a than b is: b's place in a's neighbour list, ties counted in b's favour.
            pair_ranks = 1 + (pair_rows > pair_sims[:, None]).sum(dim=1)
            # a's mean cosine with every other word: early in training every cosine is high, as all vectors move
            # together, so a pair's own cosine falls while the vectors spread; its lead over this mean grows.
            others = torch.where(torch.isinf(pair_rows), 0.0, pair_rows)
            pair_means = others.sum(dim=1) / max(table.shape[0] - 1, 1)
        scores, ids = top.values.cpu().tolist(), top.indices.cpu().tolist()
        entry = {
            "step": int(step),
            "loss": self._loss_sum / self._loss_count if self._loss_count else None,
            "time": time.time(),
            "neighbours": {word: [[self.vocabulary[i], round(s, 6)] for s, i in zip(row_scores, row_ids)]
                           for word, row_scores, row_ids in zip(self.words, scores, ids)},
            "pairs": [[a, b, round(s, 6), r, round(m, 6)] for (a, b), s, r, m in zip(
                self.pairs, pair_sims.cpu().tolist(), pair_ranks.cpu().tolist(), pair_means.cpu().tolist())],
        }
        append_record(self.path, entry)
        self._loss_sum, self._loss_count = 0.0, 0
        return entry


def _similarities(unit: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Cosines of the words `rows` with every word, each word's own cosine set to -inf (not its own neighbour)."""
    sims = unit[rows] @ unit.T
    sims[torch.arange(len(rows), device=unit.device), rows] = float("-inf")
    return sims


def probes_dir(location: str | os.PathLike) -> Path:
    """The probes folder of a run directory, or the folder itself when it holds probes.jsonl."""
    location, run = Path(location), RunLayout(location)
    if probe_records(location).is_file():
        return location
    if run.probe_records.is_file():
        return run.probes
    raise RunDirError(f"'{location}' holds no {probe_records(location).name} (nor "
                      f"{run.probe_records.relative_to(location)}): train with probe words to record them")


def read_probes(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of probes.jsonl, one per step (the last written wins), by step."""
    path = probe_records(Path(directory))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RunDirError(f"'{path}' does not exist: train with probe words to record them") from None
    by_step: dict[int, dict[str, Any]] = {}
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            by_step[int(entry["step"])] = entry
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            if line_no == len(lines):  # a run killed while writing leaves a partial last line
                continue
            raise RunDirError(f"'{path}' line {line_no} is not a probe record") from None
    if not by_step:
        raise RunDirError(f"'{path}' holds no probe records yet")
    return [by_step[step] for step in sorted(by_step)]


def epoch_ends(directory: str | os.PathLike, records: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(epoch, step) where each finished epoch ended, placed on the records' steps by the records' clock.

    The training loop hands the recorder steps only, so the epochs come from the run directory's metrics file (one
    line per finished epoch, with its time); nothing when the probes are not inside a run directory."""
    if len(records) < 2:
        return []
    # a record without its time (a file from another version) gets no mark: none is better than a wrong one
    epochs = {int(record["epoch"]): float(record["time"])
              for record in read_epoch_metrics(RunLayout(Path(directory).resolve().parent).train_metrics)
              if isinstance(record.get("time"), (int, float))}
    order = sorted(records, key=lambda r: r["time"])
    times, steps = [r["time"] for r in order], [r["step"] for r in order]
    return [(epoch, float(np.interp(t, times, steps))) for epoch, t in sorted(epochs.items())
            if times[0] <= t <= times[-1] + 60]


def plot_probes(directory: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Draw `probe_figure`; returns the PNG's path (default probes.png beside probes.jsonl)."""
    import matplotlib.pyplot as plt

    out = Path(out) if out else Path(directory) / PROBES_PLOT
    fig = probe_figure(directory)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def probe_figure(directory: str | os.PathLike):
    """The loss, the pairs' cosines beside the mean cosines, and the expected neighbours' ranks over the steps,
    the epochs marked: a matplotlib figure of three panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_probes(directory)
    steps = np.array([r["step"] for r in records])
    fig, (loss_ax, sim_ax, rank_ax) = plt.subplots(1, 3, figsize=(18, 5))
    losses = np.array([np.nan if r["loss"] is None else r["loss"] for r in records], dtype=float)
    if np.isfinite(losses).any():
        loss_ax.plot(steps, losses, marker=".", color="black")
    else:
        _note(loss_ax, "no loss recorded")
    loss_ax.set(title="training loss (lower is better)", xlabel=STEP_LABEL,
                ylabel="mean loss since the previous record")
    pairs = [(a, b) for a, b, *_ in records[-1]["pairs"]]
    for a, b in pairs:
        found = [next((p for p in r["pairs"] if (p[0], p[1]) == (a, b)), None) for r in records]
        sims = [np.nan if p is None else p[2] for p in found]
        ranks = [np.nan if p is None or len(p) < 4 else p[3] for p in found]  # records before ranks were kept
        means = [np.nan if p is None or len(p) < 5 else p[4] for p in found]
        line, = sim_ax.plot(steps, sims, marker=".", label=f"{a} ~ {b}")
        sim_ax.plot(steps, means, linestyle=":", color=line.get_color(), label=f"{a} ~ all words (mean)")
        rank_ax.plot(steps, ranks, marker=".", label=f"{b} among {a}'s neighbours")
    sim_ax.set(title="cosine with the expected neighbour (solid) and with all words (dotted)", xlabel=STEP_LABEL,
               ylabel="cosine")
    rank_ax.set(title="rank of the expected neighbour (1: the nearest)", xlabel=STEP_LABEL, ylabel="rank")
    if pairs:
        rank_ax.set_yscale("log")
        rank_ax.invert_yaxis()  # up is better, as on the cosine panel
        rank_ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        for ax in (sim_ax, rank_ax):
            ax.legend(fontsize=8, loc="best")
    else:
        for ax in (sim_ax, rank_ax):
            _note(ax, "no pair recorded: give probe_words\nas word~expected (king~queen)")
    for epoch, step in epoch_ends(directory, records):
        for ax in (loss_ax, sim_ax, rank_ax):
            ax.axvline(step, color="grey", linestyle=":", linewidth=1)
            ax.annotate(f"epoch {epoch}", (step, 1), xycoords=("data", "axes fraction"), rotation=90,
                        ha="right", va="top", fontsize=7, color="grey")
    fig.tight_layout()
    return fig


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


def format_probes(records: list[dict[str, Any]], topn: int = 5) -> str:
    """The neighbours, pair cosines and ranks of the first and last record, as text."""
    first, last = records[0], records[-1]
    lines = [f"{len(records)} records, steps {first['step']} to {last['step']}"]
    for word, neighbours in last["neighbours"].items():
        now = ", ".join(f"{w} {s:.3f}" for w, s in neighbours[:topn])
        before = ", ".join(w for w, _ in first["neighbours"].get(word, [])[:topn])
        lines.append(f"  {word}: {now}   (step {first['step']}: {before})")
    earlier = {(p[0], p[1]): p for p in first["pairs"]}
    for a, b, cosine, *rank in last["pairs"]:
        was = earlier.get((a, b))
        now = f"cosine {cosine:.3f}" + (f", rank {rank[0]}" if rank else "")
        now += f" (mean with all words {rank[1]:.3f})" if len(rank) > 1 else ""
        before = "" if was is None else f"   (step {first['step']}: cosine {was[2]:.3f}" + (
            f", rank {was[3]})" if len(was) > 3 else ")")
        lines.append(f"  {a} ~ {b}: {now}{before}")
    return "\n".join(lines)
