"""URIs -> pyarrow filesystems (paths, file://, s3://) and the file operations raylabel needs.

Every stage reaches storage through this module so that local runs and S3 runs share one code
path, errors become one-line messages naming the URI (the CLI prints them and exits 2 for a
missing input), and credentials are only ever taken from the environment: no function accepts
them, and no message, repr or pickle produced here contains them.
"""

import contextlib
import json
import os
import posixpath
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from raylabel.errors import InputNotFound, StorageError

# AWS error codes (as pyarrow spells them in its OSError messages), grouped by what they mean to us.
_NOT_FOUND_CODES = ("NO_SUCH_KEY", "RESOURCE_NOT_FOUND", "NO_SUCH_UPLOAD")
_AUTH_CODES = (
    "ACCESS_DENIED",
    "INVALID_ACCESS_KEY_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "EXPIRED_TOKEN",
    "INVALID_CLIENT_TOKEN_ID",
    "MISSING_AUTHENTICATION_TOKEN",
    "UNRECOGNIZED_CLIENT",
)
_AWS_ERROR_RE = re.compile(r"AWS Error (\w+) during (\w+) operation:?\s*(.*)")
_REQUEST_ID_RE = re.compile(r"\s*\(Request ID: [^)]*\)")


@dataclass(frozen=True)
class StorageOptions:
    """How to reach object storage; credentials deliberately absent (they come from the env)."""

    endpoint_url: str | None = None
    region: str | None = None
    retries: int = 10
    connect_timeout_s: float | None = None

    def __post_init__(self) -> None:
        """Reject bad settings up front, before any stage starts work."""
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"storage.retries must be an integer >= 0, got {self.retries!r}")
        timeout = self.connect_timeout_s
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise ValueError(f"storage.connect_timeout_s must be > 0, got {timeout!r}")
        if self.endpoint_url is not None:
            _split_endpoint(self.endpoint_url)


# --------------------------------------------------------------------------------------------
# URI helpers (pure string work, no I/O)
# --------------------------------------------------------------------------------------------


def options_for(section: Any) -> StorageOptions:
    """The config's `storage` section as the one small value every reader, writer and Ray
    task carries to reach object storage (credentials stay in the environment)."""
    return StorageOptions(
        endpoint_url=section.endpoint_url,
        region=section.region,
        retries=section.retries,
        connect_timeout_s=section.connect_timeout_s,
    )


def _scheme(uri: str) -> str:
    """Lower-cased scheme of a "scheme://..." URI, or "" for a plain path."""
    head, sep, _ = uri.partition("://")
    if not sep or not head or "/" in head:
        return ""
    return head.lower()


def is_remote(uri: str) -> bool:
    """True for object-store URIs (anything "scheme://" except file://), so callers never
    mistake e.g. "gs://x" for a relative local path."""
    return _scheme(uri) not in ("", "file")


def _split_endpoint(endpoint_url: str) -> tuple[str, str]:
    """Split "http://host:port" into ("http", "host:port"): pyarrow wants the scheme separately."""
    parts = urlsplit(endpoint_url)
    if "@" in parts.netloc:
        # Never echo the value: it carries user info, possibly a secret.
        raise ValueError("storage.endpoint_url must not contain credentials (user:password@)")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"storage.endpoint_url must look like http(s)://host[:port], got {endpoint_url!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"storage.endpoint_url must not have a path, query or fragment: {endpoint_url!r}"
        )
    return parts.scheme, parts.netloc


def _split_s3(uri: str) -> tuple[str, str]:
    """Split "s3://bucket/key/" into ("bucket", "key"); the key may be "" (bucket root)."""
    bucket, _, key = uri.partition("://")[2].partition("/")
    key = key.strip("/")
    if not bucket:
        raise ValueError(f"S3 URI has no bucket: {uri!r}")
    return bucket, key


def _local_path(uri: str) -> str:
    """Absolute local path for a plain path or a file:// URI."""
    if _scheme(uri) == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file:// URI must not name a remote host: {uri!r}")
        path = parts.path or "/"
    else:
        path = os.path.expanduser(uri)
    return os.path.abspath(path)


def join(uri: str, *parts: str) -> str:
    """Append relative path parts to a URI; refuses ".." and absolute parts so that names taken
    from data (drop names, keys) can never escape the root they are joined to."""
    segments: list[str] = []
    for part in parts:
        if part.startswith("/"):
            raise ValueError(f"join: part must be relative, got {part!r}")
        for seg in part.split("/"):
            if seg == "..":
                raise ValueError(f"join: part must not contain '..', got {part!r}")
            if seg not in ("", "."):
                segments.append(seg)
    if "://" in uri:
        scheme, _, rest = uri.partition("://")
        base = f"{scheme}://{rest.rstrip('/')}"
    else:
        base = uri.rstrip("/")
    if not segments:
        return base or uri
    return base + "/" + "/".join(segments)


def basename(uri: str) -> str:
    """Last path component of a URI or path, ignoring a trailing slash."""
    rest = uri.partition("://")[2] if "://" in uri else uri
    return rest.rstrip("/").rpartition("/")[2]


# --------------------------------------------------------------------------------------------
# Filesystems
# --------------------------------------------------------------------------------------------


def s3_filesystem(opts: StorageOptions, bucket: str) -> pafs.S3FileSystem:
    """Build a picklable S3FileSystem; it carries no credentials, so Ray workers re-read theirs
    from their own environment / instance role when it is unpickled."""
    kwargs: dict[str, Any] = {
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=opts.retries),
        # Small objects then go up as one PutObject instead of a 3-request multipart upload.
        "allow_delayed_open": True,
    }
    if opts.endpoint_url is not None:
        kwargs["scheme"], kwargs["endpoint_override"] = _split_endpoint(opts.endpoint_url)
    if opts.connect_timeout_s is not None:
        kwargs["connect_timeout"] = float(opts.connect_timeout_s)
    if opts.region is not None:
        # Unset: the AWS SDK's chain decides (AWS_REGION / AWS_DEFAULT_REGION, profile, ...).
        # No automatic resolve_s3_region(): it stalls ~6 s per call where s3.amazonaws.com is
        # unreachable (private VPC endpoints) and resolve() runs on every storage call.
        kwargs["region"] = opts.region
    return pafs.S3FileSystem(**kwargs)


def resolve(uri: str, opts: StorageOptions) -> tuple[pafs.FileSystem, str]:
    """Map a URI to (pyarrow filesystem, path inside it); a fresh filesystem every call so that
    nothing is cached across tests, processes or credential rotations."""
    scheme = _scheme(uri)
    if scheme in ("", "file"):
        return pafs.LocalFileSystem(), _local_path(uri)
    if scheme == "s3":
        bucket, key = _split_s3(uri)
        path = f"{bucket}/{key}" if key else bucket
        return s3_filesystem(opts, bucket), path
    raise ValueError(f"unsupported URI scheme {scheme!r} in {uri!r} (use a path, file:// or s3://)")


def uri_for(uri: str, path: str) -> str:
    """The URI of a filesystem path found below `uri` (s3:// kept, local paths absolute)."""
    return f"s3://{path}" if _scheme(uri) == "s3" else path


# --------------------------------------------------------------------------------------------
# Error mapping
# --------------------------------------------------------------------------------------------


def storage_error(action: str, uri: str, exc: BaseException) -> StorageError:
    """Turn a pyarrow / OS error into a one-line StorageError (InputNotFound when missing)."""
    text = " ".join(str(exc).split())
    match = _AWS_ERROR_RE.search(text)
    if match:
        code, operation, detail = match.groups()
        detail = _REQUEST_ID_RE.sub("", detail).strip().rstrip(".")
        if code == "NO_SUCH_BUCKET":
            return InputNotFound(f"not found: {uri} (bucket does not exist)")
        if code in _NOT_FOUND_CODES:
            return InputNotFound(f"not found: {uri}")
        if code in _AUTH_CODES:
            return StorageError(
                f"{action} failed for {uri}: access denied ({code} during {operation}; "
                "check the AWS credentials in the environment and the bucket policy)"
            )
        if code == "NETWORK_CONNECTION":
            return StorageError(f"{action} failed for {uri}: cannot reach S3 endpoint ({detail})")
        return StorageError(f"{action} failed for {uri}: {code} during {operation}: {detail}")
    if isinstance(exc, FileNotFoundError):
        return InputNotFound(f"not found: {uri}")
    if isinstance(exc, PermissionError):
        return StorageError(f"{action} failed for {uri}: permission denied")
    if isinstance(exc, IsADirectoryError):
        return StorageError(f"{action} failed for {uri}: is a directory")
    if isinstance(exc, NotADirectoryError):
        return StorageError(f"{action} failed for {uri}: a parent is not a directory")
    if isinstance(exc, OSError) and exc.strerror:
        return StorageError(f"{action} failed for {uri}: {exc.strerror}")
    return StorageError(f"{action} failed for {uri}: {text or type(exc).__name__}")


def file_info(fs: pafs.FileSystem, path: str, uri: str, action: str) -> pafs.FileInfo:
    """get_file_info with errors mapped (a missing path or bucket is FileType.NotFound)."""
    try:
        return fs.get_file_info(path)
    except OSError as exc:
        raise storage_error(action, uri, exc) from None


def _bucket_missing(fs: pafs.FileSystem, path: str, uri: str) -> bool:
    """For S3: whether the bucket itself is absent (to say so in the message)."""
    if _scheme(uri) != "s3":
        return False
    try:
        return fs.get_file_info(path.partition("/")[0]).type == pafs.FileType.NotFound
    except OSError:
        return False  # e.g. access denied on HeadBucket: we cannot tell, so do not claim it


def not_found(fs: pafs.FileSystem, path: str, uri: str, prefix: str) -> InputNotFound:
    """InputNotFound("<prefix> not found: <uri>[ (bucket does not exist)]")."""
    suffix = " (bucket does not exist)" if _bucket_missing(fs, path, uri) else ""
    return InputNotFound(f"{prefix}not found: {uri}{suffix}")


# --------------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------------


def exists(uri: str, opts: StorageOptions) -> bool:
    """Whether a file or directory/prefix exists (a missing S3 bucket is simply False)."""
    fs, path = resolve(uri, opts)
    return file_info(fs, path, uri, "stat").type != pafs.FileType.NotFound


def is_dir(uri: str, opts: StorageOptions) -> bool:
    """Whether the URI is a directory; on S3 a bucket or a prefix with at least one object."""
    fs, path = resolve(uri, opts)
    return file_info(fs, path, uri, "stat").type == pafs.FileType.Directory


def walk(
    fs: pafs.FileSystem, path: str, uri: str, recursive: bool, action: str
) -> list[pafs.FileInfo]:
    """File infos below a directory/prefix; InputNotFound if it is absent."""
    selector = pafs.FileSelector(path, recursive=recursive, allow_not_found=False)
    try:
        infos = fs.get_file_info(selector)
    except FileNotFoundError:
        raise not_found(fs, path, uri, "") from None
    except OSError as exc:
        raise storage_error(action, uri, exc) from None
    return infos


def rel_path(root: str, path: str) -> str:
    """Path of `path` below `root`, always with "/" separators."""
    rel = path[len(root) :].lstrip("/") if path.startswith(root) else posixpath.basename(path)
    return rel.replace(os.sep, "/")


# --------------------------------------------------------------------------------------------
# Reads and writes
# --------------------------------------------------------------------------------------------


def _read(fs: pafs.FileSystem, path: str, uri: str) -> bytes:
    """Read one file through an already resolved filesystem, errors mapped."""
    try:
        with fs.open_input_stream(path) as stream:
            return stream.read()
    except FileNotFoundError:
        raise not_found(fs, path, uri, "") from None
    except OSError as exc:
        raise storage_error("read", uri, exc) from None


def read_bytes(uri: str, opts: StorageOptions) -> bytes:
    """Whole content of one file (small files: configs, model cards, manifests)."""
    fs, path = resolve(uri, opts)
    return _read(fs, path, uri)


def read_text(uri: str, opts: StorageOptions) -> str:
    """UTF-8 text of one file."""
    data = read_bytes(uri, opts)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StorageError(f"read failed for {uri}: not valid UTF-8 ({exc.reason})") from None


def read_json(uri: str, opts: StorageOptions) -> Any:
    """Parsed JSON of one file; a malformed file is a StorageError naming it."""
    text = read_text(uri, opts)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StorageError(
            f"read failed for {uri}: invalid JSON at line {exc.lineno} column {exc.colno}"
        ) from None


def _write_local_atomic(path: str, data: bytes) -> None:
    """Write next to the target under a hidden temp name, fsync, then os.replace: readers see
    the old file or the new one, never half of it. The mode follows the umask like open()."""
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(f"a parent of {path} is a file") from None
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write(fs: pafs.FileSystem, path: str, uri: str, data: bytes) -> None:
    """Write one whole file through an already resolved filesystem, errors mapped."""
    try:
        if isinstance(fs, pafs.LocalFileSystem):
            _write_local_atomic(path, bytes(data))
            return
        with fs.open_output_stream(path) as stream:
            stream.write(data)
    except OSError as exc:
        raise storage_error("write", uri, exc) from None


def write_bytes(uri: str, data: bytes, opts: StorageOptions) -> None:
    """Write a whole file atomically: local temp file + rename; S3 one PUT (an object only
    becomes visible complete; large bodies go multipart, which is atomic too)."""
    fs, path = resolve(uri, opts)
    _write(fs, path, uri, data)


def write_text(uri: str, text: str, opts: StorageOptions) -> None:
    """Write UTF-8 text atomically."""
    write_bytes(uri, text.encode("utf-8"), opts)


def write_json(uri: str, obj: Any, opts: StorageOptions) -> None:
    """Write human-readable JSON (indent 2, key order kept, non-ASCII kept, final newline)."""
    write_text(uri, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n", opts)


def delete_tree(uri: str, opts: StorageOptions) -> None:
    """Remove a file or a directory/prefix with everything under it; missing is fine. Refuses a
    filesystem or bucket root so a bad config cannot wipe a whole bucket."""
    fs, path = resolve(uri, opts)
    remote = _scheme(uri) == "s3"
    if path.strip("/") == "" or (remote and "/" not in path.strip("/")):
        raise ValueError(f"delete_tree refuses to delete a root: {uri!r}")
    info = file_info(fs, path, uri, "delete")
    try:
        if info.type == pafs.FileType.File:
            fs.delete_file(path)
        elif info.type == pafs.FileType.Directory:
            if remote:
                fs.delete_dir(path)
            else:
                shutil.rmtree(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise storage_error("delete", uri, exc) from None


def _iter_local_files(root: Path) -> Iterator[tuple[Path, str]]:
    """(file, rel_path with "/") for every file under root, hidden ones included, sorted."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            yield full, full.relative_to(root).as_posix()


def upload_dir(local_dir: Path, uri: str, opts: StorageOptions) -> None:
    """Copy a small local directory tree (a model dir) to a URI, every file included; existing
    files with the same names are overwritten, others are left alone."""
    local_dir = Path(local_dir)
    if not local_dir.is_dir():
        raise InputNotFound(f"not found: {local_dir}")
    fs, path = resolve(uri, opts)
    for full, rel in _iter_local_files(local_dir):
        try:
            data = full.read_bytes()  # whole file first: a failing read must not commit a part
        except OSError as exc:
            raise storage_error("upload", str(full), exc) from None
        _write(fs, f"{path}/{rel}", join(uri, rel), data)


def _safe_rel(rel: str, uri: str) -> str:
    """Refuse object keys such as "a/../../x" that would land outside the target directory."""
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("..", "") for p in parts):
        raise StorageError(f"download failed for {uri}: unsafe file name {rel!r}")
    return rel


def download_dir(
    uri: str, local_dir: Path, opts: StorageOptions, skip: tuple[str, ...] = ()
) -> None:
    """Copy a small directory tree (a model dir) from a URI into local_dir, every file included
    but those under the ``skip`` sub-directories, each file written atomically;
    InputNotFound if the source is missing."""
    local_dir = Path(local_dir)
    fs, path = resolve(uri, opts)
    info = file_info(fs, path, uri, "download")
    if info.type != pafs.FileType.Directory:
        if info.type == pafs.FileType.File:
            raise StorageError(f"download failed for {uri}: is a file, not a directory")
        raise not_found(fs, path, uri, "")
    for item in walk(fs, path, uri, True, "download"):
        if item.type != pafs.FileType.File:
            continue
        rel = _safe_rel(rel_path(path, item.path), uri)
        if any(rel.startswith(f"{d.rstrip('/')}/") for d in skip):
            continue
        data = _read(fs, item.path, uri_for(uri, item.path))
        target = local_dir / rel
        try:
            _write_local_atomic(str(target), data)
        except OSError as exc:
            raise storage_error("download", str(target), exc) from None
