"""Logging set-up shared by the command line, the driver without Ray and the Ray workers."""

from __future__ import annotations

import logging

OVERRIDES_HELP = "settings as key=value (see conf/default.yaml), applied after --config files"


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("py4j", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
