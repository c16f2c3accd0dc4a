"""Output layout under `output.root` and the commit protocol.

A run is a result only once `_SUCCESS` exists, and `LATEST` is moved only after that,
so a crash at any point leaves nothing a reader would take for a result.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from raylabel.io import storage
from raylabel.io.storage import StorageOptions

if TYPE_CHECKING:
    pass

SUCCESS = "_SUCCESS"
LATEST = "LATEST"


def utc_now() -> datetime:
    """The clock every timestamp we write comes from: timezone-aware UTC, so times written on
    different machines compare and sort correctly."""
    return datetime.now(timezone.utc)


def new_id(prefix: str = "") -> str:
    """Sortable, unique: UTC time to the second plus random hex."""
    return f"{prefix}{utc_now().strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class RunLayout:
    """Where one run's files go (`runs/<drop>/<run_id>/`): writers and readers name paths through
    it, so they always agree on the layout."""

    root: str
    drop: str
    run_id: str

    @property
    def drop_dir(self) -> str:
        """The drop's directory: its runs side by side, and the LATEST pointer readers follow."""
        return storage.join(self.root, "runs", self.drop)

    @property
    def run_dir(self) -> str:
        """The run's own directory; nothing in it counts as a result until its `_SUCCESS` exists."""
        return storage.join(self.drop_dir, self.run_id)

    def path(self, *parts: str) -> str:
        """A path under the run's directory, so no caller spells run paths by hand."""
        return storage.join(self.run_dir, *parts)

    @property
    def labels_dir(self) -> str:
        """Where the labeled rows' Parquet parts go: the public output downstream jobs read."""
        return self.path("labels")

    @property
    def errors_dir(self) -> str:
        """Where the error rows go: with labels/ it holds every input item exactly once."""
        return self.path("errors")

    @property
    def review_dir(self) -> str:
        """Where the review sample and the uncertain queue are published for reviewers."""
        return self.path("review")


def commit_run(layout: RunLayout, opts: StorageOptions, info: dict) -> None:
    """Publish: `_SUCCESS` first, then point `LATEST` at the run."""
    storage.write_json(layout.path(SUCCESS), {"run_id": layout.run_id, **info}, opts)
    storage.write_text(storage.join(layout.drop_dir, LATEST), layout.run_id + "\n", opts)


def is_committed(root: str, drop: str, run_id: str, opts: StorageOptions) -> bool:
    """Whether a run counts as a result: only its `_SUCCESS` says so, never the mere presence of
    files."""
    return storage.exists(storage.join(root, "runs", drop, run_id, SUCCESS), opts)


def latest_run(root: str, drop: str, opts: StorageOptions) -> str | None:
    """The last committed run of a drop, or None; a LATEST without _SUCCESS is ignored."""
    pointer = storage.join(root, "runs", drop, LATEST)
    if not storage.exists(pointer, opts):
        return None
    run_id = storage.read_text(pointer, opts).strip()
    if not run_id or not is_committed(root, drop, run_id, opts):
        return None
    return run_id


def model_uri(root: str, version: str) -> str:
    """Where a published model version lives: the one place that spells `models/<version>`."""
    return storage.join(root, "models", version)


def latest_model(root: str, opts: StorageOptions) -> str | None:
    """The version `models/LATEST` names (None before the first training): the model labeling uses
    unless `run.model_version` pins one."""
    pointer = storage.join(root, "models", LATEST)
    if not storage.exists(pointer, opts):
        return None
    version = storage.read_text(pointer, opts).strip()
    return version or None


def publish_model(local_dir: Path, root: str, version: str, opts: StorageOptions) -> str:
    """Copy a finished model directory to `models/<version>/`, then move `models/LATEST`."""
    dest = model_uri(root, version)
    storage.upload_dir(local_dir, dest, opts)
    storage.write_text(storage.join(root, "models", LATEST), version + "\n", opts)
    return dest


def sync_dir(
    uri: str,
    opts: StorageOptions,
    cache_dir: Path | None = None,
    marker: str | None = None,
    skip: tuple[str, ...] = (),
) -> Path:
    """A local copy of a directory (models, tokenizers), downloaded once per node.

    Local paths are used in place. Remote ones land in a cache keyed by the URI; the copy
    is renamed into place only when complete, so concurrent actors never see half a model.
    """
    if not storage.is_remote(uri):
        local = Path(storage.resolve(uri, opts)[1])
        if not local.is_dir():
            raise storage.InputNotFound(f"directory not found: {uri}")
        return local
    import hashlib

    base = cache_dir or Path(tempfile.gettempdir()) / "raylabel-cache"
    key = uri + "".join(f"\x1fskip={d}" for d in skip)
    dest = base / hashlib.sha256(key.encode()).hexdigest()[:20]
    if dest.is_dir():
        return dest
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=base))
    try:
        storage.download_dir(uri, tmp, opts, skip=skip)
        if marker and not (tmp / marker).is_file():
            raise storage.InputNotFound(f"not found: {storage.join(uri, marker)}")
        # another process on this node may have finished first; then use its copy
        with contextlib.suppress(OSError):
            tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def fetch_model(
    root: str,
    version: str,
    opts: StorageOptions,
    cache_dir: Path | None = None,
    with_folds: bool = False,
) -> Path:
    """A local copy of a model directory (the actor loads from local disk); the fold models
    of a cross-fitted model come along only when labeling uses their ensemble."""
    src = model_uri(root, version)
    try:
        skip = () if with_folds else ("folds",)
        return sync_dir(src, opts, cache_dir, marker="model_card.json", skip=skip)
    except storage.InputNotFound:
        raise storage.InputNotFound(f"model not found: {src}") from None
