"""moto's S3 server with the one guarantee of real S3 that moto lacks: a conditional PUT
(`If-None-Match: *`, `If-Match`) is atomic.

Why: moto checks the condition and then stores the object without a lock, in a threaded
server, so two racers can both create the same key (seen in CI under load: two holders of
one lease round). AWS and MinIO decide such races with exactly one winner, and raylabel's
leases and model publishing rely on it. Serialising `put_object` in the server process
restores that (the body is already read when it runs, so only the in-memory store is held);
nothing in the process under test is patched.

`IGNORE_CONDITIONS_ENV` plays a store that ignores the header, for the nightly's probe.
`STALL_ENV` (seconds) makes every object lookup sleep after it answers: it widens the
check-then-store window the way a descheduled server thread does, so a test can show that
the race is real without the lock and gone with it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

STALL_ENV = "RAYLABEL_TEST_S3_LOOKUP_STALL_S"
UNLOCKED_ENV = "RAYLABEL_TEST_S3_UNLOCKED"  # plain moto behaviour, for that same test
# a store that ignores If-None-Match (older MinIO, some gateways): every create succeeds
IGNORE_CONDITIONS_ENV = "RAYLABEL_TEST_S3_IGNORE_IF_NONE_MATCH"


def _stall_lookups(seconds: float) -> None:
    from moto.s3.models import S3Backend

    answer = S3Backend.get_object

    def get_object(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = answer(self, *args, **kwargs)
        time.sleep(seconds)
        return found

    S3Backend.get_object = get_object  # type: ignore[method-assign]


def _ignore_if_none_match() -> None:
    from moto.s3.responses import S3Response
    from werkzeug.datastructures import Headers

    honoured = S3Response.put_object

    def put_object(self: Any) -> Any:
        headers = Headers(list(self.headers.items()))
        headers.remove("If-None-Match")
        self.headers = headers
        return honoured(self)

    S3Response.put_object = put_object  # type: ignore[method-assign]


def _serialise_puts() -> None:
    from moto.s3.responses import S3Response

    lock = threading.Lock()
    unlocked = S3Response.put_object

    def put_object(self: Any) -> Any:
        with lock:
            return unlocked(self)

    S3Response.put_object = put_object  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    """Run `moto.server` with `argv` after making conditional PUTs atomic."""
    from moto import server

    if os.environ.get(STALL_ENV):
        _stall_lookups(float(os.environ[STALL_ENV]))
    if os.environ.get(IGNORE_CONDITIONS_ENV):
        _ignore_if_none_match()
    if not os.environ.get(UNLOCKED_ENV):
        _serialise_puts()
    server.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
