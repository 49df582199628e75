"""The gate arithmetic and the staging directory, on hand-made numbers (no model, no export)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeclf.export.images import evenly_spaced
from edgeclf.export.parity import accuracy_entry, compare, failures, parity_entry
from edgeclf.runtime.inference import softmax
from edgeclf.export.staging import check_out_dir, publish, staging_dir
from edgeclf.runtime.errors import UsageError


def test_compare_known_values():
    ref = np.array([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 3.0, 1.0]], np.float32)
    cand = ref.copy()
    cand[0, 0] += 0.5  # same ranking, larger gap
    cand[1] = [0.0, 0.0, 1.0, 1.5]  # top-1 flips from 2 to 3; top-3 set {2,3,0|1} vs {3,2,0|1}
    m = compare(ref, cand)
    assert m["images"] == 2
    assert m["max_abs_logit_diff"] == pytest.approx(2.0)
    assert m["mean_abs_logit_diff"] == pytest.approx((0.5 + 2.0 + 0.5) / 8)
    dp = np.abs(softmax(ref) - softmax(cand))
    assert m["max_abs_prob_diff"] == pytest.approx(dp.max()) and m["mean_abs_prob_diff"] == pytest.approx(dp.mean())
    assert m["top1_agreement"] == 0.5 and m["top1_mismatches"] == 1
    assert m["top3_agreement"] == 1.0  # ties on 0/1 are broken by index (stable), same set


def test_softmax_rows_sum_to_one_in_float64():
    p = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]], np.float32))
    assert p.dtype == np.float64
    np.testing.assert_allclose(p, [[1.0, 0.0], [0.5, 0.5]], atol=1e-12)


def test_parity_entry_gate_and_batch_errors():
    ref = {1: np.eye(3, dtype=np.float32) * 5, 5: np.eye(3, dtype=np.float32) * 5}
    close = {b: v + 1e-7 for b, v in ref.items()}
    e = parity_entry(ref, close)
    assert e["passed"] and e["batch_sizes"] == [1, 5] and e["errors"] == []
    far = {1: ref[1] + np.array([[0, 0.2, 0]] * 3, np.float32), 5: "fails to run (RuntimeError: shape)"}
    e = parity_entry(ref, far)
    assert not e["passed"] and e["by_batch_size"]["5"] == {"error": "fails to run (RuntimeError: shape)"}
    assert e["max_abs_prob_diff"] > 1e-4
    (msg,) = failures({"onnx": e})
    assert msg.startswith("onnx: batch 5: fails to run (RuntimeError: shape)")


def test_failure_message_names_difference_and_tolerance():
    ref = {1: np.array([[1.0, 0.0]], np.float32)}
    e = parity_entry(ref, {1: np.array([[0.0, 1.0]], np.float32)})
    (msg,) = failures({"torchscript": e, "onnx": parity_entry(ref, ref)})
    assert msg == "torchscript: max |Δp| 4.62e-01 > 1e-04, top-1 differs on 1/1 images (batch sizes [1])"


def test_nan_outputs_fail():
    ref = {1: np.array([[1.0, 0.0]], np.float32)}
    e = parity_entry(ref, {1: np.array([[np.nan, 0.0]], np.float32)})
    assert not e["passed"] and math.isnan(e["max_abs_prob_diff"])
    assert "max |Δp| nan" in failures({"onnx": e})[0]


def test_accuracy_gate():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    fp32 = np.eye(3, dtype=np.float32)[labels] * 4  # 100 %
    q = fp32.copy()
    q[0] = [0, 4, 0]  # one of ten wrong: 90 %, a 10-point drop
    e = accuracy_entry(fp32, q, labels, "int8", max_accuracy_drop=1.0, batch_size=16)
    assert e["fp32_top1_accuracy"] == 100.0 and e["top1_accuracy"] == 90.0
    assert e["accuracy_drop_points"] == pytest.approx(10.0) and e["top1_agreement_with_fp32"] == 0.9
    assert not e["passed"]
    assert failures({"onnx-int8": e}) == ["onnx-int8: top-1 90.00% vs fp32 100.00%, drop 10.00 > 1.00 points"]
    assert accuracy_entry(fp32, q, labels, "int8", max_accuracy_drop=10.0, batch_size=16)["passed"]


def test_evenly_spaced_covers_ends():
    assert evenly_spaced(10, 64) == list(range(10))
    assert evenly_spaced(100, 5) == [0, 25, 50, 74, 99]
    assert evenly_spaced(5, 0) == []


def test_staging_publish_and_cleanup(tmp_path):
    out = tmp_path / "new" / "artifact"
    with pytest.raises(RuntimeError):
        with staging_dir(out) as tmp:
            (tmp / "model.onnx").write_bytes(b"x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # temp dir and the created parent are gone

    with staging_dir(out) as tmp:
        (tmp / "model.onnx").write_bytes(b"new")
        publish(tmp, out, force=False)
    assert (out / "model.onnx").read_bytes() == b"new" and sorted(p.name for p in out.parent.iterdir()) == ["artifact"]

    with pytest.raises(UsageError, match="pass --force"):
        check_out_dir(out, force=False)
    with staging_dir(out) as tmp:
        (tmp / "model.onnx").write_bytes(b"newer")
        publish(tmp, out, force=True)
    assert (out / "model.onnx").read_bytes() == b"newer" and sorted(p.name for p in out.parent.iterdir()) == ["artifact"]

    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="not a directory"):
        check_out_dir(tmp_path / "file", force=True)
