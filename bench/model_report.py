"""``edgeclf report``: figures and one self-contained ``index.html`` from every stage's files.

Inputs (each optional except the run directory, and each read by the stage's own loader):

* ``RUN_DIR`` of ``edgeclf train``: ``history.json`` (or ``history.csv``), ``best.pt`` (or
  ``last.pt``) for the model card, and ``eval_test.json`` of ``edgeclf evaluate`` (or ``--eval``);
* ``--artifact DIR`` of ``edgeclf export``: ``artifact.json`` and ``parity.json``;
* ``--bench FILE`` … : ``edgeclf bench --json`` documents (schema ``edgeclf.bench`` v1), drawn
  side by side;
* the split manifest named in the checkpoint (or ``--split``), for the data facts.

Output ``OUT_DIR``: one PNG per figure and ``index.html``, which embeds every PNG as a data URI
(the page is one file that works offline, without JavaScript) and links the PNG beside it. The
page repeats the numbers behind each figure as text tables. Every string read from a file is
HTML-escaped. Sections whose input is missing are listed at the top of the page with the
command that makes it; a file that is present but unreadable or malformed is an error naming it.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from edgeclf.runtime._version import __version__
from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.files import atomic_write_text

#: The report's sections, in page order.
SECTIONS = ("model card", "training", "evaluation", "export parity", "bench")
EVAL_KEYS = ("top1", "top3", "num_images", "class_names", "confusion", "per_class")
HISTORY_KEYS = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc")


class ReportInputError(EdgeclfError):
    """An input of ``edgeclf report`` is missing, unreadable or malformed; the message names it."""


@dataclass
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes:
        out_dir: the report folder.
        index_html: ``out_dir/index.html``.
        figures: every PNG written (:class:`edgeclf.train.plots.SavedFigure`), in page order.
        absent: section → why it is not in the report (e.g. ``"bench": "no --bench JSON given"``).
    """

    out_dir: Path
    index_html: Path
    figures: list = field(default_factory=list)
    absent: dict = field(default_factory=dict)


# ---------------------------------------------------------------- inputs

def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ReportInputError(f"{path}: no such {what} file") from err
    except OSError as err:
        raise ReportInputError(f"{path}: cannot read {what} ({err.strerror or err})") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportInputError(f"{path}: {what} is not valid JSON ({err})") from err


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def load_history(run_dir: Path) -> tuple[list[dict] | None, Path | None]:
    """Rows of ``history.json`` (else ``history.csv``) in ``run_dir``, or (None, None) if neither exists.

    Raises:
        ReportInputError: the file exists but is not a list of rows with :data:`HISTORY_KEYS` numbers.
    """
    path = run_dir / "history.json"
    if path.is_file():
        rows = _read_json(path, "training history")
    elif (run_dir / "history.csv").is_file():
        path = run_dir / "history.csv"
        try:
            with open(path, newline="", encoding="utf-8") as fp:
                rows = [{k: float(v) if v not in ("", None) else None for k, v in r.items()} for r in csv.DictReader(fp)]
        except (OSError, ValueError, csv.Error) as err:
            raise ReportInputError(f"{path}: malformed training history ({err})") from err
    else:
        return None, None
    if not isinstance(rows, list) or not rows or not all(
            isinstance(r, dict) and all(_number(r.get(k)) for k in HISTORY_KEYS) for r in rows):
        raise ReportInputError(f"{path}: malformed training history (need a list of epochs with"
                               f" {', '.join(HISTORY_KEYS)})")
    for r in rows:
        r["epoch"] = int(r["epoch"])
    return rows, path


def load_eval(path: Path) -> dict:
    """An ``edgeclf evaluate`` JSON report, checked for :data:`EVAL_KEYS` and a C x C confusion matrix.

    Raises:
        ReportInputError: missing, invalid JSON or malformed; names the file.
    """
    doc = _read_json(path, "evaluation")
    ok = isinstance(doc, dict) and all(k in doc for k in EVAL_KEYS)
    if ok:
        n = len(doc["class_names"])
        ok = (isinstance(doc["confusion"], list) and len(doc["confusion"]) == n
              and all(isinstance(r, list) and len(r) == n for r in doc["confusion"])
              and isinstance(doc["per_class"], dict) and all(c in doc["per_class"] for c in doc["class_names"])
              and _number(doc["top1"]) and _number(doc["top3"]))
    if not ok:
        raise ReportInputError(f"{path}: malformed evaluation report (need {', '.join(EVAL_KEYS)} as written by"
                               " `edgeclf evaluate`)")
    return doc


def load_parity(path: Path) -> dict:
    """``parity.json`` of an artifact (schema ``edgeclf.parity``), checked for its ``formats``.

    Raises:
        ReportInputError: unreadable or malformed; names the file.
    """
    doc = _read_json(path, "parity report")
    if not (isinstance(doc, dict) and doc.get("schema") == "edgeclf.parity" and isinstance(doc.get("formats"), dict)
            and all(isinstance(r, dict) and "gate" in r for r in doc["formats"].values())):
        raise ReportInputError(f"{path}: not an edgeclf parity report (schema 'edgeclf.parity' with formats)")
    return doc


def load_bench(path: Path) -> dict:
    """An ``edgeclf bench --json`` document (schema ``edgeclf.bench`` v1) with its rows and backends.

    Raises:
        ReportInputError: missing, unreadable or malformed; names the file.
    """
    from .runner import SCHEMA, SCHEMA_VERSION

    doc = _read_json(path, "bench JSON")
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or doc.get("schema_version") != SCHEMA_VERSION:
        raise ReportInputError(f"{path}: not an edgeclf bench result (schema {SCHEMA!r} v{SCHEMA_VERSION})")
    rows, backends = doc.get("rows"), doc.get("backends")
    if not (isinstance(rows, list) and isinstance(backends, dict) and all(
            isinstance(r, dict) and _number(r.get("batch_size")) and _number(r.get("latency_ms_p50"))
            and _number(r.get("throughput_img_per_s")) and r.get("backend") in backends for r in rows)):
        raise ReportInputError(f"{path}: malformed bench result (rows need backend, batch_size, latency_ms_p50,"
                               " throughput_img_per_s)")
    return doc


@dataclass
class ReportInputs:
    """Everything :func:`build_report` read (None where absent)."""

    run_dir: Path
    history: list | None = None
    history_path: Path | None = None
    checkpoint: dict | None = None
    checkpoint_path: Path | None = None
    evaluation: dict | None = None
    eval_path: Path | None = None
    manifest: Any = None
    split_path: Path | None = None
    split_note: str | None = None
    artifact: dict | None = None
    artifact_dir: Path | None = None
    parity: dict | None = None
    benches: list = field(default_factory=list)  # (label, path, doc)
    absent: dict = field(default_factory=dict)


def load_inputs(run_dir, *, artifact_dir=None, bench_paths: Sequence = (), eval_json=None,
                split=None) -> ReportInputs:
    """Read and validate the report's inputs (see the module docstring).

    Raises:
        ReportInputError, CheckpointError, ArtifactError, ManifestError: an input named by the
            caller that is missing, or any present file that is unreadable or malformed.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportInputError(f"{run_dir}: no such run directory (give the --out folder of `edgeclf train`)")
    inp = ReportInputs(run_dir=run_dir)
    inp.history, inp.history_path = load_history(run_dir)
    ckpt_path = next((run_dir / n for n in ("best.pt", "last.pt") if (run_dir / n).is_file()), None)
    if ckpt_path is not None:
        from edgeclf.train.checkpoint import load_checkpoint

        inp.checkpoint, inp.checkpoint_path = load_checkpoint(ckpt_path), ckpt_path
        inp.checkpoint.pop("model_state", None)
        for key in ("optimizer_state", "scheduler_state", "scaler_state", "rng_state"):
            inp.checkpoint.pop(key, None)
        if inp.history is None and inp.checkpoint.get("history"):
            inp.history, inp.history_path = list(inp.checkpoint["history"]), ckpt_path
    if inp.history is None and inp.checkpoint is None:
        raise ReportInputError(f"{run_dir}: not a training run (no history.json, history.csv, best.pt or last.pt)")
    if inp.history is None:
        inp.absent["training"] = f"no history.json or history.csv in {run_dir}"

    if eval_json is not None:
        inp.eval_path = Path(eval_json)
        inp.evaluation = load_eval(inp.eval_path)
    elif (run_dir / "eval_test.json").is_file():
        inp.eval_path = run_dir / "eval_test.json"
        inp.evaluation = load_eval(inp.eval_path)
    else:
        inp.absent["evaluation"] = (f"no {run_dir / 'eval_test.json'}: run `edgeclf evaluate"
                                    f" {run_dir / 'best.pt'} --split SPLIT.json`")

    if split is not None:
        inp.split_path = Path(split)
    elif inp.checkpoint and inp.checkpoint.get("split_path"):
        inp.split_path = Path(inp.checkpoint["split_path"])
        if not inp.split_path.is_file():
            inp.split_note = f"split file {inp.split_path} (recorded in the checkpoint) not found; pass --split"
            inp.split_path = None
    if inp.split_path is not None:
        from edgeclf.runtime.manifest import load_manifest

        inp.manifest = load_manifest(inp.split_path)
        if inp.checkpoint and inp.checkpoint.get("split_sha256") not in (None, inp.manifest.sha256):
            inp.split_note = f"{inp.split_path} is not the split this model was trained on (sha256 differs)"

    if artifact_dir is not None:
        from edgeclf.runtime.artifact import PARITY_JSON, load_artifact_json
        from edgeclf.runtime.schema import to_dict

        inp.artifact_dir = Path(artifact_dir)
        inp.artifact = to_dict(load_artifact_json(inp.artifact_dir))
        if (inp.artifact_dir / PARITY_JSON).is_file():
            inp.parity = load_parity(inp.artifact_dir / PARITY_JSON)
        else:
            inp.absent["export parity"] = f"{inp.artifact_dir / PARITY_JSON} not found"
    else:
        inp.absent["export parity"] = "no --artifact directory given (made by `edgeclf export`)"

    labels = _bench_labels([Path(p) for p in bench_paths])
    for label, p in zip(labels, bench_paths):
        inp.benches.append((label, Path(p), load_bench(Path(p))))
    if not inp.benches:
        inp.absent["bench"] = "no --bench JSON given (made by `edgeclf bench ARTIFACT --json FILE`)"
    return inp


def _bench_labels(paths: list[Path]) -> list[str]:
    """Short unique labels for bench files: the file name, or parent/name where names repeat."""
    names = [p.name for p in paths]
    out = []
    for i, p in enumerate(paths):
        label = p.name
        if names.count(p.name) > 1:
            parent = p.resolve().parent.name
            label = f"{parent}/{p.name}" if parent else p.name
        out.append(label if label not in out else f"{label} #{i + 1}")
    return out


# ---------------------------------------------------------------- figures

def make_figures(inp: ReportInputs, out_dir: Path) -> dict[str, list]:
    """section → the figures drawn for it (PNG files in ``out_dir``)."""
    from edgeclf.train import plots as tplots

    from . import plots as bplots

    figs: dict[str, list] = {s: [] for s in SECTIONS}
    if inp.history:
        best = inp.checkpoint.get("best_epoch") if inp.checkpoint else None
        if best is None:
            best = max(inp.history, key=lambda r: (r["val_acc"], -r["val_loss"]))["epoch"]
        arch = (inp.checkpoint or {}).get("arch")
        figs["training"].append(tplots.training_curves(
            inp.history, out_dir / "training_curves.png", best_epoch=best,
            title=f"Training curves{' — ' + arch if arch else ''} (best epoch {best})"))
    if inp.evaluation:
        ev = inp.evaluation
        figs["evaluation"] += tplots.write_evaluation_figures(ev, out_dir)
        figs["evaluation"].append(tplots.per_class_metrics(
            ev["per_class"], ev["class_names"], out_dir / "per_class_metrics.png",
            title=f"Per-class precision, recall and F1 — {ev.get('subset', 'test')} split, {ev['num_images']} images"))
    if inp.parity:
        figs["export parity"].append(bplots.parity(
            inp.parity["formats"], out_dir / "export_parity.png",
            tolerance=(inp.parity.get("tolerances") or {}).get("max_abs_prob_diff")))
    if inp.benches:
        figs["bench"] += bplots.write_bench_figures([(label, doc) for label, _, doc in inp.benches], out_dir)
    return figs


# ---------------------------------------------------------------- HTML

def esc(value: Any) -> str:
    """HTML-escaped text of any value (None → an en dash)."""
    return "–" if value is None else html.escape(str(value), quote=True)


def pct(x: float | None) -> str:
    """A fraction in [0, 1] as ``"97.53 %"``."""
    return "–" if x is None else f"{x * 100:.2f} %"


def num(x: float | None, digits: int = 2) -> str:
    """``1,234.57`` style; ``–`` for None."""
    return "–" if x is None else (f"{x:,.{digits}f}" if isinstance(x, float) else f"{x:,}")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], raw: bool = False, cls: str = "") -> str:
    """An HTML table; cells are escaped unless ``raw`` (then they must already be HTML)."""
    cell = (lambda v: str(v)) if raw else esc
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _kv(rows: Sequence[tuple[str, Any]]) -> str:
    return "<table class=\"kv\"><tbody>" + "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows) + "</tbody></table>"


def _figure_html(fig) -> str:
    data = base64.b64encode(fig.path.read_bytes()).decode("ascii")
    name = esc(fig.path.name)
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(fig.title)}"'
            f' width="{fig.width_px}" height="{fig.height_px}">'
            f'<figcaption>{esc(fig.title)} — <a href="{name}">{name}</a> ({fig.width_px} x {fig.height_px} px)'
            f'</figcaption></figure>')


def _model_card(inp: ReportInputs) -> str:
    ck, art, ev, man = inp.checkpoint or {}, inp.artifact or {}, inp.evaluation, inp.manifest
    classes = list(ck.get("class_names") or art.get("class_names") or (ev or {}).get("class_names") or [])
    pre = ck.get("preprocess") or art.get("preprocess") or {}
    parts = ["<h3>Model</h3>", _kv([
        ("architecture", ck.get("arch") or art.get("arch")),
        ("backbone weights", ck.get("weights")),
        ("head", json.dumps(ck.get("model_args")) if ck.get("model_args") else None),
        ("output", "logits (softmax not applied)"),
        ("input", f"{pre.get('crop_size')} x {pre.get('crop_size')} RGB, resize {pre.get('resize_size')},"
                  f" {pre.get('interpolation')}, mean {pre.get('mean')}, std {pre.get('std')}" if pre else None),
        ("classes", f"{len(classes)}: " + ", ".join(classes[:12]) + (" …" if len(classes) > 12 else "")),
        ("checkpoint", f"{inp.checkpoint_path} (epoch {ck.get('epoch')} of {ck.get('epochs')})"
                       if inp.checkpoint_path else None),
    ])]
    if len(classes) > 12:
        parts.append(f"<details><summary>all {len(classes)} classes</summary><p>"
                     + ", ".join(f"{i}&nbsp;{esc(c)}" for i, c in enumerate(classes)) + "</p></details>")
    parts.append("<h3>Data</h3>")
    if man is not None:
        totals = {s: len(man.entries(s)) for s in ("train", "val", "test")}
        parts.append(_kv([("split manifest", inp.split_path), ("images folder", man.data_root),
                          ("split seed", man.seed), ("ratios", json.dumps(man.ratios)),
                          ("images (train / val / test)", f"{totals['train']} / {totals['val']} / {totals['test']}"),
                          ("split sha256", man.sha256)]))
        if man.counts:
            parts.append("<details><summary>images per class and split</summary>" + _table(
                ("class", "train", "val", "test"),
                [(c, man.counts.get(c, {}).get("train"), man.counts.get(c, {}).get("val"),
                  man.counts.get(c, {}).get("test")) for c in man.classes]) + "</details>")
    else:
        parts.append(f"<p class=\"note\">{esc(inp.split_note or 'no split manifest available (pass --split)')}"
                     f"{'; split sha256 ' + esc(ck['split_sha256']) if ck.get('split_sha256') else ''}</p>")
    if man is not None and inp.split_note:
        parts.append(f'<p class="note">{esc(inp.split_note)}</p>')
    if ck.get("train_args"):
        parts.append("<h3>Recipe</h3>" + _kv([(k, json.dumps(v) if isinstance(v, (list, dict)) else v)
                                              for k, v in sorted(ck["train_args"].items())]))
    acc = []
    if ck.get("best_val_acc") is not None:
        acc.append(("validation top-1 (best epoch)", f"{pct(ck['best_val_acc'])} at epoch {ck.get('best_epoch')}"))
    if ev:
        acc += [(f"{ev.get('subset', 'test')} top-1", pct(ev["top1"])), (f"{ev.get('subset', 'test')} top-3", pct(ev["top3"])),
                ("macro F1", num(ev.get("macro_f1"), 4)), ("evaluated images", ev["num_images"])]
    for name, row in ((inp.parity or {}).get("formats") or {}).items():
        if row.get("gate") == "accuracy" and _number(row.get("top1_accuracy")):
            acc.append((f"{name} test top-1", f"{row['top1_accuracy']:.2f} % (fp32 {row['fp32_top1_accuracy']:.2f} %)"))
    if acc:
        parts.append("<h3>Accuracy</h3>" + _kv(acc))
    if art.get("formats"):
        rows = [(fmt, f.get("file"), f.get("precision"), num((f.get("size_bytes") or 0) / 2**20, 2),
                 f.get("sha256")) for fmt, f in art["formats"].items()]
        parts.append("<h3>Artifact files</h3>" + f"<p>{esc(inp.artifact_dir)} · created {esc(art.get('created_utc'))}"
                     f" · opset {esc(art.get('opset'))}</p>"
                     + _table(("format", "file", "precision", "size (MiB)", "sha256"), rows, cls="mono"))
    versions = [("edgeclf (checkpoint)", ck.get("edgeclf_version"))] if ck.get("edgeclf_version") else []
    versions += [(f"{k} (export)", v) for k, v in (art.get("versions") or {}).items()]
    for label, _, doc in inp.benches:
        versions += [(f"{k} (bench {label})", v) for k, v in ((doc.get("environment") or {}).get("versions") or {}).items()]
    try:
        import matplotlib

        versions.append(("matplotlib (report)", matplotlib.__version__))
    except ImportError:  # pragma: no cover - the train extra brings it
        pass
    versions.append(("edgeclf (report)", __version__))
    parts.append("<h3>Versions</h3>" + _kv(versions))
    return "\n".join(parts)


def _training_html(inp: ReportInputs) -> str:
    h, ck = inp.history, inp.checkpoint or {}
    last = h[-1]
    best_epoch = ck.get("best_epoch") or max(h, key=lambda r: (r["val_acc"], -r["val_loss"]))["epoch"]
    best = next((r for r in h if r["epoch"] == best_epoch), last)
    return (f"<p>From {esc(inp.history_path)}.</p>" + _table(
        ("", "epoch", "train loss", "val loss", "train top-1", "val top-1", "wall time (s)"),
        [("best", best["epoch"], num(best["train_loss"], 4), num(best["val_loss"], 4), pct(best["train_acc"]),
          pct(best["val_acc"]), num(best.get("elapsed_s"), 1)),
         ("last", last["epoch"], num(last["train_loss"], 4), num(last["val_loss"], 4), pct(last["train_acc"]),
          pct(last["val_acc"]), num(last.get("elapsed_s"), 1))]))


def _evaluation_html(inp: ReportInputs) -> str:
    ev = inp.evaluation
    subset = ev.get("subset", "test")
    out = [f"<p>From {esc(inp.eval_path)}" + ("" if ev.get("split_matches_checkpoint", True)
                                                else " — <strong>evaluated on another split than the training split</strong>")
           + ".</p>",
           _table(("subset", "images", "top-1", "top-3", "macro F1"),
                  [(subset, ev["num_images"], pct(ev["top1"]), pct(ev["top3"]), num(ev.get("macro_f1"), 4))])]
    out.append("<details><summary>per-class precision, recall, F1</summary>" + _table(
        ("class", "precision", "recall", "F1", "support"),
        [(c, num(m["precision"], 3), num(m["recall"], 3), num(m["f1"], 3), m["support"])
         for c, m in ((c, ev["per_class"][c]) for c in ev["class_names"])]) + "</details>")
    wrong = ev.get("misclassified") or []
    if wrong:
        out.append(f"<details><summary>{len(wrong)} misclassified images</summary>" + _table(
            ("file", "true", "predicted", "top-3"),
            [(w.get("path"), w.get("true"), w.get("predicted"),
              ", ".join(f"{t.get('class')} {t.get('probability', 0):.3f}" for t in w.get("top3", [])))
             for w in wrong[:200]]) + "</details>")
    return "\n".join(out)


def _sci(x) -> str:
    return f"{x:.1e}" if _number(x) else "–"


def _parity_html(inp: ReportInputs) -> str:
    p = inp.parity
    rows = []
    for name, r in p["formats"].items():
        acc = (f"{r['top1_accuracy']:.2f} % (drop {r['accuracy_drop_points']:.2f} pt)"
               if r.get("gate") == "accuracy" and _number(r.get("top1_accuracy")) else "")
        rows.append((name, r.get("gate"), "fp32 ONNX" if r.get("gate") == "accuracy" else "eager", r.get("images"),
                     _sci(r.get("max_abs_logit_diff")), _sci(r.get("max_abs_prob_diff")), _sci(r.get("mean_abs_prob_diff")),
                     pct(r.get("top1_agreement")), pct(r.get("top3_agreement")), acc,
                     "pass" if r.get("passed") else "FAIL"))
    tol = (p.get("tolerances") or {})
    return (f"<p>From {esc(inp.artifact_dir / 'parity.json')}: {esc((p.get('images') or {}).get('count'))} test images"
            f" at batch sizes {esc(p.get('batch_sizes'))}; fp32 gate max |Δ probability| ≤ {esc(tol.get('max_abs_prob_diff'))},"
            f" reduced precision ≤ {esc(tol.get('max_accuracy_drop_points'))} point top-1 drop.</p>"
            + _table(("format", "gate", "against", "images", "max |Δ logit|", "max |Δ prob|", "mean |Δ prob|",
                      "top-1 agree", "top-3 agree", "test top-1", "result"), rows))


def _bench_html(inp: ReportInputs) -> str:
    out = []
    for label, path, doc in inp.benches:
        env, s = doc.get("environment") or {}, doc.get("settings") or {}
        out.append(f"<h3>{esc(label)}</h3><p>From {esc(path)} · {esc(doc.get('created_utc'))} · "
                   f"{esc(env.get('cpu_model'))} · {esc(s.get('threads'))} CPU threads · warmup {esc(s.get('warmup'))} · "
                   + (f"{esc(s.get('seconds'))} s" if s.get("seconds") else f"{esc(s.get('iters'))} iters")
                   + f" per row · {esc((doc.get('artifact') or {}).get('arch'))}</p>")
        out.append(_table(("backend", "batch", "p50 (ms)", "p90 (ms)", "p99 (ms)", "mean (ms)", "p50 per image (ms)",
                           "throughput (images/s)"),
                          [(r["backend"], r["batch_size"], num(r["latency_ms_p50"]), num(r.get("latency_ms_p90")),
                            num(r.get("latency_ms_p99")), num(r.get("latency_ms_mean")),
                            num(r.get("latency_ms_per_image_p50")), num(r["throughput_img_per_s"], 1))
                           for r in doc["rows"]]))
        per = []
        for name, info in doc["backends"].items():
            if info.get("status") != "ok":
                per.append((name, f"{info.get('status')}: {info.get('reason')}", "", "", "", "", "", ""))
                continue
            per.append((name, ", ".join(info.get("providers") or []) or info.get("device"), num(info.get("load_ms"), 0),
                        num(info.get("first_inference_ms"), 1), num(info.get("peak_rss_mib"), 0),
                        num(info.get("peak_gpu_mem_mib"), 0), pct(info.get("accuracy_top1")),
                        pct(info.get("top1_agreement_with_eager"))))
        out.append(_table(("backend", "providers / status", "load (ms)", "first inference (ms)", "peak RSS (MiB)",
                           "peak GPU (MiB)", "top-1", "agreement with eager"), per))
    return "\n".join(out)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #0072B2;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right;vertical-align:top}th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
table.kv th{text-align:left;white-space:nowrap}table.kv td{text-align:left}
table.mono td:last-child{font-family:monospace;font-size:.85em;text-align:left}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
.note{background:#fff4e0;border-left:4px solid #E69F00;padding:.4em .8em}
"""


def render_html(inp: ReportInputs, figs: dict[str, list]) -> str:
    """The whole ``index.html`` text (figures embedded as PNG data URIs)."""
    ck = inp.checkpoint or {}
    arch = ck.get("arch") or (inp.artifact or {}).get("arch") or "model"
    title = f"edgeclf report — {arch}, {inp.run_dir.name}"
    body = [f"<h1>{esc(title)}</h1>",
            f"<p>Generated {esc(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))} by edgeclf {esc(__version__)}"
            f" from {esc(inp.run_dir)}</p>"]
    if inp.absent:
        body.append('<div class="note"><strong>Not in this report:</strong><ul>' + "".join(
            f"<li>{esc(s)}: {esc(why)}</li>" for s, why in inp.absent.items()) + "</ul></div>")
    renderers = {"model card": _model_card, "training": _training_html, "evaluation": _evaluation_html,
                 "export parity": _parity_html, "bench": _bench_html}
    for section in SECTIONS:
        if section in inp.absent:
            continue
        body.append(f'<section id="{section.replace(" ", "-")}"><h2>{esc(section.capitalize())}</h2>')
        body += [_figure_html(f) for f in figs.get(section, [])]
        body.append(renderers[section](inp))
        body.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def build_report(run_dir, out_dir, *, artifact_dir=None, bench_paths: Sequence = (), eval_json=None,
                 split=None) -> ReportResult:
    """Read every input, draw the figures into ``out_dir`` and write ``out_dir/index.html``.

    Args:
        run_dir: the training run folder (``edgeclf train --out``).
        out_dir: created if missing; existing files of the same names are replaced atomically.
        artifact_dir: an ``edgeclf export`` directory (optional).
        bench_paths: ``edgeclf bench --json`` files, drawn side by side in this order (optional).
        eval_json: the evaluation JSON (default ``RUN_DIR/eval_test.json`` if present).
        split: the split manifest (default: the path recorded in the checkpoint, if it exists).
    Returns:
        :class:`ReportResult` (figures in page order, absent sections with the reason).
    Raises:
        ReportInputError, CheckpointError, ArtifactError, ManifestError: a missing or malformed
            input (one line naming the file); ReportInputError also when ``out_dir`` cannot be written.
    """
    inp = load_inputs(run_dir, artifact_dir=artifact_dir, bench_paths=bench_paths, eval_json=eval_json, split=split)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReportInputError(f"--out {out_dir}: cannot create ({err.strerror or err})") from err
    if inp.benches and not any(info.get("status") == "ok" for _, _, d in inp.benches for info in d["backends"].values()):
        inp.absent["bench figures"] = "no backend ran in the bench JSON(s) (all skipped or failed); see the tables"
    figs = make_figures(inp, out_dir)
    index = out_dir / "index.html"
    try:
        atomic_write_text(index, render_html(inp, figs))
    except OSError as err:
        raise ReportInputError(f"{index}: cannot write ({err.strerror or err})") from err
    return ReportResult(out_dir, index, [f for s in SECTIONS for f in figs.get(s, [])], dict(inp.absent))
