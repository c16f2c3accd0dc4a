"""Publish a real (untrained) model the way `train` would, for tests that only label."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from raylabel.io import layout
from raylabel.io.storage import StorageOptions
from raylabel.models.card import ModelCard, save_model_dir
from raylabel.models.image import build_image_model


def publish_random_model(
    root: Path,
    classes: list[str],
    created_days_ago: float = 0.0,
    image_size: int = 32,
    out: str | None = None,
    opts: StorageOptions | None = None,
    seed: int | None = None,
) -> str:
    """A randomly initialised model published under `out` (default root/out), as LATEST."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    version = layout.new_id("m-")
    created = layout.utc_now() - timedelta(days=created_days_ago)
    card = ModelCard(
        model_version=version,
        arch="small_cnn",
        modality="image",
        classes=classes,
        preprocessing={"image_size": image_size},
        thresholds={c: 0.6 for c in classes},
        threshold_source={c: "class" for c in classes},
        created_at=created.isoformat(),
    )
    staged = root / "staging" / version
    save_model_dir(build_image_model("small_cnn", len(classes)), card, staged)
    layout.publish_model(staged, out or str(root / "out"), version, opts or StorageOptions())
    return version
