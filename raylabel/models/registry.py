"""One registry keyed by modality x arch: everything that differs between model families.

Why: without it every stage branches on `modality == "text"` and `arch == "rnn"`; a new
family (a Hugging Face image model, CLIP) would mean edits in a dozen places. Stages ask
`family_for(modality, arch)` (or `family_of(card)`) and call what it holds; the
architecture-specific code stays in this package (image.py, hf_text.py, rnn.py).
Heavy imports (torchvision, transformers) happen only inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from raylabel.config import IMAGE_ARCHS
from raylabel.errors import ConfigError
from raylabel.models.card import ModelCard


@dataclass(frozen=True)
class Family:
    """A model family: how it is built, trained, saved, loaded and fed."""

    name: str
    modality: str
    archs: tuple[str, ...]
    feature: str  # the preprocessed column the model eats: "pixels" or "input_ids"
    pretrained: str  # "state_dict" (optional backbone file), "directory" (required), "none"
    learns_tokenizer: bool  # the tokenizer is learned from the seed before training
    supports_audit: bool
    make_task: Callable[[dict[str, Any], int], Any]
    load: Callable[[Path, ModelCard], Any]
    card_preprocessing: Callable[[Any], dict[str, Any]]
    tokenizer: Callable[[str], Any]  # model dir -> tokenizer (text families)
    write_model_dir: Callable[[Path, ModelCard, Path, float], None]
    logits: Callable[[Any, Any], np.ndarray]
    embeddings: Callable[[Any, Any], np.ndarray]
    check_model_dir: Callable[[str, Any], None]
    trains: bool = True  # False: zero-shot (CLIP): `train` only scores the seed to calibrate


def _image_task(config: dict[str, Any], rank: int) -> Any:
    from raylabel.models.image_task import ImageTask

    return ImageTask(config, rank)


def _hf_task(config: dict[str, Any], rank: int) -> Any:
    from raylabel.models.hf_text import TextTask

    return TextTask(config, rank)


def _hf_image_task(config: dict[str, Any], rank: int) -> Any:
    from raylabel.models.hf_image import HfImageTask

    return HfImageTask(config, rank)


def _clip_task(config: dict[str, Any], rank: int) -> Any:
    from raylabel.models.clip import ClipTask

    return ClipTask(config, rank)


def _rnn_task(config: dict[str, Any], rank: int) -> Any:
    from raylabel.models.rnn import RnnTextTask

    return RnnTextTask(config, rank)


def _load_image(model_dir: Path, card: ModelCard) -> Any:
    from raylabel.models.image import load_image_model

    return load_image_model(model_dir, card)


def _load_hf(model_dir: Path, card: ModelCard) -> Any:
    from raylabel.models.hf_text import load_text_model

    return load_text_model(model_dir, card)


def _load_hf_image(model_dir: Path, card: ModelCard) -> Any:
    from raylabel.models.hf_image import load_hf_image_model

    return load_hf_image_model(model_dir, card)


def _load_clip(model_dir: Path, card: ModelCard) -> Any:
    from raylabel.models.clip import load_clip_model

    return load_clip_model(model_dir, card)


def _load_rnn(model_dir: Path, card: ModelCard) -> Any:
    from raylabel.models.rnn import load_rnn_model

    return load_rnn_model(model_dir, card)


def _image_preprocessing(cfg: Any) -> dict[str, Any]:
    from raylabel.models.image import crop_fraction

    prep: dict[str, Any] = {
        "image_size": cfg.model.image_size,
        "mode": "RGB",
        "resize": "bilinear",
        "input": "uint8 NCHW",
        "normalize": "imagenet mean/std inside the model",
    }
    fraction = crop_fraction(cfg.model.arch, cfg.model.pretrained)
    if fraction is not None:  # the weights' own framing: shorter side, then a centre crop
        prep["resize"] = "bilinear, shorter side to image_size / crop_fraction, centre crop"
        prep["crop_fraction"] = fraction
    return prep


def _hf_image_preprocessing(cfg: Any) -> dict[str, Any]:
    """The processor's size, mean and std, read from the pretrained directory (local or
    S3): labeling repeats them from the card."""
    from raylabel.io import storage
    from raylabel.models.hf_image import PROCESSOR_FILE, processor_settings

    opts = storage.options_for(cfg.storage)
    uri = storage.join(cfg.model.pretrained, PROCESSOR_FILE)
    try:
        settings = processor_settings(storage.read_json(uri, opts))
    except ValueError as exc:
        raise ConfigError(f"model.pretrained: {exc}") from None
    return {
        **settings,
        "mode": "RGB",
        "resize": "bilinear",
        "input": "uint8 NCHW",
        "normalize": "the processor's mean/std inside the model",
        "base_model": cfg.model.pretrained,
    }


def _clip_preprocessing(cfg: Any) -> dict[str, Any]:
    """The processor's framing, plus the prompt template each class was scored against."""
    prep = _hf_image_preprocessing(cfg)
    prep["prompt_template"] = cfg.model.prompts
    prep["normalize"] = "the CLIP processor's mean/std inside the model"
    return prep


def _hf_preprocessing(cfg: Any) -> dict[str, Any]:
    return {
        "max_length": cfg.model.max_length,
        "tokenizer": "saved with the model (save_pretrained)",
        "padding": "dynamic, per batch",
        "truncation": "longest items cut to max_length tokens (rows say truncated=true)",
        "base_model": cfg.model.pretrained,
    }


def _rnn_preprocessing(cfg: Any) -> dict[str, Any]:
    from raylabel.models.rnn import card_preprocessing

    return card_preprocessing(cfg)


def _no_tokenizer(model_dir: str) -> Any:
    return None


def _hf_tokenizer(model_dir: str) -> Any:
    from raylabel.models.hf_text import load_tokenizer

    return load_tokenizer(model_dir)


def _subword_tokenizer(model_dir: str) -> Any:
    from raylabel.models import subword

    return subword.load(model_dir)


def _image_write(ckpt_dir: Path, card: ModelCard, out_dir: Path, dropout: float) -> None:
    from safetensors.torch import load_file

    from raylabel.models.card import save_model_dir
    from raylabel.models.image import build_image_model

    model = build_image_model(card.arch, len(card.classes), dropout)
    model.load_state_dict(load_file(str(ckpt_dir / "model.safetensors")), strict=True)
    save_model_dir(model, card, out_dir)


def _copy_write(subdir: str) -> Callable[[Path, ModelCard, Path, float], None]:
    def write(ckpt_dir: Path, card: ModelCard, out_dir: Path, dropout: float) -> None:
        from raylabel.models.card import copy_model_dir

        copy_model_dir(ckpt_dir / subdir, card, out_dir)

    return write


def _image_logits(predictor: Any, pixels: Any) -> np.ndarray:
    return predictor.logits(pixels)


def _hf_logits(predictor: Any, ids: Any) -> np.ndarray:
    return predictor.text_logits(list(ids))


def _rnn_logits(predictor: Any, ids: Any) -> np.ndarray:
    from raylabel.models.rnn import bucketed_logits

    # length buckets: each padded only to its own longest item
    bucket = int(predictor.card.preprocessing.get("rnn", {}).get("bucket_size", 0))
    return bucketed_logits(predictor.model, list(ids), predictor.pad_id, bucket, predictor.device)


def _image_embeddings(predictor: Any, pixels: Any) -> np.ndarray:
    from raylabel.models.embed import image_embeddings

    return image_embeddings(predictor, pixels)


def _text_embeddings(predictor: Any, ids: Any) -> np.ndarray:
    from raylabel.models.embed import text_embeddings

    return text_embeddings(predictor, list(ids))


def _nothing_to_check(model_dir_uri: str, opts: Any) -> None:
    return None


def _rnn_check(model_dir_uri: str, opts: Any) -> None:
    from raylabel.models.rnn import require_tokenizer

    require_tokenizer(model_dir_uri, opts)


IMAGE = Family(
    name="image",
    modality="image",
    archs=IMAGE_ARCHS,
    feature="pixels",
    pretrained="state_dict",
    learns_tokenizer=False,
    supports_audit=True,
    make_task=_image_task,
    load=_load_image,
    card_preprocessing=_image_preprocessing,
    tokenizer=_no_tokenizer,
    write_model_dir=_image_write,
    logits=_image_logits,
    embeddings=_image_embeddings,
    check_model_dir=_nothing_to_check,
)
HF_IMAGE = Family(
    name="hf_image",
    modality="image",
    archs=("hf",),
    feature="pixels",
    pretrained="directory",
    learns_tokenizer=False,
    supports_audit=True,
    make_task=_hf_image_task,
    load=_load_hf_image,
    card_preprocessing=_hf_image_preprocessing,
    tokenizer=_no_tokenizer,
    write_model_dir=_copy_write("hf"),
    logits=_image_logits,
    embeddings=_image_embeddings,
    check_model_dir=_nothing_to_check,
)
CLIP_IMAGE = Family(
    name="clip",
    modality="image",
    archs=("clip",),
    feature="pixels",
    pretrained="directory",
    learns_tokenizer=False,
    supports_audit=False,
    make_task=_clip_task,
    load=_load_clip,
    card_preprocessing=_clip_preprocessing,
    tokenizer=_no_tokenizer,
    write_model_dir=_copy_write("clip"),
    logits=_image_logits,
    embeddings=_image_embeddings,
    check_model_dir=_nothing_to_check,
    trains=False,
)
HF_TEXT = Family(
    name="hf",
    modality="text",
    archs=("hf",),
    feature="input_ids",
    pretrained="directory",
    learns_tokenizer=False,
    supports_audit=True,
    make_task=_hf_task,
    load=_load_hf,
    card_preprocessing=_hf_preprocessing,
    tokenizer=_hf_tokenizer,
    write_model_dir=_copy_write("hf"),
    logits=_hf_logits,
    embeddings=_text_embeddings,
    check_model_dir=_nothing_to_check,
)
RNN_TEXT = Family(
    name="rnn",
    modality="text",
    archs=("rnn",),
    feature="input_ids",
    pretrained="none",
    learns_tokenizer=True,
    supports_audit=False,
    make_task=_rnn_task,
    load=_load_rnn,
    card_preprocessing=_rnn_preprocessing,
    tokenizer=_subword_tokenizer,
    write_model_dir=_copy_write("rnn"),
    logits=_rnn_logits,
    embeddings=_text_embeddings,
    check_model_dir=_rnn_check,
)
FAMILIES: tuple[Family, ...] = (IMAGE, HF_IMAGE, CLIP_IMAGE, HF_TEXT, RNN_TEXT)


def family_for(modality: str, arch: str) -> Family:
    """The family of a modality and arch (config or card); one clear line if there is none."""
    for fam in FAMILIES:
        if fam.modality == modality and arch in fam.archs:
            return fam
    archs = [a for f in FAMILIES if f.modality == modality for a in f.archs]
    if not archs:
        raise ConfigError(f"modality: {modality!r} is not one of image, text")
    raise ConfigError(f"model.arch: {arch!r} is not one of {', '.join(archs)} for {modality}")


def pad_id(fam: Family, model_dir: Path) -> int:
    """The padding id of a text family's tokenizer (0 for images)."""
    tok = fam.tokenizer(str(model_dir))
    return int(getattr(tok, "pad_token_id", 0) or 0) if tok is not None else 0


def family_of(card: ModelCard) -> Family:
    """The family a published model belongs to."""
    return family_for(card.modality, card.arch)
