"""Models: architectures, training adapters, the checkpoint contract (card + safetensors),
predictors and the registry that maps modality x arch to them."""

from raylabel.models.card import CARD_FILE, WEIGHTS_FILE, ModelCard, read_card, save_model_dir
from raylabel.models.image import build_image_model
from raylabel.models.loader import ModelLoader
from raylabel.models.predictor import EnsemblePredictor, Predictor, load_model_dir

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
