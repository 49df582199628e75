"""Bench results on screen (rich tables), as JSON and CSV, and two runs compared side by side."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from edgeclf.runtime.errors import UsageError
from edgeclf.runtime.files import atomic_write_text

from .runner import SCHEMA, SCHEMA_VERSION

CSV_FIELDS = ("backend", "status", "device", "providers", "batch_size", "latency_ms_p50", "latency_ms_p90",
              "latency_ms_p99", "latency_ms_mean", "latency_ms_per_image_p50", "throughput_img_per_s",
              "iters", "warmup", "load_ms", "first_inference_ms", "peak_rss_mib", "peak_gpu_mem_mib",
              "accuracy_top1", "top1_agreement_with_eager", "precision", "p99_over_p50", "busy", "reason")


def _atomic_write(path: Path, text: str) -> None:
    try:
        atomic_write_text(path, text)
    except OSError as err:
        raise UsageError(f"{path}: cannot write ({err.strerror or err})") from err


def write_json(doc: dict, path: str | os.PathLike) -> None:
    """Write the bench document as indented JSON (atomically)."""
    _atomic_write(Path(path), json.dumps(doc, indent=1) + "\n")


def flat_rows(doc: dict) -> list[dict]:
    """One dict per (backend, batch size) with the backend's cold-start/accuracy fields merged in;
    skipped/failed backends give one row with their reason."""
    out = []
    for name, info in doc["backends"].items():
        base = {"backend": name, "status": info.get("status"), "device": info.get("device"),
                "providers": " ".join(info.get("providers") or []), "reason": info.get("reason"),
                **{k: info.get(k) for k in ("load_ms", "first_inference_ms", "peak_rss_mib", "peak_gpu_mem_mib",
                                             "accuracy_top1", "top1_agreement_with_eager")}}
        rows = [r for r in doc["rows"] if r["backend"] == name]
        out.extend({**base, **r} for r in rows) if rows else out.append(base)
    return out


def write_csv(doc: dict, path: str | os.PathLike) -> None:
    """One CSV row per (backend, batch size), columns :data:`CSV_FIELDS` (units in the names)."""
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in flat_rows(doc):
        writer.writerow(row)
    _atomic_write(Path(path), buf.getvalue())


def make_console(**kwargs):
    """A rich Console; 140 columns when output is not a terminal (logs, CI), so tables stay readable."""
    from rich.console import Console

    console = Console(**kwargs)
    return console if console.is_terminal else Console(width=140, **kwargs)


def _fmt(v, digits=2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def print_report(doc: dict, console=None) -> None:
    """Two tables — latency/throughput per (backend, batch size), then cold start, memory and
    accuracy per backend (skipped backends with their reason) — plus preprocessing and end-to-end lines."""
    from rich.table import Table

    console = console or make_console()
    s = doc["settings"]
    env = doc["environment"]
    timing = Table(title=f"edgeclf bench — {doc['artifact'].get('arch')} · {env['cpu_model']} · "
                         f"{s['threads']} CPU threads · warmup {s['warmup']} · "
                         + (f"{s['seconds']} s" if s.get("seconds") else f"{s['iters']} iters") + " per row")
    for col in ("backend", "batch", "p50 ms", "p90 ms", "p99 ms", "mean ms", "ms/img p50", "img/s", "types", "note"):
        timing.add_column(col, justify="left" if col in ("backend", "types", "note") else "right")
    for r in doc["rows"]:
        q = r.get("quantization")
        types = f"{q['activation_type']}/{q['weight_type']} ({q['target']})" if q else r.get("precision", "")
        timing.add_row(r["backend"], str(r["batch_size"]), _fmt(r["latency_ms_p50"]), _fmt(r["latency_ms_p90"]),
                       _fmt(r["latency_ms_p99"]), _fmt(r["latency_ms_mean"]), _fmt(r["latency_ms_per_image_p50"]),
                       _fmt(r["throughput_img_per_s"], 1), types,
                       "[yellow]busy[/yellow]" if r.get("busy") else "")
    console.print(timing)
    flags = env.get("cpu_flags") or {}
    if flags:
        console.print("CPU flags: " + ", ".join(f for f, on in flags.items() if on) or "none of " + ", ".join(flags))

    per_backend = Table(title="per backend: cold start, memory, accuracy"
                              + (f" on {s['test_images']} test images" if s.get("test_images") else ""))
    for col in ("backend", "providers", "load ms", "1st inference ms", "peak RSS MiB", "peak GPU MiB",
                "top-1", "agree w/ eager"):
        per_backend.add_column(col, justify="left" if col in ("backend", "providers") else "right")
    for name, info in doc["backends"].items():
        if info.get("status") != "ok":
            colour = "yellow" if info.get("status") == "skipped" else "red"
            per_backend.add_row(name, f"[{colour}]{info.get('status')}: {info.get('reason')}[/{colour}]")
            continue
        acc, agree = info.get("accuracy_top1"), info.get("top1_agreement_with_eager")
        per_backend.add_row(name, ", ".join(p.replace("ExecutionProvider", "") for p in info.get("providers") or []),
                            _fmt(info.get("load_ms"), 0), _fmt(info.get("first_inference_ms"), 1),
                            _fmt(info.get("peak_rss_mib"), 0), _fmt(info.get("peak_gpu_mem_mib"), 0),
                            f"{acc:.2%}" if acc is not None else "–", f"{agree:.2%}" if agree is not None else "–")
    console.print(per_backend)
    pre = doc.get("preprocessing")
    if pre:
        console.print(f"preprocessing (runtime, per image; medians of each part and of the whole): decode"
                      f" {pre['decode_ms_p50']:.2f} ms, resize/normalize {pre['resize_normalize_ms_p50']:.2f} ms,"
                      f" whole {pre['preprocess_ms_p50']:.2f} ms")
    e2e = doc.get("end_to_end")
    if e2e:
        console.print(f"end to end (runtime.Predictor.predict from a file, {'/'.join(e2e['providers'][:1])}): "
                      f"p50 {e2e['latency_ms_p50']:.2f} ms, p99 {e2e['latency_ms_p99']:.2f} ms")
    f2k = doc.get("files_to_topk")
    if f2k:
        console.print(f"files→top-k (Predictor.predict_batch, {f2k['images']} files, batch {f2k['batch_size']}):"
                      f" serial {f2k['serial_img_per_s']:.1f} img/s, {f2k['decode_threads']} decode threads"
                      f" {f2k['pipelined_img_per_s']:.1f} img/s ({f2k['speedup']:.2f}x); bound"
                      f" {f2k['bound_img_per_s']:.1f} img/s = {f2k['cores']} cores / ({f2k['preprocess_ms']:.2f} +"
                      f" {f2k['inference_ms_per_image']:.2f} ms, one thread each); model only"
                      f" {f2k['model_only_img_per_s']:.1f} img/s")
    big = doc.get("large_photos")
    if big:
        console.print(f"large photos ({big['images']} x {big['megapixels']:.1f} MP JPEG, Predictor.predict):"
                      f" exact p50 {big['exact']['latency_ms_p50']:.1f} ms, draft p50 {big['draft']['latency_ms_p50']:.1f} ms"
                      f" ({big['draft_over_exact_p50']:.2f}x); top-1 agreement {big['top1_agreement']:.2%}")


def load_bench_json(path: str | os.PathLike) -> dict:
    """Read a bench JSON file; ``UsageError`` naming the file if unreadable or of another schema."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: cannot read bench JSON ({err})") from err
    if doc.get("schema") != SCHEMA or doc.get("schema_version") != SCHEMA_VERSION:
        raise UsageError(f"{path}: not an edgeclf bench result (schema {SCHEMA!r} v{SCHEMA_VERSION})")
    return doc


def compare(a: dict, b: dict) -> list[dict]:
    """Rows present in both runs, keyed by (backend, batch size), with B/A ratios.

    ``p50_ratio`` = B p50 / A p50 (< 1: B is faster); ``throughput_ratio`` = B img/s / A img/s.
    """
    index = {(r["backend"], r["batch_size"]): r for r in a["rows"]}
    out = []
    for r in b["rows"]:
        key = (r["backend"], r["batch_size"])
        if key in index:
            ra = index[key]
            out.append({"backend": key[0], "batch_size": key[1],
                        "a_latency_ms_p50": ra["latency_ms_p50"], "b_latency_ms_p50": r["latency_ms_p50"],
                        "p50_ratio": r["latency_ms_p50"] / ra["latency_ms_p50"],
                        "a_throughput_img_per_s": ra["throughput_img_per_s"],
                        "b_throughput_img_per_s": r["throughput_img_per_s"],
                        "throughput_ratio": r["throughput_img_per_s"] / ra["throughput_img_per_s"]})
    return out


#: Settings and environment facts that make two bench runs incomparable when they differ.
COMPARED_FACTS = (("settings", "threads"), ("settings", "warmup"), ("settings", "iters"), ("settings", "seconds"),
                  ("environment", "cpu_model"), ("environment", "cpu_physical_cores"), ("artifact", "arch"))


def compare_notes(a: dict, b: dict) -> list[str]:
    """Human-readable warnings: settings/environment that differ between runs A and B, and rows
    (backend, batch size) found in only one of them."""
    notes = []
    for section, key in COMPARED_FACTS:
        va, vb = a.get(section, {}).get(key), b.get(section, {}).get(key)
        if va != vb:
            notes.append(f"{section}.{key} differs: A {va!r}, B {vb!r}")
    va, vb = a.get("environment", {}).get("versions"), b.get("environment", {}).get("versions")
    if va and vb:
        notes += [f"{k} version differs: A {va.get(k)}, B {vb.get(k)}" for k in sorted(set(va) | set(vb))
                  if va.get(k) != vb.get(k)]
    ka = {(r["backend"], r["batch_size"]) for r in a["rows"]}
    kb = {(r["backend"], r["batch_size"]) for r in b["rows"]}
    notes += [f"only in A: {n} batch {bs}" for n, bs in sorted(ka - kb)]
    notes += [f"only in B: {n} batch {bs}" for n, bs in sorted(kb - ka)]
    return notes


def print_compare(rows: list[dict], a_name: str, b_name: str, console=None, notes=()) -> None:
    from rich.table import Table

    console = console or make_console()
    table = Table(title=f"A = {a_name}   B = {b_name}   (ratio B/A)")
    for col in ("backend", "batch", "A p50 ms", "B p50 ms", "p50 B/A", "A img/s", "B img/s", "img/s B/A"):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for r in rows:
        table.add_row(r["backend"], str(r["batch_size"]), _fmt(r["a_latency_ms_p50"]), _fmt(r["b_latency_ms_p50"]),
                      f"{r['p50_ratio']:.2f}x", _fmt(r["a_throughput_img_per_s"], 1),
                      _fmt(r["b_throughput_img_per_s"], 1), f"{r['throughput_ratio']:.2f}x")
    console.print(table)
    for note in notes:
        console.print(f"[yellow]note: {note}[/yellow]")
