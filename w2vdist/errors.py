"""Errors a user can act on.

Anything raised as a `UsageError` is printed by the CLI as one readable message and exits non-zero, without a
stack trace: it names the file, field or setting at fault and what was expected.
"""


from pathlib import Path


class UsageError(Exception):
    """Bad input, bad settings or a run directory in the wrong state: the user's to fix, not a bug."""

    exit_code = 2


class ConfigError(UsageError):
    """A setting in a YAML file or a `key=value` override is unknown, of the wrong type or out of range."""


class InputError(UsageError):
    """A corpus file or folder is missing, empty, binary or unreadable."""


class RunDirError(UsageError):
    """A run directory is missing a stage's output, holds an incomplete one, or is not a directory."""


class VectorFileError(UsageError):
    """A vector file is missing, of an unknown format, or malformed (the message gives the line or record)."""


class UnknownWordsError(UsageError):
    """Query words that are not in the vectors' vocabulary; the message lists every one of them."""

    def __init__(self, words: list[str], where: str, hints: dict[str, str] | None = None):
        self.words = list(words)
        hints = hints or {}
        listed = ", ".join(f"'{w}'" + (f" (did you mean '{hints[w]}'?)" if w in hints else "") for w in self.words)
        noun = "word" if len(self.words) == 1 else "words"
        super().__init__(f"unknown {noun} {listed}: not in the vocabulary of {where}")


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
