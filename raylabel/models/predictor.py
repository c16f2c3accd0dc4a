"""Loading a published model directory and predicting with it (one model, or the fold
ensemble of a cross-fitted one). The family in the registry knows how to rebuild each
architecture; this module refuses anything pickle-capable before it looks further."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from raylabel.errors import ConfigError, ModelLoadError
from raylabel.models.card import ModelCard, read_card, refuse_pickles
from raylabel.models.registry import family_of, pad_id


def load_model_dir(model_dir: Path) -> tuple[nn.Module, ModelCard]:
    """Build the architecture named by the card and load its safetensors weights strictly."""
    refuse_pickles(model_dir)
    card = read_card(model_dir)
    try:
        fam = family_of(card)
    except ConfigError:
        raise ModelLoadError(
            f"{model_dir}: the card says modality={card.modality!r} arch={card.arch!r}, "
            "which no model family loads"
        ) from None
    model = fam.load(model_dir, card)
    model.eval()
    return model, card


class Predictor:
    """A loaded model plus its card: calibrated probabilities for preprocessed batches of any
    family (the inference actors and the active queue use it)."""

    def __init__(
        self, model: nn.Module, card: ModelCard, device: str = "cpu", pad_id: int = 0
    ) -> None:
        self.family = family_of(card)
        self.model = model.to(device)
        if self.family.feature == "pixels":
            # NHWC convolutions are the fast path of cuDNN with bf16 tensor cores, and of
            # oneDNN on CPU too (small_cnn 1.5-1.9x, resnet18 1.2x per forward: bench/cpu_layout.py)
            self.model = self.model.to(memory_format=torch.channels_last)
        self.card = card
        self.device = device
        self.pad_id = pad_id

    def probabilities(
        self, batch: dict[str, np.ndarray], rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(raw, calibrated) softmax probabilities of the selected rows: the card's
        temperature makes the second mean what it says (multilabel: per-class sigmoids)."""
        logits = self.logits_for(batch, rows)
        if self.card.task == "multilabel":  # one sigmoid per class, a temperature each
            # imported here: its module pulls in scipy, which a multiclass actor's cold start
            # (every drop) need not pay
            from raylabel.stats.multilabel import sigmoid

            temps = np.asarray(self.card.temperatures or [1.0] * logits.shape[1])
            return sigmoid(logits), sigmoid(logits, temps)
        return softmax_rows(logits), softmax_rows(logits, float(self.card.temperature or 1.0))

    def logits_for(self, batch: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        """Logits for the selected rows of a preprocessed batch, whatever the family (pixels
        decoded on the device arrive as a tensor there and are selected there)."""
        feature = batch[self.family.feature]
        if isinstance(feature, torch.Tensor):
            return self.family.logits(self, feature[torch.from_numpy(rows).to(feature.device)])
        return self.family.logits(self, feature[rows])

    @torch.inference_mode()
    def text_logits(self, ids: list[np.ndarray]) -> np.ndarray:
        """Logits of a transformers classifier for token-id rows, padded per batch."""
        from raylabel.models.batches import pad

        input_ids, mask = pad(ids, self.pad_id)
        use_amp = self.device.startswith("cuda")
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
            out = self.model(
                input_ids=torch.from_numpy(input_ids).to(self.device),
                attention_mask=torch.from_numpy(mask).to(self.device),
            ).logits
        return out.float().cpu().numpy()

    @classmethod
    def from_dir(cls, model_dir: Path, device: str = "cpu") -> Predictor:
        """Load a published model directory (checked: safetensors only, card matches)."""
        model, card = load_model_dir(model_dir)
        return cls(model, card, device, pad_id(family_of(card), model_dir))

    @torch.inference_mode()
    def logits(self, pixels: np.ndarray | torch.Tensor) -> np.ndarray:
        """Logits of an image model for uint8 NCHW pixels, host arrays or tensors already on
        the device (bf16 autocast on GPU)."""
        if isinstance(pixels, torch.Tensor):
            x = pixels.to(self.device)
        else:
            x = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device)
        x = x.contiguous(memory_format=torch.channels_last)  # the layout the model is in
        use_amp = self.device.startswith("cuda")
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
            out = self.model(x)
        return out.float().cpu().numpy()


def softmax_rows(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / T in float64, shifted by the row max (no overflow)."""
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class EnsemblePredictor:
    """The k cross-fitted fold models of a card, labeling together: the mean of their
    calibrated probabilities (each under the card's temperature, fit on their own
    out-of-fold logits), and the mean of their raw ones."""

    def __init__(self, members: list[Predictor], card: ModelCard) -> None:
        if not members:
            raise ModelLoadError(f"model {card.model_version}: the ensemble has no members")
        self.members = members
        self.card = card
        self.family = members[0].family
        self.device = members[0].device  # every member loads on the actor's one device

    @classmethod
    def from_dir(cls, model_dir: Path, device: str = "cpu") -> EnsemblePredictor:
        """Load every fold model the card lists, refusing a member path outside the model directory
        (a card must not point the loader elsewhere)."""
        card = read_card(model_dir)
        members = card.ensemble.get("members") or []
        if not members:
            raise ModelLoadError(
                f"{model_dir}: infer.ensemble=always needs a model trained with "
                "train.calibration=crossfit and train.keep_fold_models=always"
            )
        loaded = []
        for rel in members:
            sub = (model_dir / rel).resolve()
            if model_dir.resolve() not in sub.parents:
                raise ModelLoadError(f"{model_dir}: ensemble member {rel!r} is outside the model")
            loaded.append(Predictor.from_dir(sub, device))
        return cls(loaded, card)

    def probabilities(
        self, batch: dict[str, np.ndarray], rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictor.probabilities' contract, (raw, calibrated) averaged over the members, so the
        inference actor treats one model and an ensemble alike."""
        raws, cals = zip(*(m.probabilities(batch, rows) for m in self.members), strict=True)
        return np.mean(raws, axis=0), np.mean(cals, axis=0)
