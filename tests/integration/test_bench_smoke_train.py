"""Smoke runs of the training and GPU benchmark scripts: they run, they print their tables, they
don't judge. The benchmarks start their own Ray instances in subprocesses, separate from
the session cluster of conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchutil import run_bench

pytestmark = pytest.mark.slow


def test_train_throughput_bench_smoke(bench_cache: Path) -> None:
    out = run_bench(
        "train_throughput.py",
        "--per-class",
        "12",
        "--epochs",
        "1",
        "--only",
        "S,R1",
        "--out",
        str(bench_cache),
    )
    assert "== training throughput ==" in out
    assert "R1/S samples/s = " in out


@pytest.mark.parametrize("arch", ["small_cnn", "vit_b16", "clip_b32"])
def test_gpu_bench_runs_on_cpu(bench_cache: Path, arch: str) -> None:
    """Every image family's GPU path (#17 item 6) runs here on CPU, tiny: the device script
    and a lent GPU run the same code at full size."""
    tiny = ["--tiny"] if arch != "small_cnn" else []
    out = run_bench(
        "gpu.py",
        "--n",
        "96",
        "--arch",
        arch,
        *tiny,
        "--image-size",
        "32" if tiny else "48",
        "--batch-size",
        "32",
        "--model-seconds",
        "0.5",
        "--out",
        str(bench_cache),
    )
    assert "model-only (cpu)" in out and "decode-only" in out
    assert "raylabel / min(model-only, decode-only) = " in out


def test_small_seed_bench_smoke(tmp_path: Path) -> None:
    out = run_bench(
        "small_seed.py",
        "--draws", "1",
        "--per-class", "4",
        "--drop", "60",
        "--image-size", "16",
        "--min-steps", "3",
        "--folds", "2",
        "--review-size", "20",
        "--procs", "1",
        "--pretrain-per-class", "4",
        "--pretrain-steps", "2",
        "--out", str(tmp_path / "small_seed.json"),
    )  # fmt: skip
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("4 ")]
    methods = {r[1] for r in rows}
    assert {"today", "sagemaker", "crossfit", "ensemble", "reviews"} <= methods
    assert (tmp_path / "small_seed.json").is_file()
