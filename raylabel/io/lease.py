"""An exclusive, expiring, renewable lease on a name, built on create-if-absent only.

Why generations: a lease is a folder `locks/<name>/` of numbered records. The highest
number is the current state (held by someone until `expires_at`, or released). To take
the lease, to renew it and to give it back, a process creates the *next* number with
`create_exclusive`: of any processes racing from the same state exactly one succeeds,
locally (`os.link`) and on S3 (`If-None-Match: *`). A holder whose lease expired and was
taken over learns it when its renewal cannot create the next record. An unreadable
record counts as held until its file time plus the lease's time to live, never as free.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from raylabel.errors import StorageError
from raylabel.io import storage
from raylabel.io.atomic import create_exclusive
from raylabel.io.listing import FileEntry, list_items
from raylabel.io.storage import StorageOptions

RECORD_DIGITS = 12


@dataclass(frozen=True)
class _Record:
    gen: int
    owner: str
    expires_at: float
    released: bool


class Lease:
    """A lease on `name` under `<root>/locks/`; `acquire`, `renew`, `release`, `keep_alive`."""

    def __init__(self, root: str, name: str, ttl_s: float, opts: StorageOptions) -> None:
        self.folder = storage.join(root, "locks", name)
        self.ttl_s = float(ttl_s)
        self.opts = opts
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}:{time.time_ns()}"
        self.gen: int | None = None  # the record this holder last created
        self.lost = False

    def _record_uri(self, gen: int) -> str:
        return storage.join(self.folder, f"{gen:0{RECORD_DIGITS}d}.json")

    def _current(self) -> _Record | None:
        try:
            entries = list_items(self.folder, self.opts, recursive=False).files
        except storage.InputNotFound:
            return None
        gens = [(int(e.rel_path[:-5]), e) for e in entries if _is_record(e)]
        if not gens:
            return None
        gen, entry = max(gens, key=lambda ge: ge[0])
        try:
            body = json.loads(storage.read_bytes(entry.uri, self.opts))
            return _Record(
                gen, str(body["owner"]), float(body["expires_at"]), bool(body["released"])
            )
        except (StorageError, ValueError, KeyError, TypeError):
            # half-written or foreign: held until its own time plus the ttl, never free
            return _Record(gen, "?", entry.mtime_ns / 1e9 + self.ttl_s, False)

    def _create(self, gen: int, released: bool = False) -> bool:
        body = {"owner": self.owner, "expires_at": time.time() + self.ttl_s, "released": released}
        ok = create_exclusive(self._record_uri(gen), json.dumps(body).encode(), self.opts)
        if ok:
            self._prune(gen)
        return ok

    def _prune(self, gen: int) -> None:
        """Old records are history; one predecessor is kept so a reader listing mid-way
        still finds a state. Best effort: a leftover record is harmless."""
        for old in range(max(1, gen - 4), gen - 1):
            with suppress(StorageError):
                storage.delete_tree(self._record_uri(old), self.opts)

    def acquire(self) -> bool:
        """Take the lease if it is free, released or expired; False when another holder has
        it (the caller leaves that work alone) or another process won the race."""
        cur = self._current()
        held = cur is not None and not cur.released and cur.expires_at > time.time()
        if held and cur is not None and cur.owner != self.owner:
            return False
        nxt = 1 if cur is None else cur.gen + 1
        if self._create(nxt):
            self.gen, self.lost = nxt, False
            return True
        return False

    def renew(self) -> bool:
        """Extend the lease by its ttl; False (and `lost`) when someone took it over."""
        if self.gen is None or self.lost:
            return False
        if self._create(self.gen + 1):
            self.gen += 1
            return True
        self.lost = True
        return False

    def release(self) -> None:
        """Give the lease back if it is still ours (a lost lease is never released, so the
        next holder's record is never overwritten); storage errors are ignored: it expires."""
        if self.gen is None or self.lost:
            return
        try:
            if self._create(self.gen + 1, released=True):
                self.gen += 1
        except StorageError:
            pass
        self.gen = None

    @contextmanager
    def keep_alive(self, every_s: float | None = None) -> Iterator[Lease]:
        """Renew in the background while the body runs (every third of the ttl by default);
        `lost` tells the body, before it commits anything, whether the lease was taken."""
        stop = threading.Event()
        period = every_s if every_s is not None else max(0.05, self.ttl_s / 3)

        def renew_loop() -> None:
            while not stop.wait(period):
                try:
                    if not self.renew():
                        return
                except StorageError:
                    continue  # a blip: try again next period, the ttl leaves room

        thread = threading.Thread(target=renew_loop, name="lease-renewal", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=period + 5)


def _is_record(entry: FileEntry) -> bool:
    name = entry.rel_path
    return name.endswith(".json") and name[:-5].isdigit() and len(name) == RECORD_DIGITS + 5
