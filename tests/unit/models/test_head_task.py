"""Head-only training on cached features (#17 item 4): the cached vector is exactly what the
head sees inside the published model, training moves the head and nothing else, and two
builds of the frozen task from one config are the same body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from raylabel.fit.fold_model import fit_model
from raylabel.models.head_task import HeadTask, build_frozen, head_inputs
from raylabel.models.registry import family_for


def _config(tmp_path: Path, arch: str) -> dict[str, Any]:
    from raylabel.models.image import build_image_model

    start = tmp_path / f"{arch}.safetensors"
    torch.manual_seed(7)
    body = build_image_model(arch, 5).backbone.state_dict()
    save_file({k: v.contiguous() for k, v in body.items()}, str(start))
    return {
        "arch": arch, "num_classes": 3, "dropout": 0.2, "seed": 0, "augment": "flip",
        "pretrained": str(start), "freeze_backbone": True, "worker_cache_mb": 0,
        "epochs": 3, "min_steps": 0, "batch_size": 8, "lr": 0.01, "weight_decay": 0.0,
        "warmup_fraction": 0.1, "backbone_lr_scale": 1.0,
    }  # fmt: skip


@pytest.mark.parametrize("arch", ["small_cnn", "resnet18", "mobilenet_v3_small"])
def test_cached_features_are_what_the_head_sees(tmp_path: Path, arch: str) -> None:
    config = _config(tmp_path, arch)
    make = family_for("image", arch).make_task
    task = build_frozen(make, config, 0)
    pixels = np.random.default_rng(0).integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    feats = head_inputs(task, pixels, torch.device("cpu"))
    head = HeadTask(build_frozen(make, config, 1)).model.eval()
    with torch.no_grad():
        direct = task.model(torch.from_numpy(pixels)).numpy()
        via_head = head(torch.from_numpy(feats)).numpy()
    np.testing.assert_allclose(via_head, direct, rtol=1e-5, atol=1e-5)


def test_head_training_moves_only_the_head_and_saves_the_whole_model(tmp_path: Path) -> None:
    config = _config(tmp_path, "resnet18")
    make = family_for("image", "resnet18").make_task
    task = HeadTask(build_frozen(make, config, 0))
    before = {k: v.clone() for k, v in task.inner.model.state_dict().items()}
    rng = np.random.default_rng(1)
    feats = torch.from_numpy(rng.normal(size=(24, 512)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, 24))

    def batches(epoch: int) -> Any:
        for i in range(0, 24, 8):
            yield {"e": feats[i : i + 8]}, y[i : i + 8]

    assert fit_model(task, config, batches, 24, torch.device("cpu")) == 9
    task.save(task.model, tmp_path)
    saved = load_file(str(tmp_path / "model.safetensors"))
    assert set(saved) == set(before)
    moved = {k for k in before if not torch.equal(saved[k], before[k])}
    assert moved == {"backbone.fc.weight", "backbone.fc.bias"}


def test_cached_features_of_a_transformers_image_model(tmp_path: Path) -> None:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    from raylabel.io.storage import StorageOptions

    base = tmp_path / "vit"
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=64, num_labels=5)  # fmt: skip
    ViTForImageClassification(config).save_pretrained(base, safe_serialization=True)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(base)
    cfg = {**_config(tmp_path, "small_cnn"), "arch": "hf", "pretrained": None,
           "pretrained_uri": str(base), "storage": StorageOptions(),
           "classes": ["a", "b", "c"]}  # fmt: skip
    make = family_for("image", "hf").make_task
    task = build_frozen(make, cfg, 0)
    pixels = np.random.default_rng(2).integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    feats = head_inputs(task, pixels, torch.device("cpu"))
    assert feats.shape == (4, 32)  # the [CLS] token ViT's classifier reads
    head = HeadTask(build_frozen(make, cfg, 1)).model.eval()
    with torch.no_grad():
        direct = task.model(torch.from_numpy(pixels)).numpy()
        via_head = head(torch.from_numpy(feats)).numpy()
    np.testing.assert_allclose(via_head, direct, rtol=1e-5, atol=1e-5)
