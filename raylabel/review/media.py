"""What a reviewer opens: each review task's media, so a task works in any Label Studio.

A task that holds only the item's `uri` opens nothing for text (a path), for packed
Parquet drops (`file#id`) or for local files a browser cannot reach. `review.media=inline`
(the default) puts the item itself in the task: images as resized JPEG `data:` URIs,
text as its text. Payloads come from the same places the pipeline reads them (the drop's
inline column for packed and inline-text drops, the object otherwise), for the sample and
the queue only (a few hundred items). An item that cannot be read keeps its uri.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import pyarrow as pa

from raylabel.inputs.decode import decode_text, fetch_bytes
from raylabel.io.storage import StorageOptions
from raylabel.models.card import ModelCard

MEDIA_COLUMN = "media"


def thumbnail_uri(data: bytes, max_px: int) -> str:
    """An image as a JPEG data: URI no larger than `max_px` on its longer side."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (max_px, max_px))  # JPEG: decode at a reduced scale when it can
        rgb = img.convert("RGB")
        rgb.thumbnail((max_px, max_px))
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def item_payloads(
    table: pa.Table, plan: Any, opts: StorageOptions, max_bytes: int, rows: pa.Table | None = None
) -> dict[str, bytes]:
    """item_id -> the item's bytes (encoded image or raw text), read where the pipeline reads
    them (the drop's inline column for packed and inline-text drops, the object otherwise),
    for a few hundred review items; unreadable items are left out. ``rows``: the drop rows
    already read for the active queue (one read serves both)."""
    if not table.num_rows or "item_id" not in table.column_names:
        return {}
    from raylabel.review.active import pool_payloads, rows_of

    if rows is None:
        rows = pool_payloads(table.select(["item_id", "uri"]), plan, opts)
    else:
        rows = rows_of(rows, table)
    inline = getattr(plan, "inline_column", None)
    inline = inline if inline in rows.column_names else None
    cache: dict[str, Any] = {}
    out: dict[str, bytes] = {}
    for row in rows.to_pylist():
        try:
            data = row[inline] if inline else fetch_bytes(row["uri"], opts, cache, max_bytes)
        except Exception:  # unreadable now (moved, packed without its plan): left out
            continue
        if isinstance(data, str):
            data = data.encode("utf-8")
        if data is not None:
            out[row["item_id"]] = bytes(data)
    return out


def payload_table(payloads: dict[str, bytes]) -> pa.Table:
    """`review/payloads.parquet`: the reviewed items' own bytes, kept with the run so their
    reviews can train later models even after the drop is deleted."""
    ids = sorted(payloads)
    return pa.table(
        {
            "item_id": pa.array(ids, pa.string()),
            "payload": pa.array([payloads[i] for i in ids], pa.binary()),
        }
    )


def with_media(
    table: pa.Table,
    card: ModelCard,
    plan: Any,
    opts: StorageOptions,
    mode: str,
    max_px: int,
    max_bytes: int,
    payloads: dict[str, bytes] | None = None,
    ttl_s: int = 3600,
) -> tuple[pa.Table, str | None]:
    """(table + a `media` column, its name) for the review files; (table, None) when the
    tasks should show the uri (`review.media=uri` for images). `presigned` links S3 objects
    for `ttl_s` seconds and inlines the rest. `payloads` (item_payloads) saves reading the
    items again."""
    text = card.modality == "text"
    if not table.num_rows or "item_id" not in table.column_names or (mode == "uri" and not text):
        return table, None
    if payloads is None:
        payloads = item_payloads(table, plan, opts, max_bytes)
    media: dict[str, str] = {}
    if mode == "presigned" and not text:
        media = _presigned(table, opts, ttl_s)
    for item_id in table.column("item_id").to_pylist():
        data = payloads.get(item_id)
        if item_id in media:
            continue
        if data is None:
            continue
        try:
            media[item_id] = decode_text(data) if text else thumbnail_uri(data, max_px)
        except Exception:  # undecodable: the task shows the uri
            continue
    ids = table.column("item_id").to_pylist()
    uris = table.column("uri").to_pylist()
    column = pa.array([media.get(i, u) for i, u in zip(ids, uris, strict=True)], pa.string())
    return table.append_column(MEDIA_COLUMN, column), MEDIA_COLUMN


def _presigned(table: pa.Table, opts: StorageOptions, ttl_s: int) -> dict[str, str]:
    """item_id -> presigned link, for the items that are S3 objects of their own."""
    from raylabel.io.presign import presignable, presigned_get

    pairs = [
        (i, u)
        for i, u in zip(
            table.column("item_id").to_pylist(), table.column("uri").to_pylist(), strict=True
        )
        if presignable(str(u))
    ]
    links = presigned_get([u for _, u in pairs], opts, ttl_s)
    return {i: links[u] for i, u in pairs}
