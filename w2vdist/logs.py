"""Logging set-up shared by the command line, the driver without Ray and the Ray workers."""

from __future__ import annotations

import logging

from w2vdist.config import DEFAULT_CONFIG_PATH

OVERRIDES_HELP = f"settings as key=value (every one is in {DEFAULT_CONFIG_PATH}), applied after --config files"


def configure_logging(level: str = "info") -> None:
    """w2vdist's log lines on stderr at `level` (the log_level setting); other libraries' only from warnings up,
    unless `level` is debug. In a Ray worker, whose logging Ray has set up already, this keeps Ray's own INFO lines
    (a "Reporting training result" per checkpoint) out of the driver's terminal."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger().setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    logging.getLogger("w2vdist").setLevel(level.upper())
    for noisy in ("py4j", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
