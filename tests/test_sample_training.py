"""The bundled sample corpus trains with the default training settings and its countries find their capitals."""

from __future__ import annotations

import numpy as np

from w2vdist.config import load_config
from w2vdist.data.make_sample_corpus import COUNTRIES
from w2vdist.preprocess.job import run_preprocess
from w2vdist.train import local
from w2vdist.vectors import Vectors

SAMPLE = "w2vdist/data/sample/corpus.txt.gz"


def test_the_sample_corpus_trains_with_default_settings_and_pairs_countries_with_capitals(tmp_path, spark):
    from pathlib import Path

    corpus = Path(__file__).resolve().parents[1] / SAMPLE
    run = tmp_path / "run"
    run_preprocess(load_config([], [], {"input": [str(corpus)], "out": str(run)}), spark=spark)
    assert local.main([str(run)]) == 0
    vectors = Vectors.from_run(run)
    found = []
    for country, capital, *_ in COUNTRIES:
        if country in vectors and capital in vectors:
            nearest = [w for w, _ in vectors.neighbours([country], topn=5)[0]]
            found.append(capital in nearest)
    assert len(found) >= 12 and np.mean(found) >= 0.75, found
