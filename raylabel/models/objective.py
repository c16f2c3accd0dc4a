"""The training objective of a task: softmax + cross-entropy, or one sigmoid + BCE per class.

Every training path (Ray Train workers, fold models, heads on cached features) asks this one
object for its loss and its accuracy count, so multiclass and multilabel share the loops.
A multilabel target arrives as a bit-set code in the int64 label column
(`raylabel.stats.label_sets`); it is expanded to a 0/1 matrix here, on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class Objective:
    """Loss and accuracy for `task` ("multiclass" | "multilabel") over `n_classes` outputs."""

    task: str
    n_classes: int
    pos_weight: list[float] | None = None  # multilabel BCE weight of each class's positives

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Objective:
        """The objective the training config names (an older config is multiclass)."""
        return cls(
            str(config.get("task", "multiclass")),
            int(config["num_classes"]),
            config.get("pos_weight"),
        )

    @property
    def multilabel(self) -> bool:
        """Whether each output is a class decided on its own."""
        return self.task == "multilabel"

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """Multilabel: the bit-set codes as a [N, C] float 0/1 matrix; multiclass: y as is."""
        if not self.multilabel:
            return y.long()
        shifts = torch.arange(self.n_classes, device=y.device, dtype=torch.int64)
        return ((y.long().unsqueeze(1) >> shifts) & 1).float()

    def per_item_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One loss per item: cross-entropy, or BCE summed over the classes (mean per class)."""
        if not self.multilabel:
            return nn.functional.cross_entropy(logits, y.long(), reduction="none")
        weight = None
        if self.pos_weight is not None:
            weight = torch.as_tensor(self.pos_weight, dtype=logits.dtype, device=logits.device)
        loss = nn.functional.binary_cross_entropy_with_logits(
            logits, self.targets(y), pos_weight=weight, reduction="none"
        )
        return loss.mean(1)

    def mean_loss(self, logits: torch.Tensor, y: torch.Tensor) -> float:
        """The unweighted mean loss (history and validation figures)."""
        if len(y) == 0:
            return float("nan")
        return float(self.per_item_loss(logits, y).mean())

    def n_correct(self, logits: torch.Tensor, y: torch.Tensor) -> float:
        """Items predicted right: the top class, or (multilabel) the exact set at 0.5."""
        if not self.multilabel:
            return float((logits.argmax(1) == y.long()).sum())
        exact = ((logits > 0).float() == self.targets(y)).all(1)
        return float(exact.sum())
