"""Each preprocessing step on tiny DataFrames, against the plain-Python reference in tests/reference.py."""

import random
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from tests import reference
from w2vdist.preprocess import phrases
from w2vdist.preprocess.chunks import tokenize_documents
from w2vdist.preprocess.ids import to_ids
from w2vdist.preprocess.pairs import center_stride, draw_pairs, keep_mask, make_pairs
from w2vdist.preprocess.subsample import expected_kept, keep_probabilities, keep_thresholds
from w2vdist.preprocess.vocab import build_vocab, count_words
from w2vdist.random_streams import Stream, stream_key
from w2vdist.tokenizer import Tokenizer


def random_chunks(seed, n_chunks=40, length=(5, 60), words=30):
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(words)]
    weights = [1 / (i + 1) for i in range(words)]  # Zipf-like, so min_count and subsampling bite
    return [rng.choices(vocab, weights, k=rng.randint(*length)) for _ in range(n_chunks)]


def chunk_frame(spark, chunks):
    return spark.createDataFrame([(i, c) for i, c in enumerate(chunks)], "chunk_id long, tokens array<string>")


def collect_chunks(frame):
    return [list(r["tokens"]) for r in frame.orderBy("chunk_id").collect()]


def test_documents_are_cut_into_chunks_of_at_most_max_doc_tokens(spark):
    texts = [" ".join(f"t{i}" for i in range(25)), "one two three", "   ", "caf\ufffd ok"]
    docs = spark.createDataFrame([(t, i == 3) for i, t in enumerate(texts)], "text string, undecodable boolean")
    rows = tokenize_documents(docs, Tokenizer(), max_doc_tokens=10).orderBy("chunk_id").collect()
    assert [len(r["tokens"]) for r in rows] == [10, 10, 5, 3, 2]
    assert sum((list(r["tokens"]) for r in rows[:3]), []) == [f"t{i}" for i in range(25)]
    assert [r["first_chunk"] for r in rows] == [True, False, False, True, True]
    assert [r["undecodable"] for r in rows] == [False, False, False, False, True]
    assert len({r["chunk_id"] for r in rows}) == len(rows)


def test_word_counts_and_vocabulary_ids_are_exact(spark):
    chunks = random_chunks(1) + [["tie_b", "tie_a"] * 3]
    counts = {r["word"]: r["count"] for r in count_words(chunk_frame(spark, chunks)).collect()}
    assert counts == Counter(t for c in chunks for t in c)
    for max_vocab_size in (None, 12):
        vocab = build_vocab(count_words(chunk_frame(spark, chunks)), 3, max_vocab_size)
        expected = reference.vocabulary(chunks, 3, max_vocab_size)
        assert list(zip(vocab["id"].to_pylist(), vocab["word"].to_pylist(), vocab["count"].to_pylist())) == expected


@pytest.mark.parametrize("scoring, threshold", [("word2phrase", 15.0), ("npmi", 0.05)])
def test_phrase_pass_scores_and_joins_like_word2phrase(spark, scoring, threshold):
    chunks = random_chunks(2)
    for chunk in chunks[::3]:
        chunk[1:1] = ["new", "york", "city"]
    expected, rewritten = reference.phrase_pass(chunks, 3, threshold, "_", scoring)
    grams = phrases.count_grams(chunk_frame(spark, chunks))
    total = sum(len(c) for c in chunks)
    scored = phrases.score_bigrams(grams, 3, total, scoring).collect()
    chosen = {(r["a"], r["b"]): (r["count"], r["score"]) for r in scored if r["score"] > threshold}
    assert chosen.keys() == expected.keys() and ("new", "york") in chosen
    for key, (count, score) in expected.items():
        assert chosen[key][0] == count
        assert chosen[key][1] == pytest.approx(score, rel=1e-12)
    keys = [f"{a} {b}" for a, b in chosen]
    assert collect_chunks(phrases.apply_phrases(chunk_frame(spark, chunks), [keys], "_")) == rewritten
    recounted = {r["gram"]: r["count"] for r in phrases.count_grams(chunk_frame(spark, chunks), [keys]).collect()}
    expected_counts = Counter(t for c in rewritten for t in c)
    expected_counts.update(f"{c[i]} {c[i + 1]}" for c in rewritten for i in range(len(c) - 1))
    assert recounted == expected_counts


def test_join_kernel_matches_greedy_reference_on_random_lists():
    rng = random.Random(3)
    for _ in range(50):
        chunks = [[rng.choice("abcd") for _ in range(rng.randint(0, 12))] for _ in range(rng.randint(1, 8))]
        chosen = {(a, b) for a in "abcd" for b in "abcd" if rng.random() < 0.4}
        expected = reference.join_greedy(chunks, chosen, "+")
        tokens = pa.array(chunks, pa.list_(pa.string()))
        got = phrases.join_phrases(tokens, pa.array([f"{a} {b}" for a, b in chosen], pa.string()), "+")
        assert got.to_pylist() == expected


def id_lists(lists):
    return pa.array(lists, pa.list_(pa.int32()))


def test_subsampling_keeps_each_word_at_the_formula_rate_in_every_draw():
    counts = np.array([40_000, 20_000, 8_000, 2_000, 500, 100])
    sample = 1e-2
    flat = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(0).shuffle(flat)
    lists = pa.ListArray.from_arrays(pa.array(np.append(np.arange(0, len(flat), 1000), len(flat)), pa.int32()),
                                     pa.array(flat, pa.int32()))
    chunk_ids = np.arange(len(lists))
    p_keep = keep_probabilities(counts, sample)
    masks = [keep_mask(chunk_ids, lists, keep_thresholds(counts, sample), seed=7, draw=d) for d in (0, 1)]
    for keep in masks:
        kept_counts = np.bincount(flat[keep], minlength=len(counts))
        for word, count in enumerate(counts):
            p = reference.keep_probability(count, counts.sum(), sample)
            assert p_keep[word] == pytest.approx(p, rel=1e-12)
            sigma = np.sqrt(count * p * (1 - p))
            assert abs(kept_counts[word] - count * p) <= 4.5 * sigma + 1e-9, (word, kept_counts[word], count * p)
        assert kept_counts[-1] == counts[-1]  # rare words are always kept: p = 1
    assert 0 < (masks[0] != masks[1]).mean() < 0.5  # each draw subsamples afresh
    assert expected_kept(counts, sample) == pytest.approx(float((counts * p_keep).sum()))
    assert keep_thresholds(counts, 0.0).tolist() == [1 << 24] * len(counts)
    assert keep_mask(chunk_ids, lists, keep_thresholds(counts, 0.0), seed=7, draw=0).all()


def test_ids_maps_words_to_ids_and_drops_unknown_words(spark):
    vocab = build_vocab(count_words(chunk_frame(spark, [["a", "b", "b", "c", "c", "c"]])), 2, None)
    frame = chunk_frame(spark, [["c", "x", "b", "a", "c"], ["y"], ["b"]])
    rows = to_ids(frame, vocab).orderBy("chunk_id").collect()
    assert [list(r["ids"]) for r in rows] == [[0, 1, 0], [], [1]]


@pytest.mark.parametrize("sample", [0.0, 2e-2])
def test_draw_pairs_equal_word2vecs_loop_given_the_same_draws(sample):
    rng = np.random.default_rng(5)
    counts = np.array([40, 30, 20] + [1] * 47)  # three frequent words, so subsampling drops some tokens
    lists = [rng.choice(len(counts), size=n, p=counts / counts.sum()).tolist() for n in (0, 1, 2, 7, 30, 200)]
    chunk_ids = np.array([11, 12, 13, 14, 15, 1 << 40])
    window, seed = 4, 9
    thresholds = keep_thresholds(counts, sample)
    draws = []
    for draw in (0, 1, 2):
        centers, contexts = draw_pairs(chunk_ids, id_lists(lists), thresholds, seed, draw, window)
        expected = reference.draw_pairs(list(zip(chunk_ids.tolist(), lists)), counts.tolist(), sample,
                                        stream_key(seed, Stream.SUBSAMPLE, draw),
                                        stream_key(seed, Stream.WINDOW, draw), window, center_stride(window))
        assert Counter(zip(centers.tolist(), contexts.tolist())) == Counter(expected)
        draws.append(Counter(expected))
    assert draws[0] != draws[1] != draws[2]  # independent draws
    if sample:  # some tokens are dropped, so the reference's compaction (no gap where a word was) is exercised
        assert not keep_mask(chunk_ids, id_lists(lists), thresholds, seed, 0).all()


def test_reach_is_uniform_and_distances_follow_the_dynamic_window_law():
    window, length = 5, 20_000
    ids = id_lists([list(range(length))])  # id = position, so distance = |center - context|
    everything = np.full(length, 1 << 24, dtype=np.int32)  # sample = 0: every word kept
    centers, contexts = draw_pairs(np.array([0]), ids, everything, seed=3, draw=0, window=window)
    distances = np.abs(centers.astype(np.int64) - contexts)
    observed = np.bincount(distances, minlength=window + 1)[1:]
    weights = np.array([window - d + 1 for d in range(1, window + 1)], dtype=float)
    expected = weights / weights.sum() * observed.sum()
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    assert distances.min() == 1 and distances.max() == window
    # away from the chunk's ends a center has 2 * reach contexts: its reach, uniform in 1..window
    per_center = np.bincount(centers, minlength=length)[window:length - window]
    reaches = np.bincount(per_center // 2, minlength=window + 1)
    assert reaches[0] == 0 and (per_center % 2 == 0).all()
    assert stats.chisquare(reaches[1:]).pvalue > 1e-3


def test_no_pair_crosses_a_chunk_and_spark_shuffling_loses_nothing(spark):
    lists = [list(range(1000 * k, 1000 * k + n)) for k, n in enumerate([50, 3, 0, 120, 1, 77])]
    corpus = spark.createDataFrame([(k, ids) for k, ids in enumerate(lists)], "chunk_id long, ids array<int>")
    thresholds = np.full(6000, 1 << 24, dtype=np.int32)
    thresholds[::3] = 1 << 23  # a third of the words kept with p = 1/2
    got = []
    for draw in (0, 1):
        frame = make_pairs(corpus, thresholds, window=5, seed=4, draw=draw, num_files=3)
        assert frame.rdd.getNumPartitions() == 3
        got.append([(r["center"], r["context"]) for r in frame.collect()])
        assert all(c // 1000 == x // 1000 for c, x in got[-1])
        centers, contexts = draw_pairs(np.arange(len(lists)), id_lists(lists), thresholds, 4, draw, 5)
        assert Counter(got[-1]) == Counter(zip(centers.tolist(), contexts.tolist()))
    assert Counter(got[0]) != Counter(got[1])


def test_retraining_vocabulary_keeps_base_ids_and_appends_new_words():
    from w2vdist.preprocess.vocab import merge_vocab, order_vocab

    base = order_vocab(pa.array(["the", "king", "queen"]), pa.array([50, 9, 8]))
    new = order_vocab(pa.array(["the", "prince", "queen", "duke"]), pa.array([70, 12, 6, 5]))
    merged = merge_vocab(base, {"the": 70, "queen": 6}, new)
    assert merged.to_pylist() == [
        {"id": 0, "word": "the", "count": 70}, {"id": 1, "word": "king", "count": 0},
        {"id": 2, "word": "queen", "count": 6}, {"id": 3, "word": "prince", "count": 12},
        {"id": 4, "word": "duke", "count": 5}]
