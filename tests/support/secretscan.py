"""Issue #8 item 11: find credential values in everything a run leaves behind.

The tests put distinctive fake credentials in the environment (tests/s3server.py s3_env);
these helpers grep files, S3 objects and captured text for them, raw and in the encodings
a leak could take (JSON-escaped, base64, URL-quoted).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

SECRET_ENV_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def secret_values() -> list[str]:
    """The credential values now in the environment (the tests' distinctive fake ones)."""
    values = [os.environ.get(name, "") for name in SECRET_ENV_VARS]
    return [v for v in values if len(v) >= 8]


def _needles(values: Iterable[str]) -> list[bytes]:
    out: list[bytes] = []
    for v in values:
        raw = v.encode()
        out += [raw, quote(v, safe="").encode(), base64.b64encode(raw)[:-4]]
    return list(dict.fromkeys(out))


def leaks_in_bytes(data: bytes, where: str, values: list[str] | None = None) -> list[str]:
    """`where` for each credential value (or encoding of one) found in `data`."""
    found = []
    for needle in _needles(values if values is not None else secret_values()):
        if needle and needle in data:
            found.append(f"{where}: {needle[:6]!r}...")
    return found


def leaks_in_text(text: str, where: str, values: list[str] | None = None) -> list[str]:
    return leaks_in_bytes(text.encode("utf-8", "replace"), where, values)


def leaks_in_tree(root: Path, values: list[str] | None = None) -> list[str]:
    """Every file under a local directory (logs, outputs), read whole; unreadable files
    (sockets, vanished temp files) are skipped."""
    found: list[str] = []
    for path in sorted(Path(root).rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found += leaks_in_bytes(data, str(path), values)
    return found


def leaks_in_store(uri: str, opts: object, values: list[str] | None = None) -> list[str]:
    """Every object under an output root (local or s3://), hidden ones (`_SUCCESS`) too."""
    import pyarrow.fs as pafs

    from raylabel.io import storage

    fs, path = storage.resolve(uri, opts)  # type: ignore[arg-type]
    found: list[str] = []
    for info in fs.get_file_info(pafs.FileSelector(path, recursive=True)):
        if info.type == pafs.FileType.File:
            with fs.open_input_stream(info.path) as stream:
                found += leaks_in_bytes(stream.read(), info.path, values)
    return found


def ray_session_dir() -> Path | None:
    """The logs directory of the Ray session this process is connected to, if reachable."""
    try:
        import ray

        node = ray._private.worker._global_node
        return Path(node.get_session_dir_path()) if node is not None else None
    except Exception:
        return None
