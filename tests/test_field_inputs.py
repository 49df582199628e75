"""Folders as users have them: extreme aspect ratios, non-UTF-8 names, symbolic links, malformed
EXIF, every extension Pillow opens, files changed after the split, ONNX IR versions. Every input is
processed or reported with a reason naming it; nothing crashes a run."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from _exif_blocks import WRONG_GPS, exif_with_gps, jpeg
from _tiny_artifact import tiny_artifact  # noqa: F401 (fixture)
from conftest import SAMPLE_DATA, cli_env, make_image
from edgeclf.runtime.errors import ImageAspectRatioError
from edgeclf.runtime.image import load_image
from edgeclf.runtime.manifest import SUBSETS, load_manifest
from edgeclf.runtime.preprocess import PreprocessConfig, preprocess
from edgeclf.runtime.walk import image_extensions, walk
from edgeclf.train.split import split_dataset

GOOD = [SAMPLE_DATA / "camera" / "image_0001.jpg", SAMPLE_DATA / "watch" / "image_0001.jpg",
        SAMPLE_DATA / "Leopards" / "image_0009.jpg"]
STRIP_REASON = ("1x20000 has an aspect ratio of 20,000:1, above the limit of 50:1 (resizing its short side"
                " would need a huge intermediate image); crop it to the object first")
CAFE = os.fsdecode(b"caf\xe9.jpg")  # a Latin-1 file name: not valid UTF-8


def strip_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (1, 20_000), (90, 120, 30)).save(buf, "PNG")
    return buf.getvalue()


def used_paths(manifest) -> set[str]:
    return {e.path for s in SUBSETS for e in manifest.splits[s]}


# --- 1. extreme aspect ratio ---------------------------------------------------------------------

def test_strip_is_refused_in_one_line_naming_the_file(tmp_path):
    strip = tmp_path / "strip.png"
    strip.write_bytes(strip_png())
    assert strip.stat().st_size < 200
    with pytest.raises(ImageAspectRatioError) as info:
        load_image(strip)
    assert str(info.value) == f"{strip}: {STRIP_REASON}"
    assert load_image(Image.new("RGB", (1000, 20))).size == (1000, 20)  # 50:1 is still accepted
    # A PIL image handed straight to preprocess() is bounded by the intermediate size.
    with pytest.raises(ImageAspectRatioError) as info:
        preprocess(Image.new("RGB", (1, 20_000)), PreprocessConfig())
    assert str(info.value) == ("<image 1x20000>: resizing the short side to 256 would need a 256x5120000"
                               " intermediate (1,310,720,000 pixels, limit 33,554,432); crop it to the object first")


def test_strip_peak_memory_stays_bounded(tmp_path):
    strip = tmp_path / "strip.png"
    strip.write_bytes(strip_png())
    code = (
        "import resource, sys\n"
        "from PIL import Image\n"
        "from edgeclf.runtime import load_image, preprocess, PreprocessConfig\n"
        "from edgeclf.runtime.errors import ImageAspectRatioError\n"
        "cfg = PreprocessConfig()\n"
        "preprocess(load_image(sys.argv[2]), cfg)\n"  # warm up: a normal photo, all lazy imports done
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for attempt in (lambda: preprocess(load_image(sys.argv[1]), cfg),\n"
        "                lambda: preprocess(Image.open(sys.argv[1]).convert('RGB'), cfg)):\n"
        "    try:\n"
        "        attempt()\n"
        "    except ImageAspectRatioError:\n"
        "        pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(strip), str(GOOD[0])], capture_output=True, text=True,
                       timeout=120, env=cli_env())
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) < 200 * 1024  # KiB: well under 200 MiB above the baseline (was 5.4 GB)


def test_split_excludes_the_strip_and_training_never_sees_it(image_tree):
    root = image_tree({"cat": 4, "dog": 4})
    (root / "cat" / "strip.png").write_bytes(strip_png())
    m = split_dataset(root)
    assert m.excluded == [{"path": "cat/strip.png", "reason": "extreme_aspect_ratio", "detail": STRIP_REASON}]
    assert "cat/strip.png" not in used_paths(m) and len(used_paths(m)) == 8


def test_a_huge_file_is_excluded_by_its_size_before_it_is_read(image_tree):
    """A sparse 513 MiB "JPEG" (a real header, then zeros: a video renamed .jpg behaves alike) is
    excluded for its size without being read into memory; training then never reads it."""
    root = image_tree({"cat": 4, "dog": 4})
    huge = root / "cat" / "huge.jpg"
    huge.write_bytes((root / "cat" / "img_000.jpg").read_bytes()[:200])
    os.truncate(huge, 513 * 2**20)
    m = split_dataset(root)
    assert m.excluded == [{"path": "cat/huge.jpg", "reason": "too_large",
                           "detail": "file of 513 MiB is larger than the 512 MiB limit for an image file"}]
    assert len(used_paths(m)) == 8


def test_names_with_control_characters_cannot_split_lines_or_drive_the_terminal():
    from edgeclf.runtime.files import display_name

    assert display_name("new\nline.jpg") == "new\\x0aline.jpg"
    assert display_name("a\x1b[2Jevil\r.jpg") == "a\\x1b[2Jevil\\x0d.jpg"
    assert display_name(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"


def test_a_reader_that_leaves_early_gets_no_traceback(tiny_artifact, tmp_path):  # noqa: F811
    """`edgeclf predict ... --json | head -1`: the pipe closes after one line; exit 141, stderr quiet."""
    # more JSON lines than a pipe buffers (64 KiB), so the writer is still writing when the reader leaves
    cmd = [sys.executable, "-m", "edgeclf", "predict", str(tiny_artifact.dir), *map(str, GOOD * 200),
           "--json", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    proc.stdout.readline()
    proc.stdout.close()  # the reader leaves
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipeError" not in err


def test_predict_strip_and_good_image(run_cli, tiny_artifact, tmp_path):  # noqa: F811
    strip = tmp_path / "strip.png"
    strip.write_bytes(strip_png())
    r = run_cli("predict", tiny_artifact.dir, strip, GOOD[0], "--json", "--device", "cpu", timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines[0] == {"input": str(strip), "error": f"{strip}: {STRIP_REASON}", "error_type": "ImageAspectRatioError"}
    assert lines[1]["input"] == str(GOOD[0]) and len(lines[1]["predictions"]) == 3
    assert r.stderr.strip().splitlines()[-1] == "edgeclf predict: 1 predicted, 1 failed"


# --- 2. file names that are not valid UTF-8 ------------------------------------------------------

ASCII_C = dict(PYTHONIOENCODING="ascii", LC_ALL="C", LANG="C")


def test_split_and_predict_non_utf8_names_under_an_ascii_locale(run_cli, tiny_artifact, image_tree, tmp_path):  # noqa: F811
    root = image_tree({"cat": 4, "dog": 4})
    (root / "cat" / CAFE).write_bytes(GOOD[0].read_bytes())
    (root / "dog" / os.fsdecode(b"notes\xff.txt")).write_text("not an image\n")
    out = tmp_path / "split.json"
    r = run_cli("split", root, "--out", out, env=cli_env(**ASCII_C))
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and "unsupported_extension: 1: dog/notes\\xff.txt" in r.stdout
    raw = out.read_bytes()
    raw.decode("utf-8")  # strict: the manifest is valid UTF-8
    assert b'"cat/caf\\udce9.jpg"' in raw and b'"dog/notes\\udcff.txt"' in raw
    m = load_manifest(out)
    [entry] = [e for s in SUBSETS for e in m.splits[s] if e.path.startswith("cat/caf")]
    assert os.fsencode(m.data_root / entry.path) == os.fsencode(root.resolve()) + b"/cat/caf\xe9.jpg"
    assert (m.data_root / entry.path).read_bytes() == GOOD[0].read_bytes()

    r = run_cli("predict", tiny_artifact.dir, root / "cat", "--json", "--device", "cpu",
                env=cli_env(**ASCII_C), timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.encode("utf-8", "surrogateescape").decode("utf-8").splitlines()]
    assert [os.fsencode(x["input"]).rsplit(b"/", 1)[-1] for x in lines] == [b"caf\xe9.jpg"] + [
        f"img_{i:03d}.jpg".encode() for i in range(4)]
    assert all(len(x["predictions"]) == 3 for x in lines)
    direct = run_cli("predict", tiny_artifact.dir, GOOD[0], "--json", "--device", "cpu", timeout=120)
    assert lines[0]["predictions"] == json.loads(direct.stdout)["predictions"]

    r = run_cli("predict", tiny_artifact.dir, root / "cat", "--device", "cpu", env=cli_env(**ASCII_C), timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"{root / 'cat'}/caf\\xe9.jpg" in r.stdout


# --- 3. symbolic links ---------------------------------------------------------------------------

def _links(root: Path, extra: Path) -> None:
    os.symlink("..", root / "cat" / "loop")  # back to DATA_DIR
    os.symlink("nowhere.jpg", root / "cat" / "missing.jpg")  # dangling (git-annex content never fetched)
    os.symlink("chain_b", root / "cat" / "chain_a")  # an endless chain of links
    os.symlink("chain_a", root / "cat" / "chain_b")
    os.symlink(extra, root / "dog" / "again")  # a folder linked in twice: walked once
    os.symlink(extra, root / "dog" / "more")


def test_split_follows_links_once_and_reports_loops_and_dangling_links(image_tree, tmp_path):
    root = image_tree({"cat": 4, "dog": 4})
    extra = tmp_path / "extra"
    for i in range(2):
        make_image(extra / f"e{i}.jpg", 100 + i)
    _links(root, extra)
    m = split_dataset(root)
    assert m.excluded == [
        {"path": "cat/chain_a", "reason": "link_loop", "detail": "-> chain_b"},
        {"path": "cat/chain_b", "reason": "link_loop", "detail": "-> chain_a"},
        {"path": "cat/loop", "reason": "link_loop", "detail": "-> .."},
        {"path": "cat/missing.jpg", "reason": "dangling_link", "detail": "-> nowhere.jpg"},
        {"path": "dog/more", "reason": "duplicate_folder", "detail": f"-> {extra}"},
    ]
    assert used_paths(m) >= {"dog/again/e0.jpg", "dog/again/e1.jpg"} and len(used_paths(m)) == 10


def test_predict_walks_linked_folders_and_reports_dangling_links(run_cli, tiny_artifact, tmp_path):  # noqa: F811
    photos, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(GOOD[0].read_bytes())
    (elsewhere / "deep").mkdir(parents=True)
    (elsewhere / "deep" / "b.jpg").write_bytes(GOOD[1].read_bytes())
    os.symlink(elsewhere, photos / "linked")
    os.symlink("gone.jpg", photos / "dangling.jpg")
    (photos / "sub").mkdir()
    os.symlink("..", photos / "sub" / "up")
    r = run_cli("predict", tiny_artifact.dir, photos, "--json", "--device", "cpu", timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["input"] for x in lines if "predictions" in x] == [str(photos / "a.jpg"), str(photos / "linked/deep/b.jpg")]
    errors = {x["input"]: x["error"] for x in lines if "error" in x}
    assert errors == {
        str(photos / "dangling.jpg"): f"{photos / 'dangling.jpg'}: dangling_link: symbolic link whose target does"
                                      " not exist (-> gone.jpg)",
        str(photos / "sub/up"): f"{photos / 'sub/up'}: link_loop: symbolic link to a folder that contains it"
                                   " (or an endless chain of links) (-> ..)",
    }


# --- 4. malformed EXIF ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(WRONG_GPS))
def test_malformed_exif_keeps_the_orientation_and_warns(case, caplog):
    data = jpeg(exif_with_gps(WRONG_GPS[case]))
    upright = Image.open(io.BytesIO(jpeg(None))).transpose(Image.Transpose.ROTATE_270)
    with caplog.at_level("WARNING", logger="edgeclf.image"):
        img = load_image(data, name=case)
    assert img.size == (16, 32)  # Orientation=6 applied: 32x16 stored, shown upright as 16x32
    assert np.abs(np.asarray(img, np.int16) - np.asarray(upright, np.int16)).max() <= 2
    assert [r.getMessage().split(" (")[0] for r in caplog.records] in ([], [f"{case}: malformed EXIF"])


def test_malformed_exif_in_split_and_predict_folders(run_cli, tiny_artifact, image_tree, tmp_path):  # noqa: F811
    root = image_tree({"cat": 4, "dog": 4})
    (root / "cat" / "gps.jpg").write_bytes(jpeg(exif_with_gps(WRONG_GPS["lat_ascii"])))
    m = split_dataset(root)
    assert m.excluded == [] and "cat/gps.jpg" in used_paths(m)
    r = run_cli("predict", tiny_artifact.dir, root / "cat", "--json", "--device", "cpu", timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 5 and "Traceback" not in r.stderr
    assert f"{root / 'cat' / 'gps.jpg'}: malformed EXIF (TypeError: bad operand type for abs(): 'str'); applied its" \
           " orientation 6 and ignored the rest" in r.stderr


# --- 5. extensions -------------------------------------------------------------------------------

def test_extensions_come_from_pillow():
    exts = image_extensions()
    assert {".jpg", ".jpeg", ".jfif", ".jpe", ".png", ".apng", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm",
            ".pgm", ".qoi"} <= set(exts)
    assert (".avif" in exts) == features.check("avif")
    assert not {".txt", ".db", ".pdf", ".h5", ".grib", ".bufr", ".mpg"} & set(exts)  # no decoder here


def test_jfif_jpe_avif_in_split_and_predict_folders(run_cli, tiny_artifact, image_tree, tmp_path):  # noqa: F811
    root = image_tree({"cat": 3, "dog": 3})
    Image.open(GOOD[0]).save(root / "cat" / "a.jfif", "JPEG")
    Image.open(GOOD[1]).save(root / "cat" / "b.jpe", "JPEG")
    odd = ["cat/a.jfif", "cat/b.jpe"]
    if features.check("avif"):
        Image.open(GOOD[2]).save(root / "dog" / "c.avif", "AVIF")
        odd.append("dog/c.avif")
    (root / "dog" / "notes.txt").write_text("x")
    (root / "dog" / "Thumbs.db").write_bytes(b"x")
    m = split_dataset(root)
    assert set(odd) <= used_paths(m)
    assert [(e["path"], e["reason"], e["detail"]) for e in m.excluded] == [
        ("dog/Thumbs.db", "unsupported_extension", "'.db'"), ("dog/notes.txt", "unsupported_extension", "'.txt'")]

    r = run_cli("predict", tiny_artifact.dir, root, "--json", "--device", "cpu", timeout=120)
    assert r.returncode == 0, r.stderr
    got = {json.loads(line)["input"]: json.loads(line) for line in r.stdout.splitlines()}
    assert set(got) == {str(root / p) for p in used_paths(m)}
    by_path = run_cli("predict", tiny_artifact.dir, *(root / p for p in odd), "--json", "--device", "cpu", timeout=120)
    for line in by_path.stdout.splitlines():
        x = json.loads(line)
        assert got[x["input"]]["predictions"] == x["predictions"]
    assert (f"edgeclf predict: skipped 2 file(s), unsupported_extension (extension is not an image format Pillow"
            f" can open here): {root / 'dog' / 'Thumbs.db'} ('.db'), {root / 'dog' / 'notes.txt'} ('.txt')") in r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"edgeclf predict: {len(got)} predicted, 0 failed, 2 skipped"


def test_walk_sorts_and_reports_every_skip(tmp_path):
    for rel in ("b/2.png", "b/10.JPG", "a.jpg", ".hidden/y.jpg", "b/._junk.jpg", "b/notes.txt"):
        make_image(tmp_path / rel, 1, fmt="PNG") if rel.endswith(("png", "jpg", "JPG")) else \
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True) or (tmp_path / rel).write_text("x")
    os.mkfifo(tmp_path / "b" / "pipe.jpg")
    found = walk(tmp_path)
    assert found.rels == ["a.jpg", "b/10.JPG", "b/2.png"]
    assert [(s.rel, s.reason) for s in found.skipped] == [
        (".hidden/y.jpg", "hidden"), ("b/._junk.jpg", "hidden"), ("b/notes.txt", "unsupported_extension"),
        ("b/pipe.jpg", "not_a_file")]
    assert found.counts() == {"hidden": 2, "unsupported_extension": 1, "not_a_file": 1}


# --- 6. files changed after the split ------------------------------------------------------------

FAST = dict(arch="tiny_cnn", batch_size=4, device="cpu", progress=False, workers=0, epochs=1)


@pytest.fixture
def changed_split(tmp_path, image_tree):
    """A 3-class split whose first cat train image was then replaced by a dog photo."""
    import hashlib

    from train_support import write_split

    root = image_tree({"cat": 6, "dog": 6, "owl": 6}, size=(48, 40))
    split = write_split(root, tmp_path / "split.json", n_val=1, n_test=1)
    m = load_manifest(split)
    target = m.data_root / "cat/img_000.jpg"
    recorded = next(e.sha256 for e in m.splits["train"] if e.path == "cat/img_000.jpg")
    target.write_bytes((root / "dog/img_000.jpg").read_bytes())
    got = hashlib.sha256(target.read_bytes()).hexdigest()
    message = (f"{target}: changed since the split was written (sha256 {got[:12]}…, split.json records"
               f" {recorded[:12]}…): a replaced photo would train or score under the wrong label; re-run"
               " `edgeclf split`, or pass --on-changed exclude to leave changed files out")
    return split, target, message, {"path": str(target), "reason": "changed",
                                    "detail": f"sha256 {got[:12]}…, split.json records {recorded[:12]}…"}


def test_train_refuses_a_file_changed_after_the_split(changed_split, tmp_path):
    from edgeclf.train.errors import DatasetError
    from edgeclf.train.loop import train_model

    split, _, message, _ = changed_split
    for cache in (True, False):
        with pytest.raises(DatasetError) as info:
            train_model(split, tmp_path / f"run{cache}", feature_cache=cache, **FAST)
        assert str(info.value) == message


def test_train_and_evaluate_exclude_changed_files_when_asked(changed_split, tmp_path, run_cli):
    from edgeclf.train.errors import DatasetError
    from edgeclf.train.evaluate import evaluate_checkpoint
    from edgeclf.train.loop import train_model

    split, target, message, excluded = changed_split
    result = train_model(split, tmp_path / "run", on_changed="exclude", **FAST)
    assert result.excluded == [excluded] and result.best_checkpoint.is_file()

    # evaluate on train: refused by default, the changed file left out and listed on request
    with pytest.raises(DatasetError) as info:
        evaluate_checkpoint(result.best_checkpoint, split, subset="train", device="cpu", workers=0)
    assert str(info.value) == message
    report = evaluate_checkpoint(result.best_checkpoint, split, subset="train", device="cpu", workers=0,
                                 on_changed="exclude")
    assert report["num_images"] == 11 and report["excluded"] == [{**excluded, "path": "cat/img_000.jpg"}]

    r = run_cli("evaluate", result.best_checkpoint, "--split", split, "--subset", "train", "--device", "cpu")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].endswith(message) and "Traceback" not in r.stderr


# --- everything at once: one folder as users have them -------------------------------------------

def _mixed_tree(root: Path, tmp_path: Path) -> None:
    for cls, first in (("cat", 0), ("dog", 1)):
        for i in range(3):
            make_image(root / cls / f"img_{i}.jpg", 10 * first + i)
    (root / "cat" / "strip.png").write_bytes(strip_png())
    (root / "cat" / CAFE).write_bytes(GOOD[0].read_bytes())
    (root / "cat" / "gps.jpg").write_bytes(jpeg(exif_with_gps(WRONG_GPS["ref_rational"])))
    Image.open(GOOD[1]).save(root / "dog" / "a.jfif", "JPEG")
    Image.open(GOOD[2]).save(root / "dog" / "b.jpe", "JPEG")
    (root / "dog" / "notes.txt").write_text("x")
    (root / "dog" / ".DS_Store").write_bytes(b"x")
    os.mkfifo(root / "dog" / "pipe.jpg")
    os.symlink("..", root / "cat" / "loop")
    os.symlink("never_fetched.jpg", root / "cat" / "annexed.jpg")
    make_image(tmp_path / "extra" / "e0.jpg", 99)
    os.symlink(tmp_path / "extra", root / "dog" / "linked")


def test_split_and_predict_on_a_folder_mixing_every_case(run_cli, tiny_artifact, tmp_path):  # noqa: F811
    root = tmp_path / "data"
    _mixed_tree(root, tmp_path)
    out = tmp_path / "split.json"
    r = run_cli("split", root, "--out", out, env=cli_env(**ASCII_C), timeout=120)
    assert r.returncode == 1, r.stderr
    assert r.stderr == (f"{root / 'cat' / 'gps.jpg'}: malformed EXIF (AttributeError: 'IFDRational' object has no"
                        " attribute 'encode'); applied its orientation 6 and ignored the rest\n")
    m = load_manifest(out)
    assert used_paths(m) == {"cat/img_0.jpg", "cat/img_1.jpg", "cat/img_2.jpg", f"cat/{CAFE}", "cat/gps.jpg",
                             "dog/img_0.jpg", "dog/img_1.jpg", "dog/img_2.jpg", "dog/a.jfif", "dog/b.jpe",
                             "dog/linked/e0.jpg"}
    assert {e["path"]: e["reason"] for e in m.excluded} == {
        "cat/annexed.jpg": "dangling_link", "cat/loop": "link_loop", "cat/strip.png": "extreme_aspect_ratio",
        "dog/.DS_Store": "hidden", "dog/notes.txt": "unsupported_extension", "dog/pipe.jpg": "not_a_file"}
    for line in ("dangling_link: 1: cat/annexed.jpg (-> never_fetched.jpg)", "link_loop: 1: cat/loop (-> ..)",
                 f"extreme_aspect_ratio: 1: cat/strip.png ({STRIP_REASON})", "hidden: 1: dog/.DS_Store",
                 "unsupported_extension: 1: dog/notes.txt", "not_a_file: 1: dog/pipe.jpg",
                 "3 image file(s) could not be used (extreme_aspect_ratio, dangling_link, link_loop)"):
        assert line in r.stdout, (line, r.stdout)

    r = run_cli("predict", tiny_artifact.dir, root, "--json", "--device", "cpu", env=cli_env(**ASCII_C), timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    rows = [json.loads(line) for line in r.stdout.encode("utf-8", "surrogateescape").decode("utf-8").splitlines()]
    predicted = {os.path.relpath(x["input"], root) for x in rows if "predictions" in x}
    failed = {os.path.relpath(x["input"], root): x["error_type"] for x in rows if "error" in x}
    assert predicted == used_paths(m)
    assert failed == {"cat/annexed.jpg": "InvalidImageError", "cat/loop": "InvalidImageError",
                      "cat/strip.png": "ImageAspectRatioError"}
    err = r.stderr.strip().splitlines()
    assert err[-1] == "edgeclf predict: 11 predicted, 3 failed, 3 skipped"
    assert any(line.startswith("edgeclf predict: skipped 1 file(s), hidden") for line in err)
    assert any(line.startswith("edgeclf predict: skipped 1 file(s), not_a_file") for line in err)
    assert any("gps.jpg: malformed EXIF" in line for line in err)


def test_unreadable_files_and_folders_are_reported_not_fatal(image_tree, monkeypatch):
    """(Simulated: the tests run as root, which reads everything.)"""
    import builtins

    root = image_tree({"cat": 4, "dog": 4})
    (root / "dog" / "private").mkdir()
    make_image(root / "dog" / "private" / "x.jpg", 50)
    locked_file, locked_dir = str(root / "cat" / "img_001.jpg"), str(root / "dog" / "private")
    real_open, real_scandir = builtins.open, os.scandir

    def fake_open(file, *args, **kwargs):
        if str(file) == locked_file:
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    def fake_scandir(path="."):
        if str(path) == locked_dir:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "scandir", fake_scandir)
    m = split_dataset(root, workers=1)
    assert m.excluded == [{"path": "cat/img_001.jpg", "reason": "unreadable", "detail": "Permission denied"},
                          {"path": "dog/private", "reason": "unreadable", "detail": "Permission denied"}]
    assert len(used_paths(m)) == 7


def test_a_dangling_link_given_by_path_says_so(tmp_path):
    from edgeclf.runtime.errors import ImageNotFoundError

    os.symlink("never_fetched.jpg", tmp_path / "annexed.jpg")
    with pytest.raises(ImageNotFoundError) as info:
        load_image(tmp_path / "annexed.jpg")
    assert str(info.value) == (f"{tmp_path / 'annexed.jpg'}: dangling_link: symbolic link whose target does not"
                               " exist (-> never_fetched.jpg)")


def test_a_named_pipe_is_read_like_a_file(tmp_path):
    """`edgeclf predict ART <(cat photo.jpg)` hands over a FIFO: it is read (bounded), not called empty."""
    import threading

    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    data = GOOD[0].read_bytes()

    def write():
        with open(fifo, "wb") as fp:
            fp.write(data)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    img = load_image(fifo)
    writer.join(10)
    assert np.array_equal(np.asarray(img), np.asarray(load_image(GOOD[0])))
