"""Errors a user can act on.

Anything raised as a `UsageError` is printed by the CLI as one readable message and exits non-zero, without a
stack trace: it names the file, field or setting at fault and what was expected.
"""


import contextlib
import errno
from pathlib import Path
from typing import Iterator


class UsageError(Exception):
    """Bad input, bad settings or a run directory in the wrong state: the user's to fix, not a bug."""

    exit_code = 2


class ConfigError(UsageError):
    """A setting in a YAML file or a `key=value` override is unknown, of the wrong type or out of range."""


class InputError(UsageError):
    """A corpus file or folder is missing, empty, binary or unreadable."""


class RunDirError(UsageError):
    """A run directory is missing a stage's output, holds an incomplete one, or is not a directory."""


class CheckpointError(RunDirError):
    """A checkpoint folder is incomplete or damaged (its tables do not match the checksum in its state)."""


class RunDirBusy(RunDirError):
    """Another live w2vdist process holds the run directory's lock."""


class OutputError(UsageError):
    """An output path cannot be written: read-only, not permitted, or the disk is full (then exit code 1: the
    settings were fine, the run failed)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class VectorFileError(UsageError):
    """A vector file is missing, of an unknown format, or malformed (the message gives the line or record)."""


class UnknownWordsError(UsageError, KeyError):
    """Query words that are not in the vectors' vocabulary; the message lists every one of them. A KeyError too, as
    gensim raises for an unknown key."""

    def __init__(self, words: list[str], where: str, hints: dict[str, str] | None = None):
        self.words = list(words)
        hints = hints or {}
        listed = ", ".join(f"'{w}'" + (f" (did you mean '{hints[w]}'?)" if w in hints else "") for w in self.words)
        noun = "word" if len(self.words) == 1 else "words"
        super().__init__(f"unknown {noun} {listed}: not in the vocabulary of {where}")

    def __str__(self) -> str:  # KeyError's own would quote the message
        return str(self.args[0])


class EvaluationDataError(UsageError):
    """An analogy or word-pair file is missing or has a line in the wrong format."""


class TrainingDiverged(UsageError):
    """The loss stopped being finite: the settings make SGD overshoot."""

    @classmethod
    def in_epoch(cls, epoch: int, alpha: float) -> "TrainingDiverged":
        return cls(f"training diverged in epoch {epoch}: the loss is not finite. Lower setting 'alpha' "
                   f"(now {alpha})")


def read_text_file(path, what: str, error: type[UsageError] = UsageError) -> str:
    """The UTF-8 text of a user-named file; a missing or unreadable one raises `error` naming it as `what`."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what} '{path}': {exc}") from None


# What a failed write means, by errno; Java and pyarrow report the same conditions only in their message text.
_WRITE_FAILURES = {
    errno.ENOSPC: ("No space left on device", "no space left on the device"),
    errno.EDQUOT: ("Disk quota exceeded", "the disk quota is exceeded"),
    errno.EROFS: ("Read-only file system", "the file system is read-only"),
    errno.EACCES: ("Permission denied", "permission denied"),
    errno.EPERM: ("Operation not permitted", "operation not permitted"),
}
_FULL = (errno.ENOSPC, errno.EDQUOT)


def write_failure(error: BaseException, path) -> OutputError | None:
    """The one-line error for a write to `path` (or below it) that failed because the disk is full, read-only or
    not ours; None when `error` is something else. Disk full exits 1 (the run failed), the others 2 (choose
    another output)."""
    code = getattr(error, "errno", None)
    if code not in _WRITE_FAILURES:
        text = str(error)
        code = next((c for c, (words, _) in _WRITE_FAILURES.items() if words in text), None)
        if code is None:
            return None
    where = getattr(error, "filename", None) or path
    reason = _WRITE_FAILURES[code][1]
    hint = "free some space and run it again" if code in _FULL else "choose another output path"
    return OutputError(f"cannot write '{where}': {reason}; {hint}", exit_code=1 if code in _FULL else 2)


@contextlib.contextmanager
def writing(path) -> Iterator[None]:
    """Turn a full, read-only or forbidden output below `path` into a one-line `OutputError` naming it."""
    try:
        yield
    except UsageError:
        raise
    except Exception as exc:
        failure = write_failure(exc, path)
        if failure is None:
            raise
        raise failure from None


ONE_LINE_CHARS = 400


def one_line(error: BaseException) -> str:
    """An unexpected error in one line, for summaries: its type and the first line of its message that says
    something (a Spark error starts with the Java call that failed, then the Java exception)."""
    lines = [line.strip().removeprefix(": ").strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line and not line.startswith(("An error occurred while calling", "at "))]
    text = next((line for line in lines if "Exception" in line or "Error" in line), lines[0] if lines else "")
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= ONE_LINE_CHARS else text[:ONE_LINE_CHARS - 3] + "..."


def shorten(text: str, limit: int = 40) -> str:
    """A word or value quoted in a message: long ones (a 1 MiB "word" of an unsplit corpus) cut, with their size."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
