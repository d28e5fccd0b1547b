import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def spark_test_conf() -> dict:
    """Small, quiet local Spark for tests: loopback only, no UI, few shuffle partitions."""
    return {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g",
            "spark.default.parallelism": "2"}


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (SparkSession.builder.master("local[2]").appName("w2vdist-tests")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.ui.showConsoleProgress", "false"))
    for key, value in spark_test_conf().items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the shared test data is missing: expected {SHARED_DATA} beside the checkout")
    return SHARED_DATA


class ListenerWatch:
    """The TCP sockets that a process and its descendants listen on, sampled every 0.2 s from a thread until
    stopped: (address, port, process name, pid)."""

    def __init__(self, pid: int):
        import threading

        self.pid = pid
        self.seen: set[tuple[str, int, str, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self._stop.wait(0.2):
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for process in processes:
                try:
                    name = process.name()
                    for conn in process.net_connections("tcp"):
                        if conn.status == psutil.CONN_LISTEN:
                            self.seen.add((conn.laddr.ip, conn.laddr.port, name, process.pid))
                except psutil.Error:
                    continue

    def stop(self) -> set[tuple[str, int, str, int]]:
        self._stop.set()
        self._thread.join()
        return self.seen


def is_loopback(address: str) -> bool:
    """127.0.0.0/8 or ::1, also as an IPv4-mapped IPv6 address (::ffff:127.0.0.1)."""
    import ipaddress

    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
