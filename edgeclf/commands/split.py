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

Needs only the base install (no torch). The summary goes to stdout; on trees of 500 files or
more, progress of the reading and hashing goes to stderr.

example:
  edgeclf split data/101_ObjectCategories --out split.json --classes Leopards airplanes camera
"""

#: How many file names to print per exclusion reason (the manifest lists all of them).
MAX_NAMES_SHOWN = 10
#: Exclusion reasons that mean an input failed (exit code 1); the others are deliberate skips.
FAILED_REASONS = ("empty", "undecodable", "too_large", "extreme_aspect_ratio", "dangling_link", "link_loop",
                  "unreadable")
#: From this many files on, checking them is a stage with a line of its own when stderr is
#: redirected (on a terminal the live display shows every split).
LOGGED_FROM_FILES = 500


def add_arguments(parser) -> None:
    parser.add_argument("data_dir", metavar="DATA_DIR", help="folder with one sub-folder of images per class")
    parser.add_argument("--out", required=True, metavar="SPLIT.json", help="manifest file to write")
    parser.add_argument("--classes", nargs="+", metavar="CLASS",
                        help="class folders to use, in label order (default: all folders, sorted by name)")
    parser.add_argument("--ratios", nargs=3, type=float, default=[0.75, 0.125, 0.125],
                        metavar=("TRAIN", "VAL", "TEST"), help="shares summing to 1 (default: 0.75 0.125 0.125)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="shuffle seed, >= 0 (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args) -> int:
    import time

    from edgeclf.progress import for_cli
    from edgeclf.runtime.files import display_name, utf8_stdio
    from edgeclf.runtime.manifest import write_manifest
    from edgeclf.train.split import check_output_path, list_class_folders, split_dataset, validate_ratios

    utf8_stdio()
    validate_ratios(args.ratios)
    out = check_output_path(args.out, args.data_dir)
    start = time.perf_counter()
    progress = for_cli(args.quiet, prefix="edgeclf split: ")
    stage = None

    def checked(done: int, total: int) -> None:
        nonlocal stage
        if stage is None:
            stage = progress.start(f"reading and hashing {total:,} files", total=total, log=total >= LOGGED_FROM_FILES)
        stage.update(completed=done)

    try:
        manifest = split_dataset(args.data_dir, classes=args.classes, ratios=args.ratios, seed=args.seed,
                                 progress=checked)
        if stage is not None:
            progress.finish(stage)
    finally:
        progress.close()
    digest = write_manifest(manifest, out)
    seconds = time.perf_counter() - start

    print_summary(manifest, list_class_folders(args.data_dir))
    print(f"wrote {display_name(out)} (sha256 {digest[:16]}…) in {seconds:.1f} s")
    failed = sum(manifest.excluded_counts.get(r, 0) for r in FAILED_REASONS)
    if failed:
        reasons = ", ".join(r for r in FAILED_REASONS if manifest.excluded_counts.get(r))
        print(f"{failed} image file(s) could not be used ({reasons}); they are listed above and in the"
              " manifest's \"excluded\" (exit 1)")
    return 1 if failed else 0


def _table(title: str, header: list[str], rows: list[list[str]], right: set[int]) -> None:
    """A table on stdout: rich when installed (it is not a base dependency), else aligned text."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
        print(title)
        for r in [header] + rows:
            print("  ".join(c.rjust(w) if i in right else c.ljust(w)
                            for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        return
    table = Table(title=title)
    for i, col in enumerate(header):
        table.add_column(col, justify="right" if i in right else "left")
    for r in rows:
        table.add_row(*r, style="bold" if r is rows[-1] else None)
    Console(highlight=False, markup=False).print(table)


def print_summary(manifest, folders: list[str]) -> None:
    """Per-class counts table, unselected folders, and exclusions per reason with file names (stdout)."""
    from edgeclf.runtime.files import display_name
    from edgeclf.runtime.manifest import SUBSETS

    rows = []
    for label, cls in enumerate(manifest.classes):
        c = manifest.counts[cls]
        rows.append([str(label), display_name(cls), *(str(c[s]) for s in SUBSETS), str(sum(c.values()))])
    totals = [len(manifest.splits[s]) for s in SUBSETS]
    rows.append(["", "all", *(f"{n} ({100 * n / max(1, sum(totals)):.1f}%)" for n in totals), str(sum(totals))])
    _table(f"split of {display_name(manifest.data_root)} (seed {manifest.seed}, ratios "
           + "/".join(f"{manifest.ratios[s]:g}" for s in SUBSETS) + ")",
           ["label", "class", *SUBSETS, "total"], rows, right={0, 2, 3, 4, 5})

    unused = [f for f in folders if f not in manifest.classes]
    if unused:
        print(f"folders not used as classes: {', '.join(map(display_name, unused))}"
              " (name them in --classes to include)")
    if not manifest.excluded:
        print("excluded: none")
        return
    print(f"excluded: {len(manifest.excluded)} file(s) (all listed in the manifest's \"excluded\")")
    for reason, n in manifest.excluded_counts.items():
        if not n:
            continue
        names = [display_name(e["path"] + (f" ({e['detail']})" if e.get("detail") and reason in FAILED_REASONS else ""))
                 for e in manifest.excluded if e["reason"] == reason]
        shown = ", ".join(names[:MAX_NAMES_SHOWN]) + (f", … {n - MAX_NAMES_SHOWN} more" if n > MAX_NAMES_SHOWN else "")
        print(f"  {reason}: {n}: {shown}")  # one line per reason, never wrapped
