"""A real S3 HTTP endpoint on loopback for tests: moto in server mode, in its own process.

Code under test reaches it through pyarrow / s3fs over HTTP exactly as production reaches AWS
(only the endpoint URL differs); nothing in the test process is patched.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_ATOMIC_MOTO = Path(__file__).with_name("atomic_moto.py")


@dataclass
class S3Server:
    """A running moto server: where to reach it, its process, and where its log goes."""

    endpoint_url: str
    process: subprocess.Popen
    port: int
    log_path: Path | None = field(default=None)


def _free_port() -> int:
    """A currently free loopback TCP port (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 20) -> str:
    """Last lines of the server log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _answers_http(url: str) -> bool:
    """Whether something answers HTTP at url (any status counts); proxies are bypassed."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _launch(port: int, log_path: Path, env: dict[str, str] | None) -> subprocess.Popen:
    """Start moto's server (with atomic conditional PUTs, see atomic_moto.py) bound to
    127.0.0.1:port, output to log_path."""
    proc_env = dict(os.environ)
    if env:
        proc_env.update(env)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, str(_ATOMIC_MOTO), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=proc_env,
        )


def start_s3_server(
    port: int | None = None, *, timeout_s: float = 30.0, env: dict[str, str] | None = None
) -> S3Server:
    """Start moto's S3 server on loopback and wait until it answers HTTP. A picked port can be
    taken by someone else before moto binds it, so a picked port is retried a few times.
    `env` adds variables for the server process (e.g. INITIAL_NO_AUTH_ACTION_COUNT=0 to make
    it check credentials)."""
    fd, name = tempfile.mkstemp(prefix="moto-s3-", suffix=".log")
    os.close(fd)
    log_path = Path(name)
    attempts = 1 if port is not None else 3
    last_error = ""
    for _ in range(attempts):
        chosen = port if port is not None else _free_port()
        proc = _launch(chosen, log_path, env)
        url = f"http://127.0.0.1:{chosen}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_error = f"moto server exited with code {proc.returncode}"
                break
            if _answers_http(url + "/moto-api/"):
                return S3Server(endpoint_url=url, process=proc, port=chosen, log_path=log_path)
            time.sleep(0.1)
        else:
            last_error = f"moto server did not answer on {url} within {timeout_s:.0f} s"
            _terminate(proc)
            break
    raise RuntimeError(f"{last_error}; log {log_path}:\n{_log_tail(log_path)}")


def _terminate(proc: subprocess.Popen) -> None:
    """Stop a process politely, then firmly."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def stop_s3_server(server: S3Server) -> None:
    """Stop the server process and remove its log."""
    _terminate(server.process)
    if server.log_path is not None:
        server.log_path.unlink(missing_ok=True)


def s3_env(endpoint_url: str) -> dict[str, str]:
    """Environment for code under test: fake credentials (moto accepts any), a region, no EC2
    metadata lookups (they would stall for seconds), and no proxy for the loopback endpoint."""
    host = urlsplit(endpoint_url).hostname or "127.0.0.1"
    no_proxy = ",".join(dict.fromkeys([host, "127.0.0.1", "localhost"]))
    return {
        "AWS_ACCESS_KEY_ID": "testing-key-id-AKIAIOSFODNN7",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-wJalrXUtnFEMIK7MDENG",
        "AWS_SESSION_TOKEN": "testing-session-token-FwoGZXIvYXdz",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }


def _client(endpoint_url: str) -> Any:
    """A boto3 S3 client for the test server, using the fake credentials of s3_env."""
    import boto3
    from botocore.config import Config

    env = s3_env(endpoint_url)
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
        config=Config(s3={"addressing_style": "path"}),
    )


def make_bucket(endpoint_url: str, name: str) -> None:
    """Create a bucket on the test server (names must be valid S3 names: 3+ chars)."""
    _client(endpoint_url).create_bucket(Bucket=name)


def upload_tree(local_dir: Path, endpoint_url: str, s3_uri: str) -> None:
    """Upload every file under local_dir (hidden ones too) to s3://bucket/prefix."""
    parts = urlsplit(s3_uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"upload_tree needs an s3://bucket[/prefix] URI, got {s3_uri!r}")
    bucket, prefix = parts.netloc, parts.path.strip("/")
    client = _client(endpoint_url)
    root = Path(local_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        key = f"{prefix}/{rel}" if prefix else rel
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
