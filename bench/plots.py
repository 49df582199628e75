"""Figures of the export gates (``parity.json``) and of bench runs (``edgeclf.bench`` v1 JSON).

Same conventions as :mod:`edgeclf.train.plots` (Agg backend imported lazily, Okabe-Ito colours,
units on every axis, atomic PNG writes, :class:`~edgeclf.train.plots.SavedFigure` returned).
Several bench runs (e.g. two machines) are drawn side by side: one panel per run for latency,
one line style per run for throughput, one bar per backend and run for cold start and memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from edgeclf.train.plots import OKABE_ITO, SavedFigure, new_figure, plain, save_figure

#: Per-image |Δ probability| below this is drawn at this value on the log axis (exact agreement).
PROB_DIFF_FLOOR = 1e-10
#: Line styles / markers that tell bench runs apart.
RUN_STYLES = ("-", "--", ":", "-.")
BACKEND_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _ok_backends(doc: dict) -> list[str]:
    """Backends of a bench document that ran (status ok) and have timing rows, in run order."""
    timed = {r["backend"] for r in doc.get("rows", [])}
    return [n for n, info in doc.get("backends", {}).items() if info.get("status") == "ok" and n in timed]


def parity(formats: dict[str, dict], path: str | os.PathLike, *, tolerance: float | None = None,
           title: str = "Export parity against the trained model") -> SavedFigure:
    """Distribution of per-image max |Δ probability| per exported format (log scale), and the
    test top-1 accuracy of the reduced-precision formats next to fp32.

    Args:
        formats: ``parity.json``'s ``formats``: name → gate row. fp32 rows (``gate == "parity"``)
            are compared with the eager model, fp16/int8 rows (``gate == "accuracy"``) with the
            fp32 ONNX model. Rows with ``max_abs_prob_diff_per_image`` are drawn as points with their range, quartiles and median;
            older rows without it as their max (triangle) and mean (dot).
        tolerance: the fp32 gate's max |Δ probability| (dotted line), if known.
    Returns:
        :class:`SavedFigure` with ``details["formats"]`` (the names on the y axis, top to bottom)
        and ``details["accuracy_formats"]``.
    Raises:
        ValueError: ``formats`` is empty.
    """
    import numpy as np

    names = list(formats)
    if not names:
        raise ValueError("parity report lists no formats")
    acc_rows = {n: r for n, r in formats.items() if r.get("gate") == "accuracy" and "top1_accuracy" in r}
    fig = new_figure(11 if acc_rows else 8, 2.0 + 0.55 * len(names))
    if acc_rows:
        ax, ax_acc = fig.subplots(1, 2, width_ratios=(2.2, 1))
    else:
        ax, ax_acc = fig.add_subplot(), None
    rng = np.random.default_rng(0)
    ylabels = []
    legend_extra: dict[str, str] = {}
    for i, name in enumerate(names):
        row = formats[name]
        ref = "fp32 ONNX" if row.get("gate") == "accuracy" else "eager"
        ylabels.append(plain(f"{name}\n(vs {ref}, {row.get('images', '?')} images)"))
        colour = OKABE_ITO[1] if row.get("gate") == "accuracy" else OKABE_ITO[0]
        per = row.get("max_abs_prob_diff_per_image")
        if per:
            v = np.maximum(np.asarray(per, dtype=np.float64), PROB_DIFF_FLOOR)
            q25, q50, q75 = np.quantile(v, [0.25, 0.5, 0.75])
            ax.hlines(i, v.min(), v.max(), color=colour, linewidth=1)
            ax.hlines(i, q25, q75, color=colour, linewidth=7, alpha=0.45)
            ax.plot([q50], [i], marker="|", markersize=16, markeredgewidth=2, color="black")
            ax.scatter(v, i + rng.uniform(-0.18, 0.18, len(v)), s=8, color=colour, alpha=0.5, linewidths=0)
        else:
            for key, marker in (("max_abs_prob_diff", "^"), ("mean_abs_prob_diff", "o")):
                if isinstance(row.get(key), (int, float)) and np.isfinite(row[key]):
                    ax.scatter([max(row[key], PROB_DIFF_FLOOR)], [i], marker=marker, s=40, color=colour)
                    legend_extra[marker] = f"{key.split('_')[0]} over images (no per-image data in parity.json)"
    if tolerance:
        ax.axvline(tolerance, color="black", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks(range(len(names)), labels=ylabels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"per-image max |Δ softmax probability| (log scale; values ≤ {PROB_DIFF_FLOOR:g} drawn at {PROB_DIFF_FLOOR:g})")
    ax.grid(True, axis="x", which="major", alpha=0.3)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=OKABE_ITO[0], label="fp32 vs eager"), Patch(color=OKABE_ITO[1], label="reduced precision vs fp32"),
               Line2D([], [], color="#555555", marker="|", markersize=10, markeredgecolor="black", linewidth=4,
                      label="images: range, quartiles, median")]
    handles += [Line2D([], [], color="#555555", marker=m, linestyle="none", label=t) for m, t in legend_extra.items()]
    if tolerance:
        handles.append(Line2D([], [], color="black", linestyle=":", label=f"fp32 gate {tolerance:g}"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=7, frameon=False)
    ax.set_title("probability drift per image", fontsize=10)
    if ax_acc is not None:
        first = next(iter(acc_rows.values()))
        bars = [("fp32 ONNX", first["fp32_top1_accuracy"], OKABE_ITO[0])]
        bars += [(n, r["top1_accuracy"], OKABE_ITO[1]) for n, r in acc_rows.items()]
        y = np.arange(len(bars))
        ax_acc.barh(y, [b[1] for b in bars], height=0.55, color=[b[2] for b in bars])
        for k, (_, value, _) in enumerate(bars):
            ax_acc.text(min(value, 100) - 1, k, f"{value:.2f} %", ha="right", va="center", fontsize=8, color="white")
        ax_acc.set_yticks(y, labels=[plain(b[0]) for b in bars], fontsize=8)
        ax_acc.invert_yaxis()
        lo = min(b[1] for b in bars)
        ax_acc.set_xlim(max(0.0, min(lo - 5, 90.0)), 100.0)
        ax_acc.set_xlabel("test top-1 accuracy (%)")
        ax_acc.set_title(f"accuracy on {first.get('images', '?')} test images", fontsize=10)
        ax_acc.grid(True, axis="x", alpha=0.3)
    fig.suptitle(plain(title))
    return save_figure(fig, path, title, formats=names, accuracy_formats=list(acc_rows))


def latency(runs: Sequence[tuple[str, dict]], path: str | os.PathLike, *,
            title: str = "Latency per batch: p50 bars, p90 and p99 whiskers") -> SavedFigure:
    """p50 latency per backend x batch size as bars, p90 (tick) and p99 (cap) as whiskers, log
    scale; one panel per bench run, sharing the y axis.

    Args:
        runs: (label, bench document) pairs; only backends with status ok and rows are drawn.
    Returns:
        :class:`SavedFigure` with ``details["panels"]``: per run, the backends drawn.
    Raises:
        ValueError: no run has a timed backend.
    """
    runs = [(label, doc) for label, doc in runs if _ok_backends(doc)]
    if not runs:
        raise ValueError("no bench run has timed backends")
    all_bs = sorted({r["batch_size"] for _, doc in runs for r in doc["rows"]})
    colours = {bs: OKABE_ITO[k % len(OKABE_ITO)] for k, bs in enumerate(all_bs)}
    widths = [max(2.5, 0.9 * len(_ok_backends(doc)) * max(1, len(all_bs)) / 2 + 1) for _, doc in runs]
    fig = new_figure(min(30, sum(widths) + 1.5), 5)
    axes = fig.subplots(1, len(runs), sharey=True, width_ratios=widths, squeeze=False)[0]
    panels = {}
    width = 0.8 / max(1, len(all_bs))
    for ax, (label, doc) in zip(axes, runs):
        names = _ok_backends(doc)
        panels[label] = names
        index = {(r["backend"], r["batch_size"]): r for r in doc["rows"]}
        for k, bs in enumerate(all_bs):
            xs, p50, p90, p99 = [], [], [], []
            for i, name in enumerate(names):
                r = index.get((name, bs))
                if r is None:
                    continue
                xs.append(i + (k - (len(all_bs) - 1) / 2) * width)
                p50.append(r["latency_ms_p50"])
                p90.append(r.get("latency_ms_p90", r["latency_ms_p50"]))
                p99.append(r.get("latency_ms_p99", r["latency_ms_p50"]))
            if not xs:
                continue
            ax.bar(xs, p50, width=width * 0.92, color=colours[bs], label=f"batch {bs}")
            ax.vlines(xs, p50, p99, color="black", linewidth=0.8)
            ax.scatter(xs, p90, marker="_", s=60, color="black", linewidths=1.5)
            ax.scatter(xs, p99, marker="_", s=30, color="black", linewidths=0.8)
        ax.set_xticks(range(len(names)), labels=[plain(x) for x in names], rotation=30, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.grid(True, axis="y", which="both", alpha=0.25)
        env = doc.get("environment", {})
        threads = doc.get("settings", {}).get("threads")
        ax.set_title(plain(f"{label}\n{env.get('cpu_model') or ''}" + (f" · {threads} threads" if threads else "")),
                     fontsize=8)
    axes[0].set_ylabel("latency per batch (ms, log scale)")
    from matplotlib.lines import Line2D

    handles, labels = axes[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for ax in axes[1:]:
        h, lab = ax.get_legend_handles_labels()
        seen.update({k: v for k, v in zip(lab, h) if k not in seen})
    extra = [Line2D([], [], color="black", marker="_", linestyle="-", markersize=10, label="whisker: tick p90, end p99")]
    fig.legend(list(seen.values()) + extra, list(seen) + [extra[0].get_label()], loc="outside lower center",
               ncols=min(6, len(seen) + 1), fontsize=8, frameon=False)
    fig.suptitle(plain(title))
    return save_figure(fig, path, title, panels=panels)


def throughput(runs: Sequence[tuple[str, dict]], path: str | os.PathLike, *,
               title: str = "Throughput against batch size") -> SavedFigure:
    """Images per second (from the median latency) against batch size, one line per backend
    (colour + marker) and bench run (line style).

    Returns:
        :class:`SavedFigure` with ``details["lines"]`` (the legend labels).
    Raises:
        ValueError: no run has a timed backend.
    """
    runs = [(label, doc) for label, doc in runs if _ok_backends(doc)]
    if not runs:
        raise ValueError("no bench run has timed backends")
    backends = list(dict.fromkeys(n for _, doc in runs for n in _ok_backends(doc)))
    fig = new_figure(8, 4.8)
    ax = fig.add_subplot()
    lines = []
    all_bs = set()
    for r_i, (label, doc) in enumerate(runs):
        for name in _ok_backends(doc):
            pts = sorted((r["batch_size"], r["throughput_img_per_s"]) for r in doc["rows"] if r["backend"] == name)
            all_bs.update(bs for bs, _ in pts)
            b_i = backends.index(name)
            text = name if len(runs) == 1 else f"{name} — {label}"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=OKABE_ITO[b_i % len(OKABE_ITO)],
                    marker=BACKEND_MARKERS[b_i % len(BACKEND_MARKERS)], linestyle=RUN_STYLES[r_i % len(RUN_STYLES)],
                    label=plain(text))
            lines.append(text)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(all_bs), labels=[str(b) for b in sorted(all_bs)])
    ax.minorticks_off()
    ax.set_xlabel("batch size (images)")
    ax.set_ylabel("throughput (images/s)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(plain(title))
    return save_figure(fig, path, title, lines=lines)


def cold_start_memory(runs: Sequence[tuple[str, dict]], path: str | os.PathLike, *,
                      title: str = "Cold start and peak memory per backend") -> SavedFigure:
    """Per backend (and run): model load + first inference time (stacked bars, ms) and peak
    resident memory (MiB; peak GPU memory beside it where measured).

    Returns:
        :class:`SavedFigure` with ``details["rows"]`` (the bar labels, top to bottom).
    Raises:
        ValueError: no backend ran.
    """
    import numpy as np

    bars = []
    for label, doc in runs:
        for name, info in doc.get("backends", {}).items():
            if info.get("status") == "ok":
                bars.append((name if len(runs) == 1 else f"{name} — {label}", info))
    if not bars:
        raise ValueError("no bench run has a backend that ran")
    fig = new_figure(11, 1.5 + 0.38 * len(bars))
    ax_t, ax_m = fig.subplots(1, 2)
    y = np.arange(len(bars))
    load = np.array([b[1].get("load_ms") or 0.0 for b in bars])
    first = np.array([b[1].get("first_inference_ms") or 0.0 for b in bars])
    ax_t.barh(y, load, color=OKABE_ITO[0], label="load model")
    ax_t.barh(y, first, left=load, color=OKABE_ITO[1], label="first inference")
    for k in range(len(bars)):
        ax_t.text(load[k] + first[k], k, f" {load[k] + first[k]:,.0f}", va="center", fontsize=7)
    ax_t.set_xlabel("cold start (ms)")
    ax_t.set_xlim(0, max(1.0, float((load + first).max())) * 1.18)
    rss = np.array([b[1].get("peak_rss_mib") or 0.0 for b in bars])
    gpu = [b[1].get("peak_gpu_mem_mib") for b in bars]
    has_gpu = any(g for g in gpu)
    h = 0.4 if has_gpu else 0.8
    ax_m.barh(y - (h / 2 if has_gpu else 0), rss, height=h, color=OKABE_ITO[2], label="peak RSS (host)")
    if has_gpu:
        ax_m.barh(y + h / 2, [g or 0.0 for g in gpu], height=h, color=OKABE_ITO[4], label="peak GPU memory")
    for k in range(len(bars)):
        ax_m.text(rss[k], k - (h / 2 if has_gpu else 0), f" {rss[k]:,.0f}", va="center", fontsize=7)
    ax_m.set_xlabel("memory (MiB)")
    ax_m.set_xlim(0, max(1.0, float(max(rss.max(), max((g or 0) for g in gpu)))) * 1.15)
    for ax in (ax_t, ax_m):
        ax.set_yticks(y, labels=[plain(b[0]) for b in bars], fontsize=8)
        ax.invert_yaxis()
        ax.grid(True, axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    ax_m.set_yticklabels([])
    fig.suptitle(plain(title))
    return save_figure(fig, path, title, rows=[b[0] for b in bars])


def write_bench_figures(runs: Sequence[tuple[str, dict]], out_dir: str | os.PathLike) -> list[SavedFigure]:
    """``bench_latency.png``, ``bench_throughput.png`` and ``bench_cold_start_memory.png`` in ``out_dir``
    (an empty list when no backend was timed, e.g. every backend skipped)."""
    out_dir = Path(out_dir)
    if not any(_ok_backends(doc) for _, doc in runs):
        return []
    return [latency(runs, out_dir / "bench_latency.png"),
            throughput(runs, out_dir / "bench_throughput.png"),
            cold_start_memory(runs, out_dir / "bench_cold_start_memory.png")]
