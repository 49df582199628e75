"""`edgeclf bench compare` — two bench JSON files side by side, with B/A ratios."""

from __future__ import annotations

HELP = "compare two bench results (p50 latency and throughput, ratios B/A)"
DESCRIPTION = """\
Compare two result files written by `edgeclf bench --json`: for every (backend, batch size) found
in both, p50 latency and throughput of A and B and their ratios B/A (< 1x p50: B is faster).
Settings or versions that differ between the runs (threads, iterations, CPU, onnxruntime, ...) and
rows found in only one run are listed as notes under the table.

example:
  edgeclf bench ARTIFACT_DIR --threads 1 --json a.json
  edgeclf bench ARTIFACT_DIR --threads 2 --json b.json
  edgeclf bench compare a.json b.json
"""


def add_arguments(parser) -> None:
    parser.add_argument("a", metavar="A.json", help="the reference run (edgeclf bench --json)")
    parser.add_argument("b", metavar="B.json", help="the run compared with it")


def run(args) -> int:
    from edgeclf.bench import report

    a, b = report.load_bench_json(args.a), report.load_bench_json(args.b)
    report.print_compare(report.compare(a, b), args.a, args.b, notes=report.compare_notes(a, b))
    return 0
