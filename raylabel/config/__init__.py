"""Typed configuration: schema defaults <- each YAML file in order <- key=value overrides.

Everything a stage needs is a key here, checked before any work starts so a nightly job
fails in its first second, with one line naming the key, rather than after an hour. The
sections live in modules of their own; this face exports what the rest of the package uses.
"""

from raylabel.config.docs import (
    REGENERATE_DOCS,
    configuration_markdown,
    flat_keys,
    key_docs,
    keys_help,
    section_names,
)
from raylabel.config.fields import (
    ALLOCATIONS,
    AUDIT_METHODS,
    AUDIT_SCORES,
    AUGMENTATIONS,
    CALIBRATIONS,
    IMAGE_ARCHS,
    IMAGE_EXTENSIONS,
    INPUT_FORMATS,
    MODALITIES,
    QC_BOUNDS,
    TEXT_ARCHS,
    TEXT_EXTENSIONS,
    default_extensions,
)
from raylabel.config.inputs import DropConfig, SeedConfig
from raylabel.config.labeling import (
    PULL_REVIEWS,
    DriftConfig,
    InferConfig,
    LabelStudioConfig,
    QCConfig,
    ReviewConfig,
)
from raylabel.config.model import ModelConfig, RnnConfig, SubwordConfig
from raylabel.config.runtime import (
    DropsConfig,
    NightlyConfig,
    OutputConfig,
    RunConfig,
    StorageConfig,
)
from raylabel.config.schema import Config, load_config, to_yaml
from raylabel.config.training import AuditConfig, PseudoLabelConfig, TrainConfig
from raylabel.errors import ConfigError

__all__ = [
    "ALLOCATIONS",
    "AUDIT_METHODS",
    "AUDIT_SCORES",
    "AUGMENTATIONS",
    "CALIBRATIONS",
    "IMAGE_ARCHS",
    "IMAGE_EXTENSIONS",
    "INPUT_FORMATS",
    "MODALITIES",
    "PULL_REVIEWS",
    "QC_BOUNDS",
    "REGENERATE_DOCS",
    "TEXT_ARCHS",
    "TEXT_EXTENSIONS",
    "AuditConfig",
    "Config",
    "ConfigError",
    "DriftConfig",
    "DropConfig",
    "DropsConfig",
    "InferConfig",
    "LabelStudioConfig",
    "ModelConfig",
    "NightlyConfig",
    "OutputConfig",
    "PseudoLabelConfig",
    "QCConfig",
    "ReviewConfig",
    "RnnConfig",
    "RunConfig",
    "SeedConfig",
    "StorageConfig",
    "SubwordConfig",
    "TrainConfig",
    "configuration_markdown",
    "default_extensions",
    "flat_keys",
    "key_docs",
    "keys_help",
    "load_config",
    "section_names",
    "to_yaml",
]
