"""The inference actors' model recipe: picklable, so Ray ships it and each actor loads once;
tests pass their own loader instead."""

from __future__ import annotations

from dataclasses import dataclass

from raylabel.io.layout import fetch_model
from raylabel.io.storage import StorageOptions
from raylabel.models.predictor import EnsemblePredictor, Predictor


@dataclass(frozen=True)
class ModelLoader:
    """Picklable recipe for the actor's model; tests pass their own loader instead."""

    root: str
    version: str
    opts: StorageOptions
    use_gpu: bool = False
    threads: int = 1
    ensemble: bool = False

    def __call__(self) -> Predictor | EnsemblePredictor:
        """Runs once in each actor: fetch the model to local disk and load it (or its fold ensemble)
        with the actor's thread budget, on the GPU only when asked and present."""
        import torch

        torch.set_num_threads(self.threads)
        device = "cuda" if self.use_gpu and torch.cuda.is_available() else "cpu"
        local = fetch_model(self.root, self.version, self.opts, with_folds=self.ensemble)
        if self.ensemble:
            return EnsemblePredictor.from_dir(local, device)
        return Predictor.from_dir(local, device)
