"""`edgeclf report` — figures and one self-contained HTML page from a run, its artifact and bench
runs (thin layer over :func:`edgeclf.bench.model_report.build_report`)."""

from __future__ import annotations

HELP = "figures and an HTML report (curves, confusion matrix, parity, bench, model card) of a run"
DESCRIPTION = """\
Draw every stage's numbers as PNG figures and write one self-contained OUT_DIR/index.html
(figures embedded, no network, no JavaScript) with the same numbers as text tables and a model
card: training curves (RUN_DIR/history.json), confusion matrices and per-class P/R/F1
(RUN_DIR/eval_test.json of `edgeclf evaluate`), export parity (ARTIFACT_DIR/parity.json) and
latency/throughput/cold start/memory (bench JSON files, several side by side). Inputs left out
give a report without their sections, which the page lists.

example:
  edgeclf report runs/eff --artifact artifacts/eff --bench bench-eff.json --out report/
"""


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="training run folder (edgeclf train --out)")
    parser.add_argument("--artifact", metavar="ARTIFACT_DIR", default=None, help="export directory (edgeclf export --out)")
    parser.add_argument("--bench", metavar="BENCH.json", nargs="+", default=[],
                        help="one or more edgeclf bench --json files, drawn side by side")
    parser.add_argument("--eval", dest="eval_json", metavar="EVAL.json", default=None,
                        help="edgeclf evaluate JSON (default: RUN_DIR/eval_test.json if present)")
    parser.add_argument("--split", metavar="SPLIT.json", default=None,
                        help="split manifest for the data facts (default: the one recorded in the checkpoint)")
    parser.add_argument("--out", required=True, metavar="REPORT_DIR", help="folder for index.html and the PNGs")


def run(args) -> int:
    from edgeclf.bench.model_report import build_report

    result = build_report(args.run_dir, args.out, artifact_dir=args.artifact, bench_paths=args.bench,
                          eval_json=args.eval_json, split=args.split)
    for fig in result.figures:
        print(f"wrote {fig.path} ({fig.width_px} x {fig.height_px} px)")
    for section, why in result.absent.items():
        print(f"not in the report: {section} ({why})")
    print(f"wrote {result.index_html}")
    return 0
