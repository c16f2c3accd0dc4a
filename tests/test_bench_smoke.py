"""Smoke runs of the benchmark scripts: they run, they print their tables, they don't judge.

The benchmarks start their own Ray instances in subprocesses (ray.init with
include_dashboard=False), separate from the session cluster of conftest.py. The labeling
benchmarks share one cache directory, so the small model they need is trained once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bench cache that already holds a published model where the benchmarks look for
    one, so the smoke runs skip training (training throughput has its own smoke run)."""
    from modelutil import publish_random_model

    from raylabel.demo_images import DEFAULT_CLASSES

    out = tmp_path_factory.mktemp("bench")
    publish_random_model(out / "model", list(DEFAULT_CLASSES))
    (out / "model" / "out").rename(out / "output-px32")
    return out


def _run(script: str, *args: str) -> str:
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


def _row(out: str, start: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def test_streaming_bench_smoke(cache: Path) -> None:
    out = _run("streaming.py", "--n", "1500", "--out", str(cache))
    assert "== streaming label stage ==" in out
    assert "| N | label wall s |" in out
    assert _row(out, "| 1,500 |")[-2:] == ["1,500", "0"]  # labeled, errors
    assert (cache / "results" / "bench-1500-px32.json").is_file()


def test_label_throughput_bench_smoke(cache: Path) -> None:
    out = _run("label_throughput.py", "--n", "600", "--out", str(cache), "--batch-size", "128")
    assert "== labeling throughput ==" in out
    for who in ("A bare loop", "B plain Ray Data", "C raylabel label"):
        cells = _row(out, f"| 600 | {who} |")
        assert cells[-1] == "600"  # every item written by every contender
    assert "C/A = " in out and "C/B = " in out


def test_train_throughput_bench_smoke(cache: Path) -> None:
    out = _run("train_throughput.py", "--per-class", "12", "--epochs", "1", "--out", str(cache))
    assert "== training throughput ==" in out
    assert "R/S samples/s = " in out


def test_gpu_bench_runs_on_cpu(cache: Path) -> None:
    out = _run(
        "gpu.py",
        "--n",
        "96",
        "--arch",
        "small_cnn",
        "--image-size",
        "48",
        "--batch-size",
        "32",
        "--model-seconds",
        "0.5",
        "--out",
        str(cache),
    )
    assert "model-only (cpu)" in out and "decode-only" in out
    assert "raylabel / min(model-only, decode-only) = " in out
