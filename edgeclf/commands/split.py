"""`edgeclf split` — write a reproducible, stratified, read-only train/val/test manifest."""

from __future__ import annotations

HELP = "split a folder of class sub-folders into a train/val/test manifest (files untouched)"
DESCRIPTION = """\
Split DATA_DIR (one sub-folder of images per class, e.g. Caltech's 101_ObjectCategories) into
train / val / test and write the manifest SPLIT.json. No file in DATA_DIR is moved, copied,
renamed or written.

- Deterministic: the same files, --seed and --ratios give a byte-identical manifest on any machine,
  whatever order the filesystem lists files in.
- Stratified per class (largest-remainder rounding); every class gets >= 1 val and >= 1 test image
  and needs >= 3 distinct usable images.
- Hidden files, non-images, zero-byte and undecodable images are excluded and reported; byte-
  identical copies stay in one split; copies in two classes are excluded (ambiguous label).
- BACKGROUND_Google is a class only when named in --classes.
- Links are followed, each real folder is walked once; dangling links, link loops and unreadable
  entries are excluded with their own reason. Image extensions are those Pillow opens here.

Exit codes: 0 manifest written, every file used or deliberately skipped (hidden, not an image
extension, ...); 1 manifest written, but some image files could not be used (empty, undecodable,
too large, extreme aspect ratio, dangling link, link loop, unreadable): they are listed;
2 bad usage or unusable DATA_DIR (nothing written).

example:
  edgeclf split data/101_ObjectCategories --out split.json --classes Leopards airplanes camera
"""

#: How many file names to print per exclusion reason (the manifest lists all of them).
MAX_NAMES_SHOWN = 10
#: Exclusion reasons that mean an input failed (exit code 1); the others are deliberate skips.
FAILED_REASONS = ("empty", "undecodable", "too_large", "extreme_aspect_ratio", "dangling_link", "link_loop",
                  "unreadable")


def add_arguments(parser) -> None:
    parser.add_argument("data_dir", metavar="DATA_DIR", help="folder with one sub-folder of images per class")
    parser.add_argument("--out", required=True, metavar="SPLIT.json", help="manifest file to write")
    parser.add_argument("--classes", nargs="+", metavar="CLASS",
                        help="class folders to use, in label order (default: all folders, sorted by name)")
    parser.add_argument("--ratios", nargs=3, type=float, default=[0.75, 0.125, 0.125],
                        metavar=("TRAIN", "VAL", "TEST"), help="shares summing to 1 (default: 0.75 0.125 0.125)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed, >= 0 (default: 0)")


def run(args) -> int:
    import sys
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgeclf.runtime.files import display_name, utf8_stdio
    from edgeclf.runtime.manifest import write_manifest
    from edgeclf.train.split import check_output_path, list_class_folders, split_dataset, validate_ratios

    utf8_stdio()
    validate_ratios(args.ratios)
    out = check_output_path(args.out, args.data_dir)
    start = time.perf_counter()
    err_console = Console(stderr=True)
    with Progress(TextColumn("checking images"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task("check", total=None)
        manifest = split_dataset(args.data_dir, classes=args.classes, ratios=args.ratios, seed=args.seed,
                                 progress=lambda done, total: bar.update(task, completed=done, total=total))
    digest = write_manifest(manifest, out)
    seconds = time.perf_counter() - start

    console = Console(file=sys.stdout, highlight=False)
    print_summary(console, manifest, list_class_folders(args.data_dir))
    console.print(f"wrote {display_name(out)} (sha256 {digest[:16]}…) in {seconds:.1f} s", markup=False)
    failed = sum(manifest.excluded_counts.get(r, 0) for r in FAILED_REASONS)
    if failed:
        console.print(f"{failed} image file(s) could not be used ({', '.join(r for r in FAILED_REASONS if manifest.excluded_counts.get(r))});"
                      " they are listed above and in the manifest's \"excluded\" (exit 1)", markup=False, soft_wrap=True)
    return 1 if failed else 0


def print_summary(console, manifest, folders: list[str]) -> None:
    """Per-class counts table, unselected folders, and exclusions per reason with file names."""
    from rich.table import Table
    from rich.text import Text

    from edgeclf.runtime.files import display_name
    from edgeclf.runtime.manifest import SUBSETS

    table = Table(title=f"split of {display_name(manifest.data_root)} (seed {manifest.seed}, ratios "
                        + "/".join(f"{manifest.ratios[s]:g}" for s in SUBSETS) + ")")
    table.add_column("label", justify="right")
    table.add_column("class")
    for s in SUBSETS:
        table.add_column(s, justify="right")
    table.add_column("total", justify="right")
    for label, cls in enumerate(manifest.classes):
        c = manifest.counts[cls]
        table.add_row(str(label), Text(display_name(cls)), *(str(c[s]) for s in SUBSETS), str(sum(c.values())))
    totals = [len(manifest.splits[s]) for s in SUBSETS]
    pct = [f"{n} ({100 * n / max(1, sum(totals)):.1f}%)" for n in totals]
    table.add_row("", "all", *pct, str(sum(totals)), style="bold")
    console.print(table)

    unused = [f for f in folders if f not in manifest.classes]
    if unused:
        console.print(f"folders not used as classes: {', '.join(map(display_name, unused))}"
                      " (name them in --classes to include)", markup=False)
    if not manifest.excluded:
        console.print("excluded: none")
        return
    console.print(f"excluded: {len(manifest.excluded)} file(s) (all listed in the manifest's \"excluded\")")
    for reason, n in manifest.excluded_counts.items():
        if not n:
            continue
        names = [display_name(e["path"] + (f" ({e['detail']})" if e.get("detail") and reason in FAILED_REASONS else ""))
                 for e in manifest.excluded if e["reason"] == reason]
        shown = ", ".join(names[:MAX_NAMES_SHOWN]) + (f", … {n - MAX_NAMES_SHOWN} more" if n > MAX_NAMES_SHOWN else "")
        console.print(f"  {reason}: {n}: {shown}", markup=False, soft_wrap=True)  # one line per reason, never wrapped
