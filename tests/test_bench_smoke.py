"""Smoke run of bench/streaming.py: generates a tiny drop, trains, labels, prints its table.

The benchmark starts its own Ray instances in subprocesses (ray.init with
include_dashboard=False), separate from the session cluster of conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "streaming.py"


@pytest.mark.slow
def test_streaming_bench_smoke(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--n", "1500", "--out", str(tmp_path / "bench")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    out = proc.stdout
    assert proc.returncode == 0, (out + proc.stderr)[-4000:]
    assert "== streaming label stage ==" in out
    assert "| N | label wall s |" in out
    row = next(line for line in out.splitlines() if line.startswith("| 1,500 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[-2:] == ["1,500", "0"]  # labeled, errors
    assert (tmp_path / "bench" / "results" / "bench-1500-px32.json").is_file()
