"""raylabel.storage against the local filesystem and a real S3 HTTP endpoint (moto server)."""

import json
import os
import pickle
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from s3server import S3Server, make_bucket, start_s3_server, stop_s3_server, upload_tree

from raylabel.errors import InputNotFound, StorageError, redact
from raylabel.io import listing, storage
from raylabel.io.storage import StorageOptions

# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(s3_server: S3Server) -> S3Server:
    """The session's loopback S3 server (tests/conftest.py), credentials already in env."""
    return s3_server


@pytest.fixture
def s3_opts(s3: S3Server) -> StorageOptions:
    """Options that point at the test server; few retries keep failures fast."""
    return StorageOptions(endpoint_url=s3.endpoint_url, retries=2)


@pytest.fixture
def bucket(s3: S3Server) -> str:
    """A fresh bucket per test so tests never see each other's objects."""
    name = f"rl-test-{uuid.uuid4().hex[:12]}"
    make_bucket(s3.endpoint_url, name)
    return name


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, StorageOptions]:
    """(root URI, options) for each backend; the S3 server only starts for S3 cases."""
    if request.param == "local":
        return str(tmp_path / "root"), StorageOptions()
    name = request.getfixturevalue("bucket")
    return f"s3://{name}/base", request.getfixturevalue("s3_opts")


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    """Write files (rel path -> content) under root."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _one_line(exc: BaseException) -> str:
    """The exception message, asserting it is a single line."""
    msg = str(exc)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


# ------------------------------------------------------------------------------------------
# Pure helpers
# ------------------------------------------------------------------------------------------


def test_join_and_basename() -> None:
    assert storage.join("s3://b/p", "runs") == "s3://b/p/runs"
    assert storage.join("s3://b/p/", "runs", "d1/r1") == "s3://b/p/runs/d1/r1"
    assert storage.join("s3://b", "x") == "s3://b/x"
    assert storage.join("/a/b", "c", "d.json") == "/a/b/c/d.json"
    assert storage.join("file:///", "x") == "file:///x"
    assert storage.join("/", "x") == "/x"
    assert storage.join("rel/path/", "x") == "rel/path/x"
    for bad in ("..", "a/../b", "../x", "/abs"):
        with pytest.raises(ValueError):
            storage.join("s3://b/p", bad)
    assert storage.basename("s3://b/p/runs/") == "runs"
    assert storage.basename("s3://bucket") == "bucket"
    assert storage.basename("/a/b.txt") == "b.txt"
    assert storage.basename("file:///a/b/") == "b"


def test_is_remote_and_resolve_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert storage.is_remote("s3://b/k") and storage.is_remote("S3://b/k")
    assert storage.is_remote("gs://b/k")  # remote, even though resolve does not support it
    assert not storage.is_remote("/a/b") and not storage.is_remote("file:///a")
    assert not storage.is_remote("rel/x")
    opts = StorageOptions()
    fs, path = storage.resolve("file:///a/b", opts)
    assert isinstance(fs, pafs.LocalFileSystem) and path == "/a/b"
    assert storage.resolve("/a/b/", opts)[1] == "/a/b"
    monkeypatch.chdir(tmp_path)
    assert storage.resolve("rel/path", opts)[1] == str(tmp_path / "rel" / "path")
    with pytest.raises(ValueError, match="unsupported URI scheme"):
        storage.resolve("gs://b/k", opts)
    with pytest.raises(ValueError, match="no bucket"):
        storage.resolve("s3:///k", StorageOptions(endpoint_url="http://127.0.0.1:1"))


def test_resolve_s3_filesystem_settings() -> None:
    fs, path = storage.resolve(
        "s3://bkt/a/b/", StorageOptions(endpoint_url="http://127.0.0.1:9000", region="eu-west-1")
    )
    assert isinstance(fs, pafs.S3FileSystem) and path == "bkt/a/b"
    assert fs.region == "eu-west-1"
    # pickled state is how the settings travel to Ray tasks: check them there
    state = fs.__reduce__()[1][0]
    assert state["scheme"] == "http" and state["endpoint_override"] == "127.0.0.1:9000"
    assert state["access_key"] is None and state["secret_key"] is None
    assert storage.resolve("s3://bkt", StorageOptions(endpoint_url="https://h:1"))[1] == "bkt"


def test_storage_options_validation() -> None:
    for bad in ("127.0.0.1:9000", "ftp://h", "http://h/path", "http://"):
        with pytest.raises(ValueError, match=r"storage\.endpoint_url"):
            StorageOptions(endpoint_url=bad)
    with pytest.raises(ValueError) as info:
        StorageOptions(endpoint_url="http://AKIAX:supersecret@h:9000")
    assert "supersecret" not in str(info.value)
    with pytest.raises(ValueError, match="retries"):
        StorageOptions(retries=-1)


def test_redact_hides_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t/VALUE+xyz")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    text = "signing with AKIAEXAMPLE and s3cr3t/VALUE+xyz failed"
    assert redact(text) == "signing with *** and *** failed"
    assert redact("nothing here") == "nothing here"
    # StorageError applies it too, and folds the message onto one line
    err = StorageError("boom s3cr3t/VALUE+xyz\nsecond line")
    assert str(err) == "boom *** second line"


# ------------------------------------------------------------------------------------------
# Both backends
# ------------------------------------------------------------------------------------------


def test_roundtrip_bytes_text_json(where: tuple[str, StorageOptions]) -> None:
    root, opts = where
    blob = bytes(range(256)) * 3
    storage.write_bytes(storage.join(root, "deep/dir/blob.bin"), blob, opts)
    assert storage.read_bytes(storage.join(root, "deep/dir/blob.bin"), opts) == blob
    storage.write_text(storage.join(root, "t.txt"), "héllo ✓\n", opts)
    assert storage.read_text(storage.join(root, "t.txt"), opts) == "héllo ✓\n"
    obj = {"z": 1, "a": [1.5, None, True], "ünï": "çødé"}
    uri = storage.join(root, "s.json")
    storage.write_json(uri, obj, opts)
    assert storage.read_json(uri, opts) == obj
    text = storage.read_text(uri, opts)
    assert text.index('"z"') < text.index('"a"')  # key order kept
    assert "çødé" in text and '\n  "z": 1' in text  # not ASCII-escaped, indented
    storage.write_text(uri, "overwritten", opts)  # overwrite is fine
    assert storage.read_text(uri, opts) == "overwritten"
    with pytest.raises(StorageError, match="invalid JSON"):
        storage.read_json(uri, opts)
    with pytest.raises(InputNotFound) as info:
        storage.read_bytes(storage.join(root, "missing.bin"), opts)
    assert _one_line(info.value) == f"not found: {storage.join(root, 'missing.bin')}"


def test_list_files_and_dirs(where: tuple[str, StorageOptions], tmp_path: Path) -> None:
    root, opts = where
    files = {
        "a/1.PNG": b"x",
        "a/2.jpg": b"xy",
        "a/notes.txt": b"n",
        "b/c/3.png": b"xyz",
        "top.jpeg": b"t",
        ".hidden.png": b"h",
        "_SUCCESS": b"",
        "_tmp/4.png": b"h",
        "a/.cache/5.png": b"h",
        "a/.DS_Store": b"m",
        "__MACOSX/a/._1.PNG": b"m",
        "_temporary/0/6.png": b"p",
    }
    for rel, data in files.items():
        storage.write_bytes(storage.join(root, rel), data, opts)

    found = listing.list_items(root, opts, extensions=[".png", "JPG"])
    images = found.files
    # only markers and OS metadata are skipped; names starting with "." or "_" are items
    assert [e.rel_path for e in images] == [
        ".hidden.png",
        "_tmp/4.png",
        "a/.cache/5.png",
        "a/1.PNG",
        "a/2.jpg",
        "b/c/3.png",
    ]
    assert found.skipped == {"marker": 2, "os_metadata": 2, "extension": 2}
    assert [e.size for e in images] == [1, 1, 1, 1, 2, 3]
    assert all(e.mtime_ns > 0 for e in images)  # content identity: a rewrite changes it
    assert images[3].uri == storage.join(root, "a/1.PNG")  # s3://... or an absolute path
    assert storage.read_bytes(images[5].uri, opts) == b"xyz"  # entry URIs are usable
    everything = [e.rel_path for e in listing.list_files(root, opts)]
    assert everything == [
        ".hidden.png",
        "_tmp/4.png",
        "a/.cache/5.png",
        "a/1.PNG",
        "a/2.jpg",
        "a/notes.txt",
        "b/c/3.png",
        "top.jpeg",
    ]
    flat = [e.rel_path for e in listing.list_files(root, opts, recursive=False)]
    assert flat == [".hidden.png", "top.jpeg"]
    sub = listing.list_files(storage.join(root, "a"), opts, extensions=[".txt"])
    assert [e.rel_path for e in sub] == ["notes.txt"]
    single = listing.list_files(storage.join(root, "top.jpeg"), opts)
    assert [(e.rel_path, e.size) for e in single] == [("top.jpeg", 1)]

    assert listing.list_dirs(root, opts) == ["_tmp", "a", "b"]  # not __MACOSX, _temporary
    assert listing.list_dirs(storage.join(root, "b/c"), opts) == []

    for func in (listing.list_files, listing.list_dirs):
        with pytest.raises(InputNotFound, match=r"not found: .*/nope$"):
            func(storage.join(root, "nope"), opts)


def test_exists_and_is_dir(where: tuple[str, StorageOptions]) -> None:
    root, opts = where
    storage.write_bytes(storage.join(root, "d/f.bin"), b"1", opts)
    assert storage.exists(storage.join(root, "d/f.bin"), opts)
    assert not storage.is_dir(storage.join(root, "d/f.bin"), opts)
    assert storage.exists(storage.join(root, "d"), opts) and storage.is_dir(root + "/d/", opts)
    assert not storage.exists(storage.join(root, "nope"), opts)
    assert not storage.is_dir(storage.join(root, "nope"), opts)


def test_check_input(where: tuple[str, StorageOptions], tmp_path: Path) -> None:
    root, opts = where
    storage.write_bytes(storage.join(root, "drop/x/1.png"), b"1", opts)
    storage.write_bytes(storage.join(root, "manifest.csv"), b"uri\n", opts)
    storage.write_bytes(storage.join(root, "onlyhidden/_SUCCESS"), b"", opts)
    storage.write_bytes(storage.join(root, "onlyhidden/.DS_Store"), b"", opts)
    storage.write_bytes(storage.join(root, "onlyhidden/__MACOSX/._a.png"), b"", opts)
    storage.write_bytes(storage.join(root, "onlyhidden/_temporary/0/a.png"), b"", opts)
    storage.write_bytes(storage.join(root, "underscore/_DSC0001.JPG"), b"1", opts)
    listing.check_input(storage.join(root, "underscore"), opts, "drop.path")  # a camera file
    listing.check_input(storage.join(root, "drop"), opts, "drop.path")  # nested file found
    listing.check_input(storage.join(root, "manifest.csv"), opts, "seed.path")
    missing = storage.join(root, "nope")
    with pytest.raises(InputNotFound) as info:
        listing.check_input(missing, opts, "drop.path")
    assert _one_line(info.value) == f"drop.path not found: {missing}"
    hidden_only = storage.join(root, "onlyhidden")
    with pytest.raises(InputNotFound) as info:
        listing.check_input(hidden_only, opts, "drop.path")
    assert _one_line(info.value) == f"drop.path is empty: {hidden_only}"


def test_check_input_empty_local_dir(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputNotFound) as info:
        listing.check_input(str(tmp_path / "empty"), StorageOptions(), "drop.path")
    assert _one_line(info.value) == f"drop.path is empty: {tmp_path / 'empty'}"


def test_upload_download_roundtrip(where: tuple[str, StorageOptions], tmp_path: Path) -> None:
    root, opts = where
    files = {"model.safetensors": os.urandom(70_000), "card.json": b"{}", "tok/vocab.txt": b"a"}
    src = _tree(tmp_path / "src", {**files, ".meta": b"m"})
    target = storage.join(root, "models/v1")
    storage.upload_dir(src, target, opts)
    rels = [e.rel_path for e in listing.list_files(target, opts)]
    assert rels == [".meta", "card.json", "model.safetensors", "tok/vocab.txt"]
    dst = tmp_path / "dst" / "v1"
    storage.download_dir(target, dst, opts)
    got = {p.relative_to(dst).as_posix(): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    assert got == {**files, ".meta": b"m"}  # hidden files are copied too
    with pytest.raises(InputNotFound):
        storage.download_dir(storage.join(root, "models/none"), tmp_path / "x", opts)
    with pytest.raises(InputNotFound):
        storage.upload_dir(tmp_path / "no-such-dir", target, opts)


def test_delete_tree(where: tuple[str, StorageOptions]) -> None:
    root, opts = where
    for rel in ("runs/d1/r1/a.parquet", "runs/d1/r1/sub/b", "runs/d10/keep", "runs/f.txt"):
        storage.write_bytes(storage.join(root, rel), b"1", opts)
    storage.delete_tree(storage.join(root, "runs/d1"), opts)
    assert not storage.exists(storage.join(root, "runs/d1/r1/a.parquet"), opts)
    assert storage.exists(storage.join(root, "runs/d10/keep"), opts)  # sibling prefix survives
    storage.delete_tree(storage.join(root, "runs/f.txt"), opts)  # a single file
    assert not storage.exists(storage.join(root, "runs/f.txt"), opts)
    storage.delete_tree(storage.join(root, "runs/never"), opts)  # missing: no error
    assert [e.rel_path for e in listing.list_files(storage.join(root, "runs"), opts)] == [
        "d10/keep"
    ]


def test_local_write_killed_mid_way_leaves_the_old_file_whole(tmp_path: Path) -> None:
    """A writer killed after writing its bytes but before they are in place (it is held in
    fsync, then SIGKILLed): readers still see the old file, complete; a rerun succeeds."""
    target = tmp_path / "runs" / "summary.json"
    storage.write_bytes(str(target), b'{"v": 1}', StorageOptions())
    child = (
        "import os, sys, time\n"
        "os.fsync = lambda fd: (open(sys.argv[2], 'w').close(), time.sleep(600))\n"
        "from raylabel.io import storage\n"
        "storage.write_bytes(sys.argv[1], b'x' * (8 << 20), storage.StorageOptions())\n"
    )
    holding = tmp_path / "in-fsync"
    proc = subprocess.Popen([sys.executable, "-c", child, str(target), str(holding)])
    try:
        deadline = time.monotonic() + 60
        while not holding.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "writer never got there"
            time.sleep(0.01)
        temps = [p for p in target.parent.iterdir() if p.name != target.name]
        assert temps and temps[0].stat().st_size == 8 << 20  # the new bytes, not yet in place
    finally:
        proc.kill()
        proc.wait()
    assert target.read_bytes() == b'{"v": 1}'
    storage.write_bytes(str(target), b'{"v": 2}', StorageOptions())
    assert target.read_bytes() == b'{"v": 2}'


def test_local_write_is_atomic_and_clean(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.json"
    storage.write_json(str(target), {"k": 1}, StorageOptions())
    storage.write_json(str(target), {"k": 2}, StorageOptions())
    assert json.loads(target.read_text()) == {"k": 2}
    assert os.listdir(target.parent) == ["out.json"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # like a plain open()
    with pytest.raises(ValueError, match="root"):
        storage.delete_tree("/", StorageOptions())


# ------------------------------------------------------------------------------------------
# S3 specifics
# ------------------------------------------------------------------------------------------


def test_check_input_missing_bucket_and_prefix(s3_opts: StorageOptions, bucket: str) -> None:
    with pytest.raises(InputNotFound) as info:
        listing.check_input("s3://nobucket-rl/x", s3_opts, "drop.path")
    assert (
        _one_line(info.value) == "drop.path not found: s3://nobucket-rl/x (bucket does not exist)"
    )
    with pytest.raises(InputNotFound) as info:
        listing.check_input(f"s3://{bucket}/nope", s3_opts, "drop.path")
    assert _one_line(info.value) == f"drop.path not found: s3://{bucket}/nope"
    with pytest.raises(InputNotFound) as info:
        listing.check_input(f"s3://{bucket}", s3_opts, "drop.path")
    assert _one_line(info.value) == f"drop.path is empty: s3://{bucket}"
    with pytest.raises(InputNotFound) as info:
        listing.list_files("s3://nobucket-rl/x", s3_opts)
    assert _one_line(info.value) == "not found: s3://nobucket-rl/x (bucket does not exist)"
    assert not storage.exists("s3://nobucket-rl/x", s3_opts)
    with pytest.raises(InputNotFound, match=r"bucket does not exist"):
        storage.write_bytes("s3://nobucket-rl/x", b"1", s3_opts)
    with pytest.raises(ValueError, match="root"):
        storage.delete_tree(f"s3://{bucket}/", s3_opts)


def test_s3_prefix_written_by_boto3(
    s3: S3Server, s3_opts: StorageOptions, bucket: str, tmp_path: Path
) -> None:
    src = _tree(tmp_path / "drop", {"cat/1.png": b"1", "dog/2.png": b"22", "dog/.DS_Store": b""})
    upload_tree(src, s3.endpoint_url, f"s3://{bucket}/drops/2024-01-01")
    root = f"s3://{bucket}/drops"
    assert listing.list_dirs(root, s3_opts) == ["2024-01-01"]
    entries = listing.list_files(storage.join(root, "2024-01-01"), s3_opts)
    assert [(e.rel_path, e.size) for e in entries] == [("cat/1.png", 1), ("dog/2.png", 2)]
    assert entries[0].uri == f"s3://{bucket}/drops/2024-01-01/cat/1.png"
    listing.check_input(root, s3_opts, "drop.path")


def test_s3_small_write_is_single_put(s3: S3Server, s3_opts: StorageOptions, bucket: str) -> None:
    key = f"single-{uuid.uuid4().hex}.json"
    storage.write_json(f"s3://{bucket}/{key}", {"a": 1}, s3_opts)
    assert s3.log_path is not None
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = [ln for ln in s3.log_path.read_text(errors="replace").splitlines() if key in ln]
        if lines:
            break
        time.sleep(0.05)
    assert len(lines) == 1 and f'"PUT /{bucket}/{key} HTTP' in lines[0], lines


def test_s3_filesystem_pickles_without_credentials(s3_opts: StorageOptions, bucket: str) -> None:
    uri = f"s3://{bucket}/p/x.bin"
    storage.write_bytes(uri, b"payload", s3_opts)
    fs, path = storage.resolve(uri, s3_opts)
    blob = pickle.dumps(fs)
    assert os.environ["AWS_SECRET_ACCESS_KEY"].encode() not in blob
    assert os.environ["AWS_ACCESS_KEY_ID"].encode() not in blob
    clone = pickle.loads(blob)
    with clone.open_input_stream(path) as stream:
        assert stream.read() == b"payload"
    with clone.open_output_stream(f"{bucket}/p/y.bin") as stream:
        stream.write(b"back")
    assert storage.read_bytes(f"s3://{bucket}/p/y.bin", s3_opts) == b"back"


def test_parquet_through_resolved_filesystem(s3_opts: StorageOptions, bucket: str) -> None:
    table = pa.table(
        {
            "item_id": pa.array([f"i{i}" for i in range(1000)]),
            "confidence": pa.array([i / 1000 for i in range(1000)], type=pa.float32()),
            "topk_labels": pa.array([["a", "b"]] * 1000, type=pa.list_(pa.string())),
        }
    )
    uri = f"s3://{bucket}/runs/d/r1/labels/part-0.parquet"
    fs, path = storage.resolve(uri, s3_opts)
    pq.write_table(table, path, filesystem=fs)
    assert pq.read_table(path, filesystem=fs).equals(table)
    fs2, dir_path = storage.resolve(storage.join(f"s3://{bucket}/runs/d/r1", "labels"), s3_opts)
    assert pq.read_table(dir_path, filesystem=fs2).equals(table)
    assert [e.rel_path for e in listing.list_files(f"s3://{bucket}/runs", s3_opts)] == [
        "d/r1/labels/part-0.parquet"
    ]


def test_unreachable_endpoint_is_one_line_error(s3: S3Server) -> None:
    # s3 fixture only for its fake credentials; port 1 refuses connections at once
    opts = StorageOptions(endpoint_url="http://127.0.0.1:1", retries=0)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        storage.read_bytes("s3://bkt/k", opts)
    msg = _one_line(info.value)
    assert not isinstance(info.value, InputNotFound)
    assert msg.startswith("read failed for s3://bkt/k: cannot reach S3 endpoint"), msg
    assert time.monotonic() - started < 10
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_access_denied_names_uri_not_secret(s3: S3Server) -> None:
    # a second server that checks credentials: moto knows no keys, so ours are rejected
    server = start_s3_server(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        opts = StorageOptions(endpoint_url=server.endpoint_url, retries=0)
        secrets = [os.environ[k] for k in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")]
        for call in (
            lambda: listing.list_files("s3://somebucket/p", opts),
            lambda: storage.write_bytes("s3://somebucket/p/x", b"1", opts),
            lambda: storage.read_bytes("s3://somebucket/p/x", opts),
        ):
            with pytest.raises(StorageError) as info:
                call()
            msg = _one_line(info.value)
            assert "s3://somebucket/p" in msg and "access denied" in msg, msg
            assert not isinstance(info.value, InputNotFound)
            assert not any(s in msg or s in repr(info.value) for s in secrets)
    finally:
        stop_s3_server(server)
