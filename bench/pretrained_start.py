"""Where a model starts: random init vs a pretrained backbone (fine-tuned whole, or head
only with `model.freeze_backbone`), side by side on the same draws.

    .venv/bin/python bench/pretrained_start.py [--draws 6] [--per-class 10 20 40] [--procs 2]

The pretrained backbone is small_seed's stand-in for ImageNet: a small_cnn trained on
eight shapes none of which is labeled here (built once, cached under raylabel-bench/).
Each draw renders a fresh seed of n items per class over ten shape classes (15% hard
items) and a 2,000-item drop with known truth; every arm trains with raylabel's own
training function (`fit.fold_model.fit_model`, the real adapters: the pretrained state is
loaded and frozen exactly as `train` does) for the same steps, and is graded on the drop:
top-1 accuracy, and coverage at precision >= 0.95 judged against the truth (the share of
the drop above the lowest confidence cut whose accepted precision on the drop reaches
0.95; an oracle cut, the same for every arm, to compare starts rather than thresholds).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import small_seed as ss  # the shared renderers, trainer and pretraining

ARMS = ("random", "pretrained", "frozen")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=6)
    p.add_argument("--per-class", type=int, nargs="+", default=[10, 20, 40])
    p.add_argument("--drop", type=int, default=2000)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--min-steps", type=int, default=300)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--pretrain-per-class", type=int, default=3000)
    p.add_argument("--pretrain-steps", type=int, default=8000)
    p.add_argument("--out", default="raylabel-bench/pretrained_start.json")
    return p.parse_args()


def oracle_coverage(probs: np.ndarray, y: np.ndarray, target: float = 0.95) -> float:
    """The largest share of the drop, taken in confidence order, whose precision >= target."""
    conf = probs.max(axis=1)
    order = np.argsort(-conf)
    correct = (probs.argmax(axis=1) == y)[order]
    prec = np.cumsum(correct) / np.arange(1, len(y) + 1)
    ok = np.flatnonzero(prec >= target)
    return float((ok.max() + 1) / len(y)) if len(ok) else 0.0


def run_draw(job: tuple[int, list[int], argparse.Namespace, str]) -> list[dict[str, Any]]:
    import torch

    from raylabel.stats.calibration import softmax

    draw, sizes, a, pre = job
    torch.set_num_threads(1)
    pool = ss.make_pool(draw, max(sizes), a.drop, a.image_size)
    x_drop, y_drop = pool.drop_x[1], pool.drop_y[1]
    rows = []
    for n in sizes:
        keep = pool.seed_rank < n
        x, y = pool.seed_x[keep], pool.seed_y[keep]
        for arm in ARMS:
            cfg = ss._config(
                "flip_rot90_affine", 1, a.min_steps, draw, None if arm == "random" else pre
            )
            cfg["freeze_backbone"] = arm == "frozen"
            t0 = time.time()
            model = ss.train(cfg, x, y, 0)
            probs = softmax(ss.logits(model, x_drop))
            rows.append({
                "draw": draw, "per_class": n, "arm": arm,
                "accuracy": float((probs.argmax(axis=1) == y_drop).mean()),
                "coverage": oracle_coverage(probs, y_drop),
                "train_s": time.time() - t0,
            })  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'per class':>9} {'start':<11} {'draws':>5} {'accuracy':>8} {'worst':>6} "
        f"{'coverage@0.95':>13} {'worst':>6} {'vs random (acc)':>15} {'train s':>7}"
    ]
    for n in sorted({r["per_class"] for r in rows}):
        base = {r["draw"]: r for r in rows if r["per_class"] == n and r["arm"] == "random"}
        for arm in ARMS:
            g = [r for r in rows if r["per_class"] == n and r["arm"] == arm]
            acc = np.array([r["accuracy"] for r in g])
            cov = np.array([r["coverage"] for r in g])
            ratio = np.array([r["accuracy"] / base[r["draw"]]["accuracy"] for r in g])
            lines.append(
                f"{n:>9} {arm:<11} {len(g):>5} {acc.mean():>8.3f} {acc.min():>6.3f} "
                f"{cov.mean():>13.3f} {cov.min():>6.3f} {ratio.mean():>14.2f}x "
                f"{np.mean([r['train_s'] for r in g]):>7.0f}"
            )
    return "\n".join(lines)


def main() -> None:
    import json

    a = _args()
    started = time.time()
    a.start = "pretrained"
    pre = ss.pretrain(a)
    assert pre is not None
    jobs = [(d, sorted(a.per_class), a, pre) for d in range(a.draws)]
    with mp.get_context("spawn").Pool(a.procs) as pool:
        rows = [r for part in pool.imap_unordered(run_draw, jobs) for r in part]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(a), "rows": rows}, indent=1))
    print(f"\n{a.draws} draws, ten classes, drop {a.drop} items, {a.image_size}px small_cnn, "
          f"{a.min_steps} steps; {time.time() - started:.0f}s")  # fmt: skip
    print(table(rows))
    print(f"\nper-draw figures: {out}")


if __name__ == "__main__":
    main()
