"""Bench results on screen (rich tables), as JSON and CSV, and two runs compared side by side."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from edgeclf.runtime.errors import UsageError
from edgeclf.runtime.files import atomic_write_text

from . import document

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
    """Check the bench document against :class:`bench.document.BenchDocument` (no undeclared keys),
    then write it as indented JSON (atomically).

    Raises:
        FormatError: the document does not match the declaration (a bug in the writer).
        UsageError: ``path`` cannot be written.
    """
    document.parse_bench_document(doc, f"{path} (being written)", strict=True)
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


def _ms(v) -> str:
    """A latency or rate with 3–4 significant digits for the tables (JSON/CSV keep full floats)."""
    if v is None:
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def settings_line(doc: dict) -> str:
    """``arch · CPU model · N CPU threads · warmup W · I iters per row`` (printed above the tables,
    so that no table title has to wrap)."""
    s, env = doc["settings"], doc["environment"]
    return (f"{doc['artifact'].get('arch')} · {env.get('cpu_model')} · {s['threads']} CPU threads · warmup"
            f" {s['warmup']} · " + (f"{s['seconds']} s" if s.get("seconds") else f"{s['iters']} iters") + " per row")


def print_report(doc: dict, console=None) -> None:
    """Two tables — latency/throughput per (backend, batch size), then cold start, memory and
    accuracy per backend — plus preprocessing and end-to-end lines.

    Laid out for 80–160 columns: short titles, numbers right-aligned with the unit in the header,
    and a skipped or failed backend shows a short reason in its row
    (:func:`bench.runner.short_reason`); its full reason follows the tables once (and is in the JSON).
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from .runner import short_reason

    console = console or make_console()
    s = doc["settings"]
    console.print(Text(f"edgeclf bench: {settings_line(doc)}"), soft_wrap=True)

    def table(title: str, columns: tuple[str, ...], left: tuple[str, ...]) -> Table:
        t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title_justify="left")
        for col in columns:  # numbers never wrap or get cut: the text columns give way first
            t.add_column(col, justify="left" if col in left else "right", no_wrap=col not in ("providers",))
        return t

    timing = table("latency and throughput per batch",
                   ("backend", "batch", "p50 ms", "p90 ms", "p99 ms", "mean ms", "ms/img", "img/s", "note"),
                   ("backend", "note"))
    for r in doc["rows"]:  # note "busy": p99/p50 above the threshold, the machine was not quiet
        timing.add_row(r["backend"], str(r["batch_size"]), *(_ms(r[k]) for k in (
            "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_mean", "latency_ms_per_image_p50")),
            _ms(r["throughput_img_per_s"]), "busy" if r.get("busy") else "")
    console.print(timing)
    for name, q in {r["backend"]: r["quantization"] for r in doc["rows"] if r.get("quantization")}.items():
        console.print(Text(f"{name}: {q['activation_type']} activations, {q['weight_type']} weights"
                           f" (int8 target {q['target']})"), soft_wrap=True)
    flags = doc["environment"].get("cpu_flags") or {}
    if flags:
        on = [f for f, present in flags.items() if present]
        console.print(Text("CPU flags: " + (", ".join(on) if on else "none of " + ", ".join(flags))), soft_wrap=True)

    per_backend = table("per backend" + (f" (accuracy on {s['test_images']} test images)" if s.get("test_images") else ""),
                        ("backend", "providers", "load ms", "1st ms", "RSS MiB", "GPU MiB", "top-1", "agree"),
                        ("backend", "providers"))
    not_ok = []
    for name, info in doc["backends"].items():
        if info.get("status") != "ok":
            colour = "yellow" if info.get("status") == "skipped" else "red"
            per_backend.add_row(name, Text(f"{info.get('status')}: {short_reason(info.get('reason'))}", style=colour))
            not_ok.append((name, info))
            continue
        acc, agree = info.get("accuracy_top1"), info.get("top1_agreement_with_eager")
        per_backend.add_row(name, ", ".join(p.replace("ExecutionProvider", "") for p in info.get("providers") or []),
                            _fmt(info.get("load_ms"), 0), _fmt(info.get("first_inference_ms"), 1),
                            _fmt(info.get("peak_rss_mib"), 0), _fmt(info.get("peak_gpu_mem_mib"), 0),
                            f"{acc:.1%}" if acc is not None else "–", f"{agree:.1%}" if agree is not None else "–")
    console.print(per_backend)
    console.print(Text("1st ms: first inference after load; RSS/GPU MiB: peak memory; agree: top-1 agreement"
                       " with eager"), soft_wrap=True, style="dim")
    for name, info in not_ok:
        console.print(Text(f"{name} {info.get('status')}: {info.get('reason')}"), soft_wrap=True)
    pre = doc.get("preprocessing")
    if pre:
        console.print(f"preprocessing (runtime, per image; medians of each part and of the whole): decode"
                      f" {pre['decode_ms_p50']:.2f} ms, resize/normalize {pre['resize_normalize_ms_p50']:.2f} ms,"
                      f" whole {pre['preprocess_ms_p50']:.2f} ms", soft_wrap=True)
    e2e = doc.get("end_to_end")
    if e2e:
        console.print(f"end to end (runtime.Predictor.predict from a file, {'/'.join(e2e['providers'][:1])}): "
                      f"p50 {e2e['latency_ms_p50']:.2f} ms, p99 {e2e['latency_ms_p99']:.2f} ms", soft_wrap=True)
    f2k = doc.get("files_to_topk")
    if f2k:
        console.print(f"files→top-k (Predictor.predict_batch, {f2k['images']} files, batch {f2k['batch_size']}):"
                      f" serial {f2k['serial_img_per_s']:.1f} img/s, {f2k['decode_threads']} decode threads"
                      f" {f2k['pipelined_img_per_s']:.1f} img/s ({f2k['speedup']:.2f}x); bound"
                      f" {f2k['bound_img_per_s']:.1f} img/s = {f2k['cores']} cores / ({f2k['preprocess_ms']:.2f} +"
                      f" {f2k['inference_ms_per_image']:.2f} ms, one thread each); model only"
                      f" {f2k['model_only_img_per_s']:.1f} img/s", soft_wrap=True)
    big = doc.get("large_photos")
    if big:
        console.print(f"large photos ({big['images']} x {big['megapixels']:.1f} MP JPEG, Predictor.predict):"
                      f" exact p50 {big['exact']['latency_ms_p50']:.1f} ms, draft p50 {big['draft']['latency_ms_p50']:.1f} ms"
                      f" ({big['draft_over_exact_p50']:.2f}x); top-1 agreement {big['top1_agreement']:.2%}", soft_wrap=True)


def load_bench_json(path: str | os.PathLike) -> dict:
    """Read a ``bench.json`` validated by :func:`bench.document.load_bench_json`, as the plain dict
    :func:`compare` and :func:`print_report` read.

    Raises:
        FormatError: unreadable, truncated or malformed file, another schema or schema version, a
            missing or mistyped field; the one-line message names the file and the field.
    """
    return document.load_bench_json(path).to_dict()


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
                  ("settings", "device"), ("environment", "cpu_model"), ("environment", "cpu_physical_cores"),
                  ("artifact", "arch"), ("artifact", "num_classes"), ("artifact", "dir"), ("artifact", "checkpoint"))


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
    """The rows of :func:`compare` as a table (p50 and img/s of A and B, their ratios), then ``notes``."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console = console or make_console()
    console.print(Text(f"A = {a_name}\nB = {b_name}"), soft_wrap=True)
    table = Table(title="B compared with A (ratio B/A; < 1x: B is faster)", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True, title_justify="left")
    for col in ("backend", "batch", "A p50 ms", "B p50 ms", "p50 B/A", "A img/s", "B img/s", "img/s B/A"):
        table.add_column(col, justify="left" if col == "backend" else "right", no_wrap=True)
    for r in rows:
        table.add_row(r["backend"], str(r["batch_size"]), _ms(r["a_latency_ms_p50"]), _ms(r["b_latency_ms_p50"]),
                      f"{r['p50_ratio']:.2f}x", _ms(r["a_throughput_img_per_s"]),
                      _ms(r["b_throughput_img_per_s"]), f"{r['throughput_ratio']:.2f}x")
    console.print(table)
    for note in notes:
        console.print(Text(f"note: {note}", style="yellow"), soft_wrap=True)
