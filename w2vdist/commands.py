"""The vector toolkit's subcommands: export, similar, analogy, evaluate, plot, synth, probes.

Each `_add_<name>` registers one subcommand for `w2vdist.cli`; the work happens in the modules they call, which
are imported only when the command runs (torch and plotting libraries are slow to import).
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Callable

log = logging.getLogger("w2vdist")

VECTORS_HELP = ("a run directory (its vectors/; queries are then tokenized as its corpus was: 'New York' finds "
                "new_york), or a vector file: word2vec text or binary, GloVe text, Parquet, .npy (format detected "
                "from the file)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _vectors_args(parser: argparse.ArgumentParser) -> None:
    from w2vdist.formats import NONFINITE, READ_FORMATS

    parser.add_argument("vectors", metavar="VECTORS", help=VECTORS_HELP)
    parser.add_argument("--input-format", choices=READ_FORMATS, help="read VECTORS in this format instead of "
                                                                     "detecting it")
    parser.add_argument("--nonfinite", choices=NONFINITE, default="error",
                        help="vectors holding NaN or infinity: error (default) stops, drop leaves them out with a "
                             "warning that counts them")


def _restrict_arg(parser: argparse.ArgumentParser, default: int | None, what: str) -> None:
    parser.add_argument("--restrict-vocab", type=_positive_int, default=default, metavar="N",
                        help=f"{what} only among the N most frequent words (default: {default or 'all'})")


def _load(args: argparse.Namespace):
    from w2vdist.vectors import Vectors

    return Vectors.load(args.vectors, args.input_format, args.nonfinite)


# --- export ----------------------------------------------------------------------------------------------------
def _add_export(sub: argparse._SubParsersAction) -> None:
    from w2vdist.formats import WRITE_FORMATS

    p = sub.add_parser("export", help="write trained vectors as word2vec text/binary, Parquet or NumPy",
                       description="Write the vectors of a run directory (or convert any vector file) to PATH. "
                                   "word2vec and word2vec-binary load with gensim's "
                                   "KeyedVectors.load_word2vec_format (binary=True for the second), their counts "
                                   "go to PATH.vocab, gensim's fvocab; a PATH ending in .gz is gzipped. parquet "
                                   "has columns word, count, vector; npy writes PATH (a .npy matrix) and "
                                   "NAME.vocab.tsv beside it (word<TAB>count). Example: w2vdist export runs/sample "
                                   "--out sample.txt.gz")
    _vectors_args(p)
    p.add_argument("--format", choices=WRITE_FORMATS, help="the output format (default: by PATH's extension: "
                                                           ".txt, .bin, .parquet, .npy; .txt.gz, .bin.gz)")
    p.add_argument("--out", required=True, metavar="PATH", help="the output file")
    p.add_argument("--normalize", action="store_true", help="scale every vector to unit length")
    p.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from w2vdist.errors import writing

    vectors = _load(args)
    with writing(args.out):
        written = vectors.save(args.out, args.format, normalize=args.normalize)
    print(f"wrote {len(vectors):,} vectors of {vectors.dim} dimensions to {', '.join(map(str, written))}")
    return 0


# --- similar ---------------------------------------------------------------------------------------------------
def _add_similar(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("similar", help="nearest neighbours of words by cosine similarity",
                       description="Print the nearest words of each WORD (cosine similarity), all queries in one "
                                   "batch. Example: w2vdist similar runs/wiki france new_york")
    _vectors_args(p)
    p.add_argument("words", nargs="+", metavar="WORD", help="words to look up: new_york, or \"New York\" "
                                                             "for the vectors of a run directory")
    p.add_argument("--topn", type=_positive_int, default=10, help="neighbours per word (default: 10)")
    _restrict_arg(p, None, "search")
    p.set_defaults(handler=_run_similar)


def _run_similar(args: argparse.Namespace) -> int:
    vectors = _load(args)
    for word, neighbours in zip(args.words, vectors.neighbours(args.words, args.topn, args.restrict_vocab)):
        print(_as_looked_up(vectors, word))
        print(_format_ranking(neighbours))
    return 0


def _as_looked_up(vectors, word: str) -> str:
    """The query, and the vocabulary word the run's tokenizer made of it when that is another."""
    found = vectors.index_to_key[vectors.get_index(word)]
    return word if found == word else f"{word} ({found})"


def _format_ranking(ranking: list[tuple[str, float]]) -> str:
    width = max((len(w) for w, _ in ranking), default=0)
    return "\n".join(f"  {w:<{width}}  {s:.4f}" for w, s in ranking)


# --- analogy ---------------------------------------------------------------------------------------------------
def _add_analogy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analogy", help="A is to B as C is to ?",
                       description="Answer the analogy A : B :: C : ? by 3CosAdd (b - a + c) or 3CosMul. "
                                   "Example: w2vdist analogy runs/sample man king woman (man is to king as woman "
                                   "is to queen)")
    _vectors_args(p)
    p.add_argument("a", metavar="A", help="the first word of the known pair (man)")
    p.add_argument("b", metavar="B", help="the second word of the known pair (king)")
    p.add_argument("c", metavar="C", help="the word whose partner is asked for (woman)")
    p.add_argument("--topn", type=_positive_int, default=5, help="answers to print (default: 5)")
    p.add_argument("--method", choices=("add", "mul"), default="add",
                   help="add: 3CosAdd; mul: 3CosMul, Levy & Goldberg 2014 (default: add)")
    _restrict_arg(p, None, "search")
    p.set_defaults(handler=_run_analogy)


def _run_analogy(args: argparse.Namespace) -> int:
    vectors = _load(args)
    answers = vectors.analogy(args.a, args.b, args.c, args.topn, args.method, args.restrict_vocab)
    a, b, c = (_as_looked_up(vectors, word) for word in (args.a, args.b, args.c))
    print(f"{a} is to {b} as {c} is to")
    print(_format_ranking(answers))
    return 0


# --- evaluate --------------------------------------------------------------------------------------------------
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from w2vdist.evaluation import DEFAULT_RESTRICT_VOCAB

    p = sub.add_parser("evaluate", help="Google analogy accuracy and word-pair Spearman correlation",
                       description="Score the vectors on an analogy file (questions-words.txt format) and on "
                                   "word-pair files (word1 word2 score, e.g. WordSim-353), as gensim's "
                                   "evaluate_word_analogies and evaluate_word_pairs do. Prints a table (n/a for a "
                                   "section without a question in the vocabulary, a warning when less than half "
                                   "of a file could be scored) and saves the results as JSON beside the vectors: "
                                   "RUN_DIR/eval/evaluation.json, or VECTORS.eval.json for a file.")
    _vectors_args(p)
    p.add_argument("--analogies", metavar="FILE", help="analogy questions: ': section' lines, then 'a b c d'")
    p.add_argument("--similarity", nargs="+", default=[], metavar="FILE",
                   help="word-pair files: 'word1 word2 score' per line, tab- or space-separated, # comments")
    _restrict_arg(p, DEFAULT_RESTRICT_VOCAB, "answer analogies")
    p.add_argument("--method", choices=("add", "mul"), default="add",
                   help="analogy scoring: add (3CosAdd, as gensim) or mul (3CosMul) (default: add)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object instead of a table")
    p.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from contextlib import nullcontext
    from pathlib import Path

    from w2vdist.errors import UsageError, writing
    from w2vdist.evaluation import coverage_warnings, evaluate, format_table, results_path, save_results
    from w2vdist.rundir import RunDir

    if not args.analogies and not args.similarity:
        raise UsageError("nothing to evaluate: give --analogies FILE and/or --similarity FILE...")
    saved = results_path(args.vectors)
    # Results of a run directory go into it: one run at a time there, as for every command that writes into one.
    in_run_dir = saved.parent.parent == Path(args.vectors)
    with RunDir(args.vectors).locked("evaluate") if in_run_dir else nullcontext():
        vectors = _load(args)
        results = evaluate(vectors, args.analogies, args.similarity, args.restrict_vocab, args.method)
        try:
            with writing(saved):
                save_results(results, saved)
        except OSError as exc:
            raise UsageError(f"cannot save the results to '{saved}': {exc.strerror}") from None
    print(json.dumps(results) if args.json else format_table(results))
    if args.json:  # the table prints them; JSON's reader sees them in the log
        for warning in coverage_warnings(results):
            log.warning("%s", warning)
    log.info("results saved to %s", saved)
    return 0


# --- plot ------------------------------------------------------------------------------------------------------
def _add_plot(sub: argparse._SubParsersAction) -> None:
    from w2vdist.plots import MAX_TSNE_WORDS, METHODS

    p = sub.add_parser("plot", help="PCA or t-SNE pictures of words: a 2-D PNG and a 3-D HTML page",
                       description="Project chosen words (or the most frequent) to 2-D and 3-D and write "
                                   "OUT.png (labelled) and OUT.html (interactive, works offline). Words from each "
                                   "--list file get their own colour. Example: w2vdist plot runs/wiki --list "
                                   "countries.txt --list capitals.txt --method tsne --out geo")
    _vectors_args(p)
    p.add_argument("words", nargs="*", metavar="WORD", help="words to draw")
    p.add_argument("--list", dest="lists", action="append", default=[], metavar="FILE",
                   help="a file of words (white-space separated), drawn in one colour; may be repeated")
    p.add_argument("--top", type=_positive_int, metavar="N", help="also draw the N most frequent words")
    p.add_argument("--method", choices=METHODS, default="pca",
                   help=f"projection (default: pca); tsne takes at most {MAX_TSNE_WORDS} words")
    p.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIX.png and PREFIX.html")
    p.add_argument("--seed", type=int, default=1, help="seed of the projection (default: 1)")
    p.add_argument("--skip-unknown", action="store_true", help="leave out unknown words instead of failing")
    p.set_defaults(handler=_run_plot)


def _run_plot(args: argparse.Namespace) -> int:
    from w2vdist.plots import plot_space, select_words

    vectors = _load(args)
    selection = select_words(vectors, args.words, args.lists, args.top, args.skip_unknown)
    png, html = plot_space(vectors, selection, args.out, args.method, args.seed)
    print(f"drew {len(selection.words)} words: {png} and {html}")
    return 0


# --- synth -----------------------------------------------------------------------------------------------------
def _add_synth(sub: argparse._SubParsersAction) -> None:
    from w2vdist.synth import LANGUAGES

    p = sub.add_parser("synth", help="write a synthetic language (random or proximity) for sanity checks",
                       description="Write sentences of the 26 words aaa..zzz, one per line. random: each sentence "
                                   "is the 26 words in a random order. proximity: 7 words from a random start "
                                   "letter s, the w-th word one of the letters s+w..s+w+2 and never the word "
                                   "before it, so alphabet neighbours share contexts.")
    p.add_argument("language", choices=LANGUAGES)
    p.add_argument("--out", required=True, metavar="PATH", help="the text file to write")
    p.add_argument("--sentences", type=_positive_int, default=10000, help="how many sentences (default: 10000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    p.set_defaults(handler=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from w2vdist.synth import generate, write_sentences

    path = write_sentences(generate(args.language, args.sentences, args.seed), args.out)
    print(f"wrote {args.sentences:,} sentences of the {args.language} language to {path}")
    return 0


# --- probes ----------------------------------------------------------------------------------------------------
def _add_probes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probes", help="show the probe words recorded during training",
                       description="Draw RUN_DIR/probes/probes.png (the loss, the cosine of each probe word~expected "
                                   "pair and the rank of the expected neighbour, over the steps, with the epochs "
                                   "marked) and print the neighbours at the first and last record. Training "
                                   "records probes when the setting probe_words names some.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, or its probes/ folder")
    p.add_argument("--out", metavar="PNG", help="where to draw (default: probes.png beside probes.jsonl)")
    p.set_defaults(handler=_run_probes)


def _run_probes(args: argparse.Namespace) -> int:
    from w2vdist.probes import format_probes, plot_probes, probes_dir, read_probes

    directory = probes_dir(args.run_dir)
    png = plot_probes(directory, args.out)
    print(format_probes(read_probes(directory)))
    print(f"drew {png}")
    return 0


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_export, _add_similar, _add_analogy, _add_evaluate, _add_plot, _add_synth, _add_probes,
]
