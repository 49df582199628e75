"""`edgeclf data` — download, verify and unpack a dataset (Caltech 101)."""

from __future__ import annotations

HELP = "download, verify and unpack Caltech 101 (resumable)"
DESCRIPTION = """\
Download the official Caltech 101 archive from CaltechDATA, verify its checksum (md5 as
published), and unpack it to DEST/101_ObjectCategories. An interrupted download is resumed
(HTTP Range) by running the same command again; DEST/101_ObjectCategories appears only once it
is complete. Offline? Download caltech-101.zip elsewhere, unpack it and the
101_ObjectCategories.tar.gz inside, then run `edgeclf split` on the unpacked folder.

Download, checksum and unpack progress go to stderr; the folder ready for `edgeclf split` to stdout.

example:
  edgeclf data caltech101 --dest data/
  edgeclf split data/101_ObjectCategories --out split.json --classes Leopards airplanes camera
"""

DATASETS = ("caltech101",)


def add_arguments(parser) -> None:
    parser.add_argument("dataset", choices=DATASETS, help="dataset to fetch")
    parser.add_argument("--dest", required=True, metavar="DIR",
                        help="folder to download into; the images land in DIR/101_ObjectCategories")
    parser.add_argument("--url", default=None, metavar="URL",
                        help="archive URL (default: the official CaltechDATA caltech-101.zip); a mirror"
                             " needs --sha256 or --md5")
    parser.add_argument("--sha256", default=None, metavar="HEX", help="expected sha256 of the archive")
    parser.add_argument("--md5", default=None, metavar="HEX",
                        help="expected md5 of the archive (default for the official URL: the published one)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="connect timeout in seconds (default: 10); the read timeout is 6x this")
    parser.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive after unpacking")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


#: What each stage of :func:`train.data.download_caltech101` is called on screen.
STAGE_NAMES = {"download": "downloading", "verify": "verifying checksum", "unpack": "unpacking"}


def run(args) -> int:
    from edgeclf.progress import for_cli
    from edgeclf.runtime.errors import UsageError
    from edgeclf.train.data import CALTECH101_URL, download_caltech101

    if args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: use a positive number of seconds")
    url = args.url or CALTECH101_URL
    progress = for_cli(args.quiet, prefix="edgeclf data: ")
    current: dict = {}

    def report(stage: str, done: int, total: int | None) -> None:
        if current.get("name") != stage:
            if current:
                progress.finish(current["stage"])
            what = f"{STAGE_NAMES.get(stage, stage)} {url if stage == 'download' else ''}".rstrip()
            current.update(name=stage, stage=progress.start(what, total=total, unit="bytes"))
        current["stage"].update(completed=done, total=total)

    try:
        folder = download_caltech101(args.dest, url=url, md5=args.md5, sha256=args.sha256,
                                     timeout=(args.timeout, 6 * args.timeout),
                                     keep_archive=args.keep_archive, progress=report)
        if current:
            progress.finish(current["stage"])
    finally:
        progress.close()
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    n_files = sum(1 for c in classes for f in (folder / c).iterdir() if f.is_file())
    print(f"ready: {folder} ({len(classes)} folders, {n_files:,} files)")
    print(f"next:  edgeclf split {folder} --out split.json [--classes ...]")
    return 0
