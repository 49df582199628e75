"""predict_batch's decode pool: same predictions, same order, same errors as the serial path."""

from __future__ import annotations

import pytest

from _tiny_artifact import tiny_artifact  # noqa: F401
from conftest import SAMPLE_DATA
from edgeclf.runtime import Predictor
from edgeclf.runtime.errors import ImageNotFoundError, InvalidImageError, UsageError


def _inputs(tmp_path):
    """Sample JPEGs with failing inputs in between: a missing file, empty bytes, a text file."""
    jpgs = sorted(SAMPLE_DATA.rglob("*.jpg"))[::9][:20]
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    items = [str(p) for p in jpgs]
    items.insert(0, str(tmp_path / "missing.jpg"))
    items.insert(7, b"")
    items.insert(13, str(bad))
    items.append(jpgs[0].read_bytes())
    return items


@pytest.mark.parametrize("threads,batch_size", [(1, 4), (3, 5), (4, 1)])
def test_pool_matches_serial_including_failed_items(tiny_artifact, tmp_path, threads, batch_size):
    predictor = Predictor(tiny_artifact.dir, device="cpu")
    items = _inputs(tmp_path)
    serial = predictor.predict_batch(items, top_k=3, batch_size=batch_size, on_error="return", decode_threads=0)
    pooled = predictor.predict_batch(iter(items), top_k=3, batch_size=batch_size, on_error="return",
                                     decode_threads=threads)
    assert len(pooled) == len(serial) == len(items) == 24
    for a, b in zip(serial, pooled):
        if isinstance(a, Exception):
            assert type(a) is type(b) and str(a) == str(b)
        else:
            assert a == b  # same labels, indices and probabilities (same arrays, same batches)
    assert isinstance(pooled[0], ImageNotFoundError)
    assert [i for i, r in enumerate(pooled) if isinstance(r, InvalidImageError)] == [0, 7, 13]
    assert pooled[-1] == pooled[1]  # the first JPEG, given as bytes at the end


def test_pool_raises_the_first_failure_in_input_order(tiny_artifact, tmp_path):
    predictor = Predictor(tiny_artifact.dir, device="cpu", decode_threads=2)
    items = _inputs(tmp_path)[1:]  # the first failure is now the empty bytes at position 6
    with pytest.raises(InvalidImageError, match=r"^images\[6\] \(<0 bytes>\)"):
        predictor.predict_batch(items, batch_size=4)


def test_pool_consumes_a_generator_lazily(tiny_artifact):
    """The pool reads at most batch_size + 2 * threads inputs ahead of what was returned."""
    predictor = Predictor(tiny_artifact.dir, device="cpu")
    jpg = sorted(SAMPLE_DATA.rglob("*.jpg"))[0]
    pulled = []

    def gen():
        for i in range(40):
            pulled.append(i)
            yield jpg

    seen = []
    original = predictor.logits

    def logits(batch):
        seen.append(len(pulled))  # how many inputs were read when each batch reached the model
        return original(batch)

    predictor.logits = logits
    out = predictor.predict_batch(gen(), batch_size=4, decode_threads=2)
    assert len(out) == 40
    assert all(n - 4 * b <= 4 + 2 * 2 for b, n in enumerate(seen, 1))  # in flight <= the window


def test_bad_decode_threads(tiny_artifact):
    with pytest.raises(UsageError, match="decode_threads=-1"):
        Predictor(tiny_artifact.dir, device="cpu", decode_threads=-1)
    predictor = Predictor(tiny_artifact.dir, device="cpu")
    with pytest.raises(UsageError, match="decode_threads=1.5"):
        predictor.predict_batch([], decode_threads=1.5)


def test_cli_decode_threads_give_the_serial_output(tiny_artifact, tmp_path, run_cli):
    """`edgeclf predict --json` streams the same lines, errors included, with or without the pool."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in sorted(SAMPLE_DATA.rglob("*.jpg"))[::20]:
        (folder / f"{p.parent.name}_{p.name}").write_bytes(p.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    outs = []
    for threads in ("0", "3"):
        r = run_cli("predict", tiny_artifact.dir, folder, tmp_path / "missing.jpg", "--json", "--batch-size", "4",
                    "--device", "cpu", "--decode-threads", threads)
        assert r.returncode == 1, r.stderr  # two inputs failed
        outs.append(r.stdout)
    assert outs[0] == outs[1]
    lines = outs[0].splitlines()
    assert len(lines) == 13 and sum('"error"' in ln for ln in lines) == 2
    r = run_cli("predict", tiny_artifact.dir, folder, "--decode-threads", "-1")
    assert r.returncode == 2 and "--decode-threads -1" in r.stderr
