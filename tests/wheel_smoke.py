"""Smoke test of an installed edgeclf wheel without extras: torch-free prediction works.

Two steps, two environments:

``python tests/wheel_smoke.py prepare DIR``
    In the development environment (torch available): write a tiny seeded ONNX artifact to
    ``DIR/artifact`` and ``DIR/expected.json``, the eager torch top-3 for a few sample images.

``python tests/wheel_smoke.py check DIR``
    In a fresh environment holding only the wheel and its base dependencies: with torch,
    torchvision and timm imports blocked, and from a folder holding its own ``runtime.py``,
    ``train.py``, ``export.py`` and ``bench.py``, check that

    * torch is not installed and edgeclf is imported from the installed wheel, not a checkout;
    * ``from edgeclf import Predictor`` and ``python -m edgeclf --help`` work;
    * the sample images ship as package data of ``edgeclf.bench`` (9 classes x 24 JPEGs);
    * ``Predictor`` and ``python -m edgeclf predict --json`` give the expected top-3 for them.

Exits 0 when every check passes, 1 with one line per failed check otherwise. Not collected by
pytest (tests/test_wheel.py runs it; so does ``.ci/run``).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import io
import json
import os
import runpy
import sys
import tempfile
from pathlib import Path

BLOCKED = ("torch", "torchvision", "timm")
SAMPLE = "data/caltech101_sample"
SAMPLE_CLASSES = ("Leopards", "airplanes", "butterfly", "camera", "elephant", "lamp", "rhino", "umbrella", "watch")
SAMPLE_IMAGES_PER_CLASS = 24
PROBABILITY_ATOL = 1e-5


class BlockHeavyImports(importlib.abc.MetaPathFinder):
    """Any import of torch, torchvision or timm fails, as on a machine that has none."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the wheel smoke test)", name=name)
        return None


def sample_images(root: Path, per_class: int = 1) -> list[Path]:
    """The first ``per_class`` JPEGs of each sample class under ``root`` (sorted)."""
    return [p for c in SAMPLE_CLASSES for p in sorted((root / c).glob("*.jpg"))[:per_class]]


def prepare(out: Path) -> None:
    """Tiny artifact + expected eager-torch top-3 for one sample image per class (dev environment)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numpy as np

    from _tiny_artifact import build_tiny_artifact
    from edgeclf.runtime.image import load_image
    from edgeclf.runtime.preprocess import preprocess

    repo_sample = Path(__file__).resolve().parents[1] / "bench" / SAMPLE
    tiny = build_tiny_artifact(out / "artifact")
    expected = {}
    for path in sample_images(repo_sample):
        batch = preprocess(load_image(path), tiny.info.preprocess)[None]  # (1, 3, 224, 224) float32
        probs = tiny.torch_probs(batch)[0]
        top = np.argsort(-probs, kind="stable")[:3]
        expected[f"{path.parent.name}/{path.name}"] = [
            {"label": tiny.info.class_names[i], "index": int(i), "probability": float(probs[i])} for i in top]
    (out / "expected.json").write_text(json.dumps(expected, indent=1), encoding="utf-8")
    print(f"wheel smoke: artifact and expected top-3 for {len(expected)} images in {out}")


def _same_top3(got: list[dict], want: list[dict]) -> bool:
    return [g["index"] for g in got] == [w["index"] for w in want] and \
        [g["label"] for g in got] == [w["label"] for w in want] and \
        all(abs(g["probability"] - w["probability"]) <= PROBABILITY_ATOL for g, w in zip(got, want))


def _run_cli(*args: str) -> tuple[object, str]:
    """``python -m edgeclf ARGS`` in this process (the import blocker stays active): (exit code, stdout)."""
    buf, argv = io.StringIO(), sys.argv
    try:
        sys.argv = ["edgeclf", *args]
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            runpy.run_module("edgeclf", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as err:
        code = err.code
    finally:
        sys.argv = argv
    return code, buf.getvalue()


def check(data: Path) -> list[str]:
    """Run every check; return the failures (one line each)."""
    import importlib.util

    failures = []
    repo = Path(__file__).resolve().parents[1]
    if importlib.util.find_spec("torch") is not None:
        failures.append("torch is installed in this environment: the base install must not pull it in")
    sys.meta_path.insert(0, BlockHeavyImports())

    import edgeclf
    from edgeclf import Predictor

    installed = Path(edgeclf.__file__).resolve()
    if repo in installed.parents:
        failures.append(f"edgeclf imported from the checkout ({installed}), not from the installed wheel")

    code, out = _run_cli("--help")
    if code not in (0, None) or "predict" not in out or "train" not in out:
        failures.append(f"python -m edgeclf --help: exit {code}, output {out[:200]!r}")

    import importlib.resources

    sample = Path(str(importlib.resources.files("edgeclf.bench") / SAMPLE))
    counts = {c: len(list((sample / c).glob("*.jpg"))) for c in SAMPLE_CLASSES}
    if any(n != SAMPLE_IMAGES_PER_CLASS for n in counts.values()) or not (sample / "LICENSE.md").is_file():
        failures.append(f"package data {sample}: expected {SAMPLE_IMAGES_PER_CLASS} JPEGs per class and"
                        f" LICENSE.md, found {counts}")

    expected = json.loads((data / "expected.json").read_text(encoding="utf-8"))
    images = [sample / name for name in expected]
    predictor = Predictor(data / "artifact", device="cpu")
    for image, (name, want) in zip(images, expected.items()):
        got = [p.to_dict() for p in predictor.predict(image, top_k=3)]
        if not _same_top3(got, want):
            failures.append(f"Predictor on {name}: {got} != expected {want}")

    code, out = _run_cli("predict", str(data / "artifact"), *map(str, images), "--json", "--device", "cpu")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if code not in (0, None) or len(rows) != len(images):
        failures.append(f"python -m edgeclf predict --json: exit {code}, {len(rows)} rows for {len(images)} images")
    for row, want in zip(rows, expected.values()):
        if not _same_top3(row.get("predictions", []), want):
            failures.append(f"edgeclf predict on {row.get('input')}: {row} != expected {want}")

    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    if loaded:
        failures.append(f"heavy modules imported: {loaded}")
    return failures


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("prepare", "check"):
        print("usage: wheel_smoke.py prepare|check DIR", file=sys.stderr)
        return 2
    data = Path(argv[1]).resolve()
    if argv[0] == "prepare":
        data.mkdir(parents=True, exist_ok=True)
        prepare(data)
        return 0
    # Run from a folder with the application's own modules named like edgeclf's subpackages.
    with tempfile.TemporaryDirectory() as app:
        for name in ("runtime", "train", "export", "bench"):
            Path(app, f"{name}.py").write_text(f"raise SystemExit('the application {name}.py was imported')\n")
        os.chdir(app)
        sys.path.insert(0, app)
        failures = check(data)
    for line in failures:
        print(f"wheel smoke: FAILED {line}", file=sys.stderr)
    if not failures:
        print("wheel smoke: ok (no torch; Predictor, --help, package data, predict --json)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
