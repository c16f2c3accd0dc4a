"""The loopback S3 server decides conditional-create races as S3 does: exactly one winner.

moto alone checks `If-None-Match: *` and then stores without a lock; under load a server
thread descheduled between the two let two lease holders win one round in CI. With object
lookups stalled (the same window, made wide on purpose) plain moto lets several racers win,
and the server our tests use (tests/support/atomic_moto.py) still lets exactly one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from atomic_moto import IGNORE_CONDITIONS_ENV, STALL_ENV, UNLOCKED_ENV
from racing import race
from s3server import S3Server, make_bucket, s3_env, start_s3_server, stop_s3_server

from raylabel.config import load_config
from raylabel.errors import StorageError
from raylabel.io.atomic import create_exclusive, refuse_stores_without_exclusive_create
from raylabel.io.listing import list_items
from raylabel.io.storage import StorageOptions
from raylabel.nightly import nightly

RACERS = 4
ROUNDS = 8


def _create(endpoint: str, r: int) -> bool:
    os.environ.update(s3_env(endpoint))  # credentials: these servers run outside the fixture
    return create_exclusive(f"s3://races/key-{r}", b"x", StorageOptions(endpoint_url=endpoint))


def _most_winners_in_a_round(unlocked: bool) -> int:
    env = {STALL_ENV: "0.05", **({UNLOCKED_ENV: "1"} if unlocked else {})}
    server = start_s3_server(env=env)
    try:
        make_bucket(server.endpoint_url, "races")
        wins = race(partial(_create, server.endpoint_url), RACERS, ROUNDS)
        assert min(wins) >= 1, wins  # someone always wins
        return max(wins)
    finally:
        stop_s3_server(server)


@pytest.mark.slow
def test_plain_moto_lets_two_racers_create_one_key() -> None:
    assert _most_winners_in_a_round(unlocked=True) > 1  # the hazard is real


@pytest.mark.slow
def test_the_test_server_lets_exactly_one_racer_create_a_key() -> None:
    assert _most_winners_in_a_round(unlocked=False) == 1


@pytest.fixture
def store_ignoring_conditions() -> Iterator[str]:
    server = start_s3_server(env={IGNORE_CONDITIONS_ENV: "1"})
    try:
        make_bucket(server.endpoint_url, "lax")
        yield server.endpoint_url
    finally:
        stop_s3_server(server)


def test_the_probe_passes_on_a_store_that_decides_creates(s3_server: S3Server) -> None:
    make_bucket(s3_server.endpoint_url, "strict")
    opts = StorageOptions(endpoint_url=s3_server.endpoint_url)
    refuse_stores_without_exclusive_create("s3://strict/out", opts)
    assert list_items("s3://strict", opts).files == []  # the probe cleans up after itself


def test_nightly_stops_before_any_work_on_a_store_that_ignores_conditions(
    store_ignoring_conditions: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_env(store_ignoring_conditions).items():
        monkeypatch.setenv(key, value)
    endpoint = store_ignoring_conditions
    opts = StorageOptions(endpoint_url=endpoint)
    with pytest.raises(StorageError, match=r"^s3://lax/out: the store accepted a second"):
        refuse_stores_without_exclusive_create("s3://lax/out", opts)
    (tmp_path / "drops" / "d1").mkdir(parents=True)
    cfg = load_config(
        [],
        [
            f"drops.root={tmp_path / 'drops'}",
            "output.root=s3://lax/out",
            f"storage.endpoint_url={endpoint}",
        ],
    )
    with pytest.raises(StorageError, match="If-None-Match"):
        nightly(cfg)
    assert list_items("s3://lax", opts).files == []  # no lease, run or model written
