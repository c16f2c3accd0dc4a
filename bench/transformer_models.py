"""The transformers image archs for bench/gpu.py and scripts/gpu_smoke.py: a ViT
(`model.arch=hf`) and a CLIP zero-shot classifier (`model.arch=clip`), random weights at
their real sizes (ViT-B/16, CLIP ViT-B/32: the cost does not depend on the weights) or tiny
for CPU smoke runs, built and published exactly as `train` publishes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ARCHS = ("vit_b16", "clip_b32")
MEAN, STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


def _vit(size: int, n_classes: int, tiny: bool) -> Any:
    from transformers import ViTConfig, ViTForImageClassification

    kw = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
          "intermediate_size": 64} if tiny else {}  # fmt: skip
    return ViTForImageClassification(
        ViTConfig(image_size=size, patch_size=16, num_labels=n_classes, **kw)
    )


def _clip(size: int, tiny: bool) -> Any:
    from transformers import CLIPConfig, CLIPModel

    small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64}  # fmt: skip
    vision = {"image_size": size, "patch_size": 32, **(small if tiny else {})}
    # tiny: a 64-token text tower (the prompts' cost is paid once, at train time)
    text = {"vocab_size": 64, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1, **small}
    return CLIPModel(
        CLIPConfig(text_config=text if tiny else {}, vision_config=vision, projection_dim=512)
    )


def build(arch: str, size: int, n_classes: int, tiny: bool = False) -> Any:
    """uint8 NCHW in, logits out, as the published model runs in the inference actor."""
    if arch == "vit_b16":
        from raylabel.models.hf_image import HfImageClassifier

        return HfImageClassifier(_vit(size, n_classes, tiny), MEAN, STD)
    if arch == "clip_b32":
        from raylabel.models.clip import ClipClassifier, ClipHead

        return ClipClassifier(ClipHead(_clip(size, tiny), n_classes), MEAN, STD)
    raise ValueError(f"not a transformers bench arch: {arch}")


def save(arch: str, model: Any, card: Any, staging: Path) -> None:
    """The model directory `train` would publish for this family, card included."""
    from safetensors.torch import save_file

    from raylabel.models.card import CARD_FILE, WEIGHTS_FILE, sha256_file

    staging.mkdir(parents=True, exist_ok=True)
    card.preprocessing.update({"mean": MEAN, "std": STD})
    if arch == "vit_b16":
        card.arch = "hf"
        hf = model.backbone
        hf.config.id2label = dict(enumerate(card.classes))
        hf.config.label2id = {c: i for i, c in enumerate(card.classes)}
        hf.save_pretrained(str(staging), safe_serialization=True)
    else:
        card.arch = "clip"
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(staging / WEIGHTS_FILE))
        model.backbone.clip.config.save_pretrained(str(staging))
    card.weights_sha256 = sha256_file(staging / WEIGHTS_FILE)
    (staging / CARD_FILE).write_text(json.dumps(card.to_json(), indent=2))
