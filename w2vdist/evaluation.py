"""Benchmark scores: the Google analogy test and Spearman correlation with human word-pair similarity scores.

Both follow gensim's `evaluate_word_analogies` and `evaluate_word_pairs` (default arguments, except the analogy
vocabulary of 30,000 words), so the figures are the same on the same vectors:

- Matching ignores case: words are compared upper-cased, and a word whose upper-case form occurs several times in
  the vocabulary uses its first (most frequent) row.
- Analogies: a question with a word outside the `restrict_vocab` most frequent words counts in `oov`, not in
  `total`. The answer is the best 3CosAdd candidate (3CosMul with `method="mul"`) among those words, the question's
  words excluded; of the five best, the first that is not a case variant of a question word.
- Word pairs: a pair with an unknown word counts in `oov`; `pairs` is the number of pairs scored.

`evaluate` returns one dictionary, the same that `--json` prints and `save_results` writes:

    {"analogy": {"file", "restrict_vocab", "method", "accuracy", "correct", "total", "oov", "coverage",
                 "sections": {NAME: {"accuracy", "correct", "total", "oov", "coverage"}}},
     "similarity": {FILE: {"spearman", "pairs", "oov", "coverage"}}}

`accuracy` is null for a section with no question inside the vocabulary (the table says n/a, not 0.0 %), and
`coverage` is the share of the file's questions or pairs that could be scored: below `LOW_COVERAGE` the figure
says little about the vectors, and `coverage_warnings` says so.

It is saved beside the vectors: `RUN_DIR/eval/evaluation.json` for a run directory, `VECTORS.eval.json` for a file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from w2vdist.datasets import RunLayout
from w2vdist.errors import EvaluationDataError, read_text_file

if TYPE_CHECKING:
    from w2vdist.vectors import Vectors

DEFAULT_RESTRICT_VOCAB = 30000
LOW_COVERAGE = 0.5
_GENSIM_CANDIDATES = 5  # gensim looks at the five best answers to skip case variants of the question words


@dataclass
class AnalogySection:
    name: str
    questions: list[tuple[str, str, str, str]] = field(default_factory=list)


def read_analogies(path: str | os.PathLike) -> list[AnalogySection]:
    """`: section` lines, then questions `a b c d` (a is to b as c is to d); blank lines are skipped."""
    sections: list[AnalogySection] = []
    for line_no, line in enumerate(_read_lines(path), start=1):
        if line.startswith(": "):
            sections.append(AnalogySection(line[2:].strip()))
            continue
        words = line.split()
        if not words:
            continue
        if not sections:
            raise EvaluationDataError(f"'{path}' line {line_no}: a question before the first ': section' line")
        if len(words) != 4:
            raise EvaluationDataError(f"'{path}' line {line_no}: expected four words 'a b c d' or ': section', "
                                      f"got '{line.strip()[:80]}'")
        sections[-1].questions.append((words[0], words[1], words[2], words[3]))
    if not any(s.questions for s in sections):
        raise EvaluationDataError(f"'{path}' holds no analogy questions")
    return sections


def read_word_pairs(path: str | os.PathLike) -> list[tuple[str, str, float]]:
    """`word1 word2 score` per line, tab- or space-separated; `#` comments, blank lines and a header are skipped."""
    pairs: list[tuple[str, str, float]] = []
    header_allowed = True
    for line_no, line in enumerate(_read_lines(path), start=1):
        if line.startswith("#") or not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")] if "\t" in line else line.split()
        try:
            if len(fields) != 3:
                raise ValueError
            pairs.append((fields[0], fields[1], float(fields[2])))
        except ValueError:
            if header_allowed and len(fields) == 3:
                header_allowed = False
                continue
            raise EvaluationDataError(f"'{path}' line {line_no}: expected 'word1 word2 score', "
                                      f"got '{line.strip()[:80]}'") from None
        header_allowed = False
    if not pairs:
        raise EvaluationDataError(f"'{path}' holds no word pairs")
    return pairs


def _read_lines(path: str | os.PathLike) -> list[str]:
    return read_text_file(path, "evaluation file", EvaluationDataError).splitlines()


class _CaselessVocab:
    """Upper-cased words of the first `size` rows, each mapped to its first row, as gensim's case_insensitive."""

    def __init__(self, vectors: Vectors, size: int):
        self.row: dict[str, int] = {}
        canonical = np.empty(size, dtype=np.int64)
        for i, word in enumerate(vectors.index_to_key[:size]):
            canonical[i] = self.row.setdefault(word.upper(), i)
        self.canonical = canonical  # row -> the row its upper-case form maps to

    def rows(self, words: Sequence[str]) -> np.ndarray:
        return np.array([self.row.get(w.upper(), -1) for w in words], dtype=np.int64)


def evaluate_analogies(vectors: Vectors, path: str | os.PathLike, restrict_vocab: int = DEFAULT_RESTRICT_VOCAB,
                       method: str = "add") -> dict[str, Any]:
    sections = read_analogies(path)
    vocab = _CaselessVocab(vectors, min(restrict_vocab, len(vectors)))
    questions = [q for s in sections for q in s.questions]
    rows = vocab.rows([w for q in questions for w in q]).reshape(-1, 4)
    known = (rows >= 0).all(axis=1)
    correct = np.zeros(len(questions), dtype=bool)
    asked = rows[known]
    if len(asked):
        correct[known] = _answers(vectors, vocab, asked, restrict_vocab, method) == asked[:, 3]
    section_of = np.repeat(np.arange(len(sections)), [len(s.questions) for s in sections])
    result = {"file": str(path), "restrict_vocab": restrict_vocab, "method": method}
    result.update(_score(correct, known))
    result["sections"] = {s.name: _score(correct[section_of == i], known[section_of == i])
                          for i, s in enumerate(sections)}
    return result


def _answers(vectors: Vectors, vocab: _CaselessVocab, asked: np.ndarray, restrict_vocab: int,
             method: str) -> np.ndarray:
    """The canonical row each question's answer maps to (-1 where there is no answer)."""
    _, found = vectors.rank(asked[:, [1, 2]], asked[:, [0]], _GENSIM_CANDIDATES, method=method,
                            restrict_vocab=restrict_vocab)
    valid = found >= 0
    answer = np.where(valid, vocab.canonical[np.where(valid, found, 0)], -1)
    skipped = ~valid | (answer[:, :, None] == asked[:, None, :3]).any(axis=2)
    # gensim takes the first candidate that is no case variant of a question word; failing that, the last one.
    first_kept = np.argmax(~skipped, axis=1)
    last_valid = np.maximum(valid.sum(axis=1) - 1, 0)
    pick = np.where((~skipped).any(axis=1), first_kept, last_valid)
    return answer[np.arange(len(asked)), pick]


def _score(correct: np.ndarray, known: np.ndarray) -> dict[str, Any]:
    total = int(known.sum())
    hits = int(correct.sum())
    return {"accuracy": hits / total if total else None, "correct": hits, "total": total,
            "oov": int((~known).sum()), "coverage": total / len(known) if len(known) else 0.0}


def evaluate_similarity(vectors: Vectors, path: str | os.PathLike) -> dict[str, Any]:
    from scipy import stats  # slow to import: only when needed

    pairs = read_word_pairs(path)
    vocab = _CaselessVocab(vectors, len(vectors))
    a = vocab.rows([p[0] for p in pairs])
    b = vocab.rows([p[1] for p in pairs])
    known = (a >= 0) & (b >= 0)
    gold = np.array([p[2] for p in pairs])[known]
    model = vectors.cosines(a[known], b[known])
    spearman = float(stats.spearmanr(gold, model).statistic) if len(gold) > 1 else math.nan
    return {"spearman": None if math.isnan(spearman) else spearman, "pairs": int(known.sum()),
            "oov": int((~known).sum()), "coverage": float(known.mean())}


def evaluate(vectors: Vectors, analogies: str | os.PathLike | None = None,
             similarity: Sequence[str | os.PathLike] = (), restrict_vocab: int = DEFAULT_RESTRICT_VOCAB,
             method: str = "add") -> dict[str, Any]:
    results: dict[str, Any] = {}
    if analogies is not None:
        results["analogy"] = evaluate_analogies(vectors, analogies, restrict_vocab, method)
    if similarity:
        results["similarity"] = {str(path): evaluate_similarity(vectors, path) for path in similarity}
    return results


def results_path(vectors_location: str | os.PathLike) -> Path:
    """Where the results of the vectors at `vectors_location` are saved (see the module docstring)."""
    location, run = Path(vectors_location), RunLayout(vectors_location)
    if location.is_dir() and run.vectors.is_dir():
        return run.evaluation
    return location.with_name(location.name + ".eval.json")


def save_results(results: dict[str, Any], path: Path) -> Path:
    """Written beside and then renamed, so that a failed write never leaves half a results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def coverage_warnings(results: dict[str, Any]) -> list[str]:
    """One line for each figure computed over less than LOW_COVERAGE of its file."""
    warnings = []
    analogy = results.get("analogy")
    if analogy and analogy["coverage"] < LOW_COVERAGE:
        asked = analogy["total"] + analogy["oov"]
        warnings.append(f"the analogy accuracy covers only {analogy['total']:,} of {asked:,} questions "
                        f"({analogy['coverage']:.0%}): the others have a word outside the "
                        f"{analogy['restrict_vocab']:,} most frequent words")
    for name, row in (results.get("similarity") or {}).items():
        if row["coverage"] < LOW_COVERAGE:
            warnings.append(f"the Spearman figure of {name} covers only {row['pairs']:,} of "
                            f"{row['pairs'] + row['oov']:,} pairs ({row['coverage']:.0%}): the others have a word "
                            f"outside the vocabulary")
    return warnings


def format_table(results: dict[str, Any]) -> str:
    lines: list[str] = []
    analogy = results.get("analogy")
    if analogy:
        method = {"add": "3CosAdd", "mul": "3CosMul"}[analogy["method"]]
        lines.append(f"analogies: {analogy['file']} ({analogy['restrict_vocab']:,} most frequent words, {method})")
        lines.append(f"  {'section':<30} {'accuracy':>9} {'correct':>8} {'total':>7} {'oov':>7}")
        rows = list(analogy["sections"].items()) + [("total", analogy)]
        for name, row in rows:
            accuracy = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.1%}"
            lines.append(f"  {name:<30} {accuracy:>9} {row['correct']:>8} {row['total']:>7} {row['oov']:>7}")
    if results.get("similarity"):
        lines.append("word-pair similarity (Spearman)")
        lines.append(f"  {'file':<40} {'spearman':>9} {'pairs':>7} {'oov':>7}")
        for name, row in results["similarity"].items():
            spearman = "n/a" if row["spearman"] is None else f"{row['spearman']:.4f}"
            lines.append(f"  {name:<40} {spearman:>9} {row['pairs']:>7} {row['oov']:>7}")
    lines += [f"warning: {warning}" for warning in coverage_warnings(results)]
    return "\n".join(lines)
