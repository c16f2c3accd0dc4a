"""Small seeds: accepted precision and coverage of each acceptance method, over many draws.

    .venv/bin/python bench/small_seed.py [--draws 20] [--per-class 20 40 100] [--procs 2]

Each draw generates a fresh labeled seed (n items per class, ten shape classes with 15%
hard or ambiguous items) and two fresh 2,000-item drops with known truth, all from one
random seed. Models are trained in-process with raylabel's own training function
(`fold_model.fit_model`: the adapters, augmentation and step schedule of the real
training), calibrated with raylabel's functions, and graded on drop 2:

  today        20% holdout, the old defaults (8 epochs, flip), old rule: a class with
               >= 30 validation predictions stands on its own evidence or accepts nothing
  sagemaker    the same model; one global threshold, point estimate on the holdout
               (SageMaker Ground Truth's rule)
  rule         the same model; the new rule (weak classes use the pooled threshold)
  min_steps    holdout, train.min_steps schedule, default flips, new rule
  augment      min_steps + the small-data augmentation (--augment), new rule
  crossfit     5-fold cross-fitted calibration, the final model trained on every seed
  ensemble     crossfit thresholds, drop labeled by the mean of the 5 fold models
  wilson/point crossfit with qc.bound=wilson / point
  reviews      crossfit + the reviewed stratified sample of drop 1 (200 items, weighted)
               added to the calibration evidence, as `label` does the next night

Prints, per seed size and method: accepted precision (mean, worst draw), coverage (mean,
worst), and the share of draws whose accepted precision fell below the target. Writes
every draw's figures to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TARGET = 0.95
LEVEL = 0.95
N_CLASSES = 10


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--first-draw", type=int, default=0)
    p.add_argument("--per-class", type=int, nargs="+", default=[20, 40, 100])
    p.add_argument("--drop", type=int, default=2000)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--min-steps", type=int, default=300)
    p.add_argument("--augment", default="flip_rot90_affine")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--review-size", type=int, default=200)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument(
        "--start",
        default="pretrained",
        choices=["pretrained", "random"],
        help="fine-tune a backbone pretrained on eight other shapes (ImageNet's stand-in), "
        "or train from random weights",
    )
    p.add_argument("--pretrain-per-class", type=int, default=3000)
    p.add_argument("--pretrain-steps", type=int, default=8000)
    p.add_argument("--out", default="raylabel-bench/small_seed.json")
    return p.parse_args()


# --------------------------------------------------------------------------- data


@dataclass
class Pool:
    """Rendered items of one draw: seed (nested: 20 of 40 of 100 per class) and two drops."""

    seed_x: np.ndarray
    seed_y: np.ndarray
    seed_rank: np.ndarray  # an item's position within its class (nested subsets)
    drop_x: list[np.ndarray]
    drop_y: list[np.ndarray]


def _render(classes: tuple[str, ...], labels: np.ndarray, size: int, seed: list[int]) -> np.ndarray:
    from raylabel.demo.images import render_shape

    hard = np.random.default_rng([*seed, 99]).random(len(labels)) < 0.15
    out = np.empty((len(labels), 3, size, size), dtype=np.uint8)
    for i, y in enumerate(labels):
        rng = np.random.default_rng([*seed, i])
        img = render_shape(classes[int(y)], rng, size, bool(hard[i]))
        out[i] = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    return out


def make_pool(draw: int, max_per_class: int, n_drop: int, size: int) -> Pool:
    from raylabel.demo.images import ALL_SHAPES

    classes = ALL_SHAPES[:N_CLASSES]
    seed_y = np.repeat(np.arange(N_CLASSES), max_per_class)
    seed_rank = np.tile(np.arange(max_per_class), N_CLASSES)
    seed_x = _render(classes, seed_y, size, [draw, 1])
    drop_x, drop_y = [], []
    for night in (2, 3):
        rng = np.random.default_rng([draw, night, 0])
        mix = rng.uniform(0.6, 1.4, N_CLASSES)
        y = rng.choice(N_CLASSES, size=n_drop, p=mix / mix.sum())
        drop_x.append(_render(classes, y, size, [draw, night]))
        drop_y.append(y)
    return Pool(seed_x, seed_y, seed_rank, drop_x, drop_y)


# --------------------------------------------------------------------------- training


def _config(
    augment: str, epochs: int, min_steps: int, seed: int, pretrained: str | None
) -> dict[str, Any]:
    """What `folds.loop_config` hands the adapters, with the defaults of `Config`."""
    from raylabel.config import Config

    t = Config().train
    return {
        "arch": "small_cnn",
        "pretrained": pretrained,
        "num_classes": N_CLASSES,
        "dropout": 0.2,
        "epochs": epochs,
        "min_steps": min_steps,
        "batch_size": t.batch_size,
        "lr": t.lr,
        "weight_decay": t.weight_decay,
        "seed": seed,
        "augment": augment,
        "warmup_fraction": t.warmup_fraction,
        "threads": 1,
        "modality": "image",
        "worker_cache_mb": 0,
    }


def _batches(x: np.ndarray, y: np.ndarray, bs: int, seed: int) -> Iterator[tuple[dict, Any]]:
    import torch

    order = np.random.default_rng(seed).permutation(len(y))
    for s in range(0, len(y), bs):
        idx = order[s : s + bs]
        yield {"x": torch.from_numpy(x[idx])}, torch.from_numpy(y[idx].astype(np.int64))


def train(config: dict[str, Any], x: np.ndarray, y: np.ndarray, rank: int) -> Any:
    """A model trained by raylabel's fold/training function on in-memory items."""
    import torch

    from raylabel.fit.fold_model import fit_model
    from raylabel.fit.loop import make_task

    torch.manual_seed(int(config["seed"]) * 1000 + rank)
    task = make_task(config, rank)
    bs = int(config["batch_size"])
    fit_model(task, config, lambda e: _batches(x, y, bs, rank * 1000 + e), len(y), "cpu")
    return task.model


def logits(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(x), 512):
            out.append(model(torch.from_numpy(x[s : s + 512])).float().numpy())
    return np.concatenate(out).astype(np.float64)


def pretrain(a: argparse.Namespace) -> str | None:
    """A small_cnn backbone trained on the eight pretraining-only shapes (none of the ten
    evaluated ones), saved as a safetensors state dict: what `model.pretrained` takes."""
    if a.start == "random":
        return None
    import torch
    from safetensors.torch import save_file

    from raylabel.demo.shapes import PRETRAIN_SHAPES

    path = Path(a.out).parent / (
        f"pretrained-{a.image_size}px-{a.pretrain_per_class}x{len(PRETRAIN_SHAPES)}-"
        f"{a.pretrain_steps}steps.safetensors"
    )
    if path.is_file():
        return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    torch.set_num_threads(a.procs)
    y = np.repeat(np.arange(len(PRETRAIN_SHAPES)), a.pretrain_per_class)
    x = _render(PRETRAIN_SHAPES, y, a.image_size, [10_000, 7])
    cfg = _config("flip_rot90_affine", 1, a.pretrain_steps, 10_000, None)
    cfg["num_classes"] = len(PRETRAIN_SHAPES)
    model = train(cfg, x, y, 0)
    state = {k: v.detach().contiguous() for k, v in model.backbone.state_dict().items()}
    save_file(state, str(path))
    print(f"pretrained backbone: {path} ({time.time() - t0:.0f}s)", flush=True)
    return str(path)


# --------------------------------------------------------------------------- rules


def old_rule(ev: Any, min_support: int = 30) -> np.ndarray:
    """The rule before the small-seed work: own evidence or nothing; thin classes pooled."""
    from raylabel.stats.thresholds import NEVER_ACCEPT, lowest_cut

    g = lowest_cut(ev.conf, ev.correct, ev.weight, TARGET, LEVEL)
    out = np.full(N_CLASSES, NEVER_ACCEPT)
    for c in range(N_CLASSES):
        m = ev.pred == c
        if m.sum() < min_support:
            out[c] = NEVER_ACCEPT if g is None else g
            continue
        t = lowest_cut(ev.conf[m], ev.correct[m], ev.weight[m], TARGET, LEVEL)
        out[c] = NEVER_ACCEPT if t is None else t
    return out


def sagemaker_rule(ev: Any) -> np.ndarray:
    """One global threshold: the lowest whose point-estimate accuracy reaches the target."""
    from raylabel.stats.thresholds import NEVER_ACCEPT, lowest_cut

    g = lowest_cut(ev.conf, ev.correct, ev.weight, TARGET, LEVEL, "point")
    return np.full(N_CLASSES, NEVER_ACCEPT if g is None else g)


def new_rule(ev: Any, method: str = "clopper_pearson") -> np.ndarray:
    from raylabel.stats.thresholds import thresholds_from_evidence

    names = [str(i) for i in range(N_CLASSES)]
    res = thresholds_from_evidence(ev, names, TARGET, LEVEL, 30, method)
    return np.array([res.thresholds[n] for n in names])


def grade(probs: np.ndarray, y: np.ndarray, thr: np.ndarray) -> dict[str, float]:
    pred = probs.argmax(1)
    conf = probs[np.arange(len(y)), pred]
    acc = conf >= thr[pred]
    correct = pred == y
    return {
        "accuracy": float(correct.mean()),
        "coverage": float(acc.mean()),
        "precision": float(correct[acc].mean()) if acc.any() else float("nan"),
        "accepted": int(acc.sum()),
    }


def review_evidence(probs: np.ndarray, y: np.ndarray, size: int, seed: int) -> Any:
    """A stratified review sample of a labeled drop (raylabel's allocation and strata),
    reviewed with the truth; design weights rescaled as `label` rescales them."""
    from raylabel.config import Config
    from raylabel.stats.sampling import allocate, confidence_bins, neyman_error_weights, stratum_key
    from raylabel.stats.thresholds import Evidence, review_weights

    edges = list(Config().review.bin_edges)
    pred = probs.argmax(1)
    conf = probs[np.arange(len(y)), pred]
    bins = confidence_bins(conf, edges)
    keys = np.array([stratum_key(str(p), int(b), edges) for p, b in zip(pred, bins, strict=True)])
    pops = {k: int((keys == k).sum()) for k in np.unique(keys)}
    alloc = allocate(pops, size, "error_weighted", 2, neyman_error_weights(pops))
    rng = np.random.default_rng(seed)
    chosen, weights = [], []
    for k, n_h in alloc.items():
        idx = np.flatnonzero(keys == k)
        take = rng.permutation(idx)[: min(n_h, len(idx))]
        chosen.extend(take.tolist())
        weights.extend([pops[k] / max(len(take), 1)] * len(take))
    ch = np.array(chosen, dtype=np.int64)
    w = review_weights(np.array(weights), ["night1"] * len(ch))
    return Evidence(pred[ch], conf[ch], pred[ch] == y[ch], w)


# --------------------------------------------------------------------------- one draw


def run_draw(job: tuple[int, list[int], argparse.Namespace, str | None]) -> list[dict[str, Any]]:
    import torch

    from raylabel.fit.data import stratified_split
    from raylabel.fit.folds import fold_assignment
    from raylabel.stats.calibration import fit_temperature, softmax
    from raylabel.stats.thresholds import Evidence

    draw, sizes, a, pre = job
    torch.set_num_threads(1)
    pool = make_pool(draw, max(sizes), a.drop, a.image_size)
    out = []
    for n in sizes:
        t0 = time.time()
        m = pool.seed_rank < n
        x, y = pool.seed_x[m], pool.seed_y[m]
        ids = [f"{draw}-{i}" for i in range(len(y))]
        res: dict[str, Any] = {"draw": draw, "per_class": n}
        dx, dy = pool.drop_x[1], pool.drop_y[1]

        def cal_probs(lg: np.ndarray, t: float) -> np.ndarray:
            return softmax(lg, t)

        # holdout, today's schedule
        is_val = stratified_split(ids, [str(v) for v in y], 0.2, draw)
        h0 = train(_config("flip", 8, 0, draw, pre), x[~is_val], y[~is_val], 0)
        lv = logits(h0, x[is_val])
        t_h0 = fit_temperature(lv, y[is_val])
        ev = Evidence.from_probs(cal_probs(lv, t_h0), y[is_val])
        p_drop = cal_probs(logits(h0, dx), t_h0)
        res["today"] = grade(p_drop, dy, old_rule(ev))
        res["sagemaker"] = grade(p_drop, dy, sagemaker_rule(ev))
        res["rule"] = grade(p_drop, dy, new_rule(ev))
        # holdout, min_steps schedule (default flips), then + the small-data augmentation
        for name, aug in (("min_steps", "flip"), ("augment", a.augment)):
            h1 = train(_config(aug, 8, a.min_steps, draw, pre), x[~is_val], y[~is_val], 0)
            lv = logits(h1, x[is_val])
            t_h1 = fit_temperature(lv, y[is_val])
            ev = Evidence.from_probs(cal_probs(lv, t_h1), y[is_val])
            res[name] = grade(cal_probs(logits(h1, dx), t_h1), dy, new_rule(ev))
        # cross-fitted
        fold = fold_assignment(ids, [str(v) for v in y], a.folds, draw)
        oof = np.zeros((len(y), N_CLASSES))
        drop_logits = []
        night1_logits = []
        cfg = _config(a.augment, 8, a.min_steps, draw, pre)
        for f in range(a.folds):
            mf = fold == f
            fm = train(cfg, x[~mf], y[~mf], f + 1)
            oof[mf] = logits(fm, x[mf])
            drop_logits.append(logits(fm, dx))
            night1_logits.append(logits(fm, pool.drop_x[0]))
        t_cf = fit_temperature(oof, y)
        ev = Evidence.from_probs(cal_probs(oof, t_cf), y)
        final = train(cfg, x, y, 0)
        p_final = cal_probs(logits(final, dx), t_cf)
        thr_cf = new_rule(ev)
        res["crossfit"] = grade(p_final, dy, thr_cf)
        p_ens = np.mean([cal_probs(lg, t_cf) for lg in drop_logits], axis=0)
        res["ensemble"] = grade(p_ens, dy, thr_cf)
        res["wilson"] = grade(p_final, dy, new_rule(ev, "wilson"))
        res["point"] = grade(p_final, dy, new_rule(ev, "point"))
        # night 2: the reviewed sample of night 1 joins the evidence
        p_n1 = cal_probs(logits(final, pool.drop_x[0]), t_cf)
        rev = review_evidence(p_n1, pool.drop_y[0], a.review_size, draw)
        res["reviews"] = grade(p_final, dy, new_rule(ev.concat(rev)))
        p_ens1 = np.mean([cal_probs(lg, t_cf) for lg in night1_logits], axis=0)
        rev_e = review_evidence(p_ens1, pool.drop_y[0], a.review_size, draw)
        res["ensemble_reviews"] = grade(p_ens, dy, new_rule(ev.concat(rev_e)))
        res["seconds"] = round(time.time() - t0, 1)
        print(json.dumps({k: v for k, v in res.items() if k in ("draw", "per_class", "seconds")}
                         | {k: round(v["coverage"], 3) for k, v in res.items()
                            if isinstance(v, dict)}), flush=True)  # fmt: skip
        out.append(res)
    return out


METHODS = ("today", "sagemaker", "rule", "min_steps", "augment", "crossfit", "ensemble", "wilson",
           "point", "reviews", "ensemble_reviews")  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'per class':>9} {'method':<17} {'draws':>5} {'accuracy':>8} {'prec mean':>9} "
        f"{'prec worst':>10} {'cov mean':>8} {'cov worst':>9} {'below target':>12}",
    ]
    for n in sorted({r["per_class"] for r in rows}):
        sub = [r for r in rows if r["per_class"] == n]
        for m in METHODS:
            g = [r[m] for r in sub if m in r]
            if not g:
                continue
            prec = np.array([v["precision"] for v in g])
            cov = np.array([v["coverage"] for v in g])
            acc = np.array([v["accuracy"] for v in g])
            has = ~np.isnan(prec)
            below = int((prec[has] < TARGET).sum())
            worst = f"{np.nanmin(prec):.3f}" if has.any() else "-"
            mean = f"{np.nanmean(prec):.3f}" if has.any() else "-"
            lines.append(
                f"{n:>9} {m:<17} {len(g):>5} {acc.mean():>8.3f} {mean:>9} {worst:>10} "
                f"{cov.mean():>8.3f} {cov.min():>9.3f} {below:>5} of {len(g):<3}"
            )
    return "\n".join(lines)


def main() -> None:
    a = _args()
    started = time.time()
    pre = pretrain(a)
    jobs = [(d, sorted(a.per_class), a, pre) for d in range(a.first_draw, a.first_draw + a.draws)]
    ctx = mp.get_context("spawn")
    with ctx.Pool(a.procs) as pool:
        rows = [r for part in pool.imap_unordered(run_draw, jobs) for r in part]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(a).items()}
    out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=1))
    print()
    print(f"target precision {TARGET}, confidence level {LEVEL}, {N_CLASSES} classes, "
          f"drop {a.drop} items; {a.draws} draws; {time.time() - started:.0f}s")  # fmt: skip
    print(table(rows))
    print(f"\nper-draw figures: {out}")


if __name__ == "__main__":
    main()
