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


def ids_after_min_count(chunks, vocabulary_rows):
    """corpus/: each chunk's tokens as vocabulary ids, tokens outside the vocabulary dropped, text order kept."""
    index = {word: i for i, word, _ in vocabulary_rows}
    return [[index[t] for t in chunk if t in index] for chunk in chunks]


# The draws, in plain Python integers from the laws in w2vdist/random_streams.py's docstring (only the stream
# keys, NumPy's SeedSequence, are taken from the module).
_GAMMA, _MASK = 0x9E3779B97F4A7C15, (1 << 64) - 1


def _splitmix64(state):
    z = state & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def chunk_key(stream_key, chunk_id):
    return _splitmix64(stream_key + (chunk_id + 1) * _GAMMA) >> 1


def draw_bits(key, counter):
    return _splitmix64(key + (counter + 1) * _GAMMA)


def keep_threshold(count, total, sample):
    """p_keep out of 2^24, rounded to the nearest integer; sample 0 keeps every word."""
    p = 1.0 if sample <= 0 or count == 0 else keep_probability(count, total, sample)
    return round(p * (1 << 24))


def draw_pairs(chunks, counts, sample, subsample_key, window_key, window, stride):
    """One epoch (pair draw) of word2vec's skip-gram loop over (chunk_id, ids) chunks: each token kept with its
    word's keep draw, the kept words compacted (a dropped word leaves no gap), each kept center's reach drawn at
    counter position * stride, then every kept word within the reach inside the chunk is a context."""
    total = sum(counts)
    thresholds = [keep_threshold(c, total, sample) for c in counts]
    pairs = []
    for chunk_id, ids in chunks:
        keep_key, reach_key = chunk_key(subsample_key, chunk_id), chunk_key(window_key, chunk_id)
        kept = [(p, w) for p, w in enumerate(ids) if draw_bits(keep_key, p) >> 40 < thresholds[w]]
        reaches = [1 + (((draw_bits(reach_key, p * stride) >> 32) * window) >> 32) for p, _ in kept]
        pairs += window_pairs([w for _, w in kept], reaches)
    return pairs


def window_pairs(ids, reaches):
    """word2vec's skip-gram loop for one chunk, given each position's drawn window."""
    pairs = []
    for i, center in enumerate(ids):
        for j in range(max(0, i - reaches[i]), min(len(ids), i + reaches[i] + 1)):
            if j != i:
                pairs.append((center, ids[j]))
    return pairs
