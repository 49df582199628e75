"""The built wheel: one top-level name, sample images as package data, and — installed alone, without
extras, into a fresh virtual environment — torch-free prediction (tests/wheel_smoke.py).

Offline: the fresh environment sees only the wheel and its base dependencies (numpy, Pillow,
requests, onnxruntime and what they require), linked from this environment instead of downloaded.
``.ci/run`` does the same with a real ``pip install`` from the package index. Building the wheel
needs setuptools >= 77: this environment's if it has one, else pip fetches it (its cache serves
later runs); without either the test skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from conftest import REPO_ROOT
import wheel_smoke

pytestmark = pytest.mark.slow


def _setuptools_is_recent() -> bool:
    try:
        return int(metadata.version("setuptools").split(".")[0]) >= 77
    except metadata.PackageNotFoundError:
        return False


def build_wheel(out: Path) -> Path:
    """``pip wheel --no-deps`` of the checkout into ``out``; skips the test when no setuptools >= 77
    can be had (none here and the package index unreachable)."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check", "-w", str(out)]
    if _setuptools_is_recent():
        cmd.append("--no-build-isolation")
    # From a copy of the sources: a build/ folder left in a working tree can hold stale modules.
    source = out.parent / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".ci-venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    proc = subprocess.run([*cmd, str(source)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        if not _setuptools_is_recent() and "setuptools" in proc.stderr:
            pytest.skip(f"building the wheel needs setuptools>=77, not installed here and not downloadable:"
                        f" {proc.stderr.strip().splitlines()[-1]}")
        raise AssertionError(proc.stderr[-3000:])
    (wheel,) = out.glob("edgeclf-*.whl")
    return wheel


def base_requirements(wheel: Path) -> list[str]:
    """``Requires-Dist`` entries of the wheel that apply without extras on this platform."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        lines = zf.read(meta).decode().splitlines()
    reqs = [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]
    return [str(r) for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def link_distributions(requirements: list[str], target: Path) -> set[str]:
    """Symlink the installed distributions of ``requirements`` and of everything they require
    (without extras) into ``target``; return their names."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    target.mkdir(parents=True)
    todo, done = [Requirement(r) for r in requirements], set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in done:
            continue
        done.add(name)
        dist = metadata.distribution(req.name)
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}:
            if not (target / top).exists():
                (target / top).symlink_to(dist.locate_file(top))
        todo += [r for r in map(Requirement, dist.requires or []) if r.marker is None or r.marker.evaluate({"extra": ""})]
    return done


def test_wheel_installs_alone_and_predicts_without_torch(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert zf.read(top_level).decode().split() == ["edgeclf"]
    assert {n.split("/")[0] for n in names} == {"edgeclf", top_level.split("/")[0]}  # nothing else installs
    sample = [n for n in names if n.startswith("edgeclf/bench/data/caltech101_sample/")]
    assert sum(n.endswith(".jpg") for n in sample) == 9 * 24 and "edgeclf/bench/data/caltech101_sample/LICENSE.md" in sample
    assert not any(n.startswith("edgeclf/bench/data/") and n.endswith(".py") for n in names)

    wheel_smoke.prepare(tmp_path / "smoke")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)  # this environment's pip installs into it (--python)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_"))}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--quiet", "--disable-pip-version-check", str(wheel)], check=True, env=env, timeout=300)
    linked = link_distributions(base_requirements(wheel), tmp_path / "base-deps")
    assert {"numpy", "pillow", "requests"} <= linked and linked & {"onnxruntime", "onnxruntime-gpu"}
    assert "torch" not in linked
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, env=env).stdout.strip()
    Path(site, "edgeclf-base-deps.pth").write_text(str(tmp_path / "base-deps") + "\n")

    proc = subprocess.run([python, str(Path(wheel_smoke.__file__)), "check", str(tmp_path / "smoke")],
                          capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().startswith("wheel smoke: ok")
