"""The preprocess job: corpus -> vocab/, phrases/, corpus/, pairs/ and the manifest record, committed atomically.

Steps, each a DataFrame -> DataFrame function from this package, materialised to Parquet in the stage's staging
folder so each is computed once:
    tokenize  documents -> token chunks                                   (chunks.py)
    count     token counts, and bigram counts for the first phrase pass    (vocab.py, phrases.py)
    phrases   per pass: score bigrams, join the phrases, recount          (phrases.py)
    vocab     min_count, max_vocab_size, ids                               (vocab.py)
    ids       tokens -> vocabulary ids, before subsampling: corpus/        (ids.py)
    pairs     per pair draw K: training's epoch-K subsampling and windows,  (pairs.py, subsample.py)
              shuffled: pairs/draw=K/
"""

from __future__ import annotations

import logging
import math
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from w2vdist.config import Config, phrase_thresholds
from w2vdist.datasets import (CORPUS, PAIRS, PARTS, PHRASES, VOCAB, RunLayout, read_vocabulary, write_phrases,
                              write_vocabulary)
from w2vdist.errors import ConfigError, InputError, UsageError, write_failure
from w2vdist.preprocess import phrases as phrase_steps
from w2vdist.preprocess.chunks import tokenize_documents
from w2vdist.preprocess.inputs import InputFile, discover_inputs, read_documents
from w2vdist.preprocess.ids import to_ids
from w2vdist.preprocess.pairs import expected_pairs, make_pairs
from w2vdist.preprocess.subsample import expected_kept, keep_thresholds
from w2vdist.preprocess.vocab import build_vocab, count_words, merge_vocab
from w2vdist.rundir import RunDir, fingerprint
from w2vdist.spark import SparkProgress, spark_session
from w2vdist.tokenizer import Tokenizer

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

STAGE = "preprocess"
OUTPUTS = [VOCAB.folder, PHRASES.folder, CORPUS.folder, PAIRS.folder]
# The settings that decide what preprocess writes; changing any of them makes a completed run stale.
SETTINGS = ["input_format", "text_column", "lowercase", "token_pattern", "ascii_fold", "numbers", "number_token",
            "max_doc_tokens", "min_count", "max_vocab_size", "phrase_passes", "phrase_threshold", "phrase_scoring",
            "phrase_connector", "sample", "window", "pairs_per_file", "pair_draws", "seed"]
CHUNK_BYTES = 32 << 20


def run_preprocess(config: Config, spark: "SparkSession | None" = None, submitted: bool = False) -> dict[str, Any]:
    """Run the job unless the run directory already holds a complete output for the same inputs and settings."""
    if not config.out:
        raise ConfigError("setting 'out' is required: the run directory (--out RUN_DIR)")
    files = discover_inputs(config.input, config)
    base = base_run_record(config)
    run = RunDir(config.out, create=True)
    with run.locked("preprocess"):
        return _run_locked(run, files, base, config, spark, submitted)


def _run_locked(run: RunDir, files: list[InputFile], base: dict[str, Any] | None, config: Config,
                spark: "SparkSession | None", submitted: bool) -> dict[str, Any]:
    inputs = [f.as_record() for f in files]
    stamp = fingerprint({"settings": config.subset(SETTINGS), "inputs": inputs, "base_run": base})
    done = run.up_to_date(STAGE, stamp, config.force)
    if done is not None:
        log.info("preprocess: %s is complete for these inputs and settings; nothing to do (force=true redoes it)",
                 run.path)
        return done
    staging = run.begin(STAGE)
    try:
        started = time.monotonic()
        if spark is None:
            with spark_session(config, "w2vdist preprocess", submitted) as own:
                stats, seconds = _preprocess(own, files, config, staging)
        else:
            stats, seconds = _preprocess(spark, files, config, staging)
        seconds["total"] = round(time.monotonic() - started, 2)
        record = {"fingerprint": stamp, "config": config.subset(SETTINGS), "inputs": inputs, "base_run": base,
                  "stats": stats, "seconds": seconds}
        record = run.commit(STAGE, staging, OUTPUTS, record)
    except BaseException as exc:
        run.abandon(staging)
        failure = _user_error(exc, run) if isinstance(exc, Exception) else None
        if failure is not None:
            raise failure from None
        raise
    log.info("preprocess: done in %.1f s: %s raw tokens, %s words in the vocabulary, %s pairs in %s draws, "
             "%s files -> %s", seconds["total"], f"{stats['raw_tokens']:,}", f"{stats['vocab_size']:,}",
             f"{stats['pairs']:,}", stats["pair_draws"], stats["pair_files"], run.path)
    return record


_FAILED_READ = re.compile(r"Encountered error while reading file (\S+?)\.?\s")
_CAUSE = re.compile(r"Caused by: ([^\n]+)")


def _user_error(error: Exception, run: RunDir) -> UsageError | None:
    """Spark's and pyarrow's failures that are the input's or the disk's, as one line naming the file: an input
    Spark could not read (a remote one, or one changed since it was checked), or an output that is full or
    read-only."""
    if isinstance(error, UsageError):
        return None
    text = str(error)
    failed_read = _FAILED_READ.search(text)
    if failed_read:
        causes = _CAUSE.findall(text)
        reason = causes[-1].strip() if causes else "unreadable"
        return InputError(f"input file '{failed_read.group(1).removeprefix('file://')}' cannot be read: {reason}")
    return write_failure(error, run.path)


def _no_tokens_reason(config: Config) -> str:
    if config.numbers == "drop":
        return "none matching setting 'token_pattern' is left after setting 'numbers' = drop removed the numbers"
    return "nothing matches setting 'token_pattern'"


def base_run_record(config: Config) -> dict[str, Any] | None:
    """Which trained run a retraining starts from; checked before any work."""
    if not config.base_run:
        return None
    base = RunDir(config.base_run)
    if Path(config.base_run).resolve() == Path(config.out).resolve():
        raise ConfigError("setting 'base_run' must name another run directory than 'out'")
    base.require_complete("preprocess", "retraining (setting 'base_run')")
    trained = base.require_complete("train", "retraining (setting 'base_run')")
    return {"path": str(base.path.resolve()), "train_completed": trained["completed"]}


class _Steps:
    """Times each step, logs its rate and keeps Spark's progress visible while it runs."""

    def __init__(self, spark: "SparkSession"):
        self.spark = spark
        self.seconds: dict[str, float] = {}

    def run(self, name: str, work):
        started = time.monotonic()
        log.info("%s ...", name)
        with SparkProgress(self.spark, name):
            result = work()
        elapsed = time.monotonic() - started
        self.seconds[name] = round(self.seconds.get(name, 0.0) + elapsed, 2)
        return result


def _materialise(frame: "DataFrame", path: Path, **options) -> "DataFrame":
    writer = frame.write.mode("error")
    for key, value in options.items():
        writer = writer.option(key, value)
    writer.parquet(str(path))
    return frame.sparkSession.read.parquet(str(path))


def _merge_base_vocab(spark: "SparkSession", word_counts: "DataFrame", vocab: pa.Table, base_run: str) -> pa.Table:
    from pyspark.sql import functions as F

    base = read_vocabulary(RunDir(base_run).vocab)
    known = spark.createDataFrame(base.select(["word"]).to_pandas())
    counts = word_counts.join(F.broadcast(known), "word").toArrow()
    merged = merge_vocab(base, dict(zip(counts["word"].to_pylist(), counts["count"].to_pylist())), vocab)
    log.info("vocab: %d words from base run %s, %d new", base.num_rows, base_run, merged.num_rows - base.num_rows)
    return merged


def _preprocess(spark: "SparkSession", files: list[InputFile], config: Config, staging: Path):
    from pyspark.sql import functions as F

    steps = _Steps(spark)
    outputs = RunLayout(staging)
    tokenizer = Tokenizer.from_config(config)
    parallelism = spark.sparkContext.defaultParallelism
    input_bytes = sum(f.size or 0 for f in files)
    partitions = max(2 * parallelism, math.ceil(input_bytes / CHUNK_BYTES))

    def tokenize():
        docs, json_observation = read_documents(spark, files, config)
        chunks = tokenize_documents(docs, tokenizer, config.max_doc_tokens, partitions)
        return _materialise(chunks, staging / "tokens"), json_observation

    chunks, json_observation = steps.run("tokenize", tokenize)
    line_stats = chunks.agg(
        F.count_if("first_chunk").alias("documents"), F.count(F.lit(1)).alias("chunks"),
        F.count_if("undecodable").alias("undecodable_lines"),
        F.coalesce(F.sum(F.size("tokens")), F.lit(0)).alias("raw_tokens")).first().asDict()
    line_stats["malformed_json_lines"] = json_observation.get["malformed_json_lines"] if json_observation else 0
    if line_stats["malformed_json_lines"]:
        log.warning("tokenize: %d JSON lines are not JSON objects and were skipped (inputs: %s)",
                    line_stats["malformed_json_lines"], ", ".join(f.path for f in files if f.format == "json"))
    if line_stats["raw_tokens"] == 0:
        raise InputError(f"the input ({', '.join(f.path for f in files[:3])}) holds no tokens: "
                         + _no_tokens_reason(config))

    # Phrase passes are kept as lists of "a b" keys and re-applied to the token chunks inside each Arrow step,
    # which costs less than writing every pass's rewritten corpus.
    passes: list[list[str]] = []
    phrase_tables = []
    for number, threshold in enumerate(phrase_thresholds(config), start=1):
        grams = steps.run("count", lambda: _materialise(
            phrase_steps.count_grams(chunks, passes, config.phrase_connector), staging / f"grams-{number}"))
        train_words = grams.where(~F.col("gram").contains(phrase_steps.KEY_SEPARATOR)).agg(F.sum("count")).first()[0]

        def choose(grams=grams, train_words=train_words, threshold=threshold):
            scored = phrase_steps.score_bigrams(grams, config.min_count, train_words, config.phrase_scoring)
            return scored.where(F.col("score") > threshold).toArrow()

        chosen = steps.run("phrases", choose)
        firsts, lasts = chosen["a"].to_pylist(), chosen["b"].to_pylist()
        passes.append([f"{a}{phrase_steps.KEY_SEPARATOR}{b}" for a, b in zip(firsts, lasts)])
        log.info("phrases: pass %d joins %d word pairs (threshold %s)", number, len(firsts), threshold)
        phrase_tables.append(pa.table({
            "phrase": [f"{a}{config.phrase_connector}{b}" for a, b in zip(firsts, lasts)],
            "count": chosen["count"].cast(pa.int64()), "score": chosen["score"].cast(pa.float64()),
            "pass": pa.array([number] * len(firsts), pa.int32())}, schema=PHRASES.schema))

    word_counts = steps.run("count", lambda: _materialise(count_words(chunks, passes, config.phrase_connector),
                                                          staging / "word-counts"))
    vocab = steps.run("vocab", lambda: build_vocab(word_counts, config.min_count, config.max_vocab_size))
    if config.base_run:
        vocab = _merge_base_vocab(spark, word_counts, vocab, config.base_run)
    write_vocabulary(outputs.vocab, vocab)
    write_phrases(outputs.phrases, pa.concat_tables(phrase_tables) if phrase_tables else PHRASES.schema.empty_table())

    counts = vocab["count"].to_numpy()
    corpus = steps.run("ids", lambda: _materialise(
        to_ids(chunks, vocab, passes, config.phrase_connector), outputs.corpus))
    expected_kept_tokens = expected_kept(counts, config.sample)
    thresholds = keep_thresholds(counts, config.sample)
    num_files = max(1, round(expected_pairs(expected_kept_tokens, config.window) / config.pairs_per_file))
    pairs_per_draw, pair_files = [], 0
    for draw in range(config.pair_draws):
        folder = outputs.pairs_draw(draw)
        steps.run("pairs", lambda: make_pairs(corpus, thresholds, config.window, config.seed, draw, num_files)
                  .write.mode("error").option("maxRecordsPerFile", 2 * config.pairs_per_file).parquet(str(folder)))
        written = sorted(folder.glob(PARTS))
        pairs_per_draw.append(sum(pq.ParquetFile(f).metadata.num_rows for f in written))
        pair_files += len(written)
        log.info("pairs: draw %d: %s pairs in %d files", draw, f"{pairs_per_draw[-1]:,}", len(written))

    stats = {
        "input_files": len(files), "input_bytes": input_bytes, **line_stats,
        "tokens_after_phrases": int(word_counts.agg(F.sum("count")).first()[0]),
        "tokens_after_min_count": int(counts.sum()),
        "expected_tokens_after_subsampling": round(expected_kept_tokens, 1),
        "vocab_size": vocab.num_rows, "phrases_per_pass": [len(keys) for keys in passes],
        "pairs": int(sum(pairs_per_draw)), "pairs_per_draw": pairs_per_draw, "pair_draws": config.pair_draws,
        "pair_files": pair_files,
    }
    return stats, steps.seconds
