"""`edgeclf split` / train.split: deterministic, stratified, read-only, with exclusions reported."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import NINE_CLASSES, SAMPLE_DATA, make_image
from edgeclf.runtime.errors import UsageError
from edgeclf.train.errors import DatasetError
from edgeclf.runtime.manifest import SUBSETS, load_manifest, write_manifest
from edgeclf.train.split import allocate, split_dataset

REAL_JPEG = SAMPLE_DATA / "Leopards" / "image_0001.jpg"


def add_bad_files(root: Path) -> dict[str, str]:
    """Write one file of every excluded kind into the tree; return {relative path: reason}."""
    real = REAL_JPEG.read_bytes()
    files = {
        "a/.DS_Store": (b"\0\0\0\1Bud1" + bytes(64), "hidden"),
        "a/._img_000.jpg": (b"\0\5\26\7AppleDouble", "hidden"),
        "a/.ipynb_checkpoints/img_000.jpg": (real, "hidden"),
        "b/Thumbs.db": (b"\xd0\xcf\x11\xe0" + bytes(60), "unsupported_extension"),
        "b/notes.txt": (b"shot on 2024-05-01\n", "unsupported_extension"),
        "b/empty.jpg": (b"", "empty"),
        "c/truncated.jpg": (real[: len(real) // 2], "undecodable"),
        "c/not_really.png": (b"this is text, not a PNG\n", "undecodable"),
        "README.txt": (b"my photos\n", "outside_class_folder"),
    }
    for rel, (data, _) in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return {rel: reason for rel, (_, reason) in files.items()}


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """{relative path: (size, mtime_ns, sha256)} of every file under root (hidden ones included)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[p.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def without_root(manifest) -> dict:
    d = manifest.to_dict()
    d.pop("data_root")
    return d


# ---------------------------------------------------------------- rounding rule


@pytest.mark.parametrize("n, expected", [(3, (1, 1, 1)), (4, (2, 1, 1)), (8, (6, 1, 1)), (50, (38, 6, 6)),
                                         (91, (68, 12, 11)), (200, (150, 25, 25)), (800, (600, 100, 100))])
def test_allocate_known_values(n, expected):
    assert allocate(n, (0.75, 0.125, 0.125)) == expected


@pytest.mark.parametrize("ratios", [(0.75, 0.125, 0.125), (0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.98, 0.01, 0.01)])
def test_allocate_sums_minimums_and_closeness(ratios):
    for n in range(3, 500):
        counts = allocate(n, ratios)
        assert sum(counts) == n and min(counts) >= 1, (n, counts)
        if min(n * r for r in ratios) >= 1:  # no minimum needed: plain largest remainder
            assert all(abs(c - n * r) < 1 for c, r in zip(counts, ratios)), (n, counts)
    with pytest.raises(ValueError):
        allocate(2, ratios)


# ---------------------------------------------------------------- determinism


class _Reversed:
    """os.scandir stand-in that lists entries in reverse order (a different filesystem order)."""

    def __init__(self, it):
        with it:
            self.entries = list(it)[::-1]

    def __enter__(self):
        return iter(self.entries)

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        return iter(self.entries)


def test_deterministic_and_independent_of_listing_order_and_location(image_tree, tmp_path, monkeypatch):
    root = image_tree({"a": 12, "b": 9, "c": 5})
    add_bad_files(root)
    for i in range(3):  # identical copies within a class
        shutil.copyfile(root / "a" / "img_000.jpg", root / "a" / f"copy_{i}.jpg")
    first = split_dataset(root, seed=3)
    second = split_dataset(root, seed=3)
    assert first.to_json() == second.to_json()

    # A copy at another path, its files created in reverse order, listed in reverse order.
    copy = tmp_path / "elsewhere" / "photos"
    for p in sorted((p for p in root.rglob("*") if p.is_file()), reverse=True):
        dst = copy / p.relative_to(root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dst)
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": _Reversed(real_scandir(path)))
    third = split_dataset(copy, seed=3)
    monkeypatch.undo()

    assert third.data_root == copy.resolve() and first.data_root == root.resolve()
    assert without_root(third) == without_root(first)
    assert third.to_json().replace(str(copy.resolve()), "ROOT") == first.to_json().replace(str(root.resolve()), "ROOT")

    # Written manifests are byte-identical too, and read back unchanged.
    out1, out2 = tmp_path / "s1.json", tmp_path / "s2.json"
    write_manifest(first, out1)
    write_manifest(second, out2)
    assert out1.read_bytes() == out2.read_bytes()
    back = load_manifest(out1)
    assert back.splits == first.splits and back.classes == ["a", "b", "c"]

    other_seed = split_dataset(root, seed=4)
    assert other_seed.counts == first.counts
    assert other_seed.splits != first.splits


def test_class_split_does_not_depend_on_other_classes(image_tree):
    root = image_tree({"a": 20, "b": 9, "c": 7})
    full = split_dataset(root)
    only_a = split_dataset(root, classes=["c", "a"])
    assert only_a.classes == ["c", "a"]
    for s in SUBSETS:
        a_full = [e.path for e in full.splits[s] if e.path.startswith("a/")]
        a_sub = [e.path for e in only_a.splits[s] if e.path.startswith("a/")]
        assert a_full == a_sub
        assert {e.label for e in only_a.splits[s] if e.path.startswith("a/")} == {1}


# ---------------------------------------------------------------- stratification and minimums


def test_stratified_counts_labels_and_disjoint_splits(image_tree):
    sizes = {"zebra": 40, "Apple": 16, "mango": 8, "kiwi": 3}
    root = image_tree(sizes)
    m = split_dataset(root)
    assert m.classes == ["Apple", "kiwi", "mango", "zebra"]  # sorted by name (Python string order)
    assert m.ratios == {"train": 0.75, "val": 0.125, "test": 0.125}
    for cls, n in sizes.items():
        assert tuple(m.counts[cls][s] for s in SUBSETS) == allocate(n, (0.75, 0.125, 0.125))
    assert m.counts["kiwi"] == {"train": 1, "val": 1, "test": 1}
    assert m.counts["zebra"] == {"train": 30, "val": 5, "test": 5}
    seen = {}
    for s in SUBSETS:
        paths = [e.path for e in m.splits[s]]
        assert paths == sorted(paths)
        for e in m.splits[s]:
            assert m.classes[e.label] == e.path.split("/")[0]
            assert e.sha256 == hashlib.sha256((root / e.path).read_bytes()).hexdigest()
            assert e.path not in seen
            seen[e.path] = s
    assert len(seen) == sum(sizes.values())
    assert m.excluded == [] and set(m.excluded_counts.values()) == {0}


def test_too_few_images_is_an_error_naming_every_such_class(image_tree):
    root = image_tree({"ok": 5, "ok2": 5, "pair": 2, "single": 1})
    with pytest.raises(DatasetError) as err:
        split_dataset(root)
    msg = str(err.value)
    assert "'pair'" in msg and "'single'" in msg and "'ok'" not in msg and "--classes" in msg
    assert split_dataset(root, classes=["ok", "ok2"]).counts["ok"] == {"train": 3, "val": 1, "test": 1}


def test_a_single_class_is_refused(image_tree):
    root = image_tree({"ok": 5, "ok2": 5})
    with pytest.raises(UsageError, match="--classes.*at least 2 class folders"):
        split_dataset(root, classes=["ok"])


def test_identical_copies_count_once_for_the_minimum(image_tree):
    root = image_tree({"a": 4, "b": 2})
    shutil.copyfile(root / "b" / "img_000.jpg", root / "b" / "img_000_copy.jpg")  # 3 files, 2 distinct
    with pytest.raises(DatasetError, match=r"'b'.*2 distinct usable image\(s\) in 3 files"):
        split_dataset(root)


# ---------------------------------------------------------------- exclusions and duplicates


def test_bad_files_are_excluded_and_reported(image_tree):
    root = image_tree({"a": 6, "b": 6, "c": 6})
    bad = add_bad_files(root)
    m = split_dataset(root)
    assert {e["path"]: e["reason"] for e in m.excluded} == bad
    assert [e["path"] for e in m.excluded] == sorted(bad)
    assert m.excluded_counts == {"hidden": 3, "unsupported_extension": 2, "empty": 1, "undecodable": 2,
                                 "too_large": 0, "extreme_aspect_ratio": 0, "duplicate_across_classes": 0,
                                 "outside_class_folder": 1, "dangling_link": 0, "link_loop": 0,
                                 "duplicate_folder": 0, "not_a_file": 0, "unreadable": 0}
    assert {e["path"]: e.get("detail") for e in m.excluded if e["reason"] == "unsupported_extension"} == {
        "b/Thumbs.db": "'.db'", "b/notes.txt": "'.txt'"}
    detail = {e["path"]: e.get("detail", "") for e in m.excluded}
    assert "truncated" in detail["c/truncated.jpg"]
    used = {e.path for s in SUBSETS for e in m.splits[s]}
    assert used == {f"{c}/img_{i:03d}.jpg" for c in "abc" for i in range(6)}


def test_truncated_png_and_real_jpeg_truncated_to_half(tmp_path, image_tree):
    root = image_tree({"a": 3, "b": 3})
    make_image(root / "a" / "x.png", seed=99, size=(64, 48))
    data = (root / "a" / "x.png").read_bytes()
    (root / "a" / "x.png").write_bytes(data[: len(data) // 2])
    (root / "b" / "leopard.jpg").write_bytes(REAL_JPEG.read_bytes()[: REAL_JPEG.stat().st_size // 2])
    m = split_dataset(root)
    assert {e["path"]: e["reason"] for e in m.excluded} == {"a/x.png": "undecodable", "b/leopard.jpg": "undecodable"}


def test_duplicates_stay_in_one_split_and_cross_class_copies_are_excluded(image_tree):
    root = image_tree({"a": 10, "b": 10, "c": 4})
    for i in range(4):  # four copies of a/img_001.jpg inside class a
        shutil.copyfile(root / "a" / "img_001.jpg", root / "a" / f"dup_{i}.jpg")
    shutil.copyfile(root / "b" / "img_002.jpg", root / "c" / "same_as_b.jpg")  # same bytes, two labels
    m = split_dataset(root, seed=1)
    digest_split = {}
    for s in SUBSETS:
        for e in m.splits[s]:
            assert digest_split.setdefault(e.sha256, s) == s, f"{e.path} leaks into {s}"
    dup_paths = ["a/img_001.jpg"] + [f"a/dup_{i}.jpg" for i in range(4)]
    split_of = {e.path: s for s in SUBSETS for e in m.splits[s]}
    assert len({split_of[p] for p in dup_paths}) == 1
    assert sum(m.counts["a"].values()) == 14
    # 10 distinct images in a → groups allocated 8/1/1; the 5 copies sit together in one of them.
    assert sorted(m.counts["a"].values()) in ([1, 1, 12], [1, 5, 8])
    excluded = {e["path"]: e for e in m.excluded}
    assert set(excluded) == {"b/img_002.jpg", "c/same_as_b.jpg"}
    assert excluded["c/same_as_b.jpg"] == {"path": "c/same_as_b.jpg", "reason": "duplicate_across_classes",
                                           "detail": "same bytes as b/img_002.jpg"}
    assert m.excluded_counts["duplicate_across_classes"] == 2


def test_background_google_and_macosx_are_classes_only_when_named(image_tree):
    root = image_tree({"a": 4, "b": 4, "BACKGROUND_Google": 5})
    (root / "__MACOSX" / "a").mkdir(parents=True)
    (root / "__MACOSX" / "a" / "._img_000.jpg").write_bytes(b"\0\5\26\7")
    assert split_dataset(root).classes == ["a", "b"]
    m = split_dataset(root, classes=["BACKGROUND_Google", "a"])
    assert m.classes == ["BACKGROUND_Google", "a"]
    assert m.counts["BACKGROUND_Google"] == {"train": 3, "val": 1, "test": 1}


# ---------------------------------------------------------------- read-only input


def test_input_tree_is_never_written(image_tree, tmp_path, monkeypatch, run_cli):
    root = image_tree({"a": 8, "b": 5, "c": 3})
    add_bad_files(root)
    before = snapshot(root)
    opened = []
    real_open = builtins.open

    def spy_open(file, mode="r", *args, **kwargs):
        if str(file).startswith(str(root)):
            opened.append(mode)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    split_dataset(root)
    monkeypatch.undo()
    assert opened and set(opened) == {"rb"}
    r = run_cli("split", root, "--out", tmp_path / "s.json")
    assert r.returncode == 1, r.stderr  # manifest written; empty and undecodable images could not be used
    assert "3 image file(s) could not be used (empty, undecodable)" in r.stdout
    assert snapshot(root) == before  # same files, sizes, mtimes and bytes; nothing added


# ---------------------------------------------------------------- CLI


def test_cli_writes_manifest_and_prints_summary(image_tree, tmp_path, run_cli):
    root = image_tree({"cat": 8, "dog": 6})
    (root / "dog" / "Thumbs.db").write_bytes(b"x")
    (root / "cat" / ".DS_Store").write_bytes(b"x")
    out = tmp_path / "split.json"
    r = run_cli("split", root, "--out", out, "--seed", "7", "--ratios", "0.5", "0.25", "0.25")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert "cat" in r.stdout and "dog" in r.stdout
    assert "hidden: 1: cat/.DS_Store" in r.stdout and "unsupported_extension: 1: dog/Thumbs.db" in r.stdout
    m = load_manifest(out)
    assert m.seed == 7 and m.ratios == {"train": 0.5, "val": 0.25, "test": 0.25}
    assert m.counts == {"cat": {"train": 4, "val": 2, "test": 2}, "dog": {"train": 3, "val": 2, "test": 1}}
    assert out.read_text() == split_dataset(root, seed=7, ratios=(0.5, 0.25, 0.25)).to_json()
    assert [p.name for p in tmp_path.iterdir() if p.name != "data"] == ["split.json"]  # no temp file left


def _bad_input_cases(root: Path, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    hidden_only = tmp_path / "hidden_only"
    shutil.copytree(root, hidden_only)
    (hidden_only / "ghost").mkdir()
    (hidden_only / "ghost" / ".DS_Store").write_bytes(b"x")
    (hidden_only / "ghost" / "._a.jpg").write_bytes(b"x")
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("x")
    out = tmp_path / "out" / "s.json"
    return {
        "missing DATA_DIR": ([tmp_path / "nope", "--out", out], "nope"),
        "DATA_DIR is a file": ([a_file, "--out", out], "a_file.txt"),
        "empty DATA_DIR": ([empty, "--out", out], "empty"),
        "hidden files only": ([hidden_only, "--out", out], "'ghost'"),
        "ratios sum": ([root, "--out", out, "--ratios", "0.7", "0.2", "0.2"], "--ratios"),
        "zero share": ([root, "--out", out, "--ratios", "1", "0", "0"], "--ratios"),
        "negative share": ([root, "--out", out, "--ratios", "1.2", "-0.1", "-0.1"], "--ratios"),
        "unknown class": ([root, "--out", out, "--classes", "a", "zebra"], "available: a, b"),
        "repeated class": ([root, "--out", out, "--classes", "a", "a"], "--classes"),
        "negative seed": ([root, "--out", out, "--seed", "-1"], "--seed"),
        "out folder missing": ([root, "--out", tmp_path / "missing" / "s.json"], "missing"),
        "out is a folder": ([root, "--out", tmp_path / "out"], "is a folder"),
        "out under a file": ([root, "--out", a_file / "s.json"], "a_file.txt"),
        "out inside DATA_DIR": ([root, "--out", root / "s.json"], "DATA_DIR"),
    }


def test_cli_bad_input_one_line_exit_2_no_output(image_tree, tmp_path, run_cli):
    root = image_tree({"a": 4, "b": 4})
    (tmp_path / "out").mkdir()
    before = snapshot(root)
    for case, (args, must_name) in _bad_input_cases(root, tmp_path).items():
        r = run_cli("split", *args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, (case, r.stderr)
        assert len(lines) == 1 and lines[0].startswith("edgeclf split: error: "), (case, r.stderr)
        assert must_name in lines[0], (case, lines[0])
        assert "Traceback" not in r.stderr and r.stdout == "", case
        assert list((tmp_path / "out").iterdir()) == [], case
    assert snapshot(root) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_cli_unwritable_out_folder(image_tree, tmp_path, run_cli):
    root = image_tree({"a": 4, "b": 4})
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        r = run_cli("split", root, "--out", locked / "s.json")
    finally:
        locked.chmod(0o755)
    assert r.returncode == 2 and "not writable" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert list(locked.iterdir()) == []


def test_write_failure_leaves_no_partial_file(image_tree, tmp_path, monkeypatch):
    m = split_dataset(image_tree({"a": 4, "b": 4}))
    out = tmp_path / "s.json"

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(UsageError, match="No space left"):
        write_manifest(m, out)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir() if p.name != "data"] == []


# ---------------------------------------------------------------- real data


def test_real_caltech_nine_classes(caltech_full, tmp_path):
    m = split_dataset(caltech_full, seed=0)
    assert m.classes == NINE_CLASSES
    assert m.excluded == []
    totals = {s: len(m.splits[s]) for s in SUBSETS}
    assert sum(totals.values()) == 1639
    assert totals == {"train": 1229, "val": 207, "test": 203}
    for cls in NINE_CLASSES:
        n = sum(m.counts[cls].values())
        for s, r in m.ratios.items():
            assert m.counts[cls][s] >= 1
            assert abs(m.counts[cls][s] - n * r) < 1, (cls, s)
    digests = [e.sha256 for s in SUBSETS for e in m.splits[s]]
    assert len(set(digests)) == len(digests) == 1639  # no byte-identical files in these classes

    out = tmp_path / "s.json"
    write_manifest(m, out)
    assert json.loads(out.read_text())["data_root"] == str(caltech_full.resolve())
    assert split_dataset(caltech_full, seed=0).to_json() == out.read_text()


def test_unwritable_out_is_refused_before_any_work(image_tree, tmp_path, monkeypatch):
    from edgeclf.train.split import check_output_path

    root = image_tree({"a": 4, "b": 4})
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a non-root user on a 0o555 folder
    with pytest.raises(UsageError, match=r"--out .*s\.json: not writable"):
        check_output_path(tmp_path / "s.json", root)


def test_real_caltech_copy_in_another_order_gives_the_same_manifest(caltech_full, tmp_path):
    copy = tmp_path / "copy" / "101_ObjectCategories"
    for p in sorted((p for p in caltech_full.rglob("*") if p.is_file()), reverse=True):
        dst = copy / p.relative_to(caltech_full)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dst)
    original, copied = split_dataset(caltech_full, seed=0), split_dataset(copy, seed=0)
    assert copied.data_root != original.data_root
    assert without_root(copied) == without_root(original)
