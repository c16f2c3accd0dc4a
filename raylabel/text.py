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
import pyarrow as pa

from raylabel.storage import StorageOptions

INPUT_IDS = "input_ids"
TRUNCATED = "truncated"
_TOKENIZERS: dict[str, Any] = {}


class TextItemError(Exception):
    """One text item cannot be used; the message becomes its error row."""


def decode_text(data: bytes | str | None) -> str:
    """Bytes -> text; empty, binary and non-UTF-8 items are refused with a clear reason."""
    if data is None:
        raise TextItemError("payload is null")
    if isinstance(data, str):
        text = data
    else:
        if b"\x00" in data:
            raise TextItemError("binary content (NUL bytes), not text")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TextItemError(f"not valid UTF-8 (byte {exc.start})") from None
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise TextItemError("empty text")
    return text


def load_tokenizer(model_dir: str, arch: str = "hf") -> Any:
    """One tokenizer per process and directory (workers reuse it across batches)."""
    if arch == "rnn":  # the subword tokenizer learned from the seed (raylabel.subword)
        from raylabel import subword

        return subword.load(model_dir)
    if model_dir not in _TOKENIZERS:
        from transformers import AutoTokenizer

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        _TOKENIZERS[model_dir] = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return _TOKENIZERS[model_dir]


class TokenizeText:
    """Callable for `map_batches`: text (inline or fetched by uri) -> ragged token ids."""

    def __init__(
        self,
        model_uri: str,
        storage: StorageOptions,
        max_length: int,
        cache_dir: str | None = None,
        arch: str = "hf",
        tokenizer_json: str | None = None,
    ) -> None:
        self.model_uri = model_uri
        self.storage = storage
        self.max_length = max_length
        self.cache_dir = cache_dir
        self.arch = arch
        self.tokenizer_json = tokenizer_json  # rnn training: learned on the driver, no dir yet

    def _tokenizer(self) -> Any:
        from raylabel.layout import sync_dir

        if self.tokenizer_json is not None:
            from raylabel import subword

            return subword.from_json(self.tokenizer_json)

        local = sync_dir(
            self.model_uri, self.storage, Path(self.cache_dir) if self.cache_dir else None
        )
        return load_tokenizer(str(local), self.arch)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from raylabel.input_schema import INPUT_ERROR_COLUMN, refused_mask
        from raylabel.io_errors import StorageUnavailable
        from raylabel.preprocess import ItemError, fetch_bytes

        tok = self._tokenizer()
        n = batch.num_rows
        uris = batch.column("uri").to_pylist()
        inline = batch.column("text").to_pylist() if "text" in batch.column_names else None
        dup = (
            batch.column("duplicate").to_pylist()
            if "duplicate" in batch.column_names
            else [False] * n
        )
        texts: list[str] = []
        rows: list[int] = []
        errors: list[str | None] = [None] * n
        stages: list[str | None] = [None] * n
        cache: dict[str, Any] = {}
        refused = refused_mask(batch)  # planning refused these rows (e.g. outside the drop root)
        for i in range(n):
            if dup[i]:
                errors[i] = "duplicate item_id in the input (labeled once, at its first occurrence)"
                stages[i] = "input"
                continue
            if refused[i] is not None:
                errors[i], stages[i] = refused[i], "input"
                continue
            stage = "read"
            try:
                data = (
                    inline[i] if inline is not None else fetch_bytes(uris[i], self.storage, cache)
                )
                stage = "decode"
                texts.append(decode_text(data))
                rows.append(i)
            except (ItemError, TextItemError) as exc:
                errors[i], stages[i] = str(exc), stage
            except StorageUnavailable:
                raise  # an outage fails the run instead of becoming error rows
            except Exception as exc:  # any per-item failure must become an error row
                errors[i], stages[i] = f"{type(exc).__name__}: {str(exc)[:300]}", stage
        ids: list[list[int]] = [[] for _ in range(n)]
        truncated = [False] * n
        if texts:
            enc = tok(texts, truncation=False, add_special_tokens=True)["input_ids"]
            for i, seq in zip(rows, enc, strict=True):
                if len(seq) > self.max_length:
                    truncated[i] = True
                    seq = [*seq[: self.max_length - 1], seq[-1]]  # keep the closing special token
                ids[i] = seq
        out = batch.drop_columns(
            [
                c
                for c in ("text", "bytes", "duplicate", INPUT_ERROR_COLUMN)
                if c in batch.column_names
            ]
        )
        out = out.append_column(INPUT_IDS, pa.array(ids, pa.list_(pa.int32())))
        out = out.append_column(TRUNCATED, pa.array(truncated, pa.bool_()))
        out = out.append_column("error", pa.array(errors, pa.string()))
        return out.append_column("error_stage", pa.array(stages, pa.string()))


def pad(ids: list[np.ndarray] | np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Ragged ids -> (input_ids, attention_mask) padded to this batch's longest item."""
    seqs = [np.asarray(s, dtype=np.int64) for s in ids]
    longest = max((len(s) for s in seqs), default=1) or 1
    out = np.full((len(seqs), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), longest), dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return out, mask


def build_text_model(pretrained_dir: str, classes: list[str], dropout: float | None = None) -> Any:
    """A sequence classifier on a local pretrained encoder; labels live in its config."""
    from transformers import AutoModelForSequenceClassification

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
