"""Word vectors and the questions users ask of them: neighbours, similarity, analogies, the odd one out.

`Vectors` is modelled on gensim's `KeyedVectors`, so that gensim users find their habits and figures can be
compared: `index_to_key` (the words in file order; for w2vdist output by descending count), `key_to_index`,
`vectors` (the V x D float32 matrix), `counts` (per word, when the format carries them), `vectors["king"]`,
`get_vector(word, norm)`, `most_similar`, `most_similar_cosmul`, `similarity`, `doesnt_match`, `len`, `in`; and
`to_gensim()` / `from_gensim(kv)` hand the same vectors to and from gensim itself. Queries run on torch, on the GPU
when there is one: the unit-length rows are computed once, and many queries share one matrix multiply
(`neighbours`, `rank`), so a thousand queries cost little more than a few.

Semantics, as gensim's:

- `most_similar(positive, negative)`: cosine with the normalised weighted sum of the terms: words (their unit
  vectors), raw vectors (as given) or (term, weight) pairs, positive terms weighing 1 and negative -1 by default;
  the input words are never returned. `topn=None` returns the cosine of every word instead of a ranking.
- `most_similar_cosmul(positive, negative)`: 3CosMul (Levy & Goldberg 2014) with cosines shifted to [0, 1],
  cos' = (cos + 1) / 2, ranking x by prod cos'(x, p) / (prod cos'(x, n) + 1e-6).
- `analogy(a, b, c)`: a is to b as c is to ?: `most_similar([b, c], [a])` (3CosAdd) or, with method="mul",
  `most_similar_cosmul([b, c], [a])`.
- `restrict_vocab=N` searches only the first N words, the N most frequent when the vocabulary is sorted by count.

A word is looked up as given first. Vectors of a run directory also know the run's tokenizer and phrase connector,
so a query that is not a word of the vocabulary is tokenized as the corpus was: "New York" finds new_york. Unknown
words raise `UnknownWordsError` (a `KeyError`, as in gensim), which lists all of them with a hint where one helps.
"""

from __future__ import annotations

import os
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from w2vdist.datasets import RunLayout
from w2vdist.errors import RunDirError, UnknownWordsError, UsageError
from w2vdist.formats import VectorTable, format_for_path, read_vectors, write_vector_file
from w2vdist.rundir import MANIFEST, RunDir
from w2vdist.tokenizer import Tokenizer

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

METHODS = ("add", "mul")
MULTIPLICATIVE_EPSILON = 1e-6  # gensim's, in most_similar_cosmul
# Queries are ranked in chunks of at most this many (query, candidate) scores: 64 MB bounds memory, and was
# measured faster than larger chunks (topk reads scores the matrix multiply has just written).
_CHUNK_CELLS = 1 << 24
_HINT_TOKENIZER = Tokenizer()  # hints for vectors without a run: the default rules, phrases joined by "_"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Vectors:
    def __init__(self, words: Sequence[str], vectors: np.ndarray, counts: np.ndarray | None = None, *,
                 source: str = "the vectors", device: str | torch.device | None = None,
                 tokenizer: Tokenizer | None = None, phrase_connector: str = "_"):
        # torch shares the memory of a numpy matrix, and needs it C-ordered and writable (Arrow's may not be).
        vectors = np.require(vectors, dtype=np.float32, requirements=["C_CONTIGUOUS", "WRITEABLE"])
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"{len(words)} words need a matrix of {len(words)} rows, got shape {vectors.shape}")
        self.index_to_key = list(words)
        self.vectors = vectors
        self.counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        self.source = source
        self.device = torch.device(device) if device is not None else default_device()
        self.tokenizer = tokenizer  # the run's: queries are tokenized as the corpus was
        self.phrase_connector = phrase_connector
        # Reversed so that a word listed twice maps to its first (most frequent) row, as in gensim.
        self.key_to_index = {word: i for i, word in zip(range(len(words) - 1, -1, -1), reversed(self.index_to_key))}
        self._unit: torch.Tensor | None = None

    # --- loading and saving ------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, format: str | None = None, nonfinite: str = "error",
             limit: int | None = None) -> "Vectors":
        """Any format of `w2vdist.formats` (detected unless given), or a run directory holding `vectors/`; only
        the first `limit` words when given (read as a stream: the rest of the file is never read). Vectors holding
        NaN or infinity are an error, or left out with `nonfinite="drop"`."""
        path = Path(path)
        if format is None and path.is_dir() and (RunLayout(path).vectors.exists() or (path / MANIFEST).exists()):
            return cls.from_run(path, nonfinite, limit)
        table = read_vectors(path, format, nonfinite, limit)
        return cls(table.words, table.matrix, table.counts, source=f"'{path}'")

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, nonfinite: str = "error", limit: int | None = None) -> "Vectors":
        """The trained vectors of a run directory (`vectors/`, written by the train stage), with its tokenizer."""
        run = RunDir(run_dir)
        record = run.stage("train")
        if record is not None and not record.get("completed"):
            raise RunDirError(f"run directory '{run.path}': the train stage did not complete, so vectors/ may be "
                              f"stale or partial; run `w2vdist train` again")
        if not run.vectors.is_dir():
            raise RunDirError(f"run directory '{run.path}' has no {run.vectors.name}/: run `w2vdist train` first")
        table = read_vectors(run.vectors, "parquet", nonfinite, limit)
        settings = (run.stage("preprocess") or {}).get("config") or {}
        tokenizer = None
        if "token_pattern" in settings:
            tokenizer = Tokenizer(**{name: settings[name] for name in Tokenizer.__dataclass_fields__})
        return cls(table.words, table.matrix, table.counts, source=f"run directory '{run.path}'",
                   tokenizer=tokenizer, phrase_connector=settings.get("phrase_connector", "_"))

    def save(self, path: str | os.PathLike, format: str | None = None, normalize: bool = False) -> list[Path]:
        """Write in one of `formats.WRITE_FORMATS` (by default the one the extension names: .txt, .bin, .parquet,
        .npy; a further .gz compresses the word2vec formats), rows scaled to unit length if `normalize`; the
        counts go beside word2vec files as PATH.vocab (gensim's fvocab). Returns the files written."""
        path = Path(path)
        matrix = self.unit.cpu().numpy() if normalize else self.vectors
        return write_vector_file(VectorTable(self.index_to_key, matrix, self.counts), path,
                                 format or format_for_path(path))

    def to_gensim(self) -> "KeyedVectors":
        """The same words, vectors and counts as gensim's KeyedVectors (counts in `get_vecattr(word, "count")`)."""
        try:
            from gensim.models import KeyedVectors
        except ImportError:
            raise UsageError("to_gensim needs gensim: pip install gensim") from None
        kv = KeyedVectors(self.dim, dtype=np.float32)
        kv.add_vectors(self.index_to_key, self.vectors)
        if self.counts is not None:
            kv.allocate_vecattrs(attrs=["count"], types=[np.int64])
            kv.expandos["count"][:] = self.counts
        return kv

    @classmethod
    def from_gensim(cls, kv: "KeyedVectors", **options: Any) -> "Vectors":
        """gensim's KeyedVectors (e.g. `model.wv`) as Vectors, with their counts when gensim has them."""
        counts = kv.expandos.get("count")
        options.setdefault("source", "gensim KeyedVectors")
        return cls(list(kv.index_to_key), kv.vectors, None if counts is None else np.asarray(counts), **options)

    # --- lookups -----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, word: str) -> bool:
        return self._row(word) >= 0

    def __repr__(self) -> str:
        counts = ", with counts" if self.counts is not None else ""
        return f"<Vectors: {len(self):,} words x {self.dim} dimensions{counts}, from {self.source}>"

    def __getitem__(self, words: str | Sequence[str]) -> np.ndarray:
        """The vector of a word, or the matrix of a list of words, as stored (not normalised), as gensim's kv[...]."""
        if isinstance(words, str):
            return self.vectors[self.get_index(words)]
        return self.vectors[self.ids(words)]

    def get_vector(self, word: str, norm: bool = False) -> np.ndarray:
        """The vector of `word`; scaled to unit length when `norm`."""
        if norm:
            return self.unit[self.get_index(word)].cpu().numpy()
        return self.vectors[self.get_index(word)]

    def get_index(self, word: str) -> int:
        """The row of `word`; raises UnknownWordsError (a KeyError)."""
        return int(self.ids([word])[0])

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    vector_size = dim  # gensim's name

    def ids(self, words: Iterable[str]) -> np.ndarray:
        """Row numbers of `words`; raises UnknownWordsError naming every word that is not in the vocabulary."""
        words = list(words)
        ids = [self._row(word) for word in words]
        unknown = list(dict.fromkeys(w for w, i in zip(words, ids) if i < 0))
        if unknown:
            hints = {w: hint for w in unknown if (hint := self.suggestion(w))}
            raise UnknownWordsError(unknown, self.source, hints)
        return np.array(ids, dtype=np.int64)

    def _row(self, word: str) -> int:
        """The row of `word` as given, else of the word the run's tokenizer makes of it; -1 when there is none."""
        row = self.key_to_index.get(word, -1)
        if row < 0 and self.tokenizer is not None:
            row = self.key_to_index.get(self.phrase_connector.join(self.tokenizer.tokenize(word)), -1)
        return row

    def suggestion(self, word: str) -> str | None:
        """A vocabulary word `word` may have meant: tokenized by the default rules (lower-cased, phrases joined by
        the connector), for vectors that do not know the tokenizer of their corpus."""
        for candidate in (self.phrase_connector.join(_HINT_TOKENIZER.tokenize(word)), word.lower()):
            if candidate != word and candidate in self.key_to_index:
                return candidate
        return None

    @property
    def unit(self) -> torch.Tensor:
        """The rows scaled to unit length, on `device` (zero rows stay zero)."""
        if self._unit is None:
            self._unit = F.normalize(torch.from_numpy(self.vectors).to(self.device), dim=1)
        return self._unit

    def unit_vectors(self, words: Sequence[str]) -> np.ndarray:
        """The unit-length vectors of `words`, one row each."""
        return self.unit[torch.as_tensor(self.ids(words), device=self.device)].cpu().numpy()

    # --- queries -----------------------------------------------------------------------------------------------
    def most_similar(self, positive: Any = None, negative: Any = None, topn: int | None = 10,
                     restrict_vocab: int | None = None) -> list[tuple[str, float]] | np.ndarray:
        """The `topn` words nearest the weighted sum of the terms (see the module docstring); with topn=None, the
        cosine of each of the first `restrict_vocab` words."""
        if topn is not None and topn < 1:
            return []
        terms = self._terms(positive, 1.0) + self._terms(negative, -1.0)
        if not terms:
            raise ValueError("most_similar needs at least one positive or negative term")
        query = torch.stack([weight * vector for vector, weight, _ in terms]).sum(dim=0)
        candidates = self._candidates(restrict_vocab)
        with torch.inference_mode():
            scores = self.unit[:candidates] @ F.normalize(query, dim=0)
        return self._top(scores, terms, topn)

    def most_similar_cosmul(self, positive: Any = None, negative: Any = None, topn: int | None = 10,
                            restrict_vocab: int | None = None) -> list[tuple[str, float]] | np.ndarray:
        """3CosMul: the words x with the largest prod cos'(x, p) / (prod cos'(x, n) + 1e-6), cos' = (cos + 1) / 2,
        as gensim's most_similar_cosmul: raw vectors are used as given, and a weight only chooses the side."""
        if topn is not None and topn < 1:
            return []
        terms = self._terms(positive, 1.0) + self._terms(negative, -1.0)
        if not any(weight > 0 for _, weight, _ in terms):
            raise ValueError("most_similar_cosmul needs at least one positive term")
        table = self.unit[:self._candidates(restrict_vocab)]
        with torch.inference_mode():
            shifted = [((table @ vector + 1) / 2, weight) for vector, weight, _ in terms]
            numerator = torch.stack([cos for cos, weight in shifted if weight > 0]).prod(dim=0)
            below = [cos for cos, weight in shifted if weight < 0]
            denominator = torch.stack(below).prod(dim=0) if below else 1.0  # an empty product, as numpy's
            scores = numerator / (denominator + MULTIPLICATIVE_EPSILON)
        return self._top(scores, terms, topn)

    def _terms(self, items: Any, sign: float) -> list[tuple[torch.Tensor, float, int | None]]:
        """(vector, weight, row or None) of each query term: a word, a raw vector, or a (term, weight) pair."""
        if items is None:
            return []
        if isinstance(items, str) or (isinstance(items, (np.ndarray, torch.Tensor)) and items.ndim == 1):
            items = [items]
        elif isinstance(items, np.ndarray):  # a matrix: one raw vector per row, as gensim takes it
            items = list(items)
        terms = []
        words = [item for item in items if isinstance(item, str)] + [
            item[0] for item in items if isinstance(item, tuple) and isinstance(item[0], str)]
        self.ids(words)  # every unknown word in one error
        for item in items:
            term, weight = item if isinstance(item, tuple) else (item, sign)
            if not isinstance(weight, Real):
                raise ValueError(f"a query term's weight must be a number, got {weight!r}")
            if isinstance(term, str):
                row = self._row(term)
                terms.append((self.unit[row], float(weight), row))
            else:
                vector = torch.as_tensor(np.asarray(term, dtype=np.float32), device=self.device)
                if vector.shape != (self.dim,):
                    raise ValueError(f"a query vector must have {self.dim} numbers, got shape {tuple(vector.shape)}")
                terms.append((vector, float(weight), None))
        return terms

    def _top(self, scores: torch.Tensor, terms: list, topn: int | None) -> list[tuple[str, float]] | np.ndarray:
        if topn is None:
            return scores.cpu().numpy()
        scores = scores.clone()
        inputs = [row for _, _, row in terms if row is not None and row < len(scores)]
        scores[inputs] = float("-inf")
        top = torch.topk(scores, min(topn, len(scores)))
        return self._pairs(top.values.cpu().numpy(), top.indices.cpu().numpy())

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
            return len(self)
        if restrict_vocab < 1:
            raise ValueError(f"restrict_vocab must be at least 1, got {restrict_vocab}")
        return min(restrict_vocab, len(self))

    def _pairs(self, scores: np.ndarray, ids: np.ndarray) -> list[tuple[str, float]]:
        return [(self.index_to_key[i], float(s)) for s, i in zip(scores.tolist(), ids.tolist()) if i >= 0]


def _exclude(scores: torch.Tensor, inputs: torch.Tensor, candidates: int) -> None:
    """Give each query's own words a score of -inf so that they are never returned."""
    rows = torch.arange(inputs.shape[0], device=inputs.device).unsqueeze(1).expand_as(inputs)
    inside = inputs < candidates  # an input word outside restrict_vocab is not a candidate anyway
    scores[rows[inside], inputs[inside]] = float("-inf")
