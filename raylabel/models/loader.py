"""The inference actors' model recipe: picklable, so Ray ships it and each actor loads once;
tests pass their own loader instead.

The weights an actor loads are checked against the sha256 the driver read from the store
when it planned the run (not against the card in the node's cache, which is only a copy):
a cached model that was tampered with, or half-replaced, is fetched again or refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from raylabel.errors import ModelLoadError
from raylabel.io import storage
from raylabel.io.layout import fetch_model
from raylabel.io.storage import StorageOptions
from raylabel.models.card import WEIGHTS_FILE, ModelCard, sha256_file
from raylabel.models.predictor import EnsemblePredictor, Predictor


def expected_weights(card: ModelCard, with_folds: bool) -> tuple[tuple[str, str], ...]:
    """(sub-directory, weights sha256) of what a run loads: the model, or its fold models."""
    if not with_folds:
        return (("", card.weights_sha256),)
    members = list(card.ensemble.get("members") or [])
    shas = list(card.ensemble.get("sha256") or [""] * len(members))
    return tuple(zip(members, shas, strict=True))


@dataclass(frozen=True)
class ModelLoader:
    """Picklable recipe for the actor's model; tests pass their own loader instead."""

    root: str
    version: str
    opts: StorageOptions
    use_gpu: bool = False
    threads: int = 1
    ensemble: bool = False
    weights_sha256: tuple[tuple[str, str], ...] = ()

    def __call__(self) -> Predictor | EnsemblePredictor:
        """Runs once in each actor: fetch the model to local disk, verify its weights and load
        it (or its fold ensemble) with the actor's thread budget, on the GPU only when asked."""
        import torch

        torch.set_num_threads(self.threads)
        device = "cuda" if self.use_gpu and torch.cuda.is_available() else "cpu"
        local = fetch_model(self.root, self.version, self.opts, with_folds=self.ensemble)
        if self._mismatch(local) and storage.is_remote(self.root):
            local = fetch_model(
                self.root, self.version, self.opts, with_folds=self.ensemble, refresh=True
            )
        bad = self._mismatch(local)
        if bad:
            raise ModelLoadError(
                f"{bad}: sha256 does not match the model card the run was planned with"
            )
        if self.ensemble:
            return EnsemblePredictor.from_dir(local, device)
        return Predictor.from_dir(local, device)

    def _mismatch(self, local: Path) -> str | None:
        for rel, sha in self.weights_sha256:
            weights = (local / rel / WEIGHTS_FILE) if rel else local / WEIGHTS_FILE
            if sha and (not weights.is_file() or sha256_file(weights) != sha):
                return str(weights)
        return None
