"""`train.backbone_lr_scale`: the class head learns at train.lr, a pretrained body slower."""

from __future__ import annotations

import pytest
import torch

from raylabel.config import ConfigError, load_config
from raylabel.fit.optim import make_optimizer
from raylabel.models.image_task import ImageTask

CONFIG = {"arch": "resnet18", "num_classes": 3, "dropout": 0.0, "seed": 0, "augment": "none",
          "lr": 1e-2, "weight_decay": 0.0}  # fmt: skip


def _step(scale: float) -> tuple[ImageTask, dict[str, torch.Tensor], torch.optim.Optimizer]:
    torch.manual_seed(0)
    task = ImageTask(CONFIG, rank=0)
    before = {n: p.detach().clone() for n, p in task.model.named_parameters()}
    opt = make_optimizer(task.model, task, {**CONFIG, "backbone_lr_scale": scale})
    x = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
    loss = torch.nn.functional.cross_entropy(task.forward(task.model, {"x": x}, train=False),
                                             torch.tensor([0, 1, 2, 0]))  # fmt: skip
    loss.backward()
    opt.step()
    return task, before, opt


def test_head_at_lr_body_scaled() -> None:
    task, before, opt = _step(1e-4)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-6, 1e-2])
    head = {n for n, _ in task.model.named_parameters() if task.is_head(n)}
    assert head == {"backbone.fc.weight", "backbone.fc.bias"}
    moved = {
        n: float((p.detach() - before[n]).abs().max()) for n, p in task.model.named_parameters()
    }
    assert min(moved[n] for n in head) > 1e-3  # AdamW's first step moves by ~lr
    assert max(v for n, v in moved.items() if n not in head) < 1e-5


def test_scale_one_is_one_group() -> None:
    _, _, opt = _step(1.0)
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.backbone_lr_scale=0.1"],  # random init: no pretrained body
        ["train.backbone_lr_scale=0"],
        [
            "train.backbone_lr_scale=0.1",
            "model.arch=resnet18",
            "model.pretrained=torchvision",
            "model.freeze_backbone=true",
        ],
    ],
)
def test_refused_where_it_means_nothing(overrides: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"^train\.backbone_lr_scale:"):
        load_config([], overrides)
