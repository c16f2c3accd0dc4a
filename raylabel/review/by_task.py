"""The review draw of a run, whatever its task: what the label stage and `sample` call."""

from __future__ import annotations

from typing import Any

from raylabel.config import Config
from raylabel.io.layout import RunLayout
from raylabel.io.storage import StorageOptions
from raylabel.models.card import ModelCard
from raylabel.review import draw, ml_draw


def draw_review(
    cfg: Config,
    run: RunLayout,
    card: ModelCard,
    stats: dict[str, Any],
    opts: StorageOptions,
    plan: Any = None,
    review_dir: str | None = None,
) -> dict[str, Any]:
    """Sample + queue of a run: the multilabel draw for a multilabel card (its strata differ:
    accepted x undecided classes x margin bin), the multiclass one otherwise."""
    if card.task == "multilabel":
        return ml_draw.draw_multilabel_review(cfg, run, card, stats, opts, plan, review_dir)
    return draw.draw_review(cfg, run, card, stats, opts, plan, review_dir)
