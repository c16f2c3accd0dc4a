"""Image tensor layout on CPU, side by side: NCHW (PyTorch's default) vs channels-last (NHWC).

    python bench/cpu_layout.py [--threads 1] [--batch 256] [--repeats 5]

For each workload (model x image size) it times, alternately A B A B ..., one inference
forward pass and one training step (forward, backward, AdamW step) of the same model on the
same uint8 batch:

- A: NCHW input, NCHW weights: what a plain loop does with ``decode_image``'s arrays;
- B: channels-last input and weights, as ``Predictor`` runs inference, and channels-last
  input with NCHW weights, as the training loop runs (``ImageTask.forward``) so checkpoints
  keep the default layout.

Prints the median seconds of each and the ratio A/B (above 1: channels-last is faster).
Random weights: the cost of a forward pass does not depend on their values.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORKLOADS = (("small_cnn", 32), ("small_cnn", 48), ("small_cnn", 64), ("resnet18", 64))
CL = torch.channels_last


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def side_by_side(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple:
    """Medians of A and B timed alternately (one warm-up call each first)."""
    a()
    b()
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(_timed(a))
        tb.append(_timed(b))
    return statistics.median(ta), statistics.median(tb)


def workload(arch: str, size: int, batch: int, repeats: int) -> list[str]:
    """Inference and training rows for one model at one image size."""
    from raylabel.models.image import build_image_model

    torch.manual_seed(0)
    x = torch.from_numpy(
        np.random.default_rng(0).integers(0, 256, (batch, 3, size, size), np.uint8)
    )
    y = torch.randint(0, 6, (batch,))
    rows = []
    nchw = build_image_model(arch, 6).eval()
    nhwc = build_image_model(arch, 6).eval().to(memory_format=CL)
    nhwc.load_state_dict(nchw.state_dict())
    with torch.inference_mode():
        a, b = side_by_side(lambda: nchw(x), lambda: nhwc(x.contiguous(memory_format=CL)), repeats)
    rows.append(f"| {arch} | {size} | inference | {a:.3f} | {b:.3f} | {a / b:.2f} |")
    model = build_image_model(arch, 6).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(inp: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(inp), y).backward()
        opt.step()

    a, b = side_by_side(lambda: step(x), lambda: step(x.contiguous(memory_format=CL)), repeats)
    rows.append(f"| {arch} | {size} | training step | {a:.3f} | {b:.3f} | {a / b:.2f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, "
        f"{platform.processor() or platform.machine()}; median of {args.repeats}, A B A B"
    )
    print("| model | px | pass | A NCHW s | B channels-last s | A/B |")
    print("|---|---|---|---|---|---|")
    for arch, size in WORKLOADS:
        for row in workload(arch, size, args.batch, args.repeats):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
