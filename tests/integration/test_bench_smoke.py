"""Smoke runs of the labeling benchmark scripts: they run, they print their tables, they
don't judge. The benchmarks start their own Ray instances in subprocesses, separate from
the session cluster of conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchutil import run_bench, table_row

pytestmark = pytest.mark.slow


def test_streaming_bench_smoke(bench_cache: Path) -> None:
    out = run_bench("streaming.py", "--n", "1500", "--out", str(bench_cache))
    assert "== streaming label stage ==" in out
    assert "| N | label wall s |" in out
    assert table_row(out, "| 1,500 |")[-2:] == ["1,500", "0"]  # labeled, errors
    assert (bench_cache / "results" / "bench-1500-px32.json").is_file()


def test_label_throughput_bench_smoke(bench_cache: Path) -> None:
    out = run_bench(
        "label_throughput.py", "--n", "600", "--out", str(bench_cache), "--batch-size", "128"
    )
    assert "== labeling throughput ==" in out
    for who in ("A bare loop", "B plain Ray Data", "C raylabel label"):
        cells = table_row(out, f"| 600 | {who} |")
        assert cells[-1] == "600"  # every item written by every contender
    assert "C/A = " in out and "C/B = " in out
