"""Plain-Python reference implementations of word2vec's preprocessing, written from the papers and word2phrase.c,
independent of the Spark and Arrow code they check."""

import math
from collections import Counter


def phrase_pass(chunks, min_count, threshold, connector="_", scoring="word2phrase"):
    """One word2phrase pass: (scores of the joined pairs, rewritten chunks)."""
    unigrams = Counter(t for chunk in chunks for t in chunk)
    bigrams = Counter((chunk[i], chunk[i + 1]) for chunk in chunks for i in range(len(chunk) - 1))
    total = sum(unigrams.values())
    scores = {}
    for (a, b), count_ab in bigrams.items():
        if unigrams[a] < min_count or unigrams[b] < min_count or count_ab < min_count:
            continue
        if scoring == "word2phrase":
            score = (count_ab - min_count) / unigrams[a] / unigrams[b] * total
        else:
            p_ab, p_a, p_b = count_ab / total, unigrams[a] / total, unigrams[b] / total
            score = math.log(p_ab / (p_a * p_b)) / -math.log(p_ab)
        if score > threshold:
            scores[(a, b)] = (count_ab, score)
    return scores, join_greedy(chunks, scores, connector)


def join_greedy(chunks, chosen, connector):
    """word2phrase's output: left to right, a chosen pair is joined and its right word cannot join again."""
    rewritten = []
    for chunk in chunks:
        out, i = [], 0
        while i < len(chunk):
            if i + 1 < len(chunk) and (chunk[i], chunk[i + 1]) in chosen:
                out.append(chunk[i] + connector + chunk[i + 1])
                i += 2
            else:
                out.append(chunk[i])
                i += 1
        rewritten.append(out)
    return rewritten


def vocabulary(chunks, min_count, max_vocab_size=None):
    counts = Counter(t for chunk in chunks for t in chunk)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    if max_vocab_size is not None:
        words = words[:max_vocab_size]
    return [(i, w, counts[w]) for i, w in enumerate(words)]


def keep_probability(count, total, sample):
    threshold = sample * total
    return min(1.0, (math.sqrt(count / threshold) + 1) * threshold / count)


def window_pairs(ids, reaches):
    """word2vec's skip-gram loop for one chunk, given each position's drawn window."""
    pairs = []
    for i, center in enumerate(ids):
        for j in range(max(0, i - reaches[i]), min(len(ids), i + reaches[i] + 1)):
            if j != i:
                pairs.append((center, ids[j]))
    return pairs
