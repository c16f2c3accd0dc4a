"""Which read failures are the item's fault and which are the store's.

A per-item read that fails because the object is missing or unreadable becomes that item's
error row. A read that fails because the store itself failed (unreachable endpoint, 5xx or
throttling still failing after the S3 client's own retries with backoff, credentials
rejected) must not: recording it as an error row would let a run commit with items silently
lost to an outage. Those raise StorageUnavailable, which fails the task and so the run (no
`_SUCCESS`, no `LATEST`); the nightly rerun then labels the drop completely.
"""

from __future__ import annotations

import re

from raylabel.errors import StorageError
from raylabel.io.storage import storage_error

# AWS error codes that say "this object is not there", i.e. the item's own problem.
ITEM_CODES = ("NO_SUCH_KEY", "RESOURCE_NOT_FOUND", "NO_SUCH_BUCKET")
# Any S3 client error as pyarrow words it: "AWS Error <CODE> [(HTTP status 503)] during <Op>".
_AWS_ERROR = re.compile(r"AWS Error (\w+)(?: \([^)]*\))? during (\w+)")


class StorageUnavailable(StorageError):
    """The object store failed (not the item): the run fails loudly instead of losing items."""


def store_failure(uri: str, exc: BaseException) -> StorageUnavailable | None:
    """A StorageUnavailable for a store-level failure of reading `uri`, else None (the item's
    own fault: missing, a directory, not permitted on a local disk...)."""
    if isinstance(exc, StorageUnavailable):
        return exc
    text = " ".join(str(exc).split())
    match = _AWS_ERROR.search(text)
    if match is None:
        return None  # local file system errors and the like belong to the item
    if match.group(1) in ITEM_CODES:
        return None
    return StorageUnavailable(
        f"object store unavailable: {storage_error('read', uri, exc)}; "
        "the run is not committed, rerun when the store is back"
    )


def pipeline_failure(exc: BaseException, run_uri: str) -> StorageUnavailable | None:
    """The store failure behind a failed Ray Data pipeline, as one clean line, or None.

    Ray wraps a task's exception (UserCodeException, RayTaskError with a traceback in its
    text), so the cause chain is searched first, then the text: our own StorageUnavailable
    line from a read, or an S3 client error from a write under `run_uri`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, StorageUnavailable):
            return StorageUnavailable(str(current))
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    text = str(exc)
    for marker in ("StorageUnavailable: ", "StorageError: "):
        # a StorageError here was raised where no item owns it (an inference actor loading
        # the model while the store is down): the run fails with that line, not Ray's trace
        for line in text.splitlines():
            _, sep, rest = line.partition(marker)
            if sep and rest.strip():
                return StorageUnavailable(rest.strip())
    match = _AWS_ERROR.search(" ".join(text.split()))
    if match is None or match.group(1) in ITEM_CODES:
        return None
    code, operation = match.group(1), match.group(2)
    return StorageUnavailable(
        f"object store unavailable: {operation} under {run_uri} failed with {code}; "
        "the run is not committed, rerun when the store is back"
    )
