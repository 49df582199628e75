"""int8 per execution target: types chosen for x86 / ARM, float nodes searched against the gate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _export_data import make_checkpoint, make_split

from edgeclf.export import quantize as q
from edgeclf.runtime.errors import UsageError


@pytest.mark.parametrize("machine,target", [("x86_64", "x86"), ("AMD64", "x86"), ("aarch64", "arm"),
                                            ("arm64", "arm")])
def test_auto_target_follows_the_machine(machine, target):
    assert q.resolve_target("auto", machine) == target
    assert q.resolve_target("arm", machine) == "arm"  # explicit wins


def test_bad_targets_are_usage_errors():
    with pytest.raises(UsageError, match="choose from auto, x86, arm"):
        q.resolve_target("riscv")
    with pytest.raises(UsageError, match="pass --int8-target x86 or arm"):
        q.resolve_target("auto", "s390x")
    from edgeclf.export import ExportOptions

    with pytest.raises(UsageError, match="--int8-target 'mips'"):
        ExportOptions(int8=True, int8_target="mips")
    with pytest.raises(UsageError, match=r"unknown export option\(s\) \['int9'\]"):
        ExportOptions.make(int9=True)


def _zero_point_types(path) -> set[int]:
    """onnx TensorProto data types of the zero points of the activation QuantizeLinear nodes."""
    import onnx

    proto = onnx.load(str(path))
    inits = {i.name: i for i in proto.graph.initializer}
    weights = set(inits)
    return {inits[n.input[2]].data_type for n in proto.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in weights and len(n.input) > 2}


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory):
    """(tmp root, checkpoint) of a random-init Lite0 at 64 px over real JPEGs."""
    root = tmp_path_factory.mktemp("int8")
    split = make_split(root / "split.json", n_train=3, n_test=2)
    return root, make_checkpoint(root / "best.pt", split)


def test_int8_artifact_records_target_and_types(fp32_model):
    from edgeclf.export import export_checkpoint

    root, ckpt = fp32_model
    target, activation, onnx_type = "x86", "uint8", 2
    out = root / f"art-{target}"
    # random weights: accuracy is chance, so the gate is opened wide (the search is tested below)
    desc = export_checkpoint(ckpt, out, formats="onnx", int8=True, int8_target=target, max_accuracy_drop=100.0)
    quant = desc["formats"]["onnx-int8"]["quantization"]
    assert quant["target"] == target and quant["requested_target"] == target
    assert (quant["activation_type"], quant["weight_type"]) == (activation, "int8")
    assert quant["per_channel"] is True and quant["calibration_images"] == 9
    # everything int8 passed the (wide) gate at the first attempt: no float nodes
    assert quant["float_nodes"] == [] and len(quant["attempts"]) == 1 and quant["attempts"][0]["passed"]
    assert _zero_point_types(out / "model.int8.onnx") == {onnx_type}  # UINT8 = 2, INT8 = 3
    report = json.loads((out / "parity.json").read_text())
    assert report["formats"]["onnx-int8"]["quantization"]["target"] == target
    assert report["formats"]["onnx-int8"]["passed"] is True


def test_arm_plan_quantizes_activations_signed(fp32_model, tmp_path):
    root, _ = fp32_model
    src = root / "art-x86" / "model.onnx"
    if not src.is_file():
        pytest.skip("needs the x86 export of test_int8_artifact_records_target_and_types")
    pre = q.preprocess_for_quantization(src, tmp_path / "pre.onnx")
    plan = q.Int8Plan("arm", tuple(q.stem_nodes(pre)))
    calib = np.random.default_rng(0).standard_normal((4, 3, 64, 64), dtype=np.float32)
    dst, settings = q.quantize_int8(tmp_path / "pre.onnx", tmp_path / "arm.onnx", calib, {}, plan)
    assert (settings["target"], settings["activation_type"], settings["weight_type"]) == ("arm", "int8", "int8")
    assert settings["float_nodes"] == list(plan.float_nodes) and len(plan.float_nodes) == 1
    assert _zero_point_types(dst) == {3}  # INT8


def test_float_nodes_are_searched_until_the_gate_passes(fp32_model, tmp_path):
    """Attempts go all-int8 → stem float → stem + head float; the first passing one is kept."""
    import onnx

    root, _ = fp32_model
    src = root / "art-x86" / "model.onnx"
    if not src.is_file():
        pytest.skip("needs the x86 export of test_int8_artifact_records_target_and_types")
    calib = np.random.default_rng(0).standard_normal((4, 3, 64, 64), dtype=np.float32)
    seen = []

    def gate(path):  # passes only once the classifier head is float
        proto = onnx.load(str(path))
        float_matmul = any(n.op_type in ("MatMul", "Gemm") and not n.input[1].endswith("_DequantizeLinear_Output")
                           for n in proto.graph.node)
        seen.append(float_matmul)
        return {"passed": float_matmul, "top1_accuracy": 50.0, "accuracy_drop_points": 0.0 if float_matmul else 5.0}

    dst, settings, row = q.quantize_gated(src, tmp_path / "m.int8.onnx", calib, {"k": "v"}, "x86", tmp_path, gate)
    assert seen == [False, False, True]
    assert [a["passed"] for a in settings["attempts"]] == [False, False, True]
    assert settings["attempts"][0]["float_nodes"] == []
    assert len(settings["float_nodes"]) >= 2 and settings["float_nodes"] == settings["attempts"][2]["float_nodes"]
    assert row["passed"] and not (tmp_path / "int8-preprocessed.onnx").exists()
    meta = {p.key: p.value for p in onnx.load(str(dst)).metadata_props}
    assert meta == {"k": "v"}
