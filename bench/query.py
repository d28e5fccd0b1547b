"""Query speed of w2vdist.Vectors beside gensim's KeyedVectors, on the same vectors in the same run.

    python bench/query.py [--chars 20000000] [--words 70000] [--queries 1000] [--repeat 3]

Trains gensim skip-gram for one epoch on the first --chars characters of the text8-style corpus (in ../shared/data
beside the checkout), keeps the --words most frequent words (100 dimensions), then times, best of --repeat after
one warm-up run each:

1. `most_similar` (top 10) of --queries words: w2vdist's batched `neighbours` against gensim's `most_similar`
   called once per word (it has no batch form), and w2vdist's `most_similar` called once per word;
2. the full Google analogy evaluation over the 30,000 most frequent words: `evaluate_analogies` against
   `evaluate_word_analogies`, whose figures must be equal.

Neighbour lists may differ from gensim's where two scores tie to float32 rounding; those are printed. On a CPU that
other processes keep busy, torch's OpenMP threads spin while they wait: compare with OMP_WAIT_POLICY=PASSIVE.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from w2vdist.evaluation import evaluate_analogies  # noqa: E402
from w2vdist.vectors import Vectors  # noqa: E402

DATA = REPO.parent / "shared" / "data"
CORPUS = DATA / "corpora" / "enwiki_2015_text8style_100MB.txt.gz"
QUESTIONS = DATA / "eval" / "questions-words.txt"
RESTRICT_VOCAB = 30000


def train(chars: int, words: int):
    from gensim.models import KeyedVectors, Word2Vec

    with gzip.open(CORPUS, "rb") as f:
        tokens = f.read(chars).decode("ascii").split()[:-1]
    sentences = [tokens[i:i + 10000] for i in range(0, len(tokens), 10000)]
    started = time.perf_counter()
    model = Word2Vec(sentences, vector_size=100, window=5, min_count=1, sg=1, negative=5, epochs=1, workers=2,
                     seed=1)
    print(f"trained gensim skip-gram on {len(tokens):,} tokens in {time.perf_counter() - started:.1f} s: "
          f"{len(model.wv):,} words, keeping the {words:,} most frequent")
    if len(model.wv) < words:
        raise SystemExit(f"only {len(model.wv):,} distinct words in {chars:,} characters: raise --chars")
    kv = KeyedVectors(100)
    kv.add_vectors(model.wv.index_to_key[:words], model.wv.vectors[:words])
    return kv


def best_time(run, repeat: int) -> tuple[float, object]:
    result = run()  # warm-up: caches (unit vectors, norms) and first-call costs are not what is compared
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=20_000_000)
    parser.add_argument("--words", type=int, default=70_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("gensim").setLevel(logging.WARNING)

    kv = train(args.chars, args.words)
    vectors = Vectors(kv.index_to_key, kv.vectors)
    rng = np.random.default_rng(0)
    queries = [kv.index_to_key[i] for i in rng.choice(len(kv), size=args.queries, replace=False)]
    print(f"table {len(vectors):,} x {vectors.dim}; torch {torch.__version__} on {vectors.device}, "
          f"{torch.get_num_threads()} threads")

    rows = []
    ours, batched = best_time(lambda: vectors.neighbours(queries, topn=10), args.repeat)
    theirs, looped = best_time(lambda: [kv.most_similar(q, topn=10) for q in queries], args.repeat)
    single, _ = best_time(lambda: [vectors.most_similar([q], topn=10) for q in queries], args.repeat)
    same = sum([w for w, _ in a] == [w for w, _ in b] for a, b in zip(batched, looped))
    rows.append((f"most_similar, {args.queries:,} words, batched", ours, theirs))
    rows.append((f"most_similar, {args.queries:,} words, one call each", single, theirs))

    ours, result = best_time(lambda: evaluate_analogies(vectors, QUESTIONS, RESTRICT_VOCAB), args.repeat)
    theirs, (score, sections) = best_time(
        lambda: kv.evaluate_word_analogies(str(QUESTIONS), restrict_vocab=RESTRICT_VOCAB), args.repeat)
    rows.append((f"analogy evaluation ({result['total']:,} questions)", ours, theirs))

    print(f"\n{'task':<46} {'w2vdist':>9} {'gensim':>9} {'speed-up':>9}")
    for name, ours, theirs in rows:
        print(f"{name:<46} {ours:>8.3f}s {theirs:>8.3f}s {theirs / ours:>8.1f}x")
    total = sections[-1]
    gensim_correct = len(total["correct"])
    gensim_total = gensim_correct + len(total["incorrect"])
    print(f"\nneighbour lists identical to gensim's: {same} of {len(queries)}")
    for query, a, b in zip(queries, batched, looped):
        if [w for w, _ in a] != [w for w, _ in b]:
            at = next(i for i, (x, y) in enumerate(zip(a, b)) if x[0] != y[0])
            print(f"  {query}: from rank {at + 1}, w2vdist {a[at][0]} {a[at][1]:.7f} / {a[at + 1:at + 2]}, "
                  f"gensim {b[at][0]} {b[at][1]:.7f} / {b[at + 1:at + 2]}")
    print(f"analogy accuracy: w2vdist {result['accuracy']:.4f} ({result['correct']}/{result['total']}), "
          f"gensim {score:.4f} ({gensim_correct}/{gensim_total}), oov {result['oov']}: "
          f"{'equal' if (result['correct'], result['total']) == (gensim_correct, gensim_total) else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
