"""The training objective: multiclass unchanged, multilabel BCE on bit-set targets."""

from __future__ import annotations

import pytest
import torch

from raylabel.models.objective import Objective


def test_multiclass_is_plain_cross_entropy() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0])
    obj = Objective.from_config({"num_classes": 2})
    expected = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    torch.testing.assert_close(obj.per_item_loss(logits, y), expected)
    assert obj.n_correct(logits, y) == 1.0


def test_multilabel_expands_bits_and_uses_bce() -> None:
    obj = Objective("multilabel", 3)
    y = torch.tensor([0b101, 0])
    assert obj.targets(y).tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    logits = torch.tensor([[3.0, -3.0, 3.0], [-3.0, 3.0, -3.0]])
    assert obj.n_correct(logits, y) == 1.0  # the second item gets a class it does not have
    targets = obj.targets(y)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, targets, reduction="none"
    ).mean(1)
    torch.testing.assert_close(obj.per_item_loss(logits, y), expected)


def test_positive_weight_raises_the_loss_of_missed_positives() -> None:
    y = torch.tensor([0b1])
    logits = torch.tensor([[-2.0]])
    plain = Objective("multilabel", 1).mean_loss(logits, y)
    weighted = Objective("multilabel", 1, [5.0]).mean_loss(logits, y)
    assert weighted == pytest.approx(5 * plain, rel=1e-5)
