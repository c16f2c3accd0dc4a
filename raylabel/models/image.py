"""Image architectures: a fast default CNN and torchvision backbones, taking uint8 NCHW."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SmallCNN(nn.Module):
    """Fast default: a cheap stem, three conv blocks and global pooling (~20 MMAC at 48 px),
    so a CPU-only laptop trains it in seconds per epoch."""

    def __init__(self, num_classes: int, dropout: float = 0.2, width: int = 16) -> None:
        super().__init__()

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]

        self.features = nn.Sequential(
            *conv(3, width),
            nn.MaxPool2d(2),
            *conv(width, width * 2),
            *conv(width * 2, width * 2),
            nn.MaxPool2d(2),
            *conv(width * 2, width * 4),
            *conv(width * 4, width * 4),
            nn.MaxPool2d(2),
            *conv(width * 4, width * 8),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width * 8, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The image's representation before any class decision (what the head classifies), split
        from `forward` so the features can be read without the head."""
        return torch.flatten(self.pool(self.features(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """nn.Module contract: logits for a normalised float NCHW batch (ImageClassifier normalises
        before calling it)."""
        return self.fc(self.dropout(self.embed(x)))


class ImageClassifier(nn.Module):
    """Takes uint8 NCHW batches so preprocessing tasks ship 4x fewer bytes than floats."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """nn.Module contract: logits for NCHW pixels in 0-255 (uint8 or float), normalised here so
        preprocessing ships bytes, not floats."""
        x = (x.float() - self.mean) / self.std
        return self.backbone(x)


def crop_fraction(arch: str, pretrained: str | None) -> float | None:
    """The centre-crop share of a torchvision start's own eval transforms (224 of 256 for
    ImageNet weights), so a fine-tuned model sees images framed as in pretraining; None for
    every other start (images are resized whole)."""
    if not pretrained or pretrained.split(":", 1)[0] != "torchvision":
        return None
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(arch)
        name = pretrained.split(":", 1)[1] if ":" in pretrained else "DEFAULT"
        name = name.split(".", 1)[1] if name.startswith(enum.__name__ + ".") else name
        weights = enum.DEFAULT if name == "DEFAULT" else enum[name]
    except (KeyError, ValueError):
        return None  # the pretrained loader names the bad weights
    t = weights.transforms()
    crop, resize = getattr(t, "crop_size", None), getattr(t, "resize_size", None)
    if not crop or not resize:
        return None
    return float(crop[0]) / float(resize[0])


def build_image_model(arch: str, num_classes: int, dropout: float = 0.2) -> ImageClassifier:
    """Random-init architecture by name (pretrained weights are loaded separately)."""
    if arch == "small_cnn":
        backbone: nn.Module = SmallCNN(num_classes, dropout=dropout)
    elif arch in ("resnet18", "resnet50"):
        import torchvision

        backbone = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    elif arch == "mobilenet_v3_small":
        import torchvision

        backbone = torchvision.models.mobilenet_v3_small(
            weights=None, num_classes=num_classes, dropout=dropout
        )
    else:
        raise ValueError(f"model.arch: unknown image architecture {arch!r}")
    return ImageClassifier(backbone)


# the class head of each architecture (re-initialised for the seed's classes; trained
# alone with model.freeze_backbone)
HEADS = {
    "small_cnn": "fc.",
    "resnet18": "fc.",
    "resnet50": "fc.",
    "mobilenet_v3_small": "classifier.3.",
}


def as_backbone_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict in backbone names: torchvision's as they are, raylabel's own saved
    model (`backbone.`-prefixed, plus its normalisation buffers) with the prefix taken off."""
    if any(k.startswith("backbone.") for k in state):
        return {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    return state


def backbone_match(
    model: ImageClassifier, arch: str, state: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str], float]:
    """(the tensors that fit, the model's tensors left as initialised, the share of the
    body — everything but the class head — that the state dict fills)."""
    own = model.backbone.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(usable))
    body = [k for k in own if not k.startswith(HEADS.get(arch, "\0"))]
    share = sum(1 for k in body if k in usable) / max(len(body), 1)
    return usable, skipped, share


def load_pretrained_backbone(
    model: ImageClassifier, arch: str, state: dict[str, torch.Tensor]
) -> list[str]:
    """Load a backbone state dict, skipping tensors whose shape differs (the class head);
    returns the names left as initialised (the driver has checked the share beforehand)."""
    usable, skipped, _ = backbone_match(model, arch, as_backbone_state(state))
    model.backbone.load_state_dict(usable, strict=False)
    return skipped


def freeze_backbone(model: ImageClassifier, arch: str) -> int:
    """Train the class head only (`model.freeze_backbone`); returns the trainable tensors.
    Batch-norm running statistics still follow the seed's images."""
    head = HEADS.get(arch, "\0")
    trainable = 0
    for name, param in model.backbone.named_parameters():
        param.requires_grad = name.startswith(head)
        trainable += int(param.requires_grad)
    return trainable


def load_image_model(model_dir: Path, card: Any) -> nn.Module:
    """Rebuild the card's architecture and load its weights strictly (the card must agree)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from raylabel.errors import ModelLoadError
    from raylabel.models.card import checked_weights

    weights = checked_weights(model_dir, card)
    if card.modality != "image":
        raise ModelLoadError(f"{model_dir}: modality {card.modality!r} is not supported")
    model = build_image_model(card.arch, len(card.classes))
    try:
        state = load_file(str(weights))
    except SafetensorError as exc:
        raise ModelLoadError(f"{weights}: not a valid safetensors file ({exc})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise ModelLoadError(
            f"{weights}: weights do not match the model card "
            f"(arch={card.arch}, {len(card.classes)} classes): {detail}"
        ) from None
    model.eval()
    return model
