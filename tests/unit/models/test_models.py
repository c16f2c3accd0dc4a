"""raylabel.models: architectures and the checkpoint contract (safetensors + model card)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from raylabel.errors import ModelLoadError
from raylabel.models import image as image_module
from raylabel.models import predictor as predictor_module
from raylabel.models.card import CARD_FILE, WEIGHTS_FILE, ModelCard, save_model_dir, sha256_file
from raylabel.models.image import build_image_model, load_pretrained_backbone
from raylabel.models.predictor import Predictor, load_model_dir

ARCHS = ["small_cnn", "resnet18", "mobilenet_v3_small"]
CLASSES = ["cat", "dog", "bird"]


def _pixels(n: int = 2, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, size, size), dtype=np.uint8)


def _card(arch: str = "small_cnn", classes: list[str] | None = None) -> ModelCard:
    return ModelCard(
        model_version="m-test",
        arch=arch,
        modality="image",
        classes=list(classes or CLASSES),
        preprocessing={"image_size": 32},
        temperature=1.5,
        thresholds={"cat": 0.9},
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved small_cnn model dir; tests that alter it work on a copy."""
    torch.manual_seed(0)
    model = build_image_model("small_cnn", len(CLASSES)).eval()
    out = tmp_path_factory.mktemp("models") / "m-test"
    save_model_dir(model, _card(), out)
    return out


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    out.mkdir()
    for name in (WEIGHTS_FILE, CARD_FILE):
        (out / name).write_bytes((model_dir / name).read_bytes())
    return out


def _edit_card(path: Path, **changes: object) -> None:
    card = json.loads((path / CARD_FILE).read_text())
    for key, value in changes.items():
        if value is None:
            card.pop(key, None)
        else:
            card[key] = value
    (path / CARD_FILE).write_text(json.dumps(card))


def _one_line_error(model_path: Path, match: str) -> str:
    with pytest.raises(ModelLoadError, match=match) as info:
        Predictor.from_dir(model_path)
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------
# Architectures
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_build_image_model_logits_shape(arch: str) -> None:
    torch.manual_seed(0)
    model = build_image_model(arch, num_classes=5).eval()
    with torch.inference_mode():
        out = model(torch.from_numpy(_pixels()))
    assert out.shape == (2, 5)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_build_image_model_trains_on_uint8_batches() -> None:
    model = build_image_model("small_cnn", num_classes=2)
    loss = torch.nn.functional.cross_entropy(
        model(torch.from_numpy(_pixels())), torch.tensor([0, 1])
    )
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_build_image_model_unknown_arch() -> None:
    with pytest.raises(ValueError, match=r"model\.arch"):
        build_image_model("vgg11", 2)


# ------------------------------------------------------------------------------------------
# Save / load round trip
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_save_and_load_round_trip(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build_image_model(arch, len(CLASSES)).eval()
    card = save_model_dir(model, _card(arch), tmp_path / "m")
    # the predictor runs images channels-last (the fast CPU and GPU layout): the same layout
    # here, so the round trip is checked bit for bit
    model = model.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        pixels = torch.from_numpy(_pixels()).contiguous(memory_format=torch.channels_last)
        expected = model(pixels).numpy()

    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted([CARD_FILE, WEIGHTS_FILE])
    assert card.weights_sha256 == sha256_file(tmp_path / "m" / WEIGHTS_FILE)

    predictor = Predictor.from_dir(tmp_path / "m")
    assert not predictor.model.training
    np.testing.assert_array_equal(predictor.logits(_pixels()), expected)
    assert predictor.card.classes == CLASSES
    assert predictor.card.temperature == 1.5
    assert predictor.card.thresholds == {"cat": 0.9}
    assert predictor.card.class_threshold(0) == 0.9
    assert predictor.card.class_threshold(1) == predictor.card.global_threshold


def test_card_ignores_unknown_keys(model_copy: Path) -> None:
    _edit_card(model_copy, added_by_a_newer_version={"x": 1})
    _, card = load_model_dir(model_copy)
    assert card.classes == CLASSES


# ------------------------------------------------------------------------------------------
# Security: no pickle, ever
# ------------------------------------------------------------------------------------------


class _Payload:
    """Unpickling this runs a shell command; the test only ever writes it, never loads it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("name", ["model.pt", "pytorch_model.bin", "extra.pkl", "W.PTH"])
def test_pickle_capable_file_is_refused_before_loading(
    model_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    marker = tmp_path / "pwned"
    (model_copy / name).write_bytes(pickle.dumps(_Payload(marker)))

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("something was loaded from an unsafe model dir")

    monkeypatch.setattr(predictor_module, "read_card", must_not_run)
    monkeypatch.setattr(image_module, "build_image_model", must_not_run)
    monkeypatch.setattr(safetensors.torch, "load_file", must_not_run)
    monkeypatch.setattr(torch, "load", must_not_run)
    monkeypatch.setattr(pickle, "load", must_not_run)
    monkeypatch.setattr(pickle, "loads", must_not_run)

    message = _one_line_error(model_copy, match="refusing to load")
    assert name in message
    assert not marker.exists()


# ------------------------------------------------------------------------------------------
# Card and weights must agree
# ------------------------------------------------------------------------------------------


def test_weights_changed_after_the_card_was_written(model_copy: Path) -> None:
    model = build_image_model("small_cnn", len(CLASSES))  # other random weights, same shapes
    save_model_dir(model, _card(), model_copy / "other")
    (model_copy / WEIGHTS_FILE).write_bytes((model_copy / "other" / WEIGHTS_FILE).read_bytes())
    _one_line_error(model_copy, match="sha256 does not match")


def test_class_count_mismatch(model_copy: Path) -> None:
    _edit_card(model_copy, classes=["a", "b", "c", "d", "e"], weights_sha256=None)
    message = _one_line_error(model_copy, match="do not match")
    assert "5 classes" in message and "small_cnn" in message


def test_arch_mismatch(model_copy: Path) -> None:
    _edit_card(model_copy, arch="resnet18", weights_sha256=None)
    _one_line_error(model_copy, match="do not match")


def test_missing_card(model_copy: Path) -> None:
    (model_copy / CARD_FILE).unlink()
    _one_line_error(model_copy, match=f"no {CARD_FILE}")


def test_missing_weights(model_copy: Path) -> None:
    (model_copy / WEIGHTS_FILE).unlink()
    _one_line_error(model_copy, match=f"no {WEIGHTS_FILE}")


def test_invalid_json_card(model_copy: Path) -> None:
    (model_copy / CARD_FILE).write_text('{"model_version": "m",\n  "arch": ')
    _one_line_error(model_copy, match="not valid JSON")


def test_card_missing_required_fields(model_copy: Path) -> None:
    _edit_card(model_copy, classes=None, arch=None)
    message = _one_line_error(model_copy, match="missing")
    assert "arch" in message and "classes" in message


def test_corrupt_weights_without_a_recorded_hash(model_copy: Path) -> None:
    _edit_card(model_copy, weights_sha256=None)
    (model_copy / WEIGHTS_FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    _one_line_error(model_copy, match=WEIGHTS_FILE)


def test_pickle_renamed_to_safetensors_is_not_unpickled(model_copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _edit_card(model_copy, weights_sha256=None)
    (model_copy / WEIGHTS_FILE).write_bytes(pickle.dumps(_Payload(marker)))
    _one_line_error(model_copy, match="not a valid safetensors file")
    assert not marker.exists()


def test_image_weights_under_a_text_card_are_refused(model_copy: Path) -> None:
    _edit_card(model_copy, modality="text")
    _one_line_error(model_copy, match="modality='text' arch='small_cnn', which no model family")


# ------------------------------------------------------------------------------------------
# Pretrained backbones
# ------------------------------------------------------------------------------------------


def test_load_pretrained_backbone_skips_the_head() -> None:
    torch.manual_seed(2)
    donor = build_image_model("resnet18", num_classes=10)
    model = build_image_model("resnet18", num_classes=3)
    head_before = model.backbone.fc.weight.detach().clone()

    skipped = load_pretrained_backbone(model, "resnet18", donor.backbone.state_dict())

    assert skipped == ["fc.bias", "fc.weight"]
    ours, theirs = model.backbone.state_dict(), donor.backbone.state_dict()
    for name, value in ours.items():
        if name not in skipped:
            assert torch.equal(value, theirs[name]), name
    assert torch.equal(model.backbone.fc.weight, head_before)
    assert model.backbone.fc.weight.shape == (3, 512)


def test_load_pretrained_backbone_reports_missing_tensors() -> None:
    donor = build_image_model("small_cnn", num_classes=2).backbone.state_dict()
    partial = {k: v for k, v in donor.items() if not k.startswith("features.0.")}
    model = build_image_model("small_cnn", num_classes=2)
    skipped = load_pretrained_backbone(
        model, "small_cnn", {**partial, "unrelated.weight": torch.zeros(1)}
    )
    assert skipped == ["features.0.weight"]
