"""`model.arch=hf` for images: any transformers image classifier (ViT, ConvNeXt, ResNet,
DINOv2, Swin, ...) from a `save_pretrained` directory, its head re-initialised for the
seed's classes.

The pipeline stays the image pipeline: decode tasks ship uint8 NCHW pixels at the
processor's size, and the model normalises with the processor's own mean and std, so
labeling repeats training from the card alone. Saved with `save_pretrained` (safetensors
only) plus the processor config, like the text family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from raylabel.errors import ModelLoadError
from raylabel.models.card import (
    WEIGHTS_FILE,
    ModelCard,
    check_label_map,
    checked_weights,
    refuse_pickles,
)
from raylabel.models.image_task import ImageTask

PROCESSOR_FILE = "preprocessor_config.json"
HEAD = "classifier."  # transformers' name for the image-classification head


class HfImageClassifier(nn.Module):
    """uint8 NCHW pixels in, logits out: the processor's normalisation inside the model."""

    def __init__(self, backbone: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """nn.Module contract: logits of NCHW pixels in 0-255."""
        x = (x.float() - self.mean) / self.std
        return self.backbone(pixel_values=x).logits


def processor_settings(config: dict[str, Any]) -> dict[str, Any]:
    """image_size, mean and std from a processor config (`preprocessor_config.json`)."""
    size = config.get("size") or config.get("crop_size") or {}
    if isinstance(size, int):
        side = size
    else:
        side = size.get("height") or size.get("shortest_edge") or size.get("width")
    crop = config.get("crop_size")
    if config.get("do_center_crop") and isinstance(crop, dict) and crop.get("height"):
        side = crop["height"]  # the model sees the crop
    if not side:
        raise ValueError(f"{PROCESSOR_FILE}: no image size in {size!r}")
    return {
        "image_size": int(side),
        "mean": [float(v) for v in config.get("image_mean") or [0.5, 0.5, 0.5]],
        "std": [float(v) for v in config.get("image_std") or [0.5, 0.5, 0.5]],
    }


def build_hf_image_model(pretrained_dir: str, classes: list[str]) -> HfImageClassifier:
    """The pretrained model with a new head for `classes`, normalising as its processor."""
    import json

    from transformers import AutoModelForImageClassification

    refuse_pickles(Path(pretrained_dir), "pretrained model directory")
    proc = Path(pretrained_dir) / PROCESSOR_FILE
    if not proc.is_file():
        raise ModelLoadError(f"{pretrained_dir}: no {PROCESSOR_FILE} (save the image processor)")
    settings = processor_settings(json.loads(proc.read_text()))
    hf = AutoModelForImageClassification.from_pretrained(
        pretrained_dir,
        num_labels=len(classes),
        id2label=dict(enumerate(classes)),
        label2id={c: i for i, c in enumerate(classes)},
        ignore_mismatched_sizes=True,
        local_files_only=True,
        use_safetensors=True,
    )
    return HfImageClassifier(hf, settings["mean"], settings["std"])


def freeze_body(model: HfImageClassifier) -> None:
    """`model.freeze_backbone`: only the classification head trains."""
    for name, param in model.backbone.named_parameters():
        param.requires_grad = name.startswith(HEAD)


class HfImageTask(ImageTask):
    """The image task (uint8 batches, augmentation, shard cache) around a transformers model."""

    def __init__(self, config: dict[str, Any], rank: int) -> None:
        from raylabel.io.layout import sync_dir

        self.init_batches(config, rank)
        local = sync_dir(config["pretrained_uri"], config["storage"])
        self.source = Path(local)
        self.model = build_hf_image_model(str(local), list(config["classes"]))
        self.head = "backbone." + HEAD
        if config.get("freeze_backbone"):
            freeze_body(self.model)

    def save(self, model: nn.Module, out: Path) -> None:
        """`hf/`: save_pretrained weights (safetensors) and the processor config beside them."""
        import shutil

        model.backbone.save_pretrained(str(out / "hf"), safe_serialization=True)  # type: ignore[operator]
        shutil.copyfile(self.source / PROCESSOR_FILE, out / "hf" / PROCESSOR_FILE)

    def restore(self, model: nn.Module, ckpt: Path) -> None:
        """Load `save`'s weights back when Ray Train restarts the worker group."""
        from safetensors.torch import load_model

        load_model(model.backbone, str(ckpt / "hf" / WEIGHTS_FILE), strict=False)  # type: ignore[arg-type]


def load_hf_image_model(model_dir: Path, card: ModelCard) -> nn.Module:
    """A published model: safetensors only, its label map the card's classes in order."""
    from transformers import AutoModelForImageClassification

    checked_weights(model_dir, card)
    try:
        hf = AutoModelForImageClassification.from_pretrained(
            str(model_dir), local_files_only=True, use_safetensors=True
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model_dir}: cannot load the model ({exc})") from None
    check_label_map(model_dir, hf.config, card)
    prep = card.preprocessing
    model = HfImageClassifier(hf, prep["mean"], prep["std"])
    model.eval()
    return model
