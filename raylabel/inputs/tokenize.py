"""Text preprocessing for Ray Data: fetch or read inline text, tokenize with the model's own
tokenizer, cut to max_length and say so (the row's `truncated`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from raylabel.inputs.decode import TextItemError, check_size, decode_text, listed_sizes
from raylabel.io.storage import StorageOptions
from raylabel.models.registry import family_for

INPUT_IDS = "input_ids"
#: characters kept per allowed token before tokenizing (generous: tokens are rarely > 20)
CHARS_PER_TOKEN = 32
TRUNCATED = "truncated"


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
        max_bytes: int | None = None,
    ) -> None:
        self.model_uri = model_uri
        self.storage = storage
        self.max_length = max_length
        self.cache_dir = cache_dir
        self.arch = arch
        self.tokenizer_json = tokenizer_json  # rnn training: learned on the driver, no dir yet
        self.max_bytes = max_bytes
        # the text handed to the tokenizer is cut to this many characters first, so a huge
        # item costs no more than max_length tokens' worth of work (no token is longer)
        self.max_chars = max_length * CHARS_PER_TOKEN

    def _tokenizer(self) -> Any:
        from raylabel.io.layout import sync_dir

        if self.tokenizer_json is not None:
            from raylabel.models import subword

            return subword.from_json(self.tokenizer_json)

        local = sync_dir(
            self.model_uri, self.storage, Path(self.cache_dir) if self.cache_dir else None
        )
        return family_for("text", self.arch).tokenizer(str(local))

    def __call__(self, batch: pa.Table) -> pa.Table:
        """The `map_batches` contract: one row back per row in, with ragged input_ids, truncated and
        an error for each unusable item; only a storage outage raises, so it fails the run
        instead of turning into error rows."""
        from raylabel.inputs.checks import INPUT_ERROR_COLUMN, refused_mask
        from raylabel.inputs.decode import ItemError, fetch_bytes
        from raylabel.io.failures import StorageUnavailable

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
        sizes = listed_sizes(batch)
        cut = [False] * n
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
                check_size(sizes[i], self.max_bytes)
                data = (
                    inline[i]
                    if inline is not None
                    else fetch_bytes(uris[i], self.storage, cache, self.max_bytes)
                )
                check_size(len(data) if data is not None else None, self.max_bytes)
                stage = "decode"
                text = decode_text(data)
                cut[i] = len(text) > self.max_chars
                texts.append(text[: self.max_chars])
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
            # one token more than allowed tells a row that was cut from one that fits
            enc = tok(
                texts, truncation=True, max_length=self.max_length + 1, add_special_tokens=True
            )["input_ids"]
            for i, seq in zip(rows, enc, strict=True):
                if len(seq) > self.max_length:
                    seq = [*seq[: self.max_length - 1], seq[-1]]  # keep the closing special token
                    cut[i] = True
                truncated[i] = cut[i]
                ids[i] = seq
        out = batch.drop_columns(
            [
                c
                for c in ("text", "bytes", "duplicate", "size", INPUT_ERROR_COLUMN)
                if c in batch.column_names
            ]
        )
        out = out.append_column(INPUT_IDS, pa.array(ids, pa.list_(pa.int32())))
        out = out.append_column(TRUNCATED, pa.array(truncated, pa.bool_()))
        out = out.append_column("error", pa.array(errors, pa.string()))
        return out.append_column("error_stage", pa.array(stages, pa.string()))
