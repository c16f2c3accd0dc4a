"""Active-learning queue vs random picks, with a simulated reviewer on the image demo.

    python bench/active_learning.py [--out DIR] [--ns 50,100,200] [--repeats 2]

1. generates the image demo: a small labeled seed set, an unlabeled pool drop and a
   held-out test set (another demo drop, its truth kept aside);
2. trains a small_cnn on the seed (in-process torch, the raylabel architecture and
   preprocessing) and publishes it as a raylabel model;
3. labels the pool drop with the real label stage (Ray Data, inference actor pool);
4. for each N, picks N items three ways: the active queue (``raylabel.active.build_queue``,
   margin pool + embeddings in a Ray task + class-balanced k-center), the N least-confident
   items (the previous uncertain list) and N random items; the simulated reviewer labels
   them with the truth;
5. retrains from scratch on seed + the N reviewed items (same epochs and seed for every
   arm, ``--repeats`` training seeds averaged) and prints held-out accuracy per arm and N,
   side by side, plus active - random;
6. writes the curve to ``<out>/active_learning.json`` and a report.html of the pool run
   with the "Active learning" curve drawn.

The retraining is in-process torch rather than Ray Train so that 1 + 3 x len(ns) x repeats
trainings fit in minutes on 2 CPUs; every arm gets exactly the same training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from raylabel.demo.images import ImageDemoSpec, write_image_demo  # noqa: E402
from raylabel.models.card import read_card_uri  # noqa: E402

CLASSES = ("circle", "square", "triangle", "cross", "star")


def decode_dir(files: list[Path], size: int) -> np.ndarray:
    from raylabel.inputs.decode import decode_image

    return np.stack([decode_image(f.read_bytes(), size, 10**8) for f in files])


def truth_of(path: Path) -> dict[str, str]:
    import csv

    with path.open() as fh:
        return {r["item_id"]: r["label"] for r in csv.DictReader(fh) if r["label"]}


def hard_of(path: Path) -> dict[str, bool]:
    import csv

    with path.open() as fh:
        return {r["item_id"]: r.get("hard") == "1" for r in csv.DictReader(fh)}


def train_model(x: np.ndarray, y: np.ndarray, n_cls: int, epochs: int, seed: int) -> object:
    """small_cnn from scratch: Adam, cosine LR, random flips / 90-degree turns."""
    import torch

    from raylabel.models.image import build_image_model

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_image_model("small_cnn", n_cls)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=1e-4)
    steps = epochs * int(np.ceil(len(x) / 32))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=steps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), 32):
            idx = order[start : start + 32]
            xb = xt[idx]
            k = int(rng.integers(4))
            xb = torch.rot90(xb, k, dims=(2, 3))
            if rng.random() < 0.5:
                xb = torch.flip(xb, dims=(3,))
            loss = torch.nn.functional.cross_entropy(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


def accuracy(model: object, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    with torch.inference_mode():
        pred = np.concatenate(
            [
                model(torch.from_numpy(x[i : i + 256])).argmax(1).numpy()
                for i in range(0, len(x), 256)
            ]
        )
    return float((pred == y).mean())


def publish(model: object, root: Path, classes: list[str], size: int) -> str:
    from raylabel.io import layout
    from raylabel.io.storage import StorageOptions
    from raylabel.models.card import ModelCard, save_model_dir

    version = layout.new_id("m-")
    card = ModelCard(
        model_version=version,
        arch="small_cnn",
        modality="image",
        classes=classes,
        preprocessing={"image_size": size},
        global_threshold=0.9,
        created_at=layout.utc_now().isoformat(),
    )
    out = root / "staging" / version
    save_model_dir(model, card, out)
    layout.publish_model(out, str(root / "output"), version, StorageOptions())
    return version


def start_ray() -> None:
    """ray.init with retries: on a crowded machine the raylet can miss Ray's 30 s start wait."""
    import ray

    for attempt in range(3):
        try:
            ray.init(
                address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING
            )
            return
        except Exception:
            if attempt == 2:
                raise
            time.sleep(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/raylabel-bench-al"))
    ap.add_argument("--ns", default="50,100,200")
    ap.add_argument("--seed-per-class", type=int, default=30)
    ap.add_argument("--pool", type=int, default=1500)
    ap.add_argument("--test", type=int, default=800)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--size", type=int, default=32)
    args = ap.parse_args()
    ns = [int(n) for n in args.ns.split(",")]
    t_start = time.time()
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray
    import torch

    from raylabel.config import load_config
    from raylabel.io import layout
    from raylabel.io.storage import StorageOptions
    from raylabel.label import label
    from raylabel.review import active
    from raylabel.review.draw import REVIEW_COLUMNS
    from raylabel.stats.sampling import LowestK, hash01

    torch.set_num_threads(2)
    out = args.out.resolve()
    classes = sorted(CLASSES)
    spec = ImageDemoSpec(
        n_seed_per_class=args.seed_per_class,
        n_drop=args.pool,
        image_size=args.size,
        classes=CLASSES,
        n_bad_items=0,
        hard_fraction=0.3,
    )
    data = write_image_demo(out / "data", spec)
    test = write_image_demo(
        out / "test", dataclasses.replace(spec, n_seed_per_class=1, n_drop=args.test, seed=1)
    )
    seed_files = sorted(data.seed_dir.glob("*/*.png"))
    x_seed = decode_dir(seed_files, args.size)
    y_seed = np.array([classes.index(f.parent.name) for f in seed_files])
    test_truth = truth_of(test.truth_path)
    test_ids = sorted(test_truth)
    x_test = decode_dir([test.drop_dir / i for i in test_ids], args.size)
    y_test = np.array([classes.index(test_truth[i]) for i in test_ids])
    pool_truth = truth_of(data.truth_path)
    pool_hard = hard_of(data.truth_path)
    t_data = time.time()

    seed_model = train_model(x_seed, y_seed, len(classes), args.epochs, seed=0)
    version = publish(seed_model, out, classes, args.size)
    t_seed = time.time()

    start_ray()
    cfg = load_config(
        [],
        [
            f"drop.path={data.drop_dir}",
            "drop.name=pool",
            f"output.root={out / 'output'}",
            f"run.model_version={version}",
            "run.force=true",
            "review.size=50",
            f"review.uncertain_size={max(ns)}",
            "infer.batch_size=128",
        ],
    )
    labeled = label(cfg)
    t_label = time.time()
    run = layout.RunLayout(str(out / "output"), "pool", labeled.run_id)
    labels = pq.read_table(Path(run.labels_dir), columns=REVIEW_COLUMNS)
    u = pa.array(hash01(labels["item_id"].to_pylist(), cfg.review.seed), pa.float64())
    labels = labels.append_column("u", u)
    card = read_card_uri(layout.model_uri(cfg.output.root, version), StorageOptions())
    all_ids = sorted(labels["item_id"].to_pylist())

    picks: dict[str, dict[int, list[str]]] = {"active": {}, "least_confident": {}, "random": {}}
    queue_info = {}
    for n in ns:
        cfg_n = dataclasses.replace(cfg, review=dataclasses.replace(cfg.review, uncertain_size=n))
        queue, info = active.build_queue(cfg_n, run, card, labels, None, StorageOptions())
        picks["active"][n] = queue["item_id"].to_pylist()
        queue_info[n] = info
        low = LowestK(k=n, column="confidence", seed=cfg.review.seed)
        low.add(labels, columns=["item_id", "confidence"])
        picks["least_confident"][n] = low.to_table()["item_id"].to_pylist()
        rng = np.random.default_rng(1000 + n)
        picks["random"][n] = sorted(rng.choice(all_ids, size=n, replace=False).tolist())
    t_pick = time.time()
    ray.shutdown()
    predicted = dict(zip(labels["item_id"].to_pylist(), labels["label"].to_pylist(), strict=True))

    def share(ids: list[str], flag: dict[str, bool]) -> float:
        return float(np.mean([flag[i] for i in ids])) if ids else 0.0

    wrong = {i: predicted[i] != pool_truth[i] for i in predicted}

    def with_items(ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        x = decode_dir([data.drop_dir / i for i in ids], args.size)
        y = np.array([classes.index(pool_truth[i]) for i in ids])
        return np.concatenate([x_seed, x]), np.concatenate([y_seed, y])

    base = [
        accuracy(train_model(x_seed, y_seed, len(classes), args.epochs, seed=r), x_test, y_test)
        for r in range(args.repeats)
    ]
    result: dict[str, list[float]] = {arm: [] for arm in picks}
    spread: dict[str, list[list[float]]] = {arm: [] for arm in picks}
    for n in ns:
        for arm in picks:
            x, y = with_items(picks[arm][n])
            accs = [
                accuracy(train_model(x, y, len(classes), args.epochs, seed=r), x_test, y_test)
                for r in range(args.repeats)
            ]
            result[arm].append(float(np.mean(accs)))
            spread[arm].append(accs)
    t_train = time.time()

    def mix(ids: list[str]) -> str:
        counts = {c: 0 for c in classes}
        for i in ids:
            counts[pool_truth[i]] += 1
        return "/".join(str(counts[c]) for c in classes)

    print("\n== active-learning queue vs random (simulated reviewer, image demo) ==")
    print(
        f"seed {len(x_seed)} items ({args.seed_per_class}/class, {len(classes)} classes), "
        f"pool {args.pool}, held-out test {len(x_test)}, {args.size}px, small_cnn, "
        f"{args.epochs} epochs, mean of {args.repeats} training seeds"
    )
    print(f"seed-only accuracy: {np.mean(base):.1%}  (runs: {', '.join(f'{a:.1%}' for a in base)})")
    print(
        "| N | random | least-confident | active queue | active - random | queue true-class mix |"
    )
    print("|---|---|---|---|---|---|")
    for i, n in enumerate(ns):
        gain = 100 * (result["active"][i] - result["random"][i])
        print(
            f"| {n} | {result['random'][i]:.1%} | {result['least_confident'][i]:.1%} | "
            f"{result['active'][i]:.1%} | {gain:+.1f} pt | {mix(picks['active'][n])} |"
        )
    for n in ns:
        q = queue_info[n]
        print(
            f"queue N={n}: pool {q['pool']} ({q['pool_per_class']}/class), embeddings "
            f"{q['embedding']} (dim {q.get('embedding_dim')}), predicted-class counts "
            f"{q.get('per_class')}; per-seed accuracies active {spread['active'][ns.index(n)]}, "
            f"random {spread['random'][ns.index(n)]}"
        )
    print(
        f"pool: {share(all_ids, pool_hard):.0%} hard/ambiguous, seed model wrong on "
        f"{share(all_ids, wrong):.1%}"
    )
    print("| N | hard share: active / least-confident / random | model wrong on: same order |")
    print("|---|---|---|")
    for n in ns:
        arms = ("active", "least_confident", "random")
        hard = " / ".join(f"{share(picks[a][n], pool_hard):.2f}" for a in arms)
        bad = " / ".join(f"{share(picks[a][n], wrong):.2f}" for a in arms)
        print(f"| {n} | {hard} | {bad} |")
    print(
        f"timings s: data {t_data - t_start:.0f}, seed train {t_seed - t_data:.0f}, "
        f"label pool {t_label - t_seed:.0f}, pick {t_pick - t_label:.0f}, "
        f"retrain+eval {t_train - t_pick:.0f}, total {t_train - t_start:.0f}"
    )
    block = {
        "n": ns,
        "active": result["active"],
        "random": result["random"],
        "least_confident": result["least_confident"],
        "baseline": float(np.mean(base)),
        "note": (
            f"Held-out accuracy ({len(x_test)} demo items) after adding N reviewed items to a "
            f"{len(x_seed)}-item seed; mean of {args.repeats} training seeds "
            "(bench/active_learning.py)."
        ),
    }
    (out / "active_learning.json").write_text(json.dumps(block, indent=2))
    from raylabel import report

    summary = dict(labeled.summary)
    summary["active_learning"] = block
    (out / "report.html").write_text(report.render_html(summary))
    print(f"curve: {out / 'active_learning.json'}; report: {out / 'report.html'}")


if __name__ == "__main__":
    main()
