"""Issue #15, hole 3: the nightly lease is exclusive. Real processes race for it from a
barrier, round after round, on a local folder and on the loopback S3 server (conditional
writes); exactly one holder wins every round, also when the lease they race for expired."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pytest
from racing import race
from s3server import S3Server, make_bucket

from raylabel.io.lease import Lease
from raylabel.io.storage import StorageOptions

PROCS = 4
ROUNDS = 20


def _acquire(root: str, opts: StorageOptions, ttl_s: float, r: int) -> bool:
    return Lease(root, f"round-{r}", ttl_s, opts).acquire()


def _race(root: str, opts: StorageOptions, ttl_s: float = 60.0) -> dict[int, int]:
    wins = race(partial(_acquire, root, opts, ttl_s), PROCS, ROUNDS)
    return dict(enumerate(wins))


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, StorageOptions]:
    if request.param == "local":
        return str(tmp_path / "out"), StorageOptions()
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = f"lease-{int(time.time() * 1000) % 10**9}"
    opts = StorageOptions(endpoint_url=server.endpoint_url)
    make_bucket(server.endpoint_url, bucket)
    return f"s3://{bucket}/out", opts


def test_hole3_exactly_one_holder_every_round(where: tuple[str, StorageOptions]) -> None:
    root, opts = where
    winners = _race(root, opts)
    assert winners == {r: 1 for r in range(ROUNDS)}


def test_hole3_an_expired_lease_goes_to_exactly_one_racer(
    where: tuple[str, StorageOptions],
) -> None:
    root, opts = where
    for r in range(ROUNDS):  # every round's lease held by a crashed run, already expired
        stale = Lease(root, f"round-{r}", 0.01, opts)
        assert stale.acquire()
    time.sleep(0.05)
    assert _race(root, opts) == {r: 1 for r in range(ROUNDS)}


def test_hole3_renewal_keeps_the_lease_and_a_taken_lease_is_known_lost(
    where: tuple[str, StorageOptions],
) -> None:
    root, opts = where
    holder = Lease(root, "drop", 0.6, opts)
    assert holder.acquire()
    with holder.keep_alive(every_s=0.1):
        time.sleep(1.2)  # twice the ttl: only renewal keeps it
        assert not Lease(root, "drop", 0.6, opts).acquire()
        assert not holder.lost
    # no renewal any more: it expires, someone else takes it, the old holder learns it
    time.sleep(0.8)
    thief = Lease(root, "drop", 60, opts)
    assert thief.acquire()
    assert not holder.renew() and holder.lost
    holder.release()  # a lost lease is not released: the thief keeps it
    assert not Lease(root, "drop", 60, opts).acquire()
    thief.release()
    assert Lease(root, "drop", 60, opts).acquire()


def test_hole3_an_unreadable_record_counts_as_held(tmp_path: Path) -> None:
    root, opts = str(tmp_path / "out"), StorageOptions()
    folder = tmp_path / "out" / "locks" / "drop"
    folder.mkdir(parents=True)
    (folder / "000000000001.json").write_text("")  # a crash between create and write
    assert not Lease(root, "drop", 60, opts).acquire()
    assert Lease(root, "drop", 0.0, opts).acquire()  # ... until its time plus the ttl
