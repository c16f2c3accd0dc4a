"""A fault-injecting HTTP proxy on loopback, in front of the test S3 server.

Code under test points `storage.endpoint_url` at the proxy; the proxy forwards every request
to the real (moto) endpoint, except that on a fixed schedule it answers a request with
503 SlowDown or resets the connection, and it can be switched off for good (connections
refused) and back on, on the same port. It counts what it injected so tests can assert that
the faults really happened.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}
_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>FAULT</RequestId></Error>"
)


@dataclass
class FaultSchedule:
    """Every `every[method]`-th request of that method gets `kind[method]` ("503" | "reset")."""

    every: dict[str, int] = field(default_factory=dict)
    kind: dict[str, str] = field(default_factory=dict)

    def fault_for(self, method: str, n: int) -> str | None:
        k = self.every.get(method, 0)
        if k > 0 and n % k == 0:
            return self.kind.get(method, "503")
        return None


class FaultProxy:
    """Threaded HTTP/1.1 proxy: `start()`, `set_schedule()`, `kill()` / `revive()`, `stop()`."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = int(parts.port or 80)
        self.schedule = FaultSchedule()
        self.requests: Counter[str] = Counter()  # forwarded or faulted, per method
        self.injected: Counter[str] = Counter()  # e.g. {"GET:503": 4, "PUT:reset": 2}
        self.refused_while_dead = 0
        self.port = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.dead = False
        self._die_after: tuple[str, int] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_schedule(self, every: dict[str, int], kind: dict[str, str]) -> None:
        with self._lock:
            self.schedule = FaultSchedule(dict(every), dict(kind))

    def die_after(self, method: str, n: int) -> None:
        """Die for good (as `kill`) when the n-th request of `method` arrives; that request
        and every later one fail."""
        with self._lock:
            self._die_after = (method, self.requests[method] + n)

    def start(self) -> FaultProxy:
        """Listen (on the old port when restarting) and serve in a daemon thread."""
        handler = _make_handler(self)
        server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        self.dead = False
        self._die_after = None
        return self

    def kill(self) -> None:
        """The endpoint dies: stop listening (new connections are refused) and reset any
        request that arrives on a connection that was already open."""
        self.dead = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def revive(self) -> None:
        """The endpoint is back, on the same port."""
        self.start()

    def stop(self) -> None:
        self.kill()

    def _next(self, method: str) -> str | None:
        with self._lock:
            self.requests[method] += 1
            if self._die_after and self._die_after == (method, self.requests[method]):
                self.dead = True  # this request already fails; the listener goes in a moment
                threading.Thread(target=self.kill, daemon=True).start()
                return "reset"
            fault = self.schedule.fault_for(method, self.requests[method])
            if fault:
                self.injected[f"{method}:{fault}"] += 1
            return fault


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0 so the peer sees a TCP RST (connection reset by peer)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _make_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            method = self.command
            body = self._body()  # always drain the request, even when answering a fault
            if proxy.dead:
                proxy.refused_while_dead += 1
                self.close_connection = True
                _reset(self.connection)
                return
            fault = proxy._next(method)
            if fault == "reset":
                self.close_connection = True
                _reset(self.connection)
                return
            if fault == "503":
                self.send_response(503, "Slow Down")
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(_SLOW_DOWN)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(_SLOW_DOWN)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body or method in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
            try:
                conn.request(method, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP_BY_HOP:
                        self.send_header(k, v)
                if method == "HEAD":
                    length = resp.getheader("Content-Length")
                    self.send_header("Content-Length", length if length else "0")
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(data)
            finally:
                conn.close()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

    return Handler
