"""`edgeclf evaluate` — metrics of a checkpoint on a split subset (thin layer over
:func:`train.evaluate.evaluate_checkpoint`)."""

from __future__ import annotations

HELP = "top-1/top-3, per-class precision/recall/F1 and confusion matrix of a checkpoint"
DESCRIPTION = """\
Evaluate a training checkpoint on a subset (default: test) of a split manifest: top-1 and top-3
accuracy, per-class precision/recall/F1 and support, the confusion matrix (rows = true class),
and the misclassified files with their top-3. Prints tables (stdout) and writes JSON (default
RUN_DIR/eval_<subset>.json beside the checkpoint) and, beside the JSON, the confusion matrix as
confusion_matrix.png (counts) and confusion_matrix_normalized.png (for --subset val/train:
confusion_matrix_<subset>*.png); progress goes to stderr.

example:
  edgeclf evaluate runs/eff/best.pt --split split.json
"""

#: Misclassified files shown on screen (the JSON lists all of them).
SHOWN_MISCLASSIFIED = 20


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", metavar="RUN_DIR/best.pt", help="checkpoint written by edgeclf train")
    parser.add_argument("--split", required=True, metavar="SPLIT.json", help="split manifest")
    parser.add_argument("--subset", default="test", choices=("train", "val", "test"), help="default: test")
    parser.add_argument("--json", dest="json_out", metavar="OUT.json", default=None,
                        help="report file (default: RUN_DIR/eval_<subset>.json)")
    from ._common import add_device, add_quiet

    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="default: %(default)s")
    add_device(parser)
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="images folder, if moved since the split was written")
    add_quiet(parser)
    parser.add_argument("--on-changed", choices=("error", "exclude"), default="error",
                        help="a file whose bytes differ from the split's sha256: error (default: refuse, naming"
                             " it) or exclude (verify all first, score the others, list them)")


def render(report: dict) -> None:
    """Rich tables: summary, per-class metrics, confusion matrix, first misclassified files."""
    from rich.console import Console
    from rich.table import Table

    from edgeclf.runtime.files import display_name

    console = Console(highlight=False)
    names = report["class_names"]
    console.print(
        f"[bold]{report['subset']}[/]: {report['num_images']} images · top-1 {report['top1']:.2%}"
        f" · top-3 {report['top3']:.2%} · macro F1 {report['macro_f1']:.4f}"
        + ("" if report["split_matches_checkpoint"] else " · [yellow]split differs from the training split[/]")
    )
    per = Table(title="per class")
    for col in ("class", "precision", "recall", "F1", "support"):
        per.add_column(col, justify="left" if col == "class" else "right")
    for name in names:
        m = report["per_class"][name]
        per.add_row(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    console.print(per)
    conf = Table(title="confusion matrix (rows: true class, columns: predicted class #)")
    conf.add_column("# true")
    for j in range(len(names)):
        conf.add_column(str(j), justify="right")
    for j, (name, row) in enumerate(zip(names, report["confusion"])):
        conf.add_row(f"{j} {name}", *[str(v) if v else "·" for v in row])
    console.print(conf)
    wrong = report["misclassified"]
    if wrong:
        console.print(f"misclassified: {len(wrong)}" + (f" (first {SHOWN_MISCLASSIFIED})" if len(wrong) > SHOWN_MISCLASSIFIED else ""))
        for item in wrong[:SHOWN_MISCLASSIFIED]:
            top = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in item["top3"])
            console.print(f"  {display_name(item['path'])}  true {item['true']} → {top}", markup=False)
    for item in report.get("excluded", []):
        console.print(f"excluded (--on-changed exclude): {display_name(item['path'])}: {item['reason']}"
                      f" ({item['detail']})", markup=False)


def run(args) -> int:
    import sys
    from pathlib import Path

    from edgeclf.progress import for_cli
    from edgeclf.runtime.files import display_name, utf8_stdio
    from edgeclf.train.evaluate import evaluate_checkpoint

    utf8_stdio()
    json_out = args.json_out or Path(args.checkpoint).resolve().parent / f"eval_{args.subset}.json"
    progress = for_cli(args.quiet, prefix="edgeclf evaluate: ")
    try:
        report = evaluate_checkpoint(args.checkpoint, args.split, subset=args.subset, json_out=json_out,
                                     batch_size=args.batch_size, device=args.device, data_root=args.data_root,
                                     on_changed=args.on_changed, progress=progress)
    finally:
        progress.close()
    render(report)
    if not report["split_matches_checkpoint"]:
        print(f"edgeclf evaluate: warning: {display_name(args.split)} is not the split this model was trained on;"
              " its test images may include the model's training images, so the scores may be inflated",
              file=sys.stderr)
    progress.log(f"wrote {display_name(json_out)}")
    from edgeclf.train.plots import write_evaluation_figures

    stem = "confusion_matrix" if args.subset == "test" else f"confusion_matrix_{args.subset}"
    for fig in write_evaluation_figures(report, Path(json_out).parent, stem=stem):
        progress.log(f"wrote {display_name(fig.path)}")
    return 0
