"""Smoke runs of the labeling benchmark scripts: they run, they print their tables, they
don't judge. The benchmarks start their own Ray instances in subprocesses, separate from
the session cluster of conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchutil import run_bench, table_row

pytestmark = pytest.mark.slow

PROFILES = ("png32_small_cnn", "jpeg224_small_cnn", "png64_resnet18")


def test_streaming_bench_smoke(bench_cache: Path) -> None:
    out = run_bench("streaming.py", "--n", "1500", "--out", str(bench_cache))
    assert "== streaming label stage ==" in out
    assert "| N | label wall s |" in out
    assert table_row(out, "| 1,500 |")[-2:] == ["1,500", "0"]  # labeled, errors
    assert (bench_cache / "results" / "bench-1500-px32.json").is_file()


def test_label_throughput_bench_smoke(bench_cache: Path) -> None:
    """Every profile at a tiny size with random-init models (plumbing, not speed): the bare
    loop and raylabel for each, the plain Ray Data script once (its code is the same for
    every profile but the decode step)."""
    common = ["--n", "300", "--out", str(bench_cache), "--batch-size", "64", "--untrained-models"]
    out = run_bench("label_throughput.py", *common, "--only", "A,C")
    assert "== labeling throughput ==" in out
    for profile in PROFILES:
        for who in ("A bare loop", "C raylabel label"):
            cells = table_row(out, f"| {profile} | 300 | {who} |")
            assert cells[-1] == "300"  # every item written by every contender
        assert f"{profile} N=300: C/A = " in out
        assert f"{profile} N=300: C time: ray.init " in out
        assert (bench_cache / "results" / f"throughput-{profile}-C-300.json").is_file()
    matrix = out.split("C/A by profile and N")[1]  # the compact profile x N table
    for profile in PROFILES:
        assert table_row(matrix, f"| {profile} |")[1] != "-"
    out = run_bench("label_throughput.py", *common, "--only", "B", "--profile", PROFILES[1])
    assert table_row(out, f"| {PROFILES[1]} | 300 | B plain Ray Data |")[-1] == "300"


def test_drop_fixed_cost_bench_smoke(bench_cache: Path) -> None:
    """Several drops in one Ray session, each a complete run, beside the bare loop."""
    out = run_bench(
        "drop_fixed_cost.py", "--n", "300", "--drops", "2", "--out", str(bench_cache),
        "--batch-size", "64", "--untrained-models",
    )  # fmt: skip
    assert "== fixed cost per drop: png32_small_cnn, N=300, 2 drops ==" in out
    for drop in ("1", "2"):
        cells = table_row(out, f"| {drop} |")
        assert "pipeline" in cells[-1] and "report" in cells[-1]
    assert "drops 2..2: fixed cost per drop (median C - A)" in out
    assert (bench_cache / "results" / "fixed-cost-png32_small_cnn-300.json").is_file()
