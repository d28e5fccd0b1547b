"""Spark sessions that w2vdist starts itself, and progress reports for long Spark steps."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Iterator

from w2vdist.config import Config

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@contextlib.contextmanager
def spark_session(config: Config, app_name: str, submitted: bool = False) -> Iterator["SparkSession"]:
    """A session for the job. Under spark-submit (`submitted`) the submitter's master and settings win and the
    session is left running for spark-submit to stop; otherwise w2vdist starts one on `spark_master`, bound to
    127.0.0.1 when it is local, and stops it afterwards."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:  # a notebook's or a test's session: use it, leave it running
        yield active
        return
    builder = SparkSession.builder.appName(app_name)
    if not submitted:
        builder = builder.master(config.spark_master)
        if config.spark_master.startswith("local"):
            # Also keeps Spark from resolving the host name to a LAN address before the conf below applies.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            builder = (builder.config("spark.driver.host", "127.0.0.1")
                       .config("spark.driver.bindAddress", "127.0.0.1"))
        builder = builder.config("spark.ui.showConsoleProgress", "false")
        for key, value in config.spark_conf.items():
            if value != "":  # an unset `${VAR:-}` in a profile leaves the property to Spark
                builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("INFO" if config.log_level == "debug" else "ERROR")
    try:
        yield spark
    finally:
        if not submitted:
            spark.stop()


class SparkProgress:
    """Logs, every `interval` seconds while a step runs, its Spark tasks done, the task rate and an ETA."""

    def __init__(self, spark: "SparkSession", step: str, interval: float = 15.0):
        self.tracker = spark.sparkContext.statusTracker()
        self.step = step
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "SparkProgress":
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            stages = [self.tracker.getStageInfo(i) for i in self.tracker.getActiveStageIds()]
            stages = [s for s in stages if s is not None]
            total = sum(s.numTasks for s in stages)
            done = sum(s.numCompletedTasks for s in stages)
            elapsed = time.monotonic() - self.started
            if not total:
                continue
            rate = done / elapsed if elapsed else 0.0
            eta = f"{(total - done) / rate:.0f} s" if rate else "unknown"
            log.info("%s: %d/%d Spark tasks in the running stages, %.1f tasks/s, elapsed %.0f s, stage ETA %s",
                     self.step, done, total, rate, elapsed, eta)
