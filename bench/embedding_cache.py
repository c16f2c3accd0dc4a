"""Frozen-backbone training with and without the embedding cache (`train.embedding_cache`),
whole `raylabel train` processes side by side, then `raylabel label` with each model.

    .venv/bin/python bench/embedding_cache.py [--draws 2] [--workloads small_cnn resnet18]

A = `train.embedding_cache=auto` (features computed once, heads trained on them),
B = `never` (the whole model runs every step, the behaviour before the cache). Same seed,
same config otherwise (`model.freeze_backbone=true`, cross-fitted calibration with 5 fold
models, `train.min_steps`), run A B then B A on alternate draws so drift hits both. Each
model labels the same drop; graded against the demo's truth: accepted share (coverage)
and accuracy of the accepted rows.

Workloads: small_cnn at 32 px from the stand-in backbone small_seed pretrains on other
shapes (raylabel-bench/, built there; random weights if absent), ten shape classes; and
resnet18 at 64 px from a random torchvision-keyed state dict (model-heavy: the timing is
the point, its labels are not).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STAND_IN = REPO / "raylabel-bench" / "pretrained-32px-3000x8-8000steps.safetensors"
WORKLOADS: dict[str, dict[str, Any]] = {
    "small_cnn": {"arch": "small_cnn", "size": 32, "classes": 10, "per_class": 20, "steps": 300},
    "resnet18": {"arch": "resnet18", "size": 64, "classes": 4, "per_class": 20, "steps": 100},
}


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=2)
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    p.add_argument("--drop", type=int, default=600)
    p.add_argument("--out", default="raylabel-bench/embedding_cache.json")
    return p.parse_args()


def _start(arch: str, root: Path) -> Path:
    """The frozen body: the stand-in backbone for small_cnn, random resnet18 weights."""
    import torch
    from safetensors.torch import save_file

    if arch == "small_cnn" and STAND_IN.is_file():
        return STAND_IN
    from raylabel.models.image import build_image_model

    torch.manual_seed(0)
    state = build_image_model(arch, 1000).backbone.state_dict()
    out = root / f"{arch}-start.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(out))
    return out


def _raylabel(args: list[str]) -> float:
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "raylabel"), *args],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode:
        raise RuntimeError(f"raylabel {args[0]} failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - started


def _grade(run_dir: Path, truth: Path) -> dict[str, float]:
    import pyarrow.parquet as pq

    with truth.open() as fh:
        want = {r["item_id"]: r["label"] for r in csv.DictReader(fh) if r["label"]}
    t = pq.read_table(run_dir / "labels", columns=["item_id", "label", "accepted"]).to_pylist()
    acc = [r for r in t if r["accepted"]]
    ok = sum(1 for r in acc if want.get(r["item_id"]) == r["label"])
    return {"coverage": len(acc) / max(len(want), 1), "accuracy_accepted": ok / max(len(acc), 1)}


def run_draw(name: str, draw: int, a: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    from raylabel.demo.images import ALL_SHAPES, ImageDemoSpec, write_image_demo

    w = WORKLOADS[name]
    spec = ImageDemoSpec(w["per_class"], a.drop, w["size"], seed=100 + draw,
                         classes=tuple(ALL_SHAPES[: w["classes"]]), n_bad_items=0)  # fmt: skip
    data = write_image_demo(root / f"{name}-{draw}", spec)
    start = _start(w["arch"], root)
    rows = []
    order = ("auto", "never") if draw % 2 == 0 else ("never", "auto")
    for mode in order:
        out = root / f"{name}-{draw}-{mode}"
        common = [f"output.root={out}", f"model.arch={w['arch']}", f"model.image_size={w['size']}"]
        train_s = _raylabel(
            ["train", *common, f"seed.path={data.seed_dir}", f"model.pretrained={start}",
             "model.freeze_backbone=true", f"train.embedding_cache={mode}",
             f"train.min_steps={w['steps']}"]
        )  # fmt: skip
        _raylabel(["label", *common, f"drop.path={data.drop_dir}", "drop.name=bench"])
        runs = sorted((out / "runs" / "bench").iterdir())
        row = {"workload": name, "draw": draw, "mode": mode, "train_s": round(train_s, 1)}
        row.update(_grade(runs[-1], data.truth_path))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | draws | train s, cache (median) | train s, no cache (median) | "
        "no cache / cache (median of pairs) | coverage cache / no cache | "
        "accepted accuracy cache / no cache (worst draw) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["workload"] for r in rows):
        mine = [r for r in rows if r["workload"] == name]
        a = {r["draw"]: r for r in mine if r["mode"] == "auto"}
        b = {r["draw"]: r for r in mine if r["mode"] == "never"}
        ratios = [b[d]["train_s"] / a[d]["train_s"] for d in a if d in b]
        lines.append(
            f"| {name} | {len(a)} | {np.median([r['train_s'] for r in a.values()]):.1f} | "
            f"{np.median([r['train_s'] for r in b.values()]):.1f} | {np.median(ratios):.2f}× | "
            f"{np.mean([r['coverage'] for r in a.values()]):.3f} / "
            f"{np.mean([r['coverage'] for r in b.values()]):.3f} | "
            f"{np.mean([r['accuracy_accepted'] for r in a.values()]):.3f} "
            f"({min(r['accuracy_accepted'] for r in a.values()):.3f}) / "
            f"{np.mean([r['accuracy_accepted'] for r in b.values()]):.3f} "
            f"({min(r['accuracy_accepted'] for r in b.values()):.3f}) |"
        )
    return "\n".join(lines)


def main() -> None:
    a = _args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="raylabel-bench-cache-") as tmp:
        for name in a.workloads:
            for draw in range(a.draws):
                rows += run_draw(name, draw, a, Path(tmp))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
