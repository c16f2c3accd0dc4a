"""Real processes racing from a barrier, round after round: how many won each round.

Why processes (spawned, not threads): the claims under test (exclusive create, the lease)
are about separate programs racing, and a thread race inside one interpreter is serialised
by the GIL far more than two processes are.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from typing import Any


def _racer(attempt: Callable[[int], bool], rounds: int, barrier: Any, out: Any) -> None:
    for r in range(rounds):
        barrier.wait()
        out.put((r, bool(attempt(r))))


def race(attempt: Callable[[int], bool], racers: int, rounds: int) -> list[int]:
    """Winners per round when `racers` processes call `attempt(round)` at once; `attempt`
    must be picklable (a module-level function or a partial of one)."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(racers), ctx.Queue()
    procs = [
        ctx.Process(target=_racer, args=(attempt, rounds, barrier, out)) for _ in range(racers)
    ]
    for p in procs:
        p.start()
    wins = [0] * rounds
    for _ in range(racers * rounds):
        r, won = out.get(timeout=300)
        wins[r] += int(won)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0, f"a racer exited with {p.exitcode}"
    return wins
