"""Time-limited https links to objects, for review tasks a browser opens without cloud
credentials (`review.media=presigned`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from raylabel.io.atomic import s3_client
from raylabel.io.storage import StorageOptions

#: SigV4 presigned URLs live at most seven days
MAX_TTL_S = 7 * 24 * 3600


def presignable(uri: str) -> bool:
    """An S3 object of its own (a packed item `file#id` is a row inside a file, not one)."""
    return uri.startswith("s3://") and "#" not in uri and "/" in uri[len("s3://") :]


def presigned_get(uris: list[str], opts: StorageOptions, ttl_s: int) -> dict[str, str]:
    """uri -> a GET link valid for `ttl_s` seconds (signed locally: no request is sent)."""
    # SigV4 (links carry X-Amz-Expires); it needs a region, S3's default one when unset
    region = opts.region or "us-east-1"
    client: Any = s3_client(dataclasses.replace(opts, region=region), signature_version="s3v4")
    out: dict[str, str] = {}
    for uri in uris:
        bucket, _, key = uri[len("s3://") :].partition("/")
        out[uri] = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=min(ttl_s, MAX_TTL_S)
        )
    return out
