"""The bundled sample language: the files are the generator's output, and its questions and lists fit its corpus.
(`tests/test_pipeline.py` trains on it with conf/local.yaml and checks the score and the README's queries.)"""

import gzip
from collections import Counter

from w2vdist.config import SAMPLE_DIR, SAMPLE_PROFILE, load_config
from w2vdist.data import make_sample_corpus as sample
from w2vdist.evaluation import read_analogies
from w2vdist.plots import read_word_list
from w2vdist.tokenizer import Tokenizer


def test_the_bundled_files_are_the_generators_output(tmp_path, monkeypatch):
    monkeypatch.setattr(sample, "CORPUS", tmp_path / "corpus.txt.gz")
    monkeypatch.setattr(sample, "ANALOGIES", tmp_path / "analogies.txt")
    monkeypatch.setattr(sample, "WORD_LISTS", {name: tmp_path / f"{name}.txt" for name in sample.WORD_LISTS})
    sample.main()
    for name in ["corpus.txt.gz", "analogies.txt", *(f"{n}.txt" for n in sample.WORD_LISTS)]:
        assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes(), f"{name}: run the generator"


def test_questions_and_lists_use_words_the_corpus_teaches():
    with gzip.open(SAMPLE_DIR / "corpus.txt.gz", "rt", encoding="utf-8") as f:
        text = f.read()
    counts = Counter(Tokenizer().tokenize(text))
    config = load_config([SAMPLE_PROFILE])
    sections = read_analogies(config.eval_analogies)
    assert [s.name for s in sections] == ["capital-country", "currency", "nationality-adjective", "family"]
    questions = [q for s in sections for q in s.questions]
    assert len(questions) == 3 * 16 * 15 + 9 * 8
    rare = {w for q in questions for w in q if counts[w] < 20 * config.min_count}
    assert not rare, f"analogy words the corpus seldom uses: {sorted(rare)}"
    countries, capitals = (read_word_list(SAMPLE_DIR / f"{name}.txt") for name in ("countries", "capitals"))
    male, female = (read_word_list(SAMPLE_DIR / f"{name}.txt") for name in ("male", "female"))
    # The lists are pairs in the same order, as the pictures join them, and the same pairs the questions ask.
    asked = {(q[0], q[1]) for s in sections if s.name in ("capital-country", "family") for q in s.questions}
    assert set(zip(capitals, countries)) | set(zip(male, female)) == asked
    gendered = Counter(w for line in text.lower().splitlines() for w in line.split() if w in ("he", "she"))
    assert gendered["he"] > 1000 and gendered["she"] > 1000  # family paragraphs of both genders
