"""Shared fixtures: one real loopback S3 endpoint and one real local Ray cluster per session.

The S3 server starts first and its (fake) credentials are in the environment before Ray
starts, so Ray workers find them exactly as production workers find real ones.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from s3server import S3Server, s3_env, start_s3_server, stop_s3_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with slow tests first (stable otherwise): pytest-xdist hands out whole files
    in collection order, so the long ones start early instead of leaving one worker
    running the alphabetically last heavy file while the other sits idle."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(scope="module")
def bench_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bench cache holding a published model, for the benchmark smoke tests."""
    from benchutil import prepare_bench_cache

    return prepare_bench_cache(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = start_s3_server()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("AWS_PROFILE", raising=False)
            for key, value in s3_env(server.endpoint_url).items():
                mp.setenv(key, value)
            yield server
    finally:
        stop_s3_server(server)


@pytest.fixture(scope="session")
def ray_cluster(s3_server: S3Server) -> Iterator[None]:
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # address="local": always a private cluster, never one a `ray start` left on the machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real Label Studio server on loopback (its own venv, fresh SQLite), one per session."""
    from lsserver import start_label_studio, stop_label_studio_proc

    server = start_label_studio(tmp_path_factory.mktemp("label-studio"))
    try:
        yield server
    finally:
        stop_label_studio_proc(server.proc)
