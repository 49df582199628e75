"""Progress on stderr: live on a terminal (checked through a pseudo-terminal), one line per stage
when redirected, nothing with --quiet; never on stdout."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from conftest import cli_env

from edgeclf.progress import Progress, for_cli


def test_plain_mode_one_line_per_finished_stage():
    buf = io.StringIO()
    p = Progress("auto", stream=buf, prefix="x: ")  # StringIO is not a terminal
    assert p.mode == "plain"
    with p.stage("bench onnx-cpu batch 8", total=20) as st:
        st.update(completed=10, note="p50 3.00 ms")
        st.update(completed=20, note="p50 2.50 ms")
    with pytest.raises(RuntimeError):
        with p.stage("doomed"):
            raise RuntimeError("boom")
    with p.stage("silent", log=False):
        pass
    step = p.steps("export: ")
    step("onnx")
    step("parity: ONNX")
    step.close()
    lines = buf.getvalue().splitlines()
    assert [line.rsplit(" (", 1)[0] for line in lines] == [
        "x: bench onnx-cpu batch 8 — p50 2.50 ms … done", "x: export: onnx … done", "x: export: parity: ONNX … done"]
    assert all(line.endswith(" s)") for line in lines)


def test_quiet_mode_prints_nothing(capsys):
    p = for_cli(quiet=True)
    with p.stage("a", total=3) as st:
        st.advance()
    p.log("hello")
    assert capsys.readouterr() == ("", "")


def test_live_mode_draws_on_the_stream_and_ends_with_a_line():
    buf = io.StringIO()
    p = Progress("live", stream=buf)
    with p.stage("calibrating", total=4) as st:
        st.advance(2)
    out = buf.getvalue()
    assert "calibrating" in out and "\x1b[" in out  # drawn with terminal control codes
    assert "calibrating … done (" in out


def _first_output_on_a_terminal(args: list, deadline_s: float, needle: bytes,
                                then: bytes | None = None) -> tuple[float | None, bytes]:
    """Run ``python -m edgeclf ARGS`` with stdout and stderr on a pseudo-terminal; return the time
    (s from start) at which ``needle`` first appeared, and everything read until then (or, with
    ``then``, until ``then`` appeared after it)."""
    master, slave = pty.openpty()
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "edgeclf", *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, env=cli_env(COLUMNS="120"), close_fds=True)
    os.close(slave)
    seen, found = b"", None
    try:
        while time.monotonic() - start < deadline_s:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if found is None and needle in seen:
                    found = time.monotonic() - start
                if found is not None and (then is None or then in seen[seen.index(needle):]):
                    break
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    return found, seen


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    from _export_data import make_checkpoint, make_split

    root = tmp_path_factory.mktemp("progress")
    ckpt = make_checkpoint(root / "best.pt", make_split(root / "split.json"), arch="tiny_cnn")
    r = subprocess.run([sys.executable, "-m", "edgeclf", "export", str(ckpt), "--out", str(root / "artifact"),
                        "--formats", "onnx"], capture_output=True, text=True, env=cli_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    # Redirected stderr: one plain line per stage, nothing redrawn; results on stdout only.
    assert "\x1b[" not in r.stderr and "\r" not in r.stderr
    assert "edgeclf export: exporting ONNX (dynamo exporter, opset 18) … done (" in r.stderr
    assert "edgeclf export: parity: ONNX … done (" in r.stderr
    assert "PASSED" in r.stdout and "… done" not in r.stdout
    return ckpt, root / "artifact"


#: Seconds from start within which a terminal must show progress (the command's first stage).
SHOWN_WITHIN_S = 2.0


@pytest.mark.slow
def test_export_shows_progress_on_a_terminal_at_once(tiny_export, tmp_path):
    ckpt, _ = tiny_export
    at, seen = _first_output_on_a_terminal(["export", ckpt, "--out", tmp_path / "a"], 30, b"importing torch")
    assert at is not None, seen
    assert at < SHOWN_WITHIN_S, f"first progress after {at:.2f} s: {seen!r}"


@pytest.mark.slow
def test_bench_shows_progress_on_a_terminal_at_once(tiny_export):
    _, artifact = tiny_export
    args = ["bench", artifact, "--backends", "onnx-cpu", "--batch-sizes", "1", "--warmup", "1", "--iters", "3"]
    at, seen = _first_output_on_a_terminal(args, 60, b"onnx-cpu", then=b"p50 ")
    assert at is not None, seen
    assert at < SHOWN_WITHIN_S, f"first progress after {at:.2f} s: {seen!r}"
    assert b"onnx-cpu batch 1" in seen and b"p50 " in seen and b"\x1b[" in seen  # live, with the current p50
