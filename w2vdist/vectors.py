"""Word vectors and the questions users ask of them: neighbours, similarity, analogies, the odd one out.

`Vectors` holds the words in file order (for w2vdist output: by descending count), their counts when the format
carries them, and the V x D float32 matrix. Queries run on torch, on the GPU when there is one: the unit-length rows
are computed once, and many queries share one matrix multiply (`neighbours`, `rank`), so a thousand queries cost
little more than a few.

The semantics are gensim's `KeyedVectors`, so figures can be compared:

- `most_similar(positive, negative)`: cosine with the normalised sum of the positive words' unit vectors minus the
  negative words' unit vectors; the input words are never returned.
- `analogy(a, b, c)`: a is to b as c is to ?. 3CosAdd ranks x by cos(x, b - a + c), which is
  `most_similar([b, c], [a])`; 3CosMul (Levy & Goldberg 2014) by cos'(x, b) cos'(x, c) / (cos'(x, a) + 0.001)
  with cosines shifted to [0, 1]: cos' = (cos + 1) / 2.
- `restrict_vocab=N` searches only the first N words, the N most frequent when the vocabulary is sorted by count.
- Unknown words raise `UnknownWordsError`, which lists all of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from w2vdist.errors import RunDirError, UnknownWordsError
from w2vdist.formats import VectorTable, read_vectors, write_vectors
from w2vdist.rundir import RunDir

METHODS = ("add", "mul")
MULTIPLICATIVE_EPSILON = 1e-3
# Queries are ranked in chunks of at most this many (query, candidate) scores: 64 MB bounds memory, and was
# measured faster than larger chunks (topk reads scores the matrix multiply has just written).
_CHUNK_CELLS = 1 << 24


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Vectors:
    def __init__(self, words: Sequence[str], matrix: np.ndarray, counts: np.ndarray | None = None, *,
                 source: str = "the vectors", device: str | torch.device | None = None):
        # torch shares the memory of a numpy matrix, and needs it C-ordered and writable (Arrow's may not be).
        matrix = np.require(matrix, dtype=np.float32, requirements=["C_CONTIGUOUS", "WRITEABLE"])
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise ValueError(f"{len(words)} words need a matrix of {len(words)} rows, got shape {matrix.shape}")
        self.words = list(words)
        self.matrix = matrix
        self.counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        self.source = source
        self.device = torch.device(device) if device is not None else default_device()
        # Reversed so that a word listed twice maps to its first (most frequent) row, as in gensim.
        self.index = {word: i for i, word in zip(range(len(self.words) - 1, -1, -1), reversed(self.words))}
        self._unit: torch.Tensor | None = None

    # --- loading and saving ------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, format: str | None = None, nonfinite: str = "error") -> "Vectors":
        """Any format of `w2vdist.formats` (detected unless given), or a run directory holding `vectors/`.
        Vectors holding NaN or infinity are an error, or left out with `nonfinite="drop"`."""
        path = Path(path)
        if format is None and path.is_dir() and any((path / name).exists() for name in ("vectors", "manifest.json")):
            return cls.from_run(path, nonfinite)
        table = read_vectors(path, format, nonfinite)
        return cls(table.words, table.matrix, table.counts, source=f"'{path}'")

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, nonfinite: str = "error") -> "Vectors":
        """The trained vectors of a run directory (`vectors/`, written by the train stage)."""
        run = RunDir(run_dir)
        record = run.stage("train")
        if record is not None and not record.get("completed"):
            raise RunDirError(f"run directory '{run.path}': the train stage did not complete, so vectors/ may be "
                              f"stale or partial; run `w2vdist train` again")
        if not (run.path / "vectors").is_dir():
            raise RunDirError(f"run directory '{run.path}' has no vectors/: run `w2vdist train` first")
        table = read_vectors(run.path / "vectors", "parquet", nonfinite)
        return cls(table.words, table.matrix, table.counts, source=f"run directory '{run.path}'")

    def save(self, path: str | os.PathLike, format: str, normalize: bool = False) -> list[Path]:
        """Write in one of `formats.WRITE_FORMATS`, rows scaled to unit length if `normalize`; returns the files."""
        matrix = self.unit.cpu().numpy() if normalize else self.matrix
        return write_vectors(VectorTable(self.words, matrix, self.counts), Path(path), format)

    # --- lookups -----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def ids(self, words: Iterable[str]) -> np.ndarray:
        """Row numbers of `words`; raises UnknownWordsError naming every word that is not in the vocabulary."""
        words = list(words)
        ids = [self.index.get(word, -1) for word in words]
        unknown = list(dict.fromkeys(w for w, i in zip(words, ids) if i < 0))
        if unknown:
            hints = {w: w.lower() for w in unknown if w.lower() in self.index}
            raise UnknownWordsError(unknown, self.source, hints)
        return np.array(ids, dtype=np.int64)

    @property
    def unit(self) -> torch.Tensor:
        """The rows scaled to unit length, on `device` (zero rows stay zero)."""
        if self._unit is None:
            self._unit = F.normalize(torch.from_numpy(self.matrix).to(self.device), dim=1)
        return self._unit

    def unit_vectors(self, words: Sequence[str]) -> np.ndarray:
        """The unit-length vectors of `words`, one row each."""
        return self.unit[torch.as_tensor(self.ids(words), device=self.device)].cpu().numpy()

    # --- queries -----------------------------------------------------------------------------------------------
    def most_similar(self, positive: str | Sequence[str] = (), negative: str | Sequence[str] = (), topn: int = 10,
                     restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        positive, negative = _as_list(positive), _as_list(negative)
        if not positive and not negative:
            raise ValueError("most_similar needs at least one positive or negative word")
        pos, neg = self.ids(positive), self.ids(negative)
        scores, ids = self.rank(pos[None, :], neg[None, :], topn, restrict_vocab=restrict_vocab)
        return self._pairs(scores[0], ids[0])

    def neighbours(self, words: Sequence[str], topn: int = 10,
                   restrict_vocab: int | None = None) -> list[list[tuple[str, float]]]:
        """The nearest words of each word in `words` (itself excluded), all in one batched pass."""
        ids = self.ids(words)
        scores, found = self.rank(ids[:, None], np.empty((len(ids), 0), np.int64), topn,
                                  restrict_vocab=restrict_vocab)
        return [self._pairs(s, i) for s, i in zip(scores, found)]

    def similarity(self, a: str, b: str) -> float:
        ids = self.ids([a, b])
        return float(self.cosines(ids[:1], ids[1:])[0])

    def cosines(self, a_ids: np.ndarray, b_ids: np.ndarray) -> np.ndarray:
        """Cosine similarity of each pair of rows (a_ids[i], b_ids[i])."""
        a = self.unit[torch.as_tensor(a_ids, device=self.device)]
        b = self.unit[torch.as_tensor(b_ids, device=self.device)]
        return (a * b).sum(dim=1).cpu().numpy()

    def analogy(self, a: str, b: str, c: str, topn: int = 1, method: str = "add",
                restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """a is to b as c is to ?: the best `topn` answers with their 3CosAdd or 3CosMul scores."""
        ids = self.ids([a, b, c])
        scores, found = self.rank(ids[None, 1:], ids[None, :1], topn, method=method, restrict_vocab=restrict_vocab)
        return self._pairs(scores[0], found[0])

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word farthest from the normalised mean of the words' unit vectors."""
        if len(words) < 2:
            raise ValueError("doesnt_match needs at least two words")
        unit = self.unit[torch.as_tensor(self.ids(words), device=self.device)]
        centre = F.normalize(unit.mean(dim=0), dim=0)
        return words[int(torch.argmin(unit @ centre))]

    def rank(self, positive: np.ndarray, negative: np.ndarray, topn: int, *, method: str = "add",
             restrict_vocab: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Batched queries: row q of the id arrays `positive` (Q x P) and `negative` (Q x N) is one query.

        Returns (scores, ids), each Q x min(topn, candidates), best first, over the first `restrict_vocab` words;
        each query's own words are excluded. Where fewer candidates remain, the slots hold -inf and id -1.
        """
        if method not in METHODS:
            raise ValueError(f"unknown analogy method '{method}': expected one of {', '.join(METHODS)}")
        candidates = self._candidates(restrict_vocab)
        queries = len(positive)
        topn = min(topn, candidates)
        pos = torch.as_tensor(np.asarray(positive, dtype=np.int64).reshape(queries, -1), device=self.device)
        neg = torch.as_tensor(np.asarray(negative, dtype=np.int64).reshape(queries, -1), device=self.device)
        inputs = torch.cat([pos, neg], dim=1)
        table = self.unit[:candidates]
        per_query = candidates * (inputs.shape[1] if method == "mul" else 1)
        step = max(1, _CHUNK_CELLS // max(per_query, 1))
        scores, ids = [], []
        with torch.inference_mode():
            for start in range(0, queries, step):
                chunk = slice(start, start + step)
                chunk_scores = self._scores(pos[chunk], neg[chunk], table, method)
                _exclude(chunk_scores, inputs[chunk], candidates)
                top = torch.topk(chunk_scores, topn, dim=1)
                scores.append(top.values)
                ids.append(top.indices)
        if not scores:
            return np.empty((0, topn), np.float32), np.empty((0, topn), np.int64)
        scores_np = torch.cat(scores).cpu().numpy()
        ids_np = torch.cat(ids).cpu().numpy()
        ids_np[np.isneginf(scores_np)] = -1
        return scores_np, ids_np

    def _scores(self, pos: torch.Tensor, neg: torch.Tensor, table: torch.Tensor, method: str) -> torch.Tensor:
        if method == "add":
            query = self.unit[pos].sum(dim=1) - self.unit[neg].sum(dim=1)
            return F.normalize(query, dim=1) @ table.T
        # 3CosMul: the product over an empty set of negative words is 1, so plain neighbours rank as by cosine.
        shifted_pos = (self.unit[pos] @ table.T + 1) / 2
        shifted_neg = (self.unit[neg] @ table.T + 1) / 2
        return shifted_pos.prod(dim=1) / (shifted_neg.prod(dim=1) + MULTIPLICATIVE_EPSILON)

    def _candidates(self, restrict_vocab: int | None) -> int:
        if restrict_vocab is None:
            return len(self.words)
        if restrict_vocab < 1:
            raise ValueError(f"restrict_vocab must be at least 1, got {restrict_vocab}")
        return min(restrict_vocab, len(self.words))

    def _pairs(self, scores: np.ndarray, ids: np.ndarray) -> list[tuple[str, float]]:
        return [(self.words[i], float(s)) for s, i in zip(scores.tolist(), ids.tolist()) if i >= 0]


def _exclude(scores: torch.Tensor, inputs: torch.Tensor, candidates: int) -> None:
    """Give each query's own words a score of -inf so that they are never returned."""
    rows = torch.arange(inputs.shape[0], device=inputs.device).unsqueeze(1).expand_as(inputs)
    inside = inputs < candidates  # an input word outside restrict_vocab is not a candidate anyway
    scores[rows[inside], inputs[inside]] = float("-inf")


def _as_list(words: str | Sequence[str]) -> list[str]:
    return [words] if isinstance(words, str) else list(words)
