"""Self-training across drops: coverage at equal precision, with and without pseudo-labels.

    python bench/self_training.py [--out DIR] [--nights 2] [--classes 3] [--seed-per-class 150]
        [--drop-size 500] [--epochs 24] [--image-size 48] [--batch-size 16] [--workers 1]
        [--review-size 200] [--gate lower]

Simulates a few nights of the image demo. A small labeled seed set, then one new drop a
night (each generated with its own seed; its truth is kept aside). Every night, in each arm:

1. train on the seed + human reviews so far (`train.use_feedback`), and in the
   `self_train` arm also on gated pseudo-labels from earlier committed runs
   (`train.pseudo_labels.enabled=true`, defaults otherwise: weight 0.3, lower-bound gate);
2. label the night's drop (the real label stage, which draws the review sample);
3. a simulated reviewer answers the review sample with the truth and `raylabel evaluate`'s
   stage function writes `evaluation.json` (the gate's evidence) and the feedback file;
4. grade the run against the truth: precision of accepted labels and coverage.

Night 1 is the same for both arms (no earlier run exists, so the gate refuses): it is run
once and its output root copied to the second arm. Both arms then see the same drops, the
same reviews budget and the same seeds; the only difference is the pseudo-labels.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raylabel.config import Config, load_config
from raylabel.demo.images import DEFAULT_CLASSES, ImageDemoSpec, write_image_demo
from raylabel.demo.run import IMAGE_DEMO_OVERRIDES, grade

ARMS = ("baseline", "self_train")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/raylabel-bench-selftrain"))
    p.add_argument("--nights", type=int, default=2)
    p.add_argument("--classes", type=int, default=3, help="the first N demo shapes")
    p.add_argument("--seed-per-class", type=int, default=150)
    p.add_argument("--drop-size", type=int, default=500)
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--review-size", type=int, default=200)
    p.add_argument("--gate", choices=("lower", "point"), default="lower")
    p.add_argument("--min-support", type=int, default=20)
    return p.parse_args()


def overrides(args: argparse.Namespace, seed_dir: Path, root: Path) -> list[str]:
    drop_keys = (
        "drop.name=",
        "train.epochs=",
        "model.image_size=",
        "review.size=",
        "train.batch_size=",
        "train.num_workers=",
        "qc.min_support=",
    )
    base = [o for o in IMAGE_DEMO_OVERRIDES if not o.startswith(drop_keys)]
    return [
        *base,
        f"train.epochs={args.epochs}",
        f"model.image_size={args.image_size}",
        f"review.size={args.review_size}",
        f"train.batch_size={args.batch_size}",
        f"train.num_workers={args.workers}",
        f"qc.min_support={args.min_support}",
        f"train.pseudo_labels.gate={args.gate}",
        f"seed.path={seed_dir}",
        f"output.root={root}",
    ]


def night_cfg(base: list[str], arm: str, drop_dir: Path, night: int) -> Config:
    extra = ["train.pseudo_labels.enabled=true"] if arm == "self_train" else []
    return load_config([], [*base, *extra, f"drop.path={drop_dir}", f"drop.name=night{night}"])


def review_with_truth(cfg: Config, run_uri: str, truth: dict[str, str], out: Path) -> dict:
    """The simulated reviewer: true labels for the run's review sample -> `evaluate`."""
    from raylabel.review import evaluate_run

    sample = pq.read_table(Path(run_uri) / "review" / "sample.parquet", columns=["item_id"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "true_label"])
        for i in sample.column("item_id").to_pylist():
            w.writerow([i, truth[i]])
    run_id = Path(run_uri).name
    ev_cfg = load_config(
        [], [*cfg_overrides(cfg), f"review.reviewed={out}", f"run.run_id={run_id}"]
    )
    evaluate_run(ev_cfg)
    return json.loads((Path(run_uri) / "evaluation.json").read_text())


def cfg_overrides(cfg: Config) -> list[str]:
    return [
        f"output.root={cfg.output.root}",
        f"drop.name={cfg.drop.name}",
        f"drop.path={cfg.drop.path}",
        f"qc.target_precision={cfg.qc.target_precision}",
    ]


def one_night(cfg: Config, truth_path: Path, review_csv: Path) -> dict[str, Any]:
    from raylabel.label import label
    from raylabel.train import train

    t0 = time.time()
    trained = train(cfg)
    t1 = time.time()
    labeled = label(cfg)
    t2 = time.time()
    g = grade(cfg, labeled.run_uri, truth_path)
    truth = g.pop("truth_by_id")
    ev = review_with_truth(cfg, labeled.run_uri, truth, review_csv)
    acc = ev.get("accepted") or {}
    pl = trained.card.pseudo_labels
    return {
        "model_version": trained.model_version,
        "val_accuracy": trained.card.validation.get("accuracy"),
        "pseudo_status": pl.get("status"),
        "pseudo_used": pl.get("used", 0),
        "pseudo_per_run": pl.get("per_run", {}),
        "pseudo_reason": pl.get("reason"),
        "n_feedback": trained.card.training.get("n_feedback"),
        "precision_true": g["accuracy_accepted"],
        "coverage": g["coverage"],
        "accuracy_all": g["accuracy_all"],
        "estimate_accepted": [acc.get("point"), acc.get("lower"), acc.get("upper")],
        "train_s": round(t1 - t0, 1),
        "label_s": round(t2 - t1, 1),
    }


def main() -> None:
    import ray
    import raylabel.stages

    # import every stage up front: a long run must not pick up half-edited modules later
    import raylabel.label
    import raylabel.train

    del raylabel
    args = parse_args()
    out = args.out.resolve()
    classes = DEFAULT_CLASSES[: args.classes]
    if out.exists():
        shutil.rmtree(out)
    started = time.time()
    seed = write_image_demo(
        out / "data" / "seed",
        ImageDemoSpec(n_seed_per_class=args.seed_per_class, n_drop=10, seed=0, classes=classes),
    )
    drops = [
        write_image_demo(
            out / "data" / f"night{n}",
            ImageDemoSpec(n_seed_per_class=1, n_drop=args.drop_size, seed=100 + n, classes=classes),
        )
        for n in range(1, args.nights + 1)
    ]
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # a fresh local instance: never join another Ray cluster running on this machine
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    results: list[dict[str, Any]] = []
    for n, drop in enumerate(drops, start=1):
        arms = ("baseline",) if n == 1 else ARMS
        for arm in arms:
            root = out / arm
            cfg = night_cfg(overrides(args, seed.seed_dir, root), arm, drop.drop_dir, n)
            row = one_night(cfg, drop.truth_path, out / "reviews" / arm / f"night{n}.csv")
            results.append({"night": n, "arm": "both" if n == 1 else arm, **row})
            print(f"[bench] night {n} {arm}: {json.dumps(results[-1])}", flush=True)
        if n == 1:  # identical for both arms: the gate has nothing to look at yet
            shutil.copytree(out / "baseline", out / "self_train")
    ray.shutdown()
    target = load_config([], IMAGE_DEMO_OVERRIDES).qc.target_precision
    print()
    print(
        f"seed {args.seed_per_class}/class x {len(classes)} classes, drops of {args.drop_size}, "
        f"{args.epochs} epochs at {args.image_size}px (batch {args.batch_size}, "
        f"{args.workers} worker(s)), review {args.review_size}/night, gate {args.gate}, "
        f"target precision {target}"
    )
    header = (
        f"{'night':>5} {'arm':<10} {'pseudo':>6} {'precision':>9} {'coverage':>8} "
        f"{'acc(all)':>8} {'est. accepted [CI]':>22} {'train s':>7}"
    )
    print(header)
    for r in results:
        e = r["estimate_accepted"]
        est = f"{e[0]:.3f} [{e[1]:.3f},{e[2]:.3f}]" if e[0] is not None else "-"
        print(
            f"{r['night']:>5} {r['arm']:<10} {r['pseudo_used']:>6} {r['precision_true']:>9.3f} "
            f"{r['coverage']:>8.3f} {r['accuracy_all']:>8.3f} {est:>22} {r['train_s']:>7}"
        )
    for n in range(2, args.nights + 1):
        b = next(r for r in results if r["night"] == n and r["arm"] == "baseline")
        s = next(r for r in results if r["night"] == n and r["arm"] == "self_train")
        both = b["precision_true"] >= target and s["precision_true"] >= target
        print(
            f"night {n}: coverage self_train/baseline = {s['coverage']:.3f}/{b['coverage']:.3f} "
            f"= {s['coverage'] / max(b['coverage'], 1e-9):.2f}x; precision "
            f"{s['precision_true']:.3f} vs {b['precision_true']:.3f} "
            f"({'both meet' if both else 'NOT both meeting'} the target {target}); "
            f"pseudo-labels: {s['pseudo_status']} ({s['pseudo_reason']})"
        )
    print(f"total {time.time() - started:.0f}s")
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
