"""Penultimate-layer embeddings of a loaded model, for diversity in the review queue.

Why a separate path from the logits: the active-learning queue spreads reviewers over
the model's feature space (k-center), and class scores alone cannot tell two near-copies
of an image from two different ones. Images: the input of the classification head
(pooled backbone features); text: the attention-masked mean of the last hidden state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

# head attribute names of the image backbones raylabel builds (models.build_image_model)
_HEADS = ("fc", "classifier")


def _head(backbone: nn.Module) -> nn.Module:
    for name in _HEADS:
        head = getattr(backbone, name, None)
        if isinstance(head, nn.Module):
            return head
    raise ValueError(f"no classification head ({' / '.join(_HEADS)}) on {type(backbone).__name__}")


@torch.inference_mode()
def image_embeddings(predictor: Any, pixels: np.ndarray) -> np.ndarray:
    """(n, d) float32: what the classification head sees for uint8 NCHW images."""
    model: Any = predictor.model
    captured: list[torch.Tensor] = []

    def grab(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured.append(torch.flatten(args[0], 1).float())

    handle = _head(model.backbone).register_forward_pre_hook(grab)
    try:
        predictor.logits(pixels)
    finally:
        handle.remove()
    return captured[0].cpu().numpy().astype(np.float32)


@torch.inference_mode()
def text_embeddings(predictor: Any, ids: list[np.ndarray]) -> np.ndarray:
    """(n, d) float32: masked mean of the encoder's last hidden state."""
    from raylabel.models.batches import pad

    input_ids, mask = pad(ids, predictor.pad_id)
    out = predictor.model(
        input_ids=torch.from_numpy(input_ids).to(predictor.device),
        attention_mask=torch.from_numpy(mask).to(predictor.device),
        output_hidden_states=True,
    )
    hidden = out.hidden_states[-1].float()
    m = torch.from_numpy(mask).to(hidden.device).unsqueeze(-1).float()
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    return pooled.cpu().numpy().astype(np.float32)


def embeddings_for(predictor: Any, batch: dict[str, Any], batch_size: int) -> np.ndarray:
    """Embeddings of every row of a preprocessed batch, in chunks, by the model's family."""
    fam = predictor.family
    data = batch[fam.feature]
    parts = [
        fam.embeddings(predictor, data[start : start + batch_size])
        for start in range(0, len(data), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
