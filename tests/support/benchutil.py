"""Shared set-up of the benchmark smoke tests (two files, so pytest-xdist can run them on
both workers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def prepare_bench_cache(out: Path) -> Path:
    """A bench cache that already holds a published model where the benchmarks look for
    one, so the smoke runs skip training (training throughput has its own smoke run)."""
    from modelutil import publish_random_model

    from raylabel.demo.images import DEFAULT_CLASSES

    publish_random_model(out / "model", list(DEFAULT_CLASSES))
    (out / "model" / "out").rename(out / "output-px32")
    return out


def run_bench(script: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


def table_row(out: str, start: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]
