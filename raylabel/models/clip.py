"""`model.arch=clip`: zero-shot labeling from class prompts with a CLIP-style model.

Why a classifier and not a special path: the prompts' text embeddings, normalised and
scaled by the model's logit scale, are exactly a linear head on the normalised image
embedding. So a CLIP model plus its prompts *is* an image classifier: `train` builds it
(no training), scores every seed item with it for calibration and thresholds (none of
them was trained on), and `label`, the review queue and the trust layer use it like any
other published image model. One `model.safetensors` holds every tensor (sha256 on the
card, loaded strictly), beside the CLIP config, the image processor and the tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raylabel.errors import ModelLoadError
from raylabel.models.card import ModelCard, checked_weights, refuse_pickles
from raylabel.models.hf_image import PROCESSOR_FILE, processor_settings
from raylabel.models.image_task import ImageTask

WEIGHTS = "model.safetensors"
SUBDIR = "clip"  # the checkpoint folder `write_model_dir` copies


def class_prompts(classes: list[str], template: str) -> list[str]:
    """One prompt per class: `{label}` filled with the class name, underscores as spaces."""
    return [template.replace("{label}", c.replace("_", " ")) for c in classes]


class ClipHead(nn.Module):
    """CLIP's image tower and projection, then the prompts' head on the unit-length embedding
    (`classifier`: the review queue reads its input as the item's embedding)."""

    def __init__(self, clip: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.clip = clip
        dim = int(clip.config.projection_dim)  # type: ignore[union-attr]
        self.classifier = nn.Linear(dim, n_classes, bias=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """nn.Module contract: logits = scale x cosine(image, prompt) for each class."""
        pooled = self.clip.vision_model(pixel_values=pixel_values).pooler_output  # type: ignore[operator]
        emb = self.clip.visual_projection(pooled)  # type: ignore[operator]
        return self.classifier(emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12))


class ClipClassifier(nn.Module):
    """uint8 NCHW pixels in, logits out: the processor's normalisation inside the model."""

    def __init__(self, head: ClipHead, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.backbone = head
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """nn.Module contract: logits of NCHW pixels in 0-255."""
        return self.backbone((x.float() - self.mean) / self.std)


@torch.inference_mode()
def prompt_weights(clip: Any, tokenizer: Any, prompts: list[str]) -> torch.Tensor:
    """(classes, dim): the prompts' unit text embeddings times the model's logit scale."""
    enc = tokenizer(prompts, padding=True, truncation=True, return_tensors="pt")
    out = clip.text_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    emb = clip.text_projection(out.pooler_output)
    emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return emb * clip.logit_scale.exp()


def build_clip_classifier(pretrained_dir: str, classes: list[str], template: str) -> Any:
    """The zero-shot classifier of `classes` from a CLIP directory (model, tokenizer,
    image processor), all offline."""
    from transformers import AutoTokenizer, CLIPModel

    root = Path(pretrained_dir)
    refuse_pickles(root, "pretrained model directory")
    if not (root / PROCESSOR_FILE).is_file():
        raise ModelLoadError(f"{pretrained_dir}: no {PROCESSOR_FILE} (save the CLIP processor)")
    settings = processor_settings(json.loads((root / PROCESSOR_FILE).read_text()))
    try:
        clip = CLIPModel.from_pretrained(
            pretrained_dir, local_files_only=True, use_safetensors=True
        )
        tokenizer = AutoTokenizer.from_pretrained(pretrained_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{pretrained_dir}: not a CLIP model directory ({exc})") from None
    clip.eval()
    head = ClipHead(clip, len(classes))
    with torch.no_grad():
        head.classifier.weight.copy_(
            prompt_weights(clip, tokenizer, class_prompts(classes, template))
        )
    model = ClipClassifier(head, settings["mean"], settings["std"])
    model.eval()
    return model, tokenizer


class ClipTask(ImageTask):
    """The image task's batches around the zero-shot classifier; it never trains (the train
    stage only scores the seed with it), and saves one weights file plus what rebuilds it."""

    def __init__(self, config: dict[str, Any], rank: int) -> None:
        from raylabel.io.layout import sync_dir

        self.init_batches(config, rank)
        self.source = Path(sync_dir(config["pretrained_uri"], config["storage"]))
        self.model, self.tokenizer = build_clip_classifier(
            str(self.source), list(config["classes"]), str(config["prompts"])
        )
        self.head = "backbone.classifier."
        for param in self.model.parameters():
            param.requires_grad = False

    def save(self, model: nn.Module, out: Path) -> None:
        """`clip/`: every tensor in one safetensors file, the CLIP config, processor, tokenizer."""
        import shutil

        from safetensors.torch import save_file

        dest = out / SUBDIR
        dest.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(dest / WEIGHTS))
        model.backbone.clip.config.save_pretrained(str(dest))  # type: ignore[union-attr, operator]
        shutil.copyfile(self.source / PROCESSOR_FILE, dest / PROCESSOR_FILE)
        self.tokenizer.save_pretrained(str(dest))


def load_clip_model(model_dir: Path, card: ModelCard) -> nn.Module:
    """A published zero-shot model: rebuilt from its config, every tensor loaded strictly
    from the one weights file the card's sha256 names."""
    from safetensors.torch import load_file
    from transformers import CLIPConfig, CLIPModel

    weights = checked_weights(model_dir, card)
    try:
        clip = CLIPModel(CLIPConfig.from_pretrained(str(model_dir), local_files_only=True))
        model = ClipClassifier(
            ClipHead(clip, len(card.classes)), card.preprocessing["mean"], card.preprocessing["std"]
        )
        model.load_state_dict(load_file(str(weights)), strict=True)
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise ModelLoadError(f"{model_dir}: cannot load the CLIP model ({first})") from None
    model.eval()
    return model
