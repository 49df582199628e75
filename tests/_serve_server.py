"""A real `edgeclf serve` subprocess on free 127.0.0.1 ports, for the serve/remote tests.

``start_server(artifact, *flags)`` starts ``python -m edgeclf serve`` and waits (bounded) for
``/v2/health/ready``; ``stop()`` sends SIGTERM and waits, killing it if it does not stop. The
``tiny_server`` fixture serves the tiny test artifact once per session.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from conftest import REPO_ROOT, cli_env

if importlib.util.find_spec("kserve") is None:  # not imported here: its protos clash with tritonclient.grpc's
    pytest.skip("needs the serve extra (pip install 'edgeclf[serve]')", allow_module_level=True)
pytest.importorskip("tritonclient.http", reason="needs the client extra (pip install 'edgeclf[client]')")

READY_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    http_port: int
    grpc_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def http_address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def start_server(artifact, *flags, log_dir: Path) -> Server:
    http_port, grpc_port = free_port(), free_port()
    log = Path(log_dir) / f"serve-{http_port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgeclf", "serve", str(artifact), "--host", "127.0.0.1",
             "--http-port", str(http_port), "--grpc-port", str(grpc_port), *map(str, flags)],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=cli_env(OMP_NUM_THREADS="1"),
            start_new_session=True)
    server = Server(proc, http_port, grpc_port, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"edgeclf serve exited with {proc.returncode}:\n{server.output()[-3000:]}")
        try:
            if requests.get(f"{server.url}/v2/health/ready", timeout=2).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"edgeclf serve not ready after {READY_TIMEOUT_S} s:\n{server.output()[-3000:]}")


@pytest.fixture(scope="session")
def tiny_server(tiny_artifact, tmp_path_factory):
    """`edgeclf serve` of the tiny artifact, 1 MiB body limit, batching up to 8 images / 20 ms."""
    server = start_server(tiny_artifact.dir, "--device", "cpu", "--threads", "1", "--max-body-mib", "1",
                          "--max-batch-size", "8", "--batch-timeout-ms", "20",
                          log_dir=tmp_path_factory.mktemp("serve"))
    yield server
    server.stop()
