"""Create-if-absent: the one atomic primitive leases and model publishing are built on.

Locally: the content goes to a private temporary file, then `os.link` puts it at the
target — link fails if the target exists, so of any number of racing processes exactly
one succeeds, and nobody ever sees a half-written file. On S3: a PutObject with
`If-None-Match: *` (S3 conditional writes: AWS and MinIO decide a race with one winner;
a store that ignores the header would let several win), sent through boto3 because
pyarrow's S3 filesystem exposes no conditional writes.
Other stores have no portable primitive and are refused with one line.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import suppress
from typing import Any

from raylabel.errors import StorageError
from raylabel.io import storage
from raylabel.io.storage import StorageOptions


def create_exclusive(uri: str, data: bytes, opts: StorageOptions) -> bool:
    """Write `data` at `uri` only if nothing is there: True when this call created it, False
    when it already existed (someone else won)."""
    if storage.is_remote(uri):
        if not uri.startswith("s3://"):
            raise StorageError(f"{uri}: exclusive create needs a local path or s3:// URI")
        return _s3_put_if_absent(uri, data, opts)
    path = storage.resolve(uri, opts)[1]
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".create-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def refuse_stores_without_exclusive_create(root: str, opts: StorageOptions) -> None:
    """Stop before any work when the store under `root` does not decide create-if-absent.

    Why: a store that silently ignores `If-None-Match: *` (older MinIO, some S3-compatible
    gateways) accepts every create, so two nightly runs would both hold a drop's lease and
    both commit. Two creates of one fresh probe key tell: the second must be refused. Costs
    three requests; local folders are skipped (`os.link` is exclusive by the kernel's word).
    """
    if not storage.is_remote(root):
        return
    probe = storage.join(root, "locks", f".probe-{uuid.uuid4().hex}")
    try:
        create_exclusive(probe, b"probe", opts)
        if create_exclusive(probe, b"probe", opts):
            raise StorageError(
                f"{root}: the store accepted a second create-if-absent of {probe} "
                "(If-None-Match: * ignored), so leases and model publishing cannot be "
                "exclusive there; use AWS S3 or a store with S3 conditional writes"
            )
    finally:
        with suppress(StorageError, ValueError):
            storage.delete_tree(probe, opts)


def s3_client(opts: StorageOptions, signature_version: str | None = None) -> Any:
    """A boto3 S3 client for the same endpoint, region, retries and timeout as the pyarrow
    filesystem; credentials come from the environment, as everywhere else."""
    import boto3
    from botocore.config import Config as BotoConfig

    config = BotoConfig(
        retries={"max_attempts": max(1, opts.retries), "mode": "standard"},
        connect_timeout=opts.connect_timeout_s or 60,
        # custom endpoints (MinIO, test servers) are addressed by path, as pyarrow does
        s3={"addressing_style": "path" if opts.endpoint_url else "auto"},
        signature_version=signature_version,
    )
    return boto3.client(
        "s3", endpoint_url=opts.endpoint_url, region_name=opts.region, config=config
    )


def _s3_put_if_absent(uri: str, data: bytes, opts: StorageOptions) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = uri[len("s3://") :].partition("/")
    try:
        s3_client(opts).put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            return False
        raise StorageError(f"write failed for {uri}: {code or status}") from None
    except BotoCoreError as exc:
        raise StorageError(f"write failed for {uri}: {type(exc).__name__}") from None
    return True
