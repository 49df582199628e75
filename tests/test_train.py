"""train.loop: frozen backbone, checkpoints, history, resume, errors — on tiny_cnn and tiny image trees."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from edgeclf.runtime.errors import ManifestError, UsageError
from edgeclf.train.errors import CheckpointError, DatasetError
from edgeclf.train.checkpoint import load_checkpoint, model_from_checkpoint
from edgeclf.train.history import HISTORY_FIELDS, TIMING_FIELDS
from edgeclf.train.loop import freeze_backbone, param_groups, set_train_mode, train_model
from edgeclf.train.models import build_model
from train_support import write_split

FAST = dict(arch="tiny_cnn", batch_size=4, device="cpu", progress=False, workers=0)


@pytest.fixture
def tiny_split(tmp_path, image_tree):
    """3 classes x 6 noise JPEGs: 4 train, 1 val, 1 test per class."""
    root = image_tree({"cat": 6, "dog": 6, "owl": 6}, size=(48, 40))
    return write_split(root, tmp_path / "split.json", n_val=1, n_test=1)


def _tiny_weights(path: Path) -> Path:
    """A tiny_cnn backbone state dict with non-default BatchNorm statistics, saved to ``path``."""
    torch.manual_seed(7)
    backbone = build_model("tiny_cnn", 2).backbone
    with torch.no_grad():
        for m in backbone.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    torch.save(backbone.state_dict(), path)
    return path


def _comparable(history):
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in history]


def _assert_same_history(a, b, tol=1e-6):
    assert len(a) == len(b)
    for ra, rb in zip(_comparable(a), _comparable(b)):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert math.isclose(ra[k], rb[k], rel_tol=0, abs_tol=tol), (k, ra[k], rb[k])


# --- frozen backbone ---------------------------------------------------------------------------

def test_frozen_backbone_stays_bit_identical_and_bn_in_eval(tmp_path, tiny_split):
    """Recompute path (no cache): a BatchNorm left in train mode would move its running stats."""
    weights = _tiny_weights(tmp_path / "tiny.pth")
    saved = torch.load(weights, weights_only=True)
    result = train_model(tiny_split, tmp_path / "run", weights=str(weights), epochs=2,
                         feature_cache=False, **FAST)
    ckpt = load_checkpoint(result.last_checkpoint)
    backbone = {k[len("backbone."):]: v for k, v in ckpt["model_state"].items() if k.startswith("backbone.")}
    assert backbone.keys() == saved.keys()
    for k in saved:  # weights and BN running_mean/var/num_batches_tracked: bit-identical
        assert torch.equal(backbone[k], saved[k]), k
    # ... while the head did learn (differs from its seeded initialisation).
    torch.manual_seed(0)
    init = build_model("tiny_cnn", 3, weights=str(weights))
    assert not torch.equal(ckpt["model_state"]["head.0.weight"], init.head[0].weight)


def test_set_train_mode_keeps_frozen_batchnorm_in_eval():
    torch.manual_seed(0)
    model = build_model("tiny_cnn", 3)
    freeze_backbone(model)
    set_train_mode(model, frozen=True)
    bns = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert model.head.training and all(not p.requires_grad for p in model.backbone.parameters())
    before = [m.running_mean.clone() for m in bns]
    model(torch.randn(4, 3, 32, 32) * 5 + 3).sum()
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, bns))
    set_train_mode(model, frozen=False)  # the control: unfrozen BN does update
    model(torch.randn(4, 3, 32, 32) * 5 + 3)
    assert not all(torch.equal(b, m.running_mean) for b, m in zip(before, bns))


def test_unfreeze_trains_backbone_at_lower_lr(tmp_path, tiny_split):
    torch.manual_seed(0)
    model = build_model("tiny_cnn", 3)
    groups = param_groups(model, 1e-3, unfreeze=True, backbone_lr_mult=0.1)
    assert [g["lr"] for g in groups] == [pytest.approx(1e-4), 1e-3]
    assert len(param_groups(model, 1e-3, unfreeze=False, backbone_lr_mult=0.1)) == 1

    weights = _tiny_weights(tmp_path / "tiny.pth")
    saved = torch.load(weights, weights_only=True)
    result = train_model(tiny_split, tmp_path / "run", weights=str(weights), epochs=1, unfreeze=True, **FAST)
    state = load_checkpoint(result.last_checkpoint)["model_state"]
    assert not torch.equal(state["backbone.0.weight"], saved["0.weight"])
    assert not torch.equal(state["backbone.1.running_mean"], saved["1.running_mean"])
    assert [g["initial_lr"] for g in load_checkpoint(result.last_checkpoint)["optimizer_state"]["param_groups"]] == [
        pytest.approx(1e-4), pytest.approx(1e-3)]


# --- outputs -----------------------------------------------------------------------------------

def test_checkpoint_history_and_best(tmp_path, tiny_split):
    out = tmp_path / "run"
    result = train_model(tiny_split, out, epochs=3, aug_views=1, **FAST)
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "features.pt", "history.csv", "history.json", "last.pt"]
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert json.loads((out / "history.json").read_text()) == result.history
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0].split(",") == list(HISTORY_FIELDS) and len(lines) == 4
    assert float(lines[2].split(",")[1]) == result.history[1]["train_loss"]
    for row in result.history:
        assert row["train_images"] == 12 and 0 <= row["val_acc"] <= 1 and row["train_images_per_s"] > 0
    # Cosine schedule over 3 epochs: lr 1e-3, 7.5e-4, 2.5e-4.
    assert [r["lr"] for r in result.history] == pytest.approx([1e-3, 7.5e-4, 2.5e-4])

    best = load_checkpoint(result.best_checkpoint)
    accs = [r["val_acc"] for r in result.history]
    assert best["val_acc"] == max(accs) == result.best_val_acc
    assert best["epoch"] == result.best_epoch
    assert result.history[best["epoch"] - 1]["val_loss"] == min(
        r["val_loss"] for r in result.history if r["val_acc"] == max(accs))
    last = load_checkpoint(result.last_checkpoint)
    for key in ("arch", "weights", "class_names", "preprocess", "model_state", "split_sha256", "epoch", "epochs",
                "optimizer_state", "scheduler_state", "rng_state", "history", "train_args", "model_args"):
        assert key in last, key
    assert last["arch"] == "tiny_cnn" and last["weights"] == "none" and last["epoch"] == last["epochs"] == 3
    assert last["class_names"] == ["cat", "dog", "owl"] and last["num_classes"] == 3
    assert last["preprocess"]["crop_size"] == 32 and last["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    assert last["split_sha256"] == __import__("hashlib").sha256(tiny_split.read_bytes()).hexdigest()
    assert last["train_args"]["aug_views"] == 1 and last["scheduler_state"]["last_epoch"] == 3
    # Features cached: (1 + 1 views, 12 train, 16 dims) and (3 val, 16).
    feats = torch.load(out / "features.pt", weights_only=True)
    assert feats["train"].shape == (2, 12, 16) and feats["val"].shape == (3, 16)
    assert not torch.equal(feats["train"][0], feats["train"][1])  # the augmented view differs

    # The rebuilt model reproduces the logged validation accuracy from images (eval transform).
    from edgeclf.runtime.manifest import load_manifest
    from edgeclf.train.evaluate import predict_logits

    model = model_from_checkpoint(last)
    manifest = load_manifest(tiny_split)
    val = manifest.files("val")
    logits = predict_logits(model, [p for p, _ in val], manifest_cfg(last), device="cpu", workers=0)
    acc = float((logits.argmax(1) == [y for _, y in val]).mean())
    assert acc == pytest.approx(result.history[-1]["val_acc"])
    feats_logits = model.head(feats["val"]).detach().numpy()
    assert abs(feats_logits - logits).max() < 1e-4  # cached features == backbone on the images


def manifest_cfg(ckpt):
    from edgeclf.train.checkpoint import preprocess_of

    return preprocess_of(ckpt)


# --- resume ------------------------------------------------------------------------------------

def _kill_after_epoch(monkeypatch, epoch: int):
    """Simulate a kill right after ``last.pt`` of ``epoch`` was written."""
    import edgeclf.train.loop as loop

    real = loop.save_checkpoint

    def save_then_die(state, path):
        out = real(state, path)
        if Path(path).name == "last.pt" and state["epoch"] == epoch:
            raise KeyboardInterrupt("killed")
        return out

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)


@pytest.mark.parametrize("cache", [True, False], ids=["feature-cache", "recompute"])
def test_kill_and_resume_matches_uninterrupted(tmp_path, tiny_split, monkeypatch, cache):
    args = dict(epochs=3, aug_views=1 if cache else 0, feature_cache=cache, **FAST)
    full = train_model(tiny_split, tmp_path / "full", **args)

    with monkeypatch.context() as m:
        _kill_after_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            train_model(tiny_split, tmp_path / "killed", **args)
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["epoch"] == 2
    if cache:  # the cache is deterministic: removing it only costs time
        (tmp_path / "killed" / "features.pt").unlink()
    resumed = train_model(tiny_split, tmp_path / "killed", resume=tmp_path / "killed" / "last.pt", **args)

    assert resumed.start_epoch == 2 and len(resumed.history) == 3
    _assert_same_history(resumed.history, full.history)
    _assert_same_history(json.loads((tmp_path / "killed" / "history.json").read_text()), full.history)
    a = load_checkpoint(full.last_checkpoint)["model_state"]
    b = load_checkpoint(resumed.last_checkpoint)["model_state"]
    assert max(float((a[k].double() - b[k].double()).abs().max()) for k in a) <= 1e-6
    assert load_checkpoint(resumed.best_checkpoint)["epoch"] == full.best_epoch


def test_resume_uses_checkpoint_recipe_and_refuses_conflicts(tmp_path, tiny_split):
    first = train_model(tiny_split, tmp_path / "run", epochs=1, lr=3e-3, **FAST)
    # Resuming a finished run (epochs=1) without recipe options: nothing left to do, recipe kept.
    again = train_model(tiny_split, tmp_path / "run", resume=first.last_checkpoint, **FAST)
    assert again.start_epoch == 1 and len(again.history) == 1 and again.epochs == 1
    assert again.config.lr == 3e-3 and again.config.epochs == 1
    # Recipe options given with the checkpoint's values are fine; run settings may change.
    same = train_model(tiny_split, tmp_path / "run", resume=first.last_checkpoint, epochs=1, lr=3e-3,
                       weights="none", **{**FAST, "workers": 1})
    assert same.start_epoch == 1 and same.config.lr == 3e-3
    with pytest.raises(UsageError, match="lr=0.01"):
        train_model(tiny_split, tmp_path / "run", resume=first.last_checkpoint, lr=1e-2, **FAST)
    # An option given explicitly with its *default* value is still a given option: it conflicts
    # with the checkpoint's different value instead of being silently ignored.
    with pytest.raises(UsageError, match=r"epochs=30 \(checkpoint: 1\), lr=0.001 \(checkpoint: 0.003\)") as info:
        train_model(tiny_split, tmp_path / "run", resume=first.last_checkpoint, epochs=30, lr=1e-3, **FAST)
    assert "\n" not in str(info.value)
    other = train_model(tiny_split, tmp_path / "other", epochs=1, **FAST)
    with pytest.raises(UsageError, match="another run's last.pt"):
        train_model(tiny_split, other.run_dir, resume=first.last_checkpoint, **FAST)


def test_unknown_training_option_is_a_type_error(tmp_path, tiny_split):
    with pytest.raises(TypeError, match="unknown training option.*learning_rate"):
        train_model(tiny_split, tmp_path / "run", learning_rate=1e-3, **FAST)


# --- errors ------------------------------------------------------------------------------------

def test_occupied_out_dir_is_refused(tmp_path, tiny_split):
    train_model(tiny_split, tmp_path / "run", epochs=1, **FAST)
    with pytest.raises(UsageError, match="--resume .*last.pt"):
        train_model(tiny_split, tmp_path / "run", epochs=1, **FAST)


def test_corrupt_checkpoints_give_clear_errors(tmp_path, tiny_split):
    result = train_model(tiny_split, tmp_path / "run", epochs=1, **FAST)
    data = result.last_checkpoint.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00garbage" * 100)
    bare = tmp_path / "bare.pt"
    torch.save(build_model("tiny_cnn", 3).state_dict(), bare)
    for path, message in ((truncated, "truncated"), (garbage, "truncated"), (bare, "not an edgeclf checkpoint"),
                          (tmp_path / "absent.pt", "no such checkpoint")):
        with pytest.raises(CheckpointError, match=message) as info:
            train_model(tiny_split, tmp_path / "run2", resume=path, epochs=2, **FAST)
        assert str(path) in str(info.value)


def test_checkpoint_from_another_split_is_refused(tmp_path, tiny_split, image_tree):
    result = train_model(tiny_split, tmp_path / "run", epochs=1, **FAST)
    other = write_split(tiny_split.parent / "data", tmp_path / "other.json", n_val=2, n_test=1)
    with pytest.raises(CheckpointError, match="another split") as info:
        train_model(other, tmp_path / "run", resume=result.last_checkpoint, epochs=1, **FAST)
    assert "other.json" in str(info.value)


def _replace_and_rehash(split: Path, index: int, data: bytes) -> Path:
    """Overwrite train image ``index`` with ``data`` and record its new sha256 in the manifest
    (so the file is not "changed since the split" but simply undecodable)."""
    import hashlib

    from edgeclf.runtime.manifest import load_manifest

    bad = load_manifest(split).files("train")[index][0]
    bad.write_bytes(data)
    doc = json.loads(split.read_text())
    rel = bad.relative_to(doc["data_root"]).as_posix()
    for e in doc["splits"]["train"]:
        if e["path"] == rel:
            e["sha256"] = hashlib.sha256(data).hexdigest()
    split.write_text(json.dumps(doc))
    return bad


def test_undecodable_image_names_the_file(tmp_path, tiny_split):
    bad = _replace_and_rehash(tiny_split, 2, b"this is not a JPEG")
    for cache in (True, False):
        with pytest.raises(DatasetError, match="cannot decode") as info:
            train_model(tiny_split, tmp_path / f"run{cache}", epochs=1, feature_cache=cache, **FAST)
        assert str(bad) in str(info.value)


def test_undecodable_image_in_a_worker_still_names_the_file(tmp_path, tiny_split):
    from edgeclf.runtime.manifest import load_manifest

    bad = load_manifest(tiny_split).files("train")[0][0]
    bad.write_bytes(b"")  # changed since the split: refused in the worker, named in one line
    with pytest.raises(DatasetError, match="changed since the split") as info:
        train_model(tiny_split, tmp_path / "run", epochs=1, **{**FAST, "workers": 1})
    assert str(info.value).startswith(str(bad)) and "\n" not in str(info.value)


def test_bad_arguments_and_inputs(tmp_path, tiny_split):
    with pytest.raises(UsageError, match="--epochs 0"):
        train_model(tiny_split, tmp_path / "r", epochs=0, **FAST)
    with pytest.raises(UsageError, match="--batch-size 0.*--aug-views -1"):
        train_model(tiny_split, tmp_path / "r", **{**FAST, "batch_size": 0}, aug_views=-1)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="--device cuda: no CUDA device"):
            train_model(tiny_split, tmp_path / "r", **{**FAST, "device": "cuda"})
    with pytest.raises(ManifestError, match="nope.json"):
        train_model(tmp_path / "nope.json", tmp_path / "r", **FAST)
    no_val = write_split(tiny_split.parent / "data", tmp_path / "noval.json", n_val=0, n_test=1)
    with pytest.raises(UsageError, match="needs train and val"):
        train_model(no_val, tmp_path / "r", **FAST)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="--out .*afile: exists and is not a directory"):
        train_model(tiny_split, tmp_path / "afile", **FAST)
    assert (tmp_path / "afile").read_text() == "x"
    d = json.loads(tiny_split.read_text())
    for classes, message in ((d["classes"][:1] * len(d["classes"]), "more than once"), (d["classes"][:1], "at least 2")):
        (tmp_path / "bad.json").write_text(json.dumps({**d, "classes": classes,
                                                       "splits": {k: [] for k in d["splits"]}}))
        with pytest.raises(ManifestError, match=message):
            train_model(tmp_path / "bad.json", tmp_path / "r2", **FAST)


# --- CLI and ResNet50 ---------------------------------------------------------------------------

def test_cli_train_and_clear_error(tmp_path, tiny_split, run_cli):
    proc = run_cli("train", "--split", tiny_split, "--out", tmp_path / "run", "--arch", "tiny_cnn",
                   "--epochs", "2", "--batch-size", "4", "--device", "cpu", "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 2 and Path(summary["best_checkpoint"]).is_file()
    assert "epoch   2/2" in proc.stderr
    other = write_split(tiny_split.parent / "data", tmp_path / "other.json", n_val=2, n_test=1)
    proc = run_cli("train", "--split", other, "--out", tmp_path / "run", "--resume", tmp_path / "run" / "last.pt",
                   "--device", "cpu")
    assert proc.returncode == 2
    assert proc.stderr.startswith("edgeclf train: error:") and "another split" in proc.stderr
    assert "Traceback" not in proc.stderr
    # --epochs 30 is the default value, but given explicitly it conflicts with the run's 2 epochs.
    proc = run_cli("train", "--split", tiny_split, "--out", tmp_path / "run", "--resume", tmp_path / "run" / "last.pt",
                   "--epochs", "30", "--device", "cpu")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "epochs=30 (checkpoint: 2)" in proc.stderr


@pytest.mark.slow
def test_resnet50_from_module_prefixed_state_dict_file(tmp_path, image_tree):
    """ResNet50 with a random state dict (DataParallel ``module.`` keys) via weights=PATH: the
    frozen backbone (BatchNorm statistics included) comes out bit-identical."""
    import torchvision

    torch.manual_seed(1)
    net = torchvision.models.resnet50(weights=None)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    path = tmp_path / "r50_dp.pth"
    torch.save(state, path)
    root = image_tree({"a": 3, "b": 3}, size=(64, 48))
    split = write_split(root, tmp_path / "split.json", n_val=1, n_test=0)
    result = train_model(split, tmp_path / "run", arch="resnet50", weights=str(path), epochs=1,
                         batch_size=4, feature_cache=False, device="cpu", progress=False, workers=0)
    ckpt = load_checkpoint(result.best_checkpoint)
    assert ckpt["weights"] == str(path) and ckpt["model_state"]["head.3.weight"].shape == (2, 2048)
    for k, v in net.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(ckpt["model_state"][f"backbone.{k}"], v), k


def test_cli_options_and_help_come_from_train_config():
    import argparse
    from dataclasses import fields

    from edgeclf.commands.train import add_arguments, options_from_args
    from edgeclf.train.config import TrainConfig

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    # Nothing given: nothing passed on (train_model's defaults, or a resumed checkpoint's recipe, apply).
    assert options_from_args(parser.parse_args(["--split", "s.json", "--out", "r"])) == {}
    given = parser.parse_args(["--split", "s.json", "--out", "r", "--epochs", "30", "--lr", "0.001",
                               "--no-feature-cache", "--unfreeze", "--weights", "none", "--workers", "0", "--quiet"])
    assert options_from_args(given) == {"epochs": 30, "lr": 0.001, "feature_cache": False, "unfreeze": True,
                                        "weights": "none", "workers": 0, "progress": False}
    text = " ".join(parser.format_help().split())
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.metadata["cli"]:
            assert f"--{f.name.replace('_', '-')}" in text, f.name
            value = getattr(defaults, f.name)
            if value is not None:
                shown = ("on" if value else "off") if isinstance(value, bool) else str(value)
                assert f"(default: {shown})" in text, f.name


def test_epoch_lines_keep_bracketed_text(capsys):
    """Log lines are text: "[best]" and file names with brackets are printed, not read as markup."""
    from edgeclf.train.progress import Reporter

    Reporter().info("epoch 3/30 val 0.99  [best] → run[1]/best.pt")
    assert "[best] → run[1]/best.pt" in capsys.readouterr().err
