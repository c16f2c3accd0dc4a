"""The drops under `drops.root`: their run names, and whether each is ready tonight."""

from __future__ import annotations

import time

from raylabel.config import Config
from raylabel.errors import InputError
from raylabel.inputs import sources
from raylabel.io import listing, storage
from raylabel.io.storage import StorageOptions


def drop_folders(cfg: Config, opts: StorageOptions) -> dict[str, str]:
    """Run name -> folder for every drop under drops.root; two folders that become the same
    run name ("night 1", "night_1") stop the night before any work, naming both."""
    root = cfg.drops.root or ""
    listing.check_input(root, opts, "drops.root")
    folders: dict[str, str] = {}
    for folder in listing.list_dirs(root, opts):
        name = sources.safe_drop_name(folder)
        if not name:
            raise InputError(f"drops.root: cannot name a run after the folder {folder!r}")
        if name in folders:
            raise InputError(
                f"drops.root: drops {folders[name]!r} and {folder!r} would both be named "
                f"{name!r}; rename one of them"
            )
        folders[name] = folder
    return folders


def drop_uri(cfg: Config, folder: str) -> str:
    """Where a drop folder lives."""
    return storage.join(cfg.drops.root or "", folder)


def waiting_reason(
    cfg: Config, folder: str, opts: StorageOptions, now: float | None = None
) -> str | None:
    """Why a drop is left for a later night (None: ready). Without its `drops.ready_marker`
    the producer has not said it is done; with an object younger than `drops.min_quiet_s` it
    may still be writing."""
    uri = drop_uri(cfg, folder)
    marker = cfg.drops.ready_marker
    if marker and not storage.exists(storage.join(uri, marker), opts):
        return f"no {marker} marker yet (drops.ready_marker)"
    if cfg.drops.min_quiet_s > 0:
        files = listing.list_files(uri, opts, recursive=True)
        newest = max((f.mtime_ns for f in files), default=0) / 1e9
        age = (now if now is not None else time.time()) - newest
        if files and age < cfg.drops.min_quiet_s:
            return (
                f"newest object is {max(age, 0.0):.0f}s old, under drops.min_quiet_s="
                f"{cfg.drops.min_quiet_s:g}"
            )
    return None
