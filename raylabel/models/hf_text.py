"""Text modality: decoding and tokenization tasks, transformers models, padding.

Tokenization runs in CPU preprocessing tasks and ships ragged token ids (no padding on
the wire); the inference actor or training step pads each batch to its own longest item
(dynamic padding). Tokenizers are loaded once per worker process, never per batch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from raylabel.errors import ModelLoadError
from raylabel.models.batches import text_batches, text_inputs
from raylabel.models.card import ModelCard, check_label_map, checked_weights, refuse_pickles

_TOKENIZERS: dict[str, Any] = {}


def load_tokenizer(model_dir: str) -> Any:
    """One transformers tokenizer per process and directory (workers reuse it)."""
    if model_dir not in _TOKENIZERS:
        from transformers import AutoTokenizer

        refuse_pickles(Path(model_dir), "tokenizer directory")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        _TOKENIZERS[model_dir] = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return _TOKENIZERS[model_dir]


def build_text_model(pretrained_dir: str, classes: list[str], dropout: float | None = None) -> Any:
    """A sequence classifier on a local pretrained encoder; labels live in its config."""
    from transformers import AutoModelForSequenceClassification

    refuse_pickles(Path(pretrained_dir), "pretrained model directory")
    kwargs: dict[str, Any] = {
        "num_labels": len(classes),
        "id2label": dict(enumerate(classes)),
        "label2id": {c: i for i, c in enumerate(classes)},
        "ignore_mismatched_sizes": True,
        "local_files_only": True,
        "use_safetensors": True,
    }
    if dropout is not None:
        kwargs["classifier_dropout"] = dropout
    return AutoModelForSequenceClassification.from_pretrained(pretrained_dir, **kwargs)


def freeze_encoder(model: Any) -> None:
    """Train only the head (pooler + classifier): fast on CPU, often enough with a good
    encoder. The pooler stays trainable because sentence encoders ship it untrained."""
    base = getattr(model, model.base_model_prefix, None)
    if base is not None:
        for name, p in base.named_parameters():
            p.requires_grad = name.startswith("pooler.")


class TextTask:
    """Token-id batches padded per batch; a transformers sequence classifier."""

    def __init__(self, config: dict[str, Any], rank: int) -> None:
        from raylabel.io.layout import sync_dir
        from raylabel.models.hf_text import build_text_model, freeze_encoder, load_tokenizer

        local = sync_dir(config["pretrained_uri"], config["storage"])
        self.tokenizer = load_tokenizer(str(local))
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.model = build_text_model(str(local), list(config["classes"]), config["dropout"])
        if config.get("freeze_encoder"):
            freeze_encoder(self.model)

    def is_head(self, name: str) -> bool:
        """Whether a parameter belongs to the classification head transformers adds on top
        of the encoder (`classifier`, DistilBERT's `pre_classifier`, decoder models' `score`)."""
        return name.startswith(("classifier.", "pre_classifier.", "score."))

    def batches(self, shard: Any, bs: int, shuffle_seed: int | None) -> Any:
        """Training-loop contract: (inputs, labels) from a shard, each batch padded to its longest
        item; shuffled by `shuffle_seed`, in order when it is None (validation)."""
        return text_batches(shard, bs, shuffle_seed, self.pad_id)

    def inputs_from_numpy(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Model inputs of an unlabeled numpy batch, for fold models predicting their rows."""
        return text_inputs(batch, self.pad_id)

    def forward(self, model: nn.Module, inputs: dict[str, torch.Tensor], train: bool) -> Any:
        """Logits for the loss or for predictions; the loops call the task rather than the model so
        each family can add training-time transforms (text has none, so `train` is unused)."""
        return model(**inputs).logits

    def save(self, model: nn.Module, out: Path) -> None:
        """The checkpoint layout the text family publishes from (`hf/`: safetensors weights and the
        tokenizer), so a model never travels without its tokenizer."""
        model.save_pretrained(str(out / "hf"), safe_serialization=True)
        self.tokenizer.save_pretrained(str(out / "hf"))

    def restore(self, model: nn.Module, ckpt: Path) -> None:
        """Load `save`'s weights back when Ray Train restarts the worker group from a checkpoint."""
        from safetensors.torch import load_model

        # save_pretrained may drop tied weights; they are re-tied by the model itself
        load_model(model, str(ckpt / "hf" / "model.safetensors"), strict=False)


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "vocab.json")


def load_text_model(model_dir: Path, card: ModelCard) -> nn.Module:
    """A transformers classifier saved with save_pretrained; safetensors only, and its
    label map must be the card's classes in the same order."""
    checked_weights(model_dir, card)
    if not any((model_dir / f).is_file() for f in TOKENIZER_FILES):
        raise ModelLoadError(
            f"{model_dir}: no tokenizer ({' / '.join(TOKENIZER_FILES)}); a text model "
            "directory must carry the tokenizer it was trained with"
        )
    from transformers import AutoModelForSequenceClassification

    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), local_files_only=True, use_safetensors=True
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model_dir}: cannot load the model ({_first(exc)})") from None
    check_label_map(model_dir, model.config, card)
    model.eval()
    return model


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
