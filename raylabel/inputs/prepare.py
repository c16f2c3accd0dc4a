"""The CPU preprocessing callable a model family needs (decode+resize, or tokenize), built
from the config at training time and from the card at labeling time: the card, not the
label-time config, is the authority on how a model was fed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from raylabel.config import Config
from raylabel.inputs.decode import FetchDecode
from raylabel.inputs.tokenize import TokenizeText
from raylabel.io.storage import StorageOptions
from raylabel.models.card import ModelCard
from raylabel.models.image import crop_fraction as pretrained_crop
from raylabel.models.registry import Family, family_for, family_of


def preprocessor(
    fam: Family,
    opts: StorageOptions,
    *,
    model_uri: str,
    arch: str,
    image_size: int,
    max_length: int,
    max_pixels: int,
    max_bytes: int,
    tokenizer_json: str | None = None,
    crop_fraction: float | None = None,
) -> Any:
    """Images are fetched and decoded (framed as a pretrained start was: `crop_fraction`);
    text is fetched and tokenized by the family's tokenizer (read from `model_uri`, or given
    as JSON while it is being learned). Items over `max_bytes` become error rows without
    being read whole."""
    if fam.feature == "pixels":
        return FetchDecode(
            opts, image_size, max_pixels=max_pixels, max_bytes=max_bytes,
            crop_fraction=crop_fraction,
        )  # fmt: skip
    return TokenizeText(
        model_uri, opts, max_length, arch=arch, tokenizer_json=tokenizer_json, max_bytes=max_bytes
    )


def for_training(
    cfg: Config, opts: StorageOptions, model_uri: str, tokenizer_json: str | None = None
) -> Any:
    """The seed's preprocessing, from the config being trained (a transformers image model
    is fed at its processor's size)."""
    fam = family_for(cfg.modality, cfg.model.arch)
    size = cfg.model.image_size
    if fam.feature == "pixels" and fam.pretrained == "directory":
        size = int(fam.card_preprocessing(cfg)["image_size"])
    return preprocessor(
        fam,
        opts,
        model_uri=model_uri,
        arch=cfg.model.arch,
        image_size=size,
        max_length=cfg.model.max_length,
        max_pixels=cfg.infer.max_pixels,
        max_bytes=cfg.infer.max_item_bytes,
        tokenizer_json=tokenizer_json,
        crop_fraction=(
            pretrained_crop(cfg.model.arch, cfg.model.pretrained)
            if cfg.modality == "image"
            else None
        ),
    )


def for_card(
    card: ModelCard, model_dir: str, opts: StorageOptions, max_pixels: int, max_bytes: int
) -> Any:
    """A drop's preprocessing, exactly as the card says the model was trained."""
    prep = card.preprocessing
    return preprocessor(
        family_of(card),
        opts,
        model_uri=model_dir,
        arch=card.arch,
        image_size=int(prep.get("image_size", 0)),
        max_length=int(prep.get("max_length", 0)),
        max_pixels=max_pixels,
        max_bytes=max_bytes,
        crop_fraction=prep.get("crop_fraction"),
    )


def decoded_features(decoded: pa.Table, feature: str) -> tuple[np.ndarray, Any]:
    """(which rows decoded, the model inputs of those rows) from a preprocessed table, for
    the small in-process passes (gate items, the queue's pool): pixels as one uint8 array,
    token ids as one int64 array per row."""
    ok = np.array([e is None for e in decoded.column("error").to_pylist()], dtype=bool)
    if not ok.any():
        return ok, []
    good = decoded.filter(pa.array(ok))
    if feature == "pixels":
        return ok, good.column("pixels").combine_chunks().to_numpy_ndarray()
    return ok, [np.asarray(s, dtype=np.int64) for s in good.column("input_ids").to_pylist()]
