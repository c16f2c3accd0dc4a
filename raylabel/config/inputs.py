"""`seed.*` and `drop.*`: where the labeled seed and the unlabeled drop come from."""

from __future__ import annotations

from dataclasses import dataclass, field

from raylabel.config.fields import (
    IMAGE_EXTENSIONS,
    INPUT_FORMATS,
    TEXT_EXTENSIONS,
    check_extensions,
    doc,
    one_of,
    safe_name,
    setting,
)
from raylabel.errors import ConfigError


@dataclass
class SeedConfig:
    """The labeled seed set that `train` and `audit` learn from."""

    path: str | None = setting(
        None,
        "the labeled seed: a folder <root>/<class>/<file>, or a manifest (CSV/JSONL/Parquet) "
        "or Parquet with a label column; local or s3://; required by train and audit",
    )
    format: str = setting(
        "auto",
        "how seed.path is read; auto detects it from the path",
        INPUT_FORMATS,
    )
    extensions: list[str] | None = field(
        default=None,
        metadata=doc(
            "folder inputs: only files with these extensions (each starts with '.'); null = "
            f"by modality (images: {' '.join(IMAGE_EXTENSIONS)}; text: {' '.join(TEXT_EXTENSIONS)})"
        ),
    )
    label_column: str = setting(
        "label",
        "manifests / Parquet: the column holding each item's class; set it when your files "
        "name it differently",
    )
    text_column: str = setting(
        "text", "text manifests / Parquet: the column holding the inline text"
    )
    payload_column: str = setting(
        "bytes",
        "image Parquet: the column holding each item's encoded bytes",
    )
    label_separator: str = setting(
        "|",
        "task=multilabel: a string label (CSV) holds the item's classes joined by this; an "
        "empty label is an item with no class",
    )

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        one_of("seed.format", self.format, INPUT_FORMATS)
        check_extensions("seed.extensions", self.extensions)
        if not self.label_separator or self.label_separator.strip() != self.label_separator:
            raise ConfigError(
                f"seed.label_separator: {self.label_separator!r} must be non-empty text "
                "without surrounding spaces"
            )


@dataclass
class DropConfig:
    """The unlabeled drop that `label` labels."""

    path: str | None = setting(
        None,
        "the drop to label: a folder/prefix of files (recursive), a manifest with a uri "
        "column, or Parquet with inline bytes or text; local or s3://; required by label",
    )
    name: str | None = setting(
        None,
        "the drop's name under runs/<drop>/; null = the last component of drop.path (letters,"
        " digits, -_. only)",
    )
    format: str = setting(
        "auto",
        "how drop.path is read; auto detects it from the path",
        INPUT_FORMATS,
    )
    extensions: list[str] | None = field(
        default=None,
        metadata=doc(
            "folder inputs: only files with these extensions (each starts with '.'); null = "
            f"by modality (images: {' '.join(IMAGE_EXTENSIONS)}; text: {' '.join(TEXT_EXTENSIONS)})"
        ),
    )
    text_column: str = setting(
        "text", "text manifests / Parquet: the column holding the inline text"
    )
    payload_column: str = setting(
        "bytes",
        "image Parquet: the column holding each item's encoded bytes",
    )
    allow_outside_uris: bool = setting(
        False,
        "manifest uris outside the manifest's folder (../x, /etc/passwd, another bucket) "
        "become error rows (stage input) unless true; set it only for manifests you trust",
    )

    def check(self) -> None:
        """Refuse a bad value of this section before any work starts (one line, the key)."""
        one_of("drop.format", self.format, INPUT_FORMATS)
        check_extensions("drop.extensions", self.extensions)
        if self.name is not None and not safe_name(self.name):
            raise ConfigError(
                f"drop.name: {self.name!r} must be a plain name (letters, digits, -_.)"
            )
