"""Fork safety of the Predictor, `edgeclf serve --workers 2`, and graceful shutdown on SIGTERM."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import requests

from _serve_server import start_server
from _tiny_artifact import tiny_artifact  # noqa: F401
from conftest import REPO_ROOT, SAMPLE_DATA, cli_env

IMAGE = SAMPLE_DATA / "camera" / "image_0001.jpg"


@pytest.mark.parametrize("threads", [None, 4])
def test_predictor_created_before_fork_works_in_the_child_which_exits_cleanly(tiny_artifact, threads):  # noqa: F811
    # Without the fix: the child hangs at exit (default threads) or dies of SIGSEGV (4 threads).
    code = textwrap.dedent(f"""
        import os, sys
        from edgeclf.runtime import Predictor
        p = Predictor(r"{tiny_artifact.dir}", device="cpu", intra_op_threads={threads})
        parent = p.predict(r"{IMAGE}")
        pid = os.fork()
        if pid == 0:
            child = p.predict(r"{IMAGE}")
            print("child", child[0].label, child == parent, flush=True)
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status))
        print("parent again", p.predict(r"{IMAGE}") == parent)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                       env=cli_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("child ") and lines[0].endswith(" True"), r.stdout
    assert lines[1:] == ["child exit 0", "parent again True"], r.stdout


def test_forked_child_keeps_its_exit_code(tiny_artifact):  # noqa: F811
    code = textwrap.dedent(f"""
        import os, sys
        from edgeclf.runtime import Predictor
        p = Predictor(r"{tiny_artifact.dir}", device="cpu")
        pid = os.fork()
        if pid == 0:
            sys.exit(3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                       env=cli_env(), timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "3", (r.stdout, r.stderr)


@pytest.mark.slow
def test_two_workers_answer_and_sigterm_lets_requests_finish(tiny_artifact, tmp_path):  # noqa: F811
    server = start_server(tiny_artifact.dir, "--workers", "2", "--device", "cpu", "--threads", "1", log_dir=tmp_path)
    try:
        body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                            "data": [base64.b64encode(IMAGE.read_bytes()).decode()]}]}
        answers = [requests.post(f"{server.url}/v2/models/edgeclf/infer", json=body, timeout=60) for _ in range(8)]
        assert [a.status_code for a in answers] == [200] * 8
        assert len({a.text.split('"outputs"')[1] for a in answers}) == 1  # same answer from either worker
        assert "2 worker(s)" in server.output()
        # SIGTERM while a batch of requests is in flight: they are answered, then the server exits.
        results = []
        big = dict(body, inputs=[dict(body["inputs"][0], shape=[16], data=body["inputs"][0]["data"] * 16)])
        threads = [threading.Thread(target=lambda: results.append(
            requests.post(f"{server.url}/v2/models/edgeclf/infer", json=big, timeout=60).status_code)) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        os.kill(server.proc.pid, signal.SIGTERM)
        for t in threads:
            t.join(60)
        code = server.stop(timeout=60)
        assert code == 0, server.output()[-2000:]
        assert results.count(200) >= 1 and set(results) <= {200}, results
    finally:
        server.stop()
