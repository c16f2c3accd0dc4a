"""`model.arch=rnn`: the subword tokenizer is learned here, from the seed (and optionally a
drop sample), once on the driver before any worker starts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from raylabel.models.subword import SubwordEncoder, train_subword


def corpus(
    plan: Any, opts: Any, limit: int | None = None, sample_seed: int | None = None
) -> Iterator[str]:
    """Texts of a planned seed or drop, streamed item by item; unreadable items are skipped
    (they become error rows later). `limit` bounds how many are read; with `sample_seed`
    the items are a seeded random sample of the listing rather than its head."""
    import pyarrow.parquet as pq

    from raylabel.inputs.decode import decode_text, fetch_bytes
    from raylabel.io import storage

    if plan.kind == "parquet":
        fs, _ = storage.resolve(plan.uri, opts)
        left = limit if limit is not None else -1
        for f in plan.parquet_files or []:
            pf = pq.ParquetFile(storage.resolve(f, opts)[1], filesystem=fs)
            for batch in pf.iter_batches(batch_size=256, columns=[plan.payload_column]):
                for value in batch.column(0).to_pylist():
                    if left == 0:
                        return
                    text = _decoded(value, decode_text)
                    if text is not None:
                        left -= 1
                        yield text
        return
    listing = plan.listing
    n = listing.num_rows
    rows = np.arange(n)
    if limit is not None and limit < n:
        rows = (
            np.sort(np.random.default_rng(sample_seed).choice(n, limit, replace=False))
            if sample_seed is not None
            else rows[:limit]
        )
    inline = listing.column("text") if "text" in listing.column_names else None
    uris = listing.column("uri")
    cache: dict[str, Any] = {}
    for i in rows.tolist():
        if inline is not None:
            value = inline[i].as_py()
        else:
            try:
                value = fetch_bytes(uris[i].as_py(), opts, cache)
            except Exception:  # an unreadable item is an error row later, not a failed train
                continue
        text = _decoded(value, decode_text)
        if text is not None:
            yield text


def _decoded(value: Any, decode: Any) -> str | None:
    try:
        return decode(value)
    except Exception:
        return None


def learn_for_config(cfg: Any, seed_plan: Any, opts: Any) -> tuple[SubwordEncoder, dict[str, Any]]:
    """The tokenizer of a `model.arch=rnn` run: the seed texts, then (optionally) a seeded
    random sample of at most `model.tokenizer.train_on_drop_sample` drop items."""
    import itertools

    from raylabel.errors import ConfigError
    from raylabel.inputs import sources

    t = cfg.model.tokenizer
    counts = {"seed": 0, "drop": 0}

    def counted(texts: Iterable[str], key: str) -> Iterator[str]:
        for text in texts:
            counts[key] += 1
            yield text

    streams: list[Iterable[str]] = [counted(corpus(seed_plan, opts), "seed")]
    if t.train_on_drop_sample > 0:
        if not cfg.drop.path:
            raise ConfigError(
                "model.tokenizer.train_on_drop_sample: needs drop.path (the drop to sample)"
            )
        drop_plan = sources.plan_drop(cfg)
        sample = corpus(drop_plan, opts, limit=t.train_on_drop_sample, sample_seed=cfg.train.seed)
        streams.append(counted(sample, "drop"))
    enc = train_subword(
        itertools.chain(*streams), t.kind, t.vocab_size, t.min_frequency, t.lowercase
    )
    stats = {
        "learned_vocab_size": enc.vocab_size,
        "trained_on_seed_items": counts["seed"],
        "trained_on_drop_items": counts["drop"],
    }
    return enc, stats
