"""Retraining on a newer corpus from a previous run: known words keep ids and neighbourhoods, new words learn."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from w2vdist.config import load_config
from w2vdist.data.make_sample_corpus import COUNTRIES, paragraphs
from w2vdist.errors import ConfigError, RunDirError
from w2vdist.preprocess.job import run_preprocess
from w2vdist.train import local
from w2vdist.train.plan import build_plan
from w2vdist.vectors import Vectors

NEW_COUNTRIES = [("portugal", "lisbon", "escudo", "portuguese", "porto"),
                 ("norway", "oslo", "krone", "norwegian", "bergen"),
                 ("austria", "vienna", "schilling", "austrian", "graz"),
                 ("turkey", "ankara", "lira", "turkish", "istanbul")]
SETTINGS = ["min_count=3", "phrase_passes=0", "window=4", "sample=1e-3", "pairs_per_file=100000"]
TRAINING = ["dim=32", "epochs=3", "use_gpu=false"]


def prepare(spark, tmp, name, lines, *extra):
    corpus = tmp / f"{name}.txt"
    corpus.write_text("\n".join(lines) + "\n")
    out = tmp / name
    run_preprocess(load_config([], [*SETTINGS, *extra], {"input": [str(corpus)], "out": str(out)}), spark=spark)
    assert local.main([str(out), *TRAINING]) == 0
    return out


def neighbours(vectors, word, topn=10):
    return {w for w, _ in vectors.most_similar(word, topn=topn)}


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("retrain")
    base = prepare(spark, tmp, "base", paragraphs(12_000, seed=3))
    newer = prepare(spark, tmp, "newer", paragraphs(12_000, seed=4, countries=COUNTRIES + NEW_COUNTRIES),
                    f"base_run={base}")
    return base, newer


def test_known_words_keep_their_ids_and_new_words_follow(runs):
    base, newer = runs
    old = pq.read_table(base / "vocab").to_pylist()
    merged = pq.read_table(newer / "vocab").to_pylist()
    assert [(r["id"], r["word"]) for r in merged[:len(old)]] == [(r["id"], r["word"]) for r in old]
    added = {r["word"] for r in merged[len(old):]}
    assert {"lisbon", "oslo", "vienna", "ankara", "portugal"} <= added


def test_known_neighbourhoods_survive_and_new_words_learn_theirs(runs):
    base, newer = runs
    before, after = Vectors.from_run(base), Vectors.from_run(newer)
    known = list(before.index_to_key)
    old, new = before.unit_vectors(known), after.unit_vectors(known)
    # Started from the base rows, known words stay where they were: a run from a fresh random start would share
    # no axes with the base run (cosine about 0), and the similarity structure among known words survives.
    assert float(np.mean(np.sum(old * new, axis=1))) > 0.7
    upper = np.triu_indices(len(known), 1)
    assert np.corrcoef((old @ old.T)[upper], (new @ new.T)[upper])[0, 1] > 0.7
    for country, capital, currency, adjective, city in NEW_COUNTRIES:
        found = neighbours(after, capital, topn=8) & {country, currency, adjective, city}
        assert len(found) >= 3, f"{capital}'s nearest words hold only {sorted(found)} of its own country's words"


def test_retraining_needs_the_base_runs_dim(runs):
    _, newer = runs
    with pytest.raises(ConfigError, match=r"'dim' \(48\) must equal the base run's \(32\)"):
        build_plan(load_config([], ["dim=48", "use_gpu=false"], {"out": str(newer)}))


def test_base_run_must_be_trained(spark, tmp_path):
    (tmp_path / "c.txt").write_text("\n".join(paragraphs(400, seed=5)) + "\n")
    untrained = tmp_path / "untrained"
    run_preprocess(load_config([], SETTINGS, {"input": [str(tmp_path / "c.txt")], "out": str(untrained)}),
                   spark=spark)
    with pytest.raises(RunDirError, match="has no train output"):
        run_preprocess(load_config([], [*SETTINGS, f"base_run={untrained}"],
                                   {"input": [str(tmp_path / "c.txt")], "out": str(tmp_path / "r")}), spark=spark)
