"""Output layout under `output.root` and the commit protocol.

A run is a result only once `_SUCCESS` exists, and `LATEST` is moved only after that,
so a crash at any point leaves nothing a reader would take for a result.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from raylabel.errors import InputError, StorageError
from raylabel.io import storage
from raylabel.io.atomic import create_exclusive
from raylabel.io.listing import list_dirs
from raylabel.io.storage import StorageOptions

if TYPE_CHECKING:
    pass

SUCCESS = "_SUCCESS"
LATEST = "LATEST"
#: what makes a folder under models/ a published model (written last, exclusively)
CARD_FILE = "model_card.json"


def utc_now() -> datetime:
    """The clock every timestamp we write comes from: timezone-aware UTC, so times written on
    different machines compare and sort correctly."""
    return datetime.now(timezone.utc)


def new_id(prefix: str = "") -> str:
    """Sortable, unique: UTC time to the microsecond plus random hex (newest sorts last, so a
    reader can find the newest committed run even when a LATEST pointer is stale)."""
    return f"{prefix}{utc_now().strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(3)}"


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
    """Publish: `_SUCCESS` first, then point `LATEST` at the run. If the pointer cannot be
    moved the run is still committed (readers find the newest committed run by itself), and
    the error says exactly that."""
    storage.write_json(layout.path(SUCCESS), {"run_id": layout.run_id, **info}, opts)
    try:
        storage.write_text(storage.join(layout.drop_dir, LATEST), layout.run_id + "\n", opts)
    except StorageError as exc:
        raise StorageError(
            f"run {layout.run_id} is committed (_SUCCESS written) but {LATEST} could not be "
            f"moved to it ({exc}); readers use the newest committed run, which is this one"
        ) from None


def is_committed(root: str, drop: str, run_id: str, opts: StorageOptions) -> bool:
    """Whether a run counts as a result: only its `_SUCCESS` says so, never the mere presence of
    files."""
    return storage.exists(storage.join(root, "runs", drop, run_id, SUCCESS), opts)


def latest_run(root: str, drop: str, opts: StorageOptions) -> str | None:
    """The newest committed run of a drop, or None. LATEST names it; a run committed after
    the run LATEST names (its pointer move failed) still wins, and a LATEST without
    _SUCCESS is ignored."""
    drop_dir = storage.join(root, "runs", drop)
    pointer = storage.join(drop_dir, LATEST)
    named = storage.read_text(pointer, opts).strip() if storage.exists(pointer, opts) else ""
    if not storage.exists(drop_dir, opts):
        return None
    newer = [r for r in list_dirs(drop_dir, opts) if r > named and r.startswith("r-")]
    for run_id in sorted(newer, reverse=True):
        if is_committed(root, drop, run_id, opts):
            return run_id
    if named and is_committed(root, drop, named, opts):
        return named
    return None


def commit_revision(run: RunLayout, kind: str, rev_id: str, opts: StorageOptions) -> str:
    """A redraw or an evaluation of a committed run is a folder of its own,
    `<run>/<kind>/<rev_id>/`, committed like a run (`_SUCCESS`, then `<kind>/LATEST`): the
    run's labels, errors and summary never change after their commit."""
    folder = run.path(kind, rev_id)
    storage.write_json(storage.join(folder, SUCCESS), {"id": rev_id}, opts)
    storage.write_text(run.path(kind, LATEST), rev_id + "\n", opts)
    return folder


def latest_revision(run: RunLayout, kind: str, opts: StorageOptions) -> str | None:
    """The newest committed revision folder of a run (`redraws`, `evaluations`), or None."""
    base = run.path(kind)
    if not storage.exists(base, opts):
        return None
    for rev_id in sorted(list_dirs(base, opts), reverse=True):
        if storage.exists(storage.join(base, rev_id, SUCCESS), opts):
            return storage.join(base, rev_id)
    return None


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


def model_exists(root: str, version: str, opts: StorageOptions) -> bool:
    """Whether anything is published (or half-published) under `models/<version>/`."""
    return storage.exists(model_uri(root, version), opts)


def point_latest_model(root: str, version: str, opts: StorageOptions) -> None:
    """Move `models/LATEST` to a published version (the gate's promotion or the override)."""
    storage.write_text(storage.join(root, "models", LATEST), version + "\n", opts)


def publish_model(
    local_dir: Path, root: str, version: str, opts: StorageOptions, promote: bool = True
) -> str:
    """Copy a finished model directory to `models/<version>/`, then (`promote`) move
    `models/LATEST`; a candidate the promotion gate refused is published but not LATEST.

    A published version is never overwritten: an existing one is refused before anything
    is written, and the card (what makes a directory a model) goes up last with an
    exclusive create, so of two runs racing for one version only one publishes it."""
    dest = model_uri(root, version)
    if model_exists(root, version, opts):
        raise InputError(f"run.model_version: {dest} already exists; published models never change")
    card = Path(local_dir) / CARD_FILE
    staged = Path(tempfile.mkdtemp(prefix="raylabel-publish-"))
    try:
        top = str(Path(local_dir))
        shutil.copytree(
            local_dir,
            staged / "m",
            ignore=lambda d, names: [CARD_FILE] if d == top and CARD_FILE in names else [],
        )
        storage.upload_dir(staged / "m", dest, opts)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    if not create_exclusive(storage.join(dest, CARD_FILE), card.read_bytes(), opts):
        raise InputError(f"run.model_version: {dest} was published by another run meanwhile")
    if promote:
        point_latest_model(root, version, opts)
    return dest


def sync_dir(
    uri: str,
    opts: StorageOptions,
    cache_dir: Path | None = None,
    marker: str | None = None,
    skip: tuple[str, ...] = (),
    refresh: bool = False,
) -> Path:
    """A local copy of a directory (models, tokenizers), downloaded once per node.

    Local paths are used in place. Remote ones land in a cache keyed by the URI, in a
    folder only this user can write (see `private_cache_root`); the copy is renamed into
    place only when complete, so concurrent actors never see half a model. `refresh`
    drops a cached copy first (its content failed verification).
    """
    if not storage.is_remote(uri):
        local = Path(storage.resolve(uri, opts)[1])
        if not local.is_dir():
            raise storage.InputNotFound(f"directory not found: {uri}")
        return local
    import hashlib

    base = cache_dir or private_cache_root()
    key = uri + "".join(f"\x1fskip={d}" for d in skip)
    dest = base / hashlib.sha256(key.encode()).hexdigest()[:20]
    if refresh and dest.is_dir():
        shutil.rmtree(dest, ignore_errors=True)
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


def private_cache_root() -> Path:
    """The per-node model cache, `<tmp>/raylabel-cache-<uid>`, mode 0700: another local
    user must not be able to plant weights where a label actor will load them. A folder
    of that name owned by someone else, or writable by others, is refused."""
    root = Path(tempfile.gettempdir()) / f"raylabel-cache-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    st = root.lstat()
    if root.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise StorageError(
            f"{root}: the model cache must be a folder owned by uid {os.getuid()} and writable "
            "by it alone; refusing to load models through it"
        )
    return root


def fetch_model(
    root: str,
    version: str,
    opts: StorageOptions,
    cache_dir: Path | None = None,
    with_folds: bool = False,
    refresh: bool = False,
) -> Path:
    """A local copy of a model directory (the actor loads from local disk); the fold models
    of a cross-fitted model come along only when labeling uses their ensemble."""
    src = model_uri(root, version)
    try:
        skip = () if with_folds else ("folds",)
        return sync_dir(src, opts, cache_dir, marker=CARD_FILE, skip=skip, refresh=refresh)
    except storage.InputNotFound:
        raise storage.InputNotFound(f"model not found: {src}") from None
