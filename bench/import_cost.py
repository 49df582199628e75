"""Import and model-load cost of the torch-free ``edgeclf.runtime`` against loading the same model with torch.

Each measurement runs in a fresh Python subprocess (nothing cached in the interpreter; the OS file
cache is warm after the first repeat, which is the usual state of a server restarting), in this
order of steps, timed with ``time.perf_counter``:

================  ==============================================  ===============================================
step              runtime side                                    torch side
================  ==============================================  ===============================================
``import_ms``     ``import edgeclf.runtime, onnxruntime``               ``import torch`` (+ ``train`` for a checkpoint)
``load_ms``       ``runtime.Predictor(artifact, device="cpu")``   ``torch.jit.load`` (TorchScript) or
                                                                  ``load_checkpoint`` + ``model_from_checkpoint``
``first_run_ms``  one (1, 3, crop, crop) zero input               the same, under ``torch.inference_mode``
================  ==============================================  ===============================================

plus ``process_wall_ms`` (the whole subprocess, interpreter start and exit included, measured by
the parent) and ``peak_rss_mib`` (the child's peak resident set size at the end, MiB: ``VmHWM`` on
Linux, ``ru_maxrss`` elsewhere; ``startup_rss_mib`` is the same before any import). The report holds the median of ``repeats`` runs per side and every run.

The torch side loads the artifact's ``model.torchscript.pt`` unless ``torch_model`` names another
TorchScript file or an edgeclf training checkpoint (``best.pt``); without either it is skipped.

Usage::

    python -m edgeclf.bench.import_cost ARTIFACT [--torch-model PATH] [--repeats 3] [--threads 1] [--json OUT]
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from edgeclf.runtime.artifact import FORMAT_FILES, resolve_model_file
from edgeclf.runtime.errors import ArtifactError, UsageError
from edgeclf.runtime.files import atomic_write_text

STEPS = ("import_ms", "load_ms", "first_run_ms", "process_wall_ms", "peak_rss_mib")

_PRELUDE = """
import json, resource, sys, time
def rss_mib():
    # Linux: VmHWM, the peak RSS of this process image. (ru_maxrss survives execve, so a child
    # forked from a big parent would report the parent's peak.) Elsewhere: ru_maxrss.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 / 1024 if sys.platform == "darwin" else r / 1024  # bytes on macOS, KiB on Linux
out = {"startup_rss_mib": rss_mib()}
t0 = time.perf_counter()
"""

RUNTIME_CHILD = _PRELUDE + """
import edgeclf.runtime, onnxruntime
t1 = time.perf_counter()
p = edgeclf.runtime.Predictor(sys.argv[1], device="cpu", intra_op_threads=int(sys.argv[2]))
t2 = time.perf_counter()
import numpy as np
crop = p.preprocess_config.crop_size
p.logits(np.zeros((1, 3, crop, crop), np.float32))
t3 = time.perf_counter()
out.update(import_ms=(t1 - t0) * 1e3, load_ms=(t2 - t1) * 1e3, first_run_ms=(t3 - t2) * 1e3,
           peak_rss_mib=rss_mib(), crop_size=crop, providers=p.providers,
           torch_imported=any(m.split(".")[0] == "torch" for m in sys.modules),
           versions={"onnxruntime": onnxruntime.__version__, "numpy": np.__version__})
print("RESULT " + json.dumps(out))
"""

TORCH_CHILD = _PRELUDE + """
kind, path, threads, crop = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import torch
if kind == "checkpoint":
    from edgeclf.train.checkpoint import load_checkpoint, model_from_checkpoint
torch.set_num_threads(threads)
t1 = time.perf_counter()
if kind == "checkpoint":
    model = model_from_checkpoint(load_checkpoint(path))
else:
    model = torch.jit.load(path, map_location="cpu")
model.eval()
t2 = time.perf_counter()
with torch.inference_mode():
    model(torch.zeros(1, 3, crop, crop))
t3 = time.perf_counter()
out.update(import_ms=(t1 - t0) * 1e3, load_ms=(t2 - t1) * 1e3, first_run_ms=(t3 - t2) * 1e3,
           peak_rss_mib=rss_mib(), versions={"torch": torch.__version__})
print("RESULT " + json.dumps(out))
"""


def _run_child(code: str, args: list[str], timeout_s: float) -> dict:
    env = dict(os.environ)
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                       timeout=timeout_s, cwd=tempfile.gettempdir())
    wall_ms = (time.perf_counter() - start) * 1e3
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"measurement subprocess failed (exit {r.returncode}): {tail}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["process_wall_ms"] = wall_ms
    return result


def _summary(runs: list[dict]) -> dict:
    """Median of each step over the runs (floats), plus the runs themselves."""
    summary = {key: float(statistics.median(r[key] for r in runs)) for key in (*STEPS, "startup_rss_mib")}
    summary["runs"] = runs
    return summary


def torch_model_kind(path: Path) -> str:
    """``"torchscript"`` or ``"checkpoint"`` by the zip archive's content (TorchScript has code/)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile) as err:
        raise UsageError(f"{path}: not a torch zip archive (TorchScript or checkpoint): {err}") from err
    return "torchscript" if any("/code/" in n or n.endswith("constants.pkl") for n in names) else "checkpoint"


def measure_import_cost(artifact: str | os.PathLike, torch_model: str | os.PathLike | None = None,
                        repeats: int = 3, threads: int = 1, timeout_s: float = 600) -> dict:
    """Measure import + load + first run time and peak RSS of ``runtime`` and of torch.

    Args:
        artifact: artifact directory or ``.onnx`` file for the runtime side.
        torch_model: TorchScript file or edgeclf checkpoint for the torch side (default: the
            artifact directory's ``model.torchscript.pt``; skipped when there is none).
        repeats: fresh subprocesses per side; the report gives medians.
        threads: intra-op threads on both sides (onnxruntime ``intra_op_num_threads``,
            ``torch.set_num_threads``).
    Returns:
        ``{"runtime": {step: median, ..., "runs": [...]}, "torch": {...} or {"skipped": reason},
        "ratio": {step: torch / runtime}, "model": {...}, "environment": {...}}``; times in ms,
        memory in MiB.
    Raises:
        ArtifactError / UsageError: unusable artifact or torch model, bad ``repeats``/``threads``.
        RuntimeError: a measurement subprocess failed (its last stderr line is in the message).
    """
    if repeats < 1 or threads < 1:
        raise UsageError(f"repeats={repeats}, threads={threads}: both must be >= 1")
    artifact = os.path.abspath(artifact)  # the measuring children run in a neutral folder
    if torch_model is not None:
        torch_model = os.path.abspath(torch_model)
    onnx_path = resolve_model_file(artifact)
    runtime_runs = [_run_child(RUNTIME_CHILD, [str(artifact), str(threads)], timeout_s) for _ in range(repeats)]
    if any(r["torch_imported"] for r in runtime_runs):
        raise RuntimeError("the runtime measurement imported torch; runtime must stay torch-free")
    crop = runtime_runs[0]["crop_size"]
    report = {"runtime": _summary(runtime_runs),
              "model": {"onnx": str(onnx_path), "onnx_mib": onnx_path.stat().st_size / 2**20, "crop_size": crop}}

    if torch_model is None and Path(artifact).is_dir() and (Path(artifact) / FORMAT_FILES["torchscript"]).is_file():
        torch_model = Path(artifact) / FORMAT_FILES["torchscript"]
    if torch_model is None:
        report["torch"] = {"skipped": f"no {FORMAT_FILES['torchscript']} in {artifact} and no torch_model given"}
    else:
        torch_model = Path(torch_model)
        if not torch_model.is_file():
            raise ArtifactError(f"{torch_model}: no such TorchScript file or checkpoint")
        kind = torch_model_kind(torch_model)
        torch_runs = [_run_child(TORCH_CHILD, [kind, str(torch_model), str(threads), str(crop)], timeout_s)
                      for _ in range(repeats)]
        report["torch"] = {"kind": kind, **_summary(torch_runs)}
        report["model"].update(torch=str(torch_model), torch_mib=torch_model.stat().st_size / 2**20)
        report["ratio"] = {k: report["torch"][k] / report["runtime"][k] for k in STEPS if report["runtime"][k] > 0}
    report["environment"] = {
        "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "threads": threads, "repeats": repeats,
        **runtime_runs[0]["versions"], **(report["torch"].get("runs", [{}])[0].get("versions", {})),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
                if k in os.environ},
    }
    return report


def format_report(report: dict) -> str:
    """Side-by-side text table of the medians (ms, MiB)."""
    sides = [("runtime (onnxruntime)", report["runtime"])]
    if "skipped" not in report["torch"]:
        sides.append((f"torch ({report['torch']['kind']})", report["torch"]))
    labels = {"import_ms": "import (ms)", "load_ms": "model load (ms)", "first_run_ms": "first run (ms)",
              "process_wall_ms": "whole process (ms)", "peak_rss_mib": "peak RSS (MiB)"}
    head = ["", *(name for name, _ in sides)] + (["torch / runtime"] if len(sides) == 2 else [])
    rows = [head]
    for key, label in labels.items():
        row = [label, *(f"{s[key]:.1f}" for _, s in sides)]
        if len(sides) == 2:
            row.append(f"{report['ratio'][key]:.1f}x")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    m = report["model"]
    lines.append(f"model: {m['onnx']} ({m['onnx_mib']:.1f} MiB)"
                 + (f", torch: {m['torch']} ({m['torch_mib']:.1f} MiB)" if "torch" in m else "")
                 + f"; medians of {report['environment']['repeats']} fresh processes,"
                 f" {report['environment']['threads']} thread(s)")
    if "skipped" in report["torch"]:
        lines.append(f"torch side skipped: {report['torch']['skipped']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from edgeclf.runtime.errors import EdgeclfError

    parser = argparse.ArgumentParser(prog="python -m edgeclf.bench.import_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact", help="artifact directory or .onnx file")
    parser.add_argument("--torch-model", help="TorchScript file or edgeclf checkpoint (default: the artifact's model.torchscript.pt)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per side (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads on both sides (default 1)")
    parser.add_argument("--json", metavar="OUT", help="also write the full report (every run) as JSON")
    args = parser.parse_args(argv)
    try:
        report = measure_import_cost(args.artifact, args.torch_model, args.repeats, args.threads)
    except (EdgeclfError, RuntimeError) as err:
        print(f"edgeclf.bench.import_cost: error: {err}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
