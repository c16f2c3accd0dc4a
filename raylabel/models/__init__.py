"""Models: architectures, training adapters, the checkpoint contract (card + safetensors),
predictors and the registry that maps modality x arch to them.

The public names load on first use: reading a model card (every review, report and scan
worker does) must not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raylabel.models.card import (
        CARD_FILE,
        WEIGHTS_FILE,
        ModelCard,
        read_card,
        save_model_dir,
    )
    from raylabel.models.image import build_image_model
    from raylabel.models.loader import ModelLoader
    from raylabel.models.predictor import EnsemblePredictor, Predictor, load_model_dir

_HOMES = {
    "CARD_FILE": "card",
    "WEIGHTS_FILE": "card",
    "ModelCard": "card",
    "read_card": "card",
    "save_model_dir": "card",
    "build_image_model": "image",
    "ModelLoader": "loader",
    "EnsemblePredictor": "predictor",
    "Predictor": "predictor",
    "load_model_dir": "predictor",
}

__all__ = [
    "CARD_FILE",
    "WEIGHTS_FILE",
    "EnsemblePredictor",
    "ModelCard",
    "ModelLoader",
    "Predictor",
    "build_image_model",
    "load_model_dir",
    "read_card",
    "save_model_dir",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"raylabel.models.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'raylabel.models' has no attribute {name!r}")
