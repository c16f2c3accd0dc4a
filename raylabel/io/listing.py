"""Listing a folder or prefix: every file the extension filter admits is an item.

Why a policy of its own: a drop's listing decides what "every input item" means. Skipping
every name that starts with "_" or "." silently dropped normal camera files
(`_DSC0001.JPG`), so only the markers this project and common writers leave, and the
metadata operating systems scatter, are skipped — and every skipped file is counted, by
reason, so nothing disappears without a trace (`summary.json` `counts.skipped`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from raylabel.errors import InputNotFound
from raylabel.io.storage import (
    StorageOptions,
    basename,
    file_info,
    not_found,
    rel_path,
    resolve,
    uri_for,
    walk,
)

#: Files that mark a state rather than hold an item (ours, Hadoop/Spark's, Databricks').
MARKER_NAMES = frozenset({"_SUCCESS", "_FAILED", "_READY", "_LATEST", "LATEST"})
MARKER_PREFIXES = ("_committed_", "_started_", "_common_metadata", "_metadata")
MARKER_SUFFIXES = ("_$folder$",)  # S3 console "folder" placeholder objects
MARKER_DIRS = frozenset({"_temporary", "_delta_log", ".spark-staging", ".raylabel"})
#: What operating systems and tools leave next to real files.
OS_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".localized", "Icon\r"})
OS_PREFIXES = ("._",)  # AppleDouble resource forks
OS_DIRS = frozenset(
    {"__MACOSX", ".Trashes", ".Spotlight-V100", ".fseventsd", "@eaDir", ".git"}
    | {".ipynb_checkpoints", "$RECYCLE.BIN", "System Volume Information"}
)
#: Reasons a file is not an item (the keys of `counts.skipped`).
SKIP_REASONS = ("marker", "os_metadata", "extension")


@dataclass(frozen=True)
class FileEntry:
    """One file found by a listing: its URI, its path below the listed root, its size and
    modification time (content identity: a rewritten file gets a new mtime)."""

    uri: str
    rel_path: str
    size: int
    mtime_ns: int = 0


@dataclass
class Listing:
    """The files a listing admitted and, by reason, how many it skipped."""

    files: list[FileEntry]
    skipped: dict[str, int] = field(default_factory=dict)

    def count_skip(self, reason: str) -> None:
        """One more file left out for `reason` (one of SKIP_REASONS)."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def skip_reason(rel: str) -> str | None:
    """Why a file below a listed root is not an item ("marker", "os_metadata"), or None."""
    parts = rel.split("/")
    dirs, name = parts[:-1], parts[-1]
    if any(d in MARKER_DIRS for d in dirs):
        return "marker"
    if any(d in OS_DIRS for d in dirs):
        return "os_metadata"
    if name in MARKER_NAMES or name.startswith(MARKER_PREFIXES) or name.endswith(MARKER_SUFFIXES):
        return "marker"
    if name in OS_NAMES or name.startswith(OS_PREFIXES):
        return "os_metadata"
    return None


def _normalise_extensions(extensions: Sequence[str] | None) -> tuple[str, ...] | None:
    """[".PNG", "jpg"] -> (".png", ".jpg"); None or empty means no filter."""
    if extensions is None:
        return None
    if isinstance(extensions, str):
        extensions = [extensions]
    normalised = tuple(
        (e if e.startswith(".") else "." + e).lower() for e in extensions if e.strip(".")
    )
    return normalised or None


def _mtime_ns(info: pafs.FileInfo) -> int:
    mtime = info.mtime_ns
    return int(mtime) if mtime is not None else 0


def list_items(
    uri: str,
    opts: StorageOptions,
    recursive: bool = True,
    extensions: Sequence[str] | None = None,
) -> Listing:
    """Files under a directory/prefix sorted by rel_path (a file URI lists itself), so that
    every reader sees the same items in the same order, with skipped files counted;
    InputNotFound if the path is missing."""
    fs, path = resolve(uri, opts)
    exts = _normalise_extensions(extensions)
    info = file_info(fs, path, uri, "list")
    if info.type == pafs.FileType.NotFound:
        raise not_found(fs, path, uri, "")
    out = Listing([])
    if info.type == pafs.FileType.File:
        name = basename(path)
        if exts is not None and not name.lower().endswith(exts):
            out.count_skip("extension")
            return out
        out.files.append(FileEntry(uri_for(uri, path), name, int(info.size or 0), _mtime_ns(info)))
        return out
    for item in walk(fs, path, uri, recursive, "list"):
        if item.type != pafs.FileType.File:
            continue
        rel = rel_path(path, item.path)
        if not rel:
            continue
        reason = skip_reason(rel)
        if reason is None and exts is not None and not rel.lower().endswith(exts):
            reason = "extension"
        if reason is not None:
            out.count_skip(reason)
            continue
        out.files.append(
            FileEntry(uri_for(uri, item.path), rel, int(item.size or 0), _mtime_ns(item))
        )
    out.files.sort(key=lambda e: e.rel_path)
    return out


def list_files(
    uri: str,
    opts: StorageOptions,
    recursive: bool = True,
    extensions: Sequence[str] | None = None,
) -> list[FileEntry]:
    """The admitted files of `list_items` (for readers that do not report skips: model
    directories, feedback and label part files written by raylabel itself)."""
    return list_items(uri, opts, recursive, extensions).files


def list_dirs(uri: str, opts: StorageOptions) -> list[str]:
    """Names of the immediate child directories (S3: common prefixes), sorted; marker and
    OS-metadata folders are skipped, nothing else (a drop may well be called `_batch7`).
    InputNotFound if `uri` is missing."""
    fs, path = resolve(uri, opts)
    names = {
        rel_path(path, item.path)
        for item in walk(fs, path, uri, False, "list")
        if item.type == pafs.FileType.Directory
    }
    return sorted(n for n in names if n and n not in MARKER_DIRS and n not in OS_DIRS)


def _has_item(fs: pafs.FileSystem, path: str, uri: str) -> bool:
    """Depth-first search that stops at the first file that is an item, so checking a huge
    drop does not list all of it (files at a level are looked at before descending)."""
    stack = [(path, "")]
    while stack:
        current, prefix = stack.pop()
        subdirs = []
        for item in walk(fs, current, uri, False, "list"):
            name = rel_path(current, item.path)
            if not name:
                continue
            rel = f"{prefix}{name}"
            if item.type == pafs.FileType.File and skip_reason(rel) is None:
                return True
            if item.type == pafs.FileType.Directory:
                subdirs.append((item.path, f"{rel}/"))
        stack.extend(sorted(subdirs, reverse=True))
    return False


def check_input(uri: str, opts: StorageOptions, what: str) -> None:
    """Fail fast, before any Ray work: "<what> not found: <uri>" or "<what> is empty: <uri>"."""
    fs, path = resolve(uri, opts)
    info = file_info(fs, path, uri, f"{what}: stat")
    if info.type == pafs.FileType.NotFound:
        raise not_found(fs, path, uri, f"{what} ")
    if info.type == pafs.FileType.Directory:
        try:
            found = _has_item(fs, path, uri)
        except InputNotFound:
            raise not_found(fs, path, uri, f"{what} ") from None
        if not found:
            raise InputNotFound(f"{what} is empty: {uri}")
