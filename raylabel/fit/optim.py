"""The optimizer of a training run: one AdamW, with a slower body when fine-tuning a
pretrained start (`train.backbone_lr_scale`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def make_optimizer(model: nn.Module, task: Any, config: dict[str, Any]) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; with a scale below 1 the class head learns at
    `lr` and the rest at `lr x scale` (two parameter groups, so the schedule scales both)."""
    lr = float(config["lr"])
    scale = float(config.get("backbone_lr_scale", 1.0))
    named = [(n.removeprefix("module."), p) for n, p in model.named_parameters() if p.requires_grad]
    if scale == 1.0:
        groups: list[dict[str, Any]] = [{"params": [p for _, p in named], "lr": lr}]
    else:
        head = [p for n, p in named if task.is_head(n)]
        body = [p for n, p in named if not task.is_head(n)]
        if not head:
            raise RuntimeError(f"{type(task).__name__}: no class head among the parameters")
        groups = [{"params": body, "lr": lr * scale}, {"params": head, "lr": lr}]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=float(config["weight_decay"]))
