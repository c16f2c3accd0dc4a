"""Which pipeline failures the label stage answers with a fresh attempt (issue #8 item 2).

A lost node, worker or object is the cluster's fault and worth a rerun into a new run id;
an error our own code raised (the model, a bad item, the store) must fail the run at once.
"""

from __future__ import annotations

import pytest
from ray import exceptions as rx

from raylabel.cluster.faults import cluster_fault


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    "exc",
    [
        rx.ActorUnavailableError("RpcError: failed to connect to all addresses", None),
        rx.ActorDiedError(),
        rx.NodeDiedError("node 1a2b died"),
        rx.WorkerCrashedError(),
        rx.GetTimeoutError("Timed out while starting actors. This may mean ..."),
        _chained(RuntimeError("dataset execution failed"), rx.ActorUnavailableError("x", None)),
    ],
    ids=["actor-unavailable", "actor-died", "node-died", "worker-crashed", "pool-start", "chained"],
)
def test_lost_cluster_pieces_are_retryable(exc: BaseException) -> None:
    reason = cluster_fault(exc)
    assert reason and len(reason) < 200


def test_flattened_text_is_recognised() -> None:
    exc = RuntimeError(
        "... ray.exceptions.ActorUnavailableError: The actor is temporarily unavailable"
    )
    assert cluster_fault(exc)
    # seen in CI: a Ray Data read actor lost with its node, re-raised as text only
    died = RuntimeError(
        "ray.exceptions.UnserializableException: ... ActorDiedError: The actor died "
        "unexpectedly before finishing this task. The actor died because its node has died."
    )
    assert cluster_fault(died)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("infer.batch_size must be >= 1"),
        rx.GetTimeoutError("Get timed out: some object"),  # not the actor pool's start
        _chained(rx.UserCodeException("model raised"), KeyError("logits")),
        OSError("No such file or directory: /data/drop"),
    ],
    ids=["user-error", "other-timeout", "user-code", "os-error"],
)
def test_our_own_errors_are_not_retried(exc: BaseException) -> None:
    assert cluster_fault(exc) is None


def test_actor_whose_constructor_raised_is_not_retried() -> None:
    died = rx.ActorDiedError()
    died._actor_init_failed = True  # what Ray sets when __init__ raised (the model loader)
    assert cluster_fault(died) is None
