"""`model.*`: the architecture, its input size and what it starts from."""

from __future__ import annotations

from dataclasses import dataclass, field

from raylabel.config.fields import (
    IMAGE_ARCHS,
    RNN_CELLS,
    RNN_POOLINGS,
    SUBWORD_KINDS,
    TEXT_ARCHS,
    at_least,
    in_range,
    one_of,
    setting,
)
from raylabel.errors import ConfigError


@dataclass
class RnnConfig:
    """model.arch=rnn: embedding + bidirectional GRU/LSTM + pooling + linear head."""

    cell: str = setting("gru", "the recurrent cell", RNN_CELLS)
    embed_dim: int = setting(128, "token embedding size")
    hidden: int = setting(128, "hidden units per direction; more fits more, trains slower")
    layers: int = setting(1, "stacked bidirectional RNN layers")
    pooling: str = setting(
        "max",
        "how the RNN outputs of the real tokens (padding excluded) become one vector",
        RNN_POOLINGS,
    )
    packed: bool = setting(
        True,
        "pack sequences (pack_padded_sequence) so the RNN skips padding; false only to compare",
    )
    bucket_size: int = setting(
        64,
        "inference: sort each actor batch by length and run buckets of this many items, each "
        "padded to its own longest item; 0 = one bucket",
    )

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        one_of("model.rnn.cell", self.cell, RNN_CELLS)
        at_least("model.rnn.embed_dim", self.embed_dim, 1)
        at_least("model.rnn.hidden", self.hidden, 1)
        at_least("model.rnn.layers", self.layers, 1)
        one_of("model.rnn.pooling", self.pooling, RNN_POOLINGS)
        at_least("model.rnn.bucket_size", self.bucket_size, 0)


@dataclass
class SubwordConfig:
    """model.arch=rnn: the subword tokenizer learned from the seed (+ a drop sample)."""

    kind: str = setting("bpe", "the subword model learned from the seed texts", SUBWORD_KINDS)
    vocab_size: int = setting(8000, "target vocabulary size; larger keeps more whole words")
    min_frequency: int = setting(2, "minimum count of a pair or word to enter the vocabulary")
    lowercase: bool = setting(True, "NFKC-normalise and lowercase before tokenizing")
    train_on_drop_sample: int = setting(
        0,
        "also learn the tokenizer from a seeded random sample of this many drop.path items "
        "(needs drop.path); 0 = seed only",
    )

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        one_of("model.tokenizer.kind", self.kind, SUBWORD_KINDS)
        at_least("model.tokenizer.vocab_size", self.vocab_size, 16)
        at_least("model.tokenizer.min_frequency", self.min_frequency, 1)
        at_least("model.tokenizer.train_on_drop_sample", self.train_on_drop_sample, 0)


@dataclass
class ModelConfig:
    """The classifier: architecture, input size, starting weights."""

    arch: str = setting(
        "small_cnn",
        f"the architecture; images: {' | '.join(IMAGE_ARCHS)} (random init unless "
        "model.pretrained) | hf (a transformers image classifier: ViT, ConvNeXt, ResNet, "
        "DINOv2, ...) | clip (zero-shot from model.prompts, nothing trained); text: "
        f"{' | '.join(TEXT_ARCHS)} (hf: a pretrained transformers "
        "encoder; rnn: nothing pretrained)",
    )
    image_size: int = setting(
        64,
        "images are resized to this square size in pixels; larger sees finer detail and costs "
        "more (model.arch=hf uses its processor's size)",
    )
    pretrained: str | None = setting(
        None,
        "images: torchvision (the arch's DEFAULT weights via the torch hub cache; "
        "TORCH_HOME honoured), torchvision:<WEIGHTS> (e.g. ResNet18_Weights.IMAGENET1K_V1), or "
        "a .safetensors state dict (local or s3://; torchvision names or a raylabel "
        "model.safetensors); the class head is re-initialised and a file matching under 90% "
        "of the body stops the run; hf images and text: a transformers model directory (local "
        "or s3://; images with their preprocessor_config.json), required for hf; clip: a CLIPModel "
        "directory with its tokenizer and image processor",
    )
    max_length: int = setting(
        128,
        "text: tokens per item; longer items are truncated (their row says truncated)",
    )
    dropout: float = setting(
        0.2, "dropout before the class head; raise it when a small seed overfits"
    )
    freeze_encoder: bool = setting(False, "text: train only the classification head (fast on CPU)")
    freeze_backbone: bool = setting(
        False,
        "images: train only the class head on top of model.pretrained (a few seeds per class, "
        "a strong backbone)",
    )
    prompts: str = setting(
        "a photo of a {label}",
        "model.arch=clip: the text each class is scored against ({label} = the class name, "
        "underscores as spaces); the seed only calibrates and sets thresholds",
    )
    rnn: RnnConfig = field(default_factory=RnnConfig)
    tokenizer: SubwordConfig = field(default_factory=SubwordConfig)

    def check(self, modality: str) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        allowed = (*IMAGE_ARCHS, "hf", "clip") if modality == "image" else TEXT_ARCHS
        one_of("model.arch", self.arch, allowed)
        if modality == "image" and self.arch == "hf" and not self.pretrained:
            raise ConfigError(
                "model.pretrained: required for model.arch=hf (a transformers image model "
                "directory, saved with save_pretrained, with its preprocessor_config.json)"
            )
        if modality == "image" and self.arch == "clip":
            self._check_clip()
        at_least("model.image_size", self.image_size, 16)
        at_least("model.max_length", self.max_length, 8)
        in_range("model.dropout", self.dropout, 0.0, 1.0, hi_open=True)
        torchvision = (self.pretrained or "").split(":", 1)[0] == "torchvision"
        if modality == "image" and torchvision and self.arch == "small_cnn":
            raise ConfigError(
                "model.pretrained: torchvision ships no weights for small_cnn; pick "
                "model.arch=resnet18, resnet50 or mobilenet_v3_small"
            )
        if self.freeze_backbone and (modality != "image" or not self.pretrained):
            raise ConfigError(
                "model.freeze_backbone: needs an image model.pretrained to freeze (text: "
                "model.freeze_encoder)"
            )
        self.rnn.check()
        self.tokenizer.check()

    def _check_clip(self) -> None:
        """Zero-shot needs its CLIP directory and a prompt with the class name in it."""
        if not self.pretrained:
            raise ConfigError(
                "model.pretrained: required for model.arch=clip (a CLIPModel directory saved "
                "with save_pretrained, with its tokenizer and preprocessor_config.json)"
            )
        if "{label}" not in self.prompts:
            raise ConfigError(f"model.prompts: {self.prompts!r} has no {{label}} to fill")
        if self.freeze_backbone:
            raise ConfigError("model.freeze_backbone: model.arch=clip trains nothing to freeze")
