"""Settings: one flat, typed record for every stage, loaded from YAML and `key=value` overrides.

The defaults live here; `conf/default.yaml` (inside the package: `w2vdist/conf/`, so an installed wheel has the
profiles too) spells every one of them out with its documentation (a test keeps the two equal). Loading validates
everything at once and reports each bad key with what is allowed, so a job never starts with a setting it cannot
use.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex
import yaml

from w2vdist.errors import ConfigError
from w2vdist.formats import WRITE_FORMATS

PACKAGE_DIR = Path(__file__).resolve().parent
PROFILES_DIR = PACKAGE_DIR / "conf"
DEFAULT_CONFIG_PATH = PROFILES_DIR / "default.yaml"
SAMPLE_PROFILE = PROFILES_DIR / "local.yaml"
# `${W2VDIST_SAMPLE}` in a settings file: the bundled sample language's folder, wherever the package is installed.
SAMPLE_VARIABLE = "W2VDIST_SAMPLE"
SAMPLE_DIR = PACKAGE_DIR / "data" / "sample"

LOG_LEVELS = ("debug", "info", "warning", "error")
PROBE_SEPARATOR = "~"  # probe_words: `king~queen` watches king and how near queen comes
DEFAULT_TOKEN_PATTERN = r"[\p{L}\p{M}\p{N}]+(?:['’][\p{L}\p{M}\p{N}]+)*"


def _setting(default: Any, doc: str, *, min: float | None = None, max: float | None = None,
             choices: tuple | None = None, min_exclusive: bool = False, words: tuple[str, ...] = ()) -> Any:
    """`words`: the strings a number setting also takes (`auto`)."""
    meta = {"doc": doc, "min": min, "max": max, "choices": choices, "min_exclusive": min_exclusive,
            "words": words}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Config:
    # --- input -------------------------------------------------------------------------------------------------
    input: list[str] = _setting([], "Corpus files or folders (plain text, .gz, .bz2, Parquet, JSON lines).")
    out: str | None = _setting(None, "The run directory every stage reads from and writes to.")
    input_format: str = _setting("auto", "How to read `input`: by file extension, or forced.",
                                 choices=("auto", "text", "parquet", "json"))
    text_column: str = _setting("text", "The column holding the text in Parquet or JSON input.")
    # --- tokenizer ---------------------------------------------------------------------------------------------
    lowercase: bool = _setting(True, "Lower-case the text before matching tokens.")
    token_pattern: str = _setting(DEFAULT_TOKEN_PATTERN,
                                  "Regular expression one token matches (Java and Python `regex` syntax).")
    ascii_fold: bool = _setting(False, "Fold accented letters to ASCII (NFKD, then drop non-ASCII): café -> cafe.")
    numbers: str = _setting("keep", "Tokens made only of digits: keep them, replace them by `number_token`, or drop.",
                            choices=("keep", "replace", "drop"))
    number_token: str = _setting("<num>", "What numbers become when `numbers` is `replace`.")
    max_doc_tokens: int = _setting(10000, "Documents are cut into chunks of at most this many tokens; "
                                          "no window crosses a chunk.", min=1)
    # --- vocabulary --------------------------------------------------------------------------------------------
    min_count: int = _setting(5, "Words (and phrases) seen fewer times are dropped.", min=1)
    max_vocab_size: int | None = _setting(None, "Keep at most this many most frequent words; null keeps all.",
                                          min=1)
    # --- phrases -----------------------------------------------------------------------------------------------
    phrase_passes: int = _setting(2, "word2phrase passes; each can join the phrases of the last (0 turns it off).",
                                  min=0, max=10)
    phrase_threshold: float | list[float] = _setting(
        100.0, "A bigram becomes a phrase when its score is above this; one number, or one per pass.")
    phrase_scoring: str = _setting("word2phrase", "word2phrase: (count(ab) - min_count) / (count(a) count(b)) "
                                                  "* train_words; npmi: normalised PMI in [-1, 1].",
                                   choices=("word2phrase", "npmi"))
    phrase_connector: str = _setting("_", "Joins the words of a phrase: new_york.")
    # --- subsampling and pairs -------------------------------------------------------------------------------
    sample: float = _setting(1e-3, "Subsampling of frequent words (word2vec's -sample); 0 keeps every word.", min=0)
    window: int = _setting(5, "Largest context distance; each center draws its window uniformly from 1..window.",
                           min=1)
    pairs_per_file: int = _setting(4_000_000, "About how many (center, context) pairs one pairs/ file holds.",
                                   min=1000)
    pair_draws: int = _setting(1, "Independent draws of subsampling and windows written to pairs/ (pairs/draw=K/); "
                                  "training with pair_source=pairs uses draw epoch mod pair_draws.", min=1)
    seed: int = _setting(1, "Seeds subsampling, windows, shuffling, initialisation and negative sampling.", min=0)
    base_run: str | None = _setting(None, "Retrain from a previous run directory: its words keep their ids and "
                                          "trained vectors, new words are added after them and start fresh.")
    # --- Spark -------------------------------------------------------------------------------------------------
    spark_master: str = _setting("local[*]", "Spark master URL when w2vdist starts Spark itself "
                                             "(spark-submit's --master wins).")
    spark_conf: dict[str, str] = _setting({"spark.driver.memory": "6g"},
                                          "Extra Spark properties for sessions w2vdist starts.")
    force: bool = _setting(False, "Redo a stage even when its output is complete for the same inputs and settings.")
    # --- training ----------------------------------------------------------------------------------------------
    dim: int = _setting(100, "Vector size.", min=1)
    negative: int = _setting(5, "Noise words per positive pair, drawn from count^0.75.", min=1)
    epochs: int = _setting(5, "Passes over the corpus.", min=1)
    alpha: float = _setting(0.025, "Learning rate at the start; decays linearly to min_alpha.", min=0,
                            min_exclusive=True)
    min_alpha: float = _setting(0.0001, "Learning rate at the end of the last epoch.", min=0)
    shared_negatives: bool = _setting(False, "Draw one set of noise words per window, shared by all its contexts "
                                             "(pWord2Vec), instead of one set per context (word2vec.c).")
    kernel: str = _setting("auto", "The training kernel: numba (CPUs), triton (CUDA GPUs), torch (the reference, "
                                   "slow), or auto.", choices=("auto", "numba", "triton", "torch"))
    num_workers: int = _setting(1, "Ray Train workers: data-parallel replicas times column_shards.", min=1)
    column_shards: int | str = _setting(1, "Workers that share one replica's tables, each holding a slice of their "
                                           "columns (for tables larger than one device); auto: the fewest whose "
                                           "slices fit half of a device's memory.", min=1, words=("auto",))
    sync_every: int = _setting(1_000_000, "Corpus words, over all workers, between two syncs of the workers' "
                                          "tables.", min=1000)
    sync_rule: str = _setting("stretched", "How workers sync their tables: stretched (each update reaches as far as "
                                           "one copy per replica taken one after the other would, and the sync "
                                           "averages the tables), agreement (per row, the sum of the workers' "
                                           "changes since the last sync, divided by how much they agree), changes "
                                           "(the last sync's tables plus every worker's change since) or average "
                                           "(the mean of the tables).",
                              choices=("stretched", "agreement", "changes", "average"))
    use_gpu: bool | str = _setting("auto", "Train on GPUs (NCCL) or CPUs (gloo); auto uses GPUs when Ray sees them.",
                                   choices=(True, False, "auto"))
    ray_address: str | None = _setting(None, "Ray cluster to join; null starts a local Ray on 127.0.0.1.")
    checkpoint_interval_s: float = _setting(600.0, "Seconds between checkpoints inside an epoch "
                                                   "(one is always taken at each epoch end).", min=1)
    resume: bool = _setting(False, "Continue the run directory's training from its last checkpoint.")
    pair_source: str = _setting("corpus", "Where training takes its pairs: pairs/ as preprocess shuffled them, or "
                                         "corpus: generated each epoch from corpus/ on the training device, with "
                                         "fresh windows.", choices=("pairs", "corpus"))
    max_failures: int = _setting(3, "Worker failures Ray Train recovers from, restarting from the last checkpoint.",
                                 min=0)
    max_words: int | None = _setting(None, "Stop after about this many corpus words in all, with a checkpoint (for "
                                           "trial runs; resume=true goes on); null trains every epoch.", min=1)
    probe_words: list[str] = _setting([], "Words whose nearest neighbours are recorded during training "
                                          "(RUN_DIR/probes/probes.jsonl); `word~expected` also records the "
                                          "similarity of the pair and the rank of expected among word's "
                                          "neighbours.")
    probe_every: int = _setting(1_000_000, "Corpus words between two probe records.", min=1)

    # --- pipeline: export and evaluation -------------------------------------------------------------------------
    export_formats: list[str] = _setting(["word2vec-binary"], "Formats `w2vdist pipeline` exports into RUN_DIR/export/ "
                                                             "(word2vec, word2vec-binary, parquet, npy).")
    eval_analogies: str | None = _setting(None, "An analogy file (questions-words.txt format) the pipeline scores.")
    eval_similarity: list[str] = _setting([], "Word-pair similarity files (word1 word2 score) the pipeline scores.")
    plot_lists: list[str | list[str]] = _setting(
        [], "Word-list files `w2vdist pipeline` draws into RUN_DIR/plots/: one picture (NAME.png and .html) per item, "
            "a file or a list of files drawn together, one colour per file; two lists of the same length are pairs "
            "(countries and their capitals), joined by lines.")
    plot_top: int | None = _setting(None, "`w2vdist pipeline` also draws the N most frequent words.", min=1)
    plot_method: str = _setting("pca", "The projection of the pipeline's word picture.", choices=("pca", "tsne"))

    # --- experiment tracking (optional extra: pip install "w2vdist[mlflow]") --------------------------------------
    tracking: bool = _setting(False, "Log the pipeline's settings, metrics and artifacts to MLflow.")
    tracking_uri: str | None = _setting(None, "MLflow tracking URI; null: a local file store in RUN_DIR/mlruns.")
    experiment_name: str = _setting("w2vdist", "The MLflow experiment runs are logged under.")

    # --- logging ---------------------------------------------------------------------------------------------
    log_level: str = _setting("info", "What w2vdist logs to stderr; debug also shows Ray's and Spark's own logs.",
                              choices=LOG_LEVELS)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def subset(self, names: typing.Iterable[str]) -> dict[str, Any]:
        return {name: getattr(self, name) for name in names}


SETTINGS = {f.name: f for f in dataclasses.fields(Config)}
_HINTS = typing.get_type_hints(Config)


def describe(name: str) -> str:
    """What a setting accepts, in words: used in error messages."""
    f = SETTINGS[name]
    meta = f.metadata
    if meta["choices"]:
        return "one of " + ", ".join(_yaml_scalar(c) for c in meta["choices"])
    words = _type_words(int if meta["words"] else _HINTS[name])
    bounds = []
    if meta["min"] is not None:
        bounds.append(("> " if meta["min_exclusive"] else ">= ") + _yaml_scalar(meta["min"]))
    if meta["max"] is not None:
        bounds.append("<= " + _yaml_scalar(meta["max"]))
    described = words + (" " + " and ".join(bounds) if bounds else "")
    return " or ".join([described, *meta["words"]])


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _type_words(hint: Any, plural: bool = False) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_words(a, plural) for a in args)
    if origin is list:
        return ("lists" if plural else "a list") + f" of {_type_words(args[0], plural=True)}"
    if origin is dict:
        return "mappings of names to values" if plural else "a mapping of names to values"
    words = {int: ("an integer", "integers"), float: ("a finite number", "finite numbers"),
             bool: ("true or false", "booleans"), str: ("a string", "strings")}[hint]
    return words[plural]


def _coerce(value: Any, hint: Any) -> Any:
    """Return `value` as the type `hint` names, or raise ValueError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except ValueError:
                continue
        raise ValueError
    if origin is list:
        if isinstance(value, str):  # `input=a.txt,b.txt` from the command line
            value = [part for part in value.split(",") if part]
        if not isinstance(value, (list, tuple)):
            raise ValueError
        return [_coerce(v, args[0]) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError
        return {str(k): str(v) for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        number = float(value)  # PyYAML reads `1e-3` (no dot) as a string
        if not math.isfinite(number):  # nan passes every range check and inf none that matter
            raise ValueError
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError
    raise TypeError(f"unsupported setting type {hint!r}")


def _check_range(name: str, value: Any) -> bool:
    meta = SETTINGS[name].metadata
    if meta["choices"] is not None:
        return any(value == c and type(value) is type(c) for c in meta["choices"])
    if isinstance(value, str) and meta["words"]:
        return value in meta["words"]
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if meta["min"] is not None and (v < meta["min"] or (meta["min_exclusive"] and v == meta["min"])):
            return False
        if meta["max"] is not None and v > meta["max"]:
            return False
    return True


def _unknown_key_message(key: str, where: str) -> str:
    close = difflib.get_close_matches(key, SETTINGS, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else f" See {DEFAULT_CONFIG_PATH} for every setting."
    return f"{where}: unknown setting '{key}'.{hint}"


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` as typed on the command line; the value is read as YAML (`[a, b]`, `null`, `true`, `1.5`)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override '{text}': expected key=value, for example min_count=10")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any, key: str, path: Path) -> Any:
    """`${NAME}` or `${NAME:-default}` in a file's string values come from the environment (cluster profiles)."""
    if isinstance(value, list):
        return [_expand_env(v, key, path) for v in value]
    if isinstance(value, dict):
        return {k: _expand_env(v, key, path) for k, v in value.items()}
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if name == SAMPLE_VARIABLE:
            return str(SAMPLE_DIR)
        if default is not None:
            return default
        raise ConfigError(f"config file '{path}': setting '{key}' needs the environment variable {name}, "
                          f"which is not set")

    expanded = _ENV_REFERENCE.sub(substitute, value)
    if _ENV_REFERENCE.fullmatch(value):  # a whole-value reference is typed like any YAML value: 4, true, null
        return yaml.safe_load(expanded) if expanded.strip() else None
    return expanded


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must be a mapping of setting: value, got {type(data).__name__}")
    return {str(key): _expand_env(value, str(key), path) for key, value in data.items()}


def load_config(paths: typing.Sequence[str | Path] = (), overrides: typing.Sequence[str] = (),
                values: dict[str, Any] | None = None) -> Config:
    """Defaults, then each YAML file in order, then `values` (from CLI flags), then `key=value` overrides."""
    raw: dict[str, tuple[Any, str]] = {}
    for path in paths:
        for key, value in _read_yaml(Path(path)).items():
            raw[str(key)] = (value, f"config file '{path}'")
    for key, value in (values or {}).items():
        raw[key] = (value, "command line")
    for text in overrides:
        key, value = parse_override(text)
        raw[key] = (value, f"override '{text}'")
    return build_config(raw)


def build_config(raw: dict[str, tuple[Any, str]]) -> Config:
    problems = []
    typed: dict[str, Any] = {}
    for key, (value, where) in raw.items():
        if key not in SETTINGS:
            problems.append(_unknown_key_message(key, where))
            continue
        try:
            coerced = _coerce(value, _HINTS[key])
        except ValueError:
            problems.append(f"{where}: setting '{key}' must be {describe(key)}, got {value!r}")
            continue
        if not _check_range(key, coerced):
            problems.append(f"{where}: setting '{key}' must be {describe(key)}, got {value!r}")
            continue
        typed[key] = coerced
    config = Config(**typed)
    problems.extend(_cross_checks(config))
    if problems:
        raise ConfigError("invalid settings: " + "; ".join(problems))
    return config


def _cross_checks(config: Config) -> list[str]:
    problems = []
    thresholds = config.phrase_threshold if isinstance(config.phrase_threshold, list) else [config.phrase_threshold]
    if isinstance(config.phrase_threshold, list) and len(thresholds) != config.phrase_passes:
        problems.append(f"setting 'phrase_threshold' lists {len(thresholds)} thresholds but 'phrase_passes' is "
                        f"{config.phrase_passes}: give one per pass, or a single number")
    if config.phrase_scoring == "npmi" and any(not -1 <= t < 1 for t in thresholds):
        problems.append(f"setting 'phrase_threshold' must lie in [-1, 1) with phrase_scoring npmi, "
                        f"got {config.phrase_threshold!r}")
    if isinstance(config.column_shards, int) and config.num_workers % config.column_shards:
        problems.append(f"setting 'num_workers' ({config.num_workers}) must be a multiple of 'column_shards' "
                        f"({config.column_shards}): every replica has column_shards workers")
    if isinstance(config.column_shards, int) and config.column_shards > config.dim:
        problems.append(f"setting 'column_shards' ({config.column_shards}) must not exceed 'dim' ({config.dim}): "
                        f"every shard holds at least one column")
    if config.min_alpha > config.alpha:
        problems.append(f"setting 'min_alpha' ({config.min_alpha}) must not exceed 'alpha' ({config.alpha})")
    unknown_formats = [f for f in config.export_formats if f not in WRITE_FORMATS]
    if unknown_formats:
        problems.append(f"setting 'export_formats' has {', '.join(unknown_formats)}: expected some of "
                        f"{', '.join(WRITE_FORMATS)}")
    if not config.phrase_connector or any(c.isspace() for c in config.phrase_connector):
        problems.append("setting 'phrase_connector' must be a non-empty string without white space")
    problems.extend(_pattern_problems(config.token_pattern))
    bad_probes = [p for p in config.probe_words if not all(probe_parts(p))]
    if bad_probes:
        problems.append(f"setting 'probe_words' has {', '.join(map(repr, bad_probes))}: expected a word, or "
                        f"word{PROBE_SEPARATOR}expected (a word and the neighbour it should come near)")
    return problems


def _pattern_problems(pattern: str) -> list[str]:
    """The tokenizer's pattern, compiled now rather than failing inside Spark (Python's `regex` reads the same
    syntax as Java's for what a token pattern needs)."""
    try:
        compiled = regex.compile(pattern)
    except regex.error as exc:
        return [f"setting 'token_pattern' is not a valid regular expression ({exc}): got {pattern!r}"]
    if compiled.fullmatch(""):
        return [f"setting 'token_pattern' matches the empty string, so every position would be a token: "
                f"got {pattern!r}"]
    return []


def probe_parts(probe: str) -> tuple[str, ...]:
    """`king` -> ("king",); `king~queen` -> ("king", "queen")."""
    return tuple(probe.split(PROBE_SEPARATOR, 1)) if PROBE_SEPARATOR in probe else (probe,)


def phrase_thresholds(config: Config) -> list[float]:
    """The threshold each phrase pass uses."""
    if isinstance(config.phrase_threshold, list):
        return list(config.phrase_threshold)
    return [float(config.phrase_threshold)] * config.phrase_passes
