"""Training probes: the nearest neighbours of chosen words, and the similarity of chosen pairs, watched over training.

The trainer makes one recorder and calls `maybe_record` after every optimizer step:

    recorder = ProbeRecorder(["king", "paris"], vocabulary, every=1000, out_dir=run_dir / "probes",
                             pairs=[("king", "queen")])
    for step in ...:
        ...
        recorder.maybe_record(step, loss, lambda: input_table)  # the getter is called only every 1000 steps

- `vocabulary`: the words in id order (row i of the input matrix is vocabulary[i]); unknown probe words raise
  `UnknownWordsError` at once, before training starts.
- `loss`: a float or None; a record stores the mean of the losses passed since the previous record.
- `get_input_matrix()`: returns the V x D input vectors (numpy or torch, any device; gather a sharded table first).
- `record(step, matrix)` records unconditionally, e.g. once more after the last step.

Each record is one JSON line appended to OUT_DIR/probes.jsonl:

    {"step": 3000, "loss": 2.61, "time": 1718000000.0,
     "neighbours": {"king": [["queen", 0.71], ["prince", 0.66], ...]}, "pairs": [["king", "queen", 0.71]]}

A resumed run appends to the same file; `read_probes` keeps the last record of each step. `plot_probes(out_dir)`
draws OUT_DIR/probes.png: the loss beside each probe word's mean similarity to its nearest neighbours and each
pair's similarity, over the steps. `w2vdist probes RUN_DIR` draws it and prints the neighbours after the run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from w2vdist.errors import RunDirError, UnknownWordsError

PROBES_FILE = "probes.jsonl"
PROBES_PLOT = "probes.png"


class ProbeRecorder:
    def __init__(self, words: Sequence[str], vocabulary: Sequence[str], every: int, out_dir: str | os.PathLike,
                 *, topn: int = 10, pairs: Sequence[tuple[str, str]] = ()):
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        index = {word: i for i, word in enumerate(vocabulary)}
        wanted = list(words) + [w for pair in pairs for w in pair]
        unknown = list(dict.fromkeys(w for w in wanted if w not in index))
        if unknown:
            raise UnknownWordsError(unknown, "the training vocabulary (probe words)")
        self.words = list(words)
        self.pairs = [(a, b) for a, b in pairs]
        self.vocabulary = list(vocabulary)
        self.every = every
        self.topn = topn
        self._word_ids = torch.tensor([index[w] for w in self.words], dtype=torch.long)
        self._pair_ids = torch.tensor([[index[a], index[b]] for a, b in self.pairs], dtype=torch.long).view(-1, 2)
        self.path = Path(out_dir) / PROBES_FILE
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
            norms = table.norm(dim=1).clamp_min(1e-12)
            word_ids = self._word_ids.to(table.device)
            sims = (table[word_ids] @ table.T) / (norms[word_ids, None] * norms[None, :])
            sims[torch.arange(len(word_ids), device=table.device), word_ids] = float("-inf")  # not its own neighbour
            top = torch.topk(sims, min(self.topn, table.shape[0] - 1), dim=1)
            pair_ids = self._pair_ids.to(table.device)
            pair_sims = F.cosine_similarity(table[pair_ids[:, 0]], table[pair_ids[:, 1]], dim=1, eps=1e-12)
        scores, ids = top.values.cpu().tolist(), top.indices.cpu().tolist()
        entry = {
            "step": int(step),
            "loss": self._loss_sum / self._loss_count if self._loss_count else None,
            "time": time.time(),
            "neighbours": {word: [[self.vocabulary[i], round(s, 6)] for s, i in zip(row_scores, row_ids)]
                           for word, row_scores, row_ids in zip(self.words, scores, ids)},
            "pairs": [[a, b, round(s, 6)] for (a, b), s in zip(self.pairs, pair_sims.cpu().tolist())],
        }
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        self._loss_sum, self._loss_count = 0.0, 0
        return entry


def probes_dir(location: str | os.PathLike) -> Path:
    """The probes folder of a run directory, or the folder itself when it holds probes.jsonl."""
    location = Path(location)
    if (location / PROBES_FILE).is_file():
        return location
    if (location / "probes" / PROBES_FILE).is_file():
        return location / "probes"
    raise RunDirError(f"'{location}' holds no {PROBES_FILE} (nor probes/{PROBES_FILE}): train with probe words "
                      f"to record them")


def read_probes(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of probes.jsonl, one per step (the last written wins), by step."""
    path = Path(directory) / PROBES_FILE
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


def plot_probes(directory: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Draw the loss and the probe similarities over the steps; returns the PNG's path (default probes.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_probes(directory)
    out = Path(out) if out else Path(directory) / PROBES_PLOT
    steps = np.array([r["step"] for r in records])
    fig, (loss_ax, sim_ax) = plt.subplots(1, 2, figsize=(13, 5))
    losses = np.array([np.nan if r["loss"] is None else r["loss"] for r in records], dtype=float)
    if np.isfinite(losses).any():
        loss_ax.plot(steps, losses, marker=".", color="black")
    else:
        loss_ax.text(0.5, 0.5, "no loss recorded", ha="center", va="center", transform=loss_ax.transAxes)
    loss_ax.set(title="training loss", xlabel="step", ylabel="mean loss since the previous record")
    last = records[-1]
    for word in last["neighbours"]:
        means = [np.mean([s for _, s in r["neighbours"][word]]) if r["neighbours"].get(word) else np.nan
                 for r in records]
        nearest = ", ".join(w for w, _ in last["neighbours"][word][:3])
        sim_ax.plot(steps, means, marker=".", label=f"{word} → {nearest}")
    for a, b, _ in last["pairs"]:
        series = [next((s for x, y, s in r["pairs"] if (x, y) == (a, b)), np.nan) for r in records]
        sim_ax.plot(steps, series, linestyle="--", label=f"{a} ~ {b}")
    topn = max((len(v) for v in last["neighbours"].values()), default=0)
    sim_ax.set(title=f"probe words: mean cosine of the {topn} nearest (solid), pairs (dashed)", xlabel="step",
               ylabel="cosine similarity")
    if last["neighbours"] or last["pairs"]:
        sim_ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def format_probes(records: list[dict[str, Any]], topn: int = 5) -> str:
    """The neighbours and pair similarities of the first and last record, as text."""
    first, last = records[0], records[-1]
    lines = [f"{len(records)} records, steps {first['step']} to {last['step']}"]
    for word, neighbours in last["neighbours"].items():
        now = ", ".join(f"{w} {s:.3f}" for w, s in neighbours[:topn])
        before = ", ".join(w for w, _ in first["neighbours"].get(word, [])[:topn])
        lines.append(f"  {word}: {now}   (step {first['step']}: {before})")
    for (a, b, now), (_, _, before) in zip(last["pairs"], first["pairs"]):
        lines.append(f"  {a} ~ {b}: {now:.3f}   (step {first['step']}: {before:.3f})")
    return "\n".join(lines)
