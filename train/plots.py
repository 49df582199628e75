"""Figures of a training run: learning curves, confusion matrix, per-class precision/recall/F1.

Each function renders one PNG with matplotlib's Agg backend (imported inside the function, so
``import edgeclf.train`` stays light), writes it atomically and returns a :class:`SavedFigure`
whose ``width_px``/``height_px`` are the PNG's exact size (figure size x DPI; the layout engine
fits labels inside that canvas instead of cropping it). Colours are colour-blind safe: the
Okabe-Ito palette for lines and bars, ``cividis`` for matrices. Figures grow with the class count
so that up to 101 class names (Caltech 101) stay legible and uncut.

``edgeclf evaluate`` writes :func:`write_evaluation_figures`' two confusion matrices beside its
JSON; ``edgeclf report`` uses all of them.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from edgeclf.runtime.files import atomic_write_bytes

#: Okabe & Ito (2008) colour-blind-safe palette, black left out (used for text and references).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#999999")
#: Pixels per inch of every PNG.
DPI = 110
#: Matrices with at most this many classes get their numbers printed in the cells.
ANNOTATE_MAX_CLASSES = 30


@dataclass(frozen=True)
class SavedFigure:
    """A PNG written by one of the plot functions.

    Attributes:
        path: the PNG file.
        title: the figure's title (also the ``alt`` text in the HTML report).
        width_px, height_px: the PNG's size in pixels.
        details: function-specific facts, e.g. ``tick_labels`` (class names shown on each axis).
    """

    path: Path
    title: str
    width_px: int
    height_px: int
    details: dict = field(default_factory=dict)


def new_figure(width_in: float, height_in: float, dpi: int = DPI):
    """A pyplot-free ``matplotlib.figure.Figure`` (Agg backend, constrained layout, white background).

    Args:
        width_in, height_in: size in inches; the PNG is ``round(size * dpi)`` pixels.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")
    fig.set_facecolor("white")
    return fig


def save_figure(fig, path: str | os.PathLike, title: str, **details) -> SavedFigure:
    """Render ``fig`` to PNG at its own size and DPI and write it atomically to ``path``."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, facecolor="white")
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # PNG IHDR
    return SavedFigure(path, title, width, height, details)


def plain(text) -> str:
    """``text`` as literal figure text: ``$`` escaped so matplotlib does not read it as math."""
    return str(text).replace("$", r"\$")


def unplain(text: str) -> str:
    """Inverse of :func:`plain` (the text as the reader sees it)."""
    return text.replace(r"\$", "$")


def _label_inches(labels: Sequence[str], fontsize: float) -> float:
    """Rough width in inches of the longest label at ``fontsize`` points."""
    longest = max((len(s) for s in labels), default=1)
    return longest * fontsize * 0.62 / 72


def training_curves(history: Sequence[dict], path: str | os.PathLike, *, best_epoch: int | None = None,
                    title: str = "Training curves") -> SavedFigure:
    """Train/val loss and top-1 accuracy per epoch, the best epoch marked.

    Args:
        history: rows of ``history.json`` (:data:`train.history.HISTORY_FIELDS`): ``epoch``,
            ``train_loss``, ``val_loss`` (mean cross-entropy per image), ``train_acc``,
            ``val_acc`` (fractions).
        path: PNG to write.
        best_epoch: the epoch ``best.pt`` holds (vertical line and markers); None: not marked.
    Returns:
        :class:`SavedFigure` (about 1100 x 440 px).
    Raises:
        ValueError: empty history or rows without those keys.
    """
    rows = [r for r in history if isinstance(r, dict)]
    keys = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc")
    if not rows or any(k not in r for r in rows for k in keys):
        raise ValueError(f"history needs rows with {', '.join(keys)}")
    epochs = [int(r["epoch"]) for r in rows]
    fig = new_figure(10, 4)
    ax_loss, ax_acc = fig.subplots(1, 2)
    c_train, c_val = OKABE_ITO[0], OKABE_ITO[1]
    marker = "o" if len(epochs) <= 40 else None
    for ax, key, scale, ylabel in ((ax_loss, "loss", 1.0, "cross-entropy loss (nats / image)"),
                                   (ax_acc, "acc", 100.0, "top-1 accuracy (%)")):
        ax.plot(epochs, [r[f"train_{key}"] * scale for r in rows], color=c_train, marker=marker, ms=3,
                label="train")
        ax.plot(epochs, [r[f"val_{key}"] * scale for r in rows], color=c_val, marker=marker, ms=3,
                linestyle="--", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if best_epoch is not None and best_epoch in epochs:
            best = rows[epochs.index(best_epoch)]
            ax.axvline(best_epoch, color="black", linewidth=0.8, linestyle=":")
            ax.plot([best_epoch], [best[f"val_{key}"] * scale], marker="*", ms=12, color="black",
                    linestyle="none", label=f"best epoch {best_epoch}")
    if all(r["train_loss"] > 0 and r["val_loss"] > 0 for r in rows) and \
            max(r["train_loss"] for r in rows) / min(min(r["train_loss"], r["val_loss"]) for r in rows) > 50:
        ax_loss.set_yscale("log")
        ax_loss.set_ylabel("cross-entropy loss (nats / image, log scale)")
    ax_loss.set_title("loss")
    ax_acc.set_title("top-1 accuracy")
    ax_acc.legend(loc="lower right", fontsize=8)
    ax_loss.legend(loc="upper right", fontsize=8)
    if len(epochs) <= 12:
        for ax in (ax_loss, ax_acc):
            ax.set_xticks(epochs)
    fig.suptitle(plain(title))
    return save_figure(fig, path, title)


def _matrix_fonts(n: int) -> tuple[float, float]:
    """(tick label, cell text) font sizes in points for an n-class matrix."""
    if n <= 12:
        return 9.0, 9.0
    if n <= 30:
        return 7.5, 6.0
    if n <= 60:
        return 6.0, 0.0
    return 5.5, 0.0


def confusion_matrix(confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: str | os.PathLike, *,
                     normalize: bool = False, title: str | None = None) -> SavedFigure:
    """Confusion matrix heat map, rows = true class, columns = predicted class, every class named.

    Args:
        confusion: (C, C) counts, row = true class (``evaluate``'s ``confusion``).
        class_names: the C names, in index order (any characters).
        path: PNG to write.
        normalize: colour and print each row divided by its total (recall on the diagonal);
            otherwise colour and print counts. Zero cells stay white.
    Returns:
        :class:`SavedFigure` with ``details["tick_labels"] = {"x": [...], "y": [...]}`` (the
        names drawn on each axis) and ``details["annotated"]`` (numbers printed in the cells:
        only up to :data:`ANNOTATE_MAX_CLASSES` classes). The figure grows with C: 101 classes
        give about 2,000 x 2,000 px.
    Raises:
        ValueError: the matrix is not C x C.
    """
    import numpy as np

    names = [str(s) for s in class_names]
    m = np.asarray(confusion, dtype=np.float64)
    n = len(names)
    if m.shape != (n, n) or n == 0:
        raise ValueError(f"confusion matrix of shape {m.shape} does not match {n} class names")
    rows = m.sum(axis=1, keepdims=True)
    values = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0) if normalize else m
    tick_fs, cell_fs = _matrix_fonts(n)
    cell_in = min(0.6, max(0.17, 7.0 / n))
    label_in = _label_inches(names, tick_fs) + 0.5
    side = n * cell_in
    fig = new_figure(side + label_in + 1.3, side + label_in + 0.8, dpi=DPI if n <= 40 else 100)
    ax = fig.add_subplot()
    import matplotlib

    cmap = matplotlib.colormaps["cividis_r"].with_extremes(bad="white")
    shown = np.ma.masked_where(m == 0, values)
    vmax = 1.0 if normalize else max(1.0, float(values.max()))
    im = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest", aspect="equal")
    ax.set_xticks(range(n), labels=[plain(x) for x in names], rotation=90, fontsize=tick_fs)
    ax.set_yticks(range(n), labels=[plain(x) for x in names], fontsize=tick_fs)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
    ax.grid(which="minor", color="#dddddd", linewidth=0.4)
    ax.tick_params(which="minor", length=0)
    annotated = bool(cell_fs) and n <= ANNOTATE_MAX_CLASSES
    if annotated:
        for i in range(n):
            for j in range(n):
                if m[i, j] == 0:
                    continue
                v = values[i, j]
                text = f"{v:.2f}" if normalize else f"{int(m[i, j])}"
                colour = "white" if v / vmax > 0.55 else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=cell_fs, color=colour)
    bar = fig.colorbar(im, ax=ax, shrink=0.6 if n > 20 else 0.8)
    bar.set_label("fraction of the true class's images" if normalize else "images")
    title = title or ("Confusion matrix, row-normalised (recall on the diagonal)" if normalize
                      else "Confusion matrix (image counts)")
    ax.set_title(plain(f"{title}\n{int(m.sum())} images, {n} classes"), fontsize=11)
    labels = {"x": [unplain(t.get_text()) for t in ax.get_xticklabels()],
              "y": [unplain(t.get_text()) for t in ax.get_yticklabels()]}
    return save_figure(fig, path, title, tick_labels=labels, annotated=annotated)


def per_class_metrics(per_class: dict[str, dict[str, Any]], class_names: Sequence[str], path: str | os.PathLike, *,
                      title: str = "Per-class precision, recall and F1") -> SavedFigure:
    """Horizontal grouped bars of precision, recall and F1 per class (0-1), support in the labels.

    Args:
        per_class: ``evaluate``'s ``per_class``: name → ``{"precision", "recall", "f1", "support"}``.
        class_names: order of the bars (top to bottom).
        path: PNG to write.
    Returns:
        :class:`SavedFigure` with ``details["tick_labels"]`` (one ``"name (n=support)"`` per class).
    Raises:
        ValueError: a class name missing from ``per_class``.
    """
    import numpy as np

    names = [str(s) for s in class_names]
    missing = [s for s in names if s not in per_class]
    if missing or not names:
        raise ValueError(f"per_class lacks {missing[:3] or 'every class'}")
    n = len(names)
    labels = [f"{s} (n={per_class[s].get('support', 0)})" for s in names]
    fs = 9.0 if n <= 20 else (7.0 if n <= 50 else 5.5)
    row_in = 0.36 if n <= 20 else (0.22 if n <= 50 else 0.16)
    fig = new_figure((4.5 if n <= 20 else 6.0) + _label_inches(labels, fs), n * row_in + 1.4,
                     dpi=DPI if n <= 50 else 100)
    ax = fig.add_subplot()
    y = np.arange(n)
    h = 0.27
    for k, (key, colour) in enumerate((("precision", OKABE_ITO[0]), ("recall", OKABE_ITO[1]), ("f1", OKABE_ITO[2]))):
        ax.barh(y + (k - 1) * h, [per_class[s][key] for s in names], height=h, color=colour,
                label={"f1": "F1"}.get(key, key))
    ax.set_yticks(y, labels=[plain(x) for x in labels], fontsize=fs)
    ax.set_ylim(n - 0.5, -0.5)  # first class on top, no empty band
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("score (0-1)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=3, fontsize=8, frameon=False)
    ax.set_title(plain(title), fontsize=11, pad=22)
    return save_figure(fig, path, title, tick_labels=[unplain(t.get_text()) for t in ax.get_yticklabels()])


def write_evaluation_figures(report: dict, out_dir: str | os.PathLike,
                             stem: str = "confusion_matrix") -> list[SavedFigure]:
    """``STEM.png`` (counts) and ``STEM_normalized.png`` (row-normalised) confusion matrices of an
    :func:`train.evaluate.evaluate_checkpoint` report, in ``out_dir``.

    Raises:
        ValueError: the report lacks ``confusion``/``class_names`` or they disagree.
    """
    out_dir = Path(out_dir)
    subset = report.get("subset", "test")
    suffix = f" — {subset} split, top-1 {report['top1']:.2%}" if "top1" in report else ""
    return [
        confusion_matrix(report["confusion"], report["class_names"], out_dir / f"{stem}.png",
                         title=f"Confusion matrix (image counts){suffix}"),
        confusion_matrix(report["confusion"], report["class_names"], out_dir / f"{stem}_normalized.png",
                         normalize=True, title=f"Confusion matrix, row-normalised{suffix}"),
    ]
