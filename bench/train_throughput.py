"""Training throughput: `raylabel train` with Ray Train workers vs. one plain torch process.

    python bench/train_throughput.py [--per-class 500] [--epochs 4] [--workers 2] [--out DIR]

Both fit the same ``small_cnn`` on the same generated seed set (image demo generator,
``--per-class`` images per class at ``--image-size`` px), with the same batch size, learning
rate, optimizer (AdamW) and no augmentation, on the same CPU cores:

- S: one process, all cores as torch threads; decodes the seed once into a uint8 tensor
  (not timed as training), then runs the epochs over the same training split;
- R: ``raylabel.train.train(cfg)`` in a fresh child process with its own Ray instance,
  ``--workers`` Ray Train workers (DDP; 0, the default, is ``train.num_workers``'s auto: two
  workers sharing the node's cores as threads on CPU, one per GPU on GPUs);
- R1: the alternative on one machine: one Ray Train worker running every core as torch
  threads (``train.num_workers=1``, ``train.cpus_per_worker`` = cores - 0.5), no gradient
  exchange;
- R0 (on request): R with every epoch streamed through Ray Data (no worker shard cache).

Reported: training samples/s of the epoch loops (S: measured around its loop; R: from the
per-epoch ``train_s`` each run records in its history, rank 0), end-to-end wall time of
each (R includes Ray start-up, seed decode tasks, validation, calibration and publish), and
the ratios R/S and R1/S (target >= 0.9 on one node). Results are written as JSON under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LR = 2e-3
WEIGHT_DECAY = 1e-4


def ensure_seed(out: Path, per_class: int, image_size: int) -> Path:
    from raylabel.demo.images import ImageDemoSpec, write_image_demo

    root = out / f"train-seed-{per_class}-px{image_size}"
    if (root / "seed").is_dir():
        return root / "seed"
    spec = ImageDemoSpec(
        n_seed_per_class=per_class,
        n_drop=6,
        image_size=image_size,
        n_bad_items=0,
        mixed_formats=False,
    )
    return write_image_demo(root, spec).seed_dir


def overrides(seed: Path, out: Path, args: argparse.Namespace) -> list[str]:
    return [
        f"seed.path={seed}",
        f"output.root={out / 'train-output'}",
        "model.arch=small_cnn",
        f"model.image_size={args.image_size}",
        f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}",
        f"train.lr={LR}",
        f"train.weight_decay={WEIGHT_DECAY}",
        f"train.num_workers={args.workers}",
        "train.augment=none",
        "train.val_fraction=0.2",
        "train.calibration=holdout",  # the bare loop trains one model on the same split
        "train.min_steps=0",
        "qc.min_support=10",
    ]


def run_single(seed: Path, out: Path, args: argparse.Namespace) -> dict:
    """The plain loop on the split raylabel would use (same ids in train)."""
    import torch
    from torch import nn

    from raylabel.config import load_config
    from raylabel.fit.data import stratified_split
    from raylabel.inputs import sources
    from raylabel.inputs.decode import decode_image
    from raylabel.models.image import build_image_model

    t0 = time.time()
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    cfg = load_config([], overrides(seed, out, args))
    plan = sources.plan_seed(cfg)
    listing = plan.listing
    labels = listing.column("label").to_pylist()
    classes = sorted(set(labels))
    ids = listing.column("item_id").to_pylist()
    is_val = stratified_split(ids, labels, cfg.train.val_fraction, cfg.train.seed)
    keep = [i for i in range(len(ids)) if not is_val[i]]
    uris = listing.column("uri").to_pylist()
    x = np.stack([decode_image(Path(uris[i]).read_bytes(), args.image_size, 10**9) for i in keep])
    y = np.asarray([classes.index(labels[i]) for i in keep], dtype=np.int64)
    decode_s = time.time() - t0
    model = build_image_model("small_cnn", len(classes))
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)
    t_loop = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(yt), generator=gen)
        for s in range(0, len(order), args.batch_size):
            idx = order[s : s + args.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    loop_s = time.perf_counter() - t_loop
    return {
        "n_train": len(keep),
        "loop_s": loop_s,
        "wall_s": time.time() - t0,
        "decode_s": decode_s,
        "samples_per_s": len(keep) * args.epochs / loop_s,
    }


def run_raylabel(seed: Path, out: Path, args: argparse.Namespace) -> dict:
    import ray

    from raylabel.config import load_config
    from raylabel.train import train

    cfg = load_config([], [*overrides(seed, out, args), *(args.set or [])])
    t0 = time.time()
    ray.init(
        address="local",
        num_cpus=os.cpu_count() or 1,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    try:
        result = train(cfg)
    finally:
        ray.shutdown()
    wall = time.time() - t0
    hist = result.history
    n_train = int(hist[-1]["train_items"]) if hist else 0
    loop_s = sum(float(h.get("train_s", 0.0)) for h in hist)
    return {
        "n_train": n_train,
        "loop_s": loop_s,
        "wall_s": wall,
        "samples_per_s": n_train * len(hist) / loop_s if loop_s else None,
        "epochs": len(hist),
        "epoch_s": [round(float(h.get("train_s", 0.0)), 2) for h in hist],
        "val_acc": hist[-1].get("val_acc") if hist else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-class", type=int, default=500)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--workers", type=int, default=0, help="R's train.num_workers (0 = auto)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--out", type=Path, default=Path("raylabel-bench"))
    p.add_argument("--only", default="S,R,R1", help="S, R0 (no cache), R, R1 (one worker)")
    p.add_argument("--set", action="append", help="extra key=value for raylabel (R)")
    p.add_argument("--_child", choices=("S", "R", "R0", "R1"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    out = args.out.resolve()
    seed = ensure_seed(out, args.per_class, args.image_size)
    result_path = out / "results" / f"train-{args._child}-{args.per_class}.json"
    if args._child:
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        if args._child == "R0":  # the previous behaviour: every epoch streamed via Ray Data
            args.set = [*(args.set or []), "train.worker_cache_mb=0"]
        if args._child == "R1":  # one worker, every core but half of one as torch threads
            cores = max(1.0, (os.cpu_count() or 1) - 0.5)
            one = ["train.num_workers=1", f"train.cpus_per_worker={cores}"]
            args.set = [*(args.set or []), *one]
        fn = run_single if args._child == "S" else run_raylabel
        res = fn(seed, out, args)
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps(res, indent=1))
        return 0
    cpus = os.cpu_count() or 1
    print(
        f"training throughput: {args.per_class}/class x 6 classes, {args.epochs} epochs, "
        f"batch {args.batch_size}, {args.image_size}px, {cpus} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}",
        flush=True,
    )
    res = {}
    order = [w for w in ("S", "R0", "R", "R1") if w in args.only.split(",")]
    for who in order:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", who]
        for k in ("per_class", "epochs", "workers", "batch_size", "image_size"):
            cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
        cmd += ["--out", str(out)]
        for extra in args.set or []:
            cmd += ["--set", extra]
        if subprocess.call(cmd) != 0:
            print(f"contender {who} failed", file=sys.stderr)
            return 1
        path = out / "results" / f"train-{who}-{args.per_class}.json"
        res[who] = json.loads(path.read_text())
    workers = args.workers or "auto"
    names = {
        "S": f"S single torch process ({cpus} threads)",
        "R0": f"R0 raylabel train, {workers} workers, streamed every epoch",
        "R": f"R raylabel train, {workers} workers (worker shard cache)",
        "R1": "R1 raylabel train, 1 worker x all cores",
    }
    print("\n== training throughput ==")
    print("| contender | train items | loop s | samples/s | end-to-end wall s | epoch s |")
    print("|---|---|---|---|---|---|")
    for who in order:
        r = res[who]
        epochs = ", ".join(f"{e:.1f}" for e in r.get("epoch_s", []))
        print(
            f"| {names[who]} | {r['n_train']:,} | {r['loop_s']:.1f} | "
            f"{r['samples_per_s'] or 0:,.0f} | {r['wall_s']:.1f} | {epochs} |"
        )
    if "S" in res:
        s = res["S"]
        for who in ("R0", "R", "R1"):
            r = res.get(who)
            if r and r["samples_per_s"]:
                ratio = r["samples_per_s"] / s["samples_per_s"]
                verdict = "met" if ratio >= 0.9 else "NOT met"
                print(
                    f"{who}/S samples/s = {ratio:.2f} (target >= 0.9: {verdict}); "
                    f"end-to-end {who}/S = {s['wall_s'] / r['wall_s']:.2f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
