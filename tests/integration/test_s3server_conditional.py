"""The loopback S3 server decides conditional-create races as S3 does: exactly one winner.

moto alone checks `If-None-Match: *` and then stores without a lock; under load a server
thread descheduled between the two let two lease holders win one round in CI. With object
lookups stalled (the same window, made wide on purpose) plain moto lets several racers win,
and the server our tests use (tests/support/atomic_moto.py) still lets exactly one.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import pytest
from atomic_moto import STALL_ENV, UNLOCKED_ENV
from s3server import make_bucket, s3_env, start_s3_server, stop_s3_server

from raylabel.io.storage import StorageOptions

RACERS = 4
ROUNDS = 8


def _racer(endpoint: str, barrier: Any, out: Any) -> None:
    import os

    from raylabel.io.atomic import create_exclusive

    os.environ.update(s3_env(endpoint))
    opts = StorageOptions(endpoint_url=endpoint)
    for r in range(ROUNDS):
        barrier.wait()
        out.put((r, create_exclusive(f"s3://races/key-{r}", b"x", opts)))


def _most_winners_in_a_round(unlocked: bool) -> int:
    env = {STALL_ENV: "0.05", **({UNLOCKED_ENV: "1"} if unlocked else {})}
    server = start_s3_server(env=env)
    try:
        make_bucket(server.endpoint_url, "races")
        ctx = mp.get_context("spawn")
        barrier, out = ctx.Barrier(RACERS), ctx.Queue()
        procs = [
            ctx.Process(target=_racer, args=(server.endpoint_url, barrier, out))
            for _ in range(RACERS)
        ]
        for p in procs:
            p.start()
        wins = [0] * ROUNDS
        for _ in range(RACERS * ROUNDS):
            r, won = out.get(timeout=120)
            wins[r] += int(won)
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
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
