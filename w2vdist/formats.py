"""Vector file formats: read and write word2vec text and binary, Parquet and NumPy; read GloVe text.

| format            | layout                                                                          | counts |
| ----------------- | ------------------------------------------------------------------------------- | ------ |
| `word2vec`        | text: a `V D` header line, then `word v1 .. vD` per line                        | no     |
| `word2vec-binary` | a `V D` header line, then per word `word `, D little-endian float32s and `\\n`  | no     |
| `glove`           | text like `word2vec` without the header line (read only)                        | no     |
| `parquet`         | columns `word`, `count`, `vector: list<float32>`; a file or a folder of parts;  | yes    |
|                   | an `id` column, when present (the run directory's `vectors/`), orders the rows  |        |
| `npy`             | `NAME.npy` (V x D float32) and `NAME.vocab.tsv` beside it: `word<TAB>count`     | yes    |

The word2vec formats carry no counts; they are written beside the file as PATH.vocab, one `word count` per line
(the C tool's -save-vocab file, which gensim reads as `fvocab`), and read back from there when it is present.
Text and binary files may be gzip-compressed: read from the first bytes, written when the name ends in .gz. Which
of the three text-like formats a file is, is read from its first bytes. Text is written with 9 significant digits,
which round-trips float32 exactly. Text and binary files are read as a stream, chunk by chunk, so reading needs
little memory beyond the matrix, and `limit` stops after the first words (gensim's `limit`).
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from w2vdist.errors import VectorFileError, shorten

# The formats, in the order help and errors list them, each with the extension it is written with (None: read only).
# The settings (export_formats) and the run directory's export/ take theirs from here.
FORMATS = {"word2vec": ".txt", "word2vec-binary": ".bin", "glove": None, "parquet": ".parquet", "npy": ".npy"}
READ_FORMATS = tuple(FORMATS)
WRITE_FORMATS = tuple(name for name, suffix in FORMATS.items() if suffix)
EXTENSIONS = {suffix: name for name, suffix in FORMATS.items() if suffix}
NONFINITE = ("error", "drop")  # what loading does with vectors holding NaN or infinity

log = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_SNIFF_BYTES = 1 << 16
_WRITE_ROWS = 65536  # rows per text chunk and Parquet row group; keeps list offsets within int32
_READ_ROWS = 8192  # text lines parsed at once: a few MB of text for 100 to 300 dimensions
_READ_BYTES = 1 << 20  # binary bytes read at once


@dataclass
class VectorTable:
    words: list[str]
    matrix: np.ndarray  # (V, D) float32, row i is words[i]
    counts: np.ndarray | None  # int64 per word, None when the format does not carry them


def vocab_path(npy_path: Path) -> Path:
    """The vocabulary file that goes with a `.npy` matrix."""
    return npy_path.with_suffix(".vocab.tsv")


def counts_path(path: Path) -> Path:
    """The counts file that goes with a word2vec text or binary file (gensim's fvocab)."""
    return path.with_name(path.name + ".vocab")


def format_for_path(path: Path) -> str:
    """The write format a file name asks for: .txt, .bin, .parquet or .npy, the first two optionally + .gz."""
    name = path.name.lower().removesuffix(".gz")
    format = EXTENSIONS.get(Path(name).suffix)
    if format is None or (format in ("parquet", "npy") and path.name.lower().endswith(".gz")):
        raise VectorFileError(f"cannot tell the format from the name '{path.name}': name it .txt, .bin, .parquet "
                              f"or .npy (.txt.gz, .bin.gz for gzip), or give the format")
    return format


# --- reading ---------------------------------------------------------------------------------------------------
def detect_format(path: Path) -> str:
    if path.is_dir():
        return "parquet"
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix == ".npy":
        return "npy"
    with _open(path) as f:
        sample = f.read(_SNIFF_BYTES)
    first_line, _, rest = sample.partition(b"\n")
    if not _is_header(first_line):
        return "glove"
    return "word2vec" if _looks_like_text(rest) else "word2vec-binary"


def read_vectors(path: Path, format: str | None = None, nonfinite: str = "error",
                 limit: int | None = None) -> VectorTable:
    """The vectors of `path`, only the first `limit` when given. Rows holding NaN or infinity are refused
    (`nonfinite="error"`), or left out with a warning that counts them (`"drop"`): they would rank first in every
    query, with similarity nan."""
    if not path.exists():
        raise VectorFileError(f"vector file '{path}' does not exist")
    if format is not None and format not in READ_FORMATS:
        raise VectorFileError(f"unknown vector format '{format}': expected one of {', '.join(READ_FORMATS)}")
    if nonfinite not in NONFINITE:
        raise ValueError(f"nonfinite must be one of {', '.join(NONFINITE)}, got {nonfinite!r}")
    if limit is not None and limit < 1:
        raise VectorFileError(f"limit must be at least 1, got {limit}")
    format = format or detect_format(path)
    if format == "parquet":
        table = _read_parquet(path, limit)
    elif format == "npy":
        table = _read_npy(path, limit)
    else:
        if format == "word2vec-binary":
            table = _read_word2vec_binary(path, limit)
        else:
            table = _read_text(path, header=format == "word2vec", limit=limit)
        table.counts = _read_counts(path, table.words)
    return _finite_rows(table, path, nonfinite)


def _finite_rows(table: VectorTable, path: Path, nonfinite: str) -> VectorTable:
    bad = np.flatnonzero(~np.isfinite(table.matrix).all(axis=1))
    if not bad.size:
        return table
    shown = ", ".join(f"'{shorten(table.words[i])}' (row {i + 1})" for i in bad[:5]) + (", ..." if bad.size > 5
                                                                                       else "")
    what = f"{bad.size:,} of the {len(table.words):,} vectors hold NaN or infinite numbers: {shown}"
    if nonfinite == "error" or bad.size == len(table.words):
        hint = "--nonfinite drop leaves them out" if bad.size < len(table.words) else "no vector is usable"
        raise VectorFileError(f"'{path}': {what}; {hint}")
    log.warning("'%s': %s; left out (--nonfinite drop)", path, what)
    keep = np.ones(len(table.words), dtype=bool)
    keep[bad] = False
    return VectorTable([w for w, k in zip(table.words, keep) if k], table.matrix[keep],
                       None if table.counts is None else table.counts[keep])


def _open(path: Path):
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise VectorFileError(f"cannot read vector file '{path}': {exc.strerror}") from None
    if f.read(2) == _GZIP_MAGIC:
        f.close()
        return gzip.open(path, "rb")
    f.seek(0)
    return f


def _is_header(line: bytes | str) -> bool:
    parts = line.split()
    return len(parts) == 2 and all(p.isdigit() for p in parts)


def _looks_like_text(sample: bytes) -> bool:
    try:  # the sample may end inside a multi-byte character, which a non-final decode tolerates
        text = codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return not any(ch < " " and ch not in "\t\n\r" for ch in text)


def _parse_header(path: Path, line: str) -> tuple[int, int]:
    if not _is_header(line):
        shown = line[:80]
        raise VectorFileError(f"'{path}' line 1: expected a header 'VOCAB_SIZE DIMENSIONS', got '{shown}'")
    count, dim = (int(p) for p in line.split())
    if count == 0 or dim == 0:
        raise VectorFileError(f"'{path}' line 1: the header announces {count} words of {dim} dimensions; "
                              f"a vector file needs at least one of each")
    return count, dim


def _text_lines(path: Path, f) -> Iterator[tuple[int, str]]:
    """(line number, line without its end) of a text file read as a stream; blank lines are skipped."""
    try:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise VectorFileError(f"'{path}' line {line_no}: not UTF-8 text (byte {exc.start} of the line); "
                                      f"for a binary word2vec file, give the format word2vec-binary "
                                      f"(--input-format)") from None
            if line.strip():
                yield line_no, line
    except (OSError, EOFError) as exc:
        raise VectorFileError(f"cannot read vector file '{path}': {exc}") from None


def _read_text(path: Path, *, header: bool, limit: int | None) -> VectorTable:
    """Text vectors, parsed chunk by chunk as the lines stream in: with a header, into the matrix it announces."""
    with _open(path) as f:
        lines = _text_lines(path, f)
        count = dim = None
        if header:
            count, dim = _parse_header(path, next(lines, (1, ""))[1])
            if limit is not None:
                count = min(count, limit)
        wanted = count if header else limit
        words: list[str] = []
        blocks: list[np.ndarray] = []  # without a header the size is known only at the end
        matrix = np.empty((count, dim), dtype=np.float32) if header else None
        chunk: list[tuple[int, str]] = []

        def flush() -> None:
            start = len(words)
            rows = _parse_rows(path, chunk, dim, words)
            if matrix is None:
                blocks.append(rows)
            else:
                matrix[start:start + len(rows)] = rows
            chunk.clear()

        for line_no, line in lines:
            if wanted is not None and len(words) + len(chunk) == wanted:
                if header and (limit is None or count < limit):
                    raise VectorFileError(f"'{path}': the header announces {count} words but more lines follow "
                                          f"(line {line_no})")
                break
            if dim is None:
                dim = len(line.split()) - 1
                if dim < 1:
                    raise VectorFileError(f"'{path}' line {line_no}: expected a word and its vector, "
                                          f"got '{line[:80]}'")
            chunk.append((line_no, line))
            if len(chunk) == _READ_ROWS:
                flush()
        if chunk:
            flush()
    if not words:
        raise VectorFileError(f"'{path}' holds no vectors")
    if header and len(words) != count:
        raise VectorFileError(f"'{path}': the header announces {count} words but {len(words)} lines follow")
    return VectorTable(words, matrix if header else np.concatenate(blocks), None)


def _parse_rows(path: Path, chunk: list[tuple[int, str]], dim: int, words: list[str]) -> np.ndarray:
    """The vectors of a chunk of `word v1 .. vD` lines (the words are appended to `words`)."""
    split = [line.partition(" ") for _, line in chunk]
    try:
        values = np.loadtxt([rest for _, _, rest in split], dtype=np.float32, ndmin=2, comments=None)
    except ValueError:
        values = None
    if values is None or values.shape != (len(chunk), dim):
        _raise_bad_line(path, chunk, dim)
    words.extend(word for word, _, _ in split)
    return values


def _raise_bad_line(path: Path, chunk: list[tuple[int, str]], dim: int) -> None:
    """Name the first line of the chunk that is not a word and `dim` numbers."""
    for line_no, line in chunk:
        fields = line.partition(" ")[2].split()
        if len(fields) != dim:
            raise VectorFileError(f"'{path}' line {line_no}: expected a word and {dim} numbers, "
                                  f"got {len(fields)} numbers")
        try:
            np.array(fields, dtype=np.float32)
        except ValueError:
            raise VectorFileError(f"'{path}' line {line_no}: expected {dim} numbers after the word, "
                                  f"got '{' '.join(fields)[:80]}'") from None
    raise VectorFileError(f"'{path}': could not read the vectors")


def _read_word2vec_binary(path: Path, limit: int | None) -> VectorTable:
    with _open(path) as f:
        try:
            count, dim = _parse_header(path, f.readline().decode("utf-8", "replace"))
            if limit is not None:
                count = min(count, limit)
            vector_bytes = 4 * dim
            words: list[str] = []
            matrix = np.empty((count, dim), dtype=np.float32)
            data, pos = b"", 0
            for row in range(count):
                while True:
                    while data[pos:pos + 1] == b"\n":  # the C tool ends each record with a newline; gensim not
                        pos += 1
                    space = data.find(b" ", pos)
                    if space >= 0 and space + 1 + vector_bytes <= len(data):
                        break
                    more = f.read(_READ_BYTES)
                    if not more:
                        raise VectorFileError(f"'{path}': record {row + 1} of the {count} the header announces is "
                                              f"cut short (each is a word, a space and {dim} float32s)")
                    data, pos = data[pos:] + more, 0
                try:
                    words.append(data[pos:space].decode("utf-8"))
                except UnicodeDecodeError:
                    raise VectorFileError(f"'{path}': the word of record {row + 1} is not UTF-8") from None
                matrix[row] = np.frombuffer(data, dtype="<f4", count=dim, offset=space + 1)
                pos = space + 1 + vector_bytes
        except (OSError, EOFError) as exc:
            raise VectorFileError(f"cannot read vector file '{path}': {exc}") from None
    return VectorTable(words, matrix, None)


def _read_counts(path: Path, words: list[str]) -> np.ndarray | None:
    """The counts of `words` from PATH.vocab (`word count` per line), when that file is there."""
    source = counts_path(path)
    if not source.is_file():
        return None
    counts: dict[str, int] = {}
    for line_no, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].isdigit():
            raise VectorFileError(f"'{source}' line {line_no}: expected 'word count', got '{line[:80]}'")
        counts.setdefault(fields[0], int(fields[1]))
    missing = [w for w in words if w not in counts]
    if missing:
        raise VectorFileError(f"'{source}' has no count for {len(missing)} word(s) of '{path}' "
                              f"({', '.join(map(repr, missing[:5]))}): it belongs to other vectors; remove it")
    return np.array([counts[w] for w in words], dtype=np.int64)


def _read_parquet(path: Path, limit: int | None) -> VectorTable:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(path, format="parquet")
        if limit is None:
            table = dataset.to_table()
        elif "id" in dataset.schema.names:  # ids are the order: row groups beyond the limit are never read
            table = dataset.to_table(filter=ds.field("id") < limit)
        else:
            table = dataset.head(limit)
    except (pa.ArrowException, OSError) as exc:
        raise VectorFileError(f"'{path}' is not a readable Parquet file or folder: {exc}") from None
    missing = [name for name in ("word", "vector") if name not in table.column_names]
    if missing:
        raise VectorFileError(f"'{path}' lacks the column(s) {', '.join(missing)}: expected word: string, "
                              f"count: int64 (optional), vector: list<float32>")
    if table.num_rows == 0:
        raise VectorFileError(f"'{path}' holds no vectors")
    if "id" in table.column_names:
        table = table.sort_by("id").slice(0, limit)
    for name in ("word", "vector"):
        if table.column(name).null_count:
            raise VectorFileError(f"'{path}': the column {name} has null values")
    vectors = table.column("vector").combine_chunks()
    if not (pa.types.is_list(vectors.type) or pa.types.is_large_list(vectors.type)
            or pa.types.is_fixed_size_list(vectors.type)):
        raise VectorFileError(f"'{path}': the column vector is {vectors.type}, expected list<float32>")
    lengths = pc.list_value_length(vectors).to_numpy()
    dim = int(lengths[0])
    uneven = np.flatnonzero(lengths != dim)
    if uneven.size or dim == 0:
        row = int(uneven[0]) if uneven.size else 0
        raise VectorFileError(f"'{path}': row {row} has a vector of {lengths[row]} numbers, the first row {dim}; "
                              f"all vectors must have the same non-zero length")
    matrix = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
    counts = None
    if "count" in table.column_names and table.column("count").null_count == 0:
        counts = table.column("count").to_numpy().astype(np.int64, copy=False)
    return VectorTable(table.column("word").to_pylist(), matrix, counts)


def _read_npy(path: Path, limit: int | None) -> VectorTable:
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)  # mapped: only the rows kept are read
    except (OSError, ValueError) as exc:
        raise VectorFileError(f"'{path}' is not a readable .npy file: {exc}") from None
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise VectorFileError(f"'{path}' holds a {matrix.dtype} array of shape {matrix.shape}, "
                              f"expected a 2-D float matrix")
    words_file = vocab_path(path)
    if not words_file.is_file():
        raise VectorFileError(f"'{path}' needs its vocabulary '{words_file}' beside it (word<TAB>count per row)")
    lines = words_file.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != matrix.shape[0]:
        raise VectorFileError(f"'{words_file}' has {len(lines)} lines but '{path}' has {matrix.shape[0]} rows")
    lines = lines[:limit]
    matrix = np.array(matrix[:limit], dtype=np.float32)
    fields = [line.split("\t") for line in lines]
    if all(len(f) == 1 for f in fields):
        return VectorTable(lines, matrix, None)
    bad = next((i for i, f in enumerate(fields) if len(f) != 2 or not f[1].isdigit()), None)
    if bad is not None:
        raise VectorFileError(f"'{words_file}' line {bad + 1}: expected 'word<TAB>count' like the other lines, "
                              f"got '{lines[bad][:80]}'")
    counts = np.array([f[1] for f in fields], dtype=np.int64)
    return VectorTable([f[0] for f in fields], matrix, counts)


# --- writing ---------------------------------------------------------------------------------------------------
def write_vector_file(table: VectorTable, path: Path, format: str) -> list[Path]:
    """Write `table` to `path` in `format`; returns the files written (npy writes two, word2vec formats two when
    there are counts). A name ending in .gz compresses the word2vec formats."""
    if format not in WRITE_FORMATS:
        raise VectorFileError(f"unknown export format '{format}': expected one of {', '.join(WRITE_FORMATS)}")
    if format == "npy" and path.suffix != ".npy":
        raise VectorFileError(f"output '{path}': the npy format needs a path ending in .npy "
                              f"(the vocabulary goes to NAME.vocab.tsv beside it)")
    if format in ("word2vec", "word2vec-binary"):
        _check_words_have_no_space(table.words)
    path.parent.mkdir(parents=True, exist_ok=True)
    if format in ("word2vec", "word2vec-binary"):
        write = _write_word2vec_text if format == "word2vec" else _write_word2vec_binary
        with _replacing(path) as tmp:
            with _open_for_writing(tmp, compress=path.name.lower().endswith(".gz")) as f:
                write(table, f)
        if table.counts is None:
            counts_path(path).unlink(missing_ok=True)  # another export's counts must not pass for these
            return [path]
        with _replacing(counts_path(path)) as tmp:
            tmp.write_text("".join(f"{word} {count}\n" for word, count in zip(table.words, table.counts.tolist())),
                           encoding="utf-8")
        return [path, counts_path(path)]
    if format == "parquet":
        with _replacing(path) as tmp:
            _write_parquet(table, tmp)
        return [path]
    with _replacing(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, table.matrix.astype(np.float32, copy=False))
    with _replacing(vocab_path(path)) as tmp:
        _write_vocab(table, tmp)
    return [path, vocab_path(path)]


def _open_for_writing(path: Path, compress: bool):
    # mtime 0: the same vectors make the same bytes
    return gzip.GzipFile(path, "wb", compresslevel=6, mtime=0) if compress else open(path, "wb")


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Write to a temporary file beside `path`, then rename: a failed export never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_words_have_no_space(words: list[str]) -> None:
    bad = [w for w in words if not w or len(w.split()) != 1 or w.strip() != w]
    if bad:
        shown = ", ".join(repr(w) for w in bad[:5])
        raise VectorFileError(f"{len(bad)} word(s) are empty or contain white space ({shown}); the word2vec "
                              f"formats separate words by spaces: export to parquet or npy instead")


def _write_word2vec_text(table: VectorTable, f) -> None:
    rows, dim = table.matrix.shape
    row_format = " ".join(["%.9g"] * dim)
    f.write(f"{rows} {dim}\n".encode())
    for start in range(0, rows, _WRITE_ROWS):
        chunk = table.matrix[start:start + _WRITE_ROWS].tolist()
        words = table.words[start:start + _WRITE_ROWS]
        f.write("".join(f"{word} {row_format % tuple(row)}\n" for word, row in zip(words, chunk)).encode("utf-8"))


def _write_word2vec_binary(table: VectorTable, f) -> None:
    rows, dim = table.matrix.shape
    vector_bytes = 4 * dim
    f.write(f"{rows} {dim}\n".encode())
    for start in range(0, rows, _WRITE_ROWS):
        data = np.ascontiguousarray(table.matrix[start:start + _WRITE_ROWS], dtype="<f4").tobytes()
        words = table.words[start:start + _WRITE_ROWS]
        f.write(b"".join(word.encode("utf-8") + b" " + data[i * vector_bytes:(i + 1) * vector_bytes] + b"\n"
                         for i, word in enumerate(words)))


def _write_parquet(table: VectorTable, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, dim = table.matrix.shape
    schema = pa.schema([("word", pa.string()), ("count", pa.int64()), ("vector", pa.list_(pa.float32()))])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, _WRITE_ROWS):
            chunk = np.ascontiguousarray(table.matrix[start:start + _WRITE_ROWS], dtype=np.float32)
            offsets = np.arange(0, chunk.size + 1, dim, dtype=np.int32)
            vectors = pa.ListArray.from_arrays(pa.array(offsets), pa.array(chunk.ravel()))
            counts = (pa.array(table.counts[start:start + _WRITE_ROWS], pa.int64()) if table.counts is not None
                      else pa.nulls(len(chunk), pa.int64()))
            writer.write_table(pa.table({"word": table.words[start:start + _WRITE_ROWS], "count": counts,
                                         "vector": vectors}, schema=schema))


def _write_vocab(table: VectorTable, path: Path) -> None:
    if any("\t" in w or "\n" in w for w in table.words):
        raise VectorFileError("a word contains a tab or a newline, which the npy vocabulary file cannot hold")
    if table.counts is None:
        lines = table.words
    else:
        lines = [f"{word}\t{count}" for word, count in zip(table.words, table.counts.tolist())]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
