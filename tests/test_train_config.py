"""TrainConfig: the torch-free single source of training defaults, its validation and resume rules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeclf.runtime.errors import UsageError
from edgeclf.train.config import RECIPE_FIELDS, RUN_FIELDS, TrainConfig, resume_config


def test_defaults_and_field_kinds():
    c = TrainConfig()
    assert (c.arch, c.epochs, c.batch_size, c.lr, c.dropout, c.unfreeze, c.feature_cache) == \
        ("resnet50", 30, 32, 1e-3, 0.4, False, True)
    assert c.uses_feature_cache and not TrainConfig(unfreeze=True).uses_feature_cache
    assert set(c.recipe()) == set(RECIPE_FIELDS) and not set(RECIPE_FIELDS) & set(RUN_FIELDS)
    assert {"decode", "device", "workers", "progress", "on_changed"} == set(RUN_FIELDS)
    with pytest.raises(Exception):  # frozen
        c.epochs = 3  # type: ignore[misc]


def test_every_bad_value_is_named_in_one_line():
    with pytest.raises(UsageError) as info:
        TrainConfig(epochs=0, batch_size=2.5, lr=float("nan"), dropout=1.0, workers=-1, backbone_lr_mult=0)
    message = str(info.value)
    assert "\n" not in message
    for part in ("--epochs 0", "--batch-size 2.5", "--lr nan", "--dropout 1.0", "--workers -1", "--backbone-lr-mult 0"):
        assert part in message
    with pytest.raises(TypeError, match="unknown training option.*epoch\\b"):
        TrainConfig.from_options({"epoch": 3})


def test_resume_config_keeps_the_recipe_and_names_conflicts():
    saved = TrainConfig(arch="tiny_cnn", weights="none", epochs=5, lr=3e-3).recipe()
    # Not given: the checkpoint's values; run settings are this call's.
    c = resume_config({"device": "cpu", "workers": 0}, saved, "run/last.pt")
    assert (c.arch, c.epochs, c.lr, c.device, c.workers) == ("tiny_cnn", 5, 3e-3, "cpu", 0)
    # Given with the checkpoint's value: fine.
    assert resume_config({"epochs": 5, "lr": 3e-3}, saved, "run/last.pt") == TrainConfig(**saved)
    # Given with the default value, which differs from the checkpoint's: refused, not ignored.
    with pytest.raises(UsageError, match=r"^--resume run/last.pt: lr=0.001 \(checkpoint: 0.003\); a resumed run"):
        resume_config({"lr": TrainConfig.lr}, saved, "run/last.pt")


def test_config_import_is_torch_free():
    code = "import sys, edgeclf.train.config, edgeclf.commands.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
