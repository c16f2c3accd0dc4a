"""Seed audit against planted label flips: recall/precision, and accuracy with vs without.

    .venv/bin/python bench/seed_audit.py [--per-class 80] [--flip 0.05] [--folds 4] ...

Generates an image demo seed (+ a held-out drop with truth), flips an exact, deterministic
share of seed labels, runs `raylabel audit`, grades the flagged set against the flips, then
trains the same model twice (all seed items / without the flagged ones) and grades both on
the held-out truth. Prints every figure in one run, side by side.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="work dir (default: a temp dir)")
    p.add_argument("--per-class", type=int, default=80)
    p.add_argument("--classes", default="circle,square,triangle,cross")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--hard-fraction", type=float, default=0.05)
    p.add_argument("--n-test", type=int, default=400)
    p.add_argument("--flip", type=float, default=0.05)
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.004)
    p.add_argument("--method", default="low_self_confidence")
    p.add_argument("--augment", default="flip_rot90")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-cpus", type=int, default=2)
    return p.parse_args()


def _accuracy(model_dir: Path, drop_dir: Path, truth: Path, size: int) -> float:
    """Held-out accuracy of a published model (plain argmax), decoded here: the test set is
    a few hundred small images."""
    from raylabel.inputs.decode import decode_image
    from raylabel.models.predictor import Predictor

    pred = Predictor.from_dir(model_dir)
    rows = [r for r in csv.DictReader(truth.open()) if r["label"]]
    ok = 0
    for i in range(0, len(rows), 128):
        chunk = rows[i : i + 128]
        x = np.stack(
            [decode_image((drop_dir / r["item_id"]).read_bytes(), size, 10**8) for r in chunk]
        )
        labels = np.asarray(pred.card.classes)[pred.logits(x).argmax(1)]
        ok += int(sum(a == r["label"] for a, r in zip(labels, chunk, strict=True)))
    return ok / len(rows)


def _capture_probabilities() -> dict[str, Any]:
    """Keep the out-of-sample probabilities the audit hands to cleanlab, so every cleanlab
    method can be scored on the same fold models side by side (bench-only instrumentation)."""
    import raylabel.audit.stage as audit_module

    captured: dict[str, Any] = {}
    inner = audit_module.confident_learning

    def spy(cfg: Any, plan: Any, classes: list[str], probs: Any, oof_fold: Any) -> Any:
        captured["probs"], captured["classes"] = probs, classes
        captured["given"] = plan.listing.column("label").to_pylist()
        captured["ids"] = plan.listing.column("item_id").to_pylist()
        return inner(cfg, plan, classes, probs, oof_fold)

    audit_module.confident_learning = spy
    return captured


def _compare_methods(captured: dict[str, Any], flipped: set[str]) -> dict:
    """Recall and precision of each cleanlab filter on the same probabilities."""
    import numpy as np
    from cleanlab.filter import find_label_issues

    from raylabel.config import AUDIT_METHODS

    probs = np.asarray(captured["probs"], dtype=np.float64)
    index = {c: i for i, c in enumerate(captured["classes"])}
    y = np.array([index[g] for g in captured["given"]])
    ok = ~np.isnan(probs).any(axis=1)
    p = np.clip(probs[ok], 1e-12, None)
    p /= p.sum(axis=1, keepdims=True)
    ok_ids = [i for i, keep in zip(captured["ids"], ok, strict=True) if keep]
    out = {}
    for method in AUDIT_METHODS:
        flags = find_label_issues(y[ok], p, filter_by=method, n_jobs=1)
        found = {i for i, f in zip(ok_ids, flags, strict=True) if f}
        hit = len(found & flipped)
        out[method] = {
            "flagged": len(found),
            "recall": round(hit / max(len(flipped), 1), 3),
            "precision": round(hit / max(len(found), 1), 3),
        }
    return out


def main() -> None:
    import ray

    from raylabel.audit import audit, read_issues
    from raylabel.config import load_config
    from raylabel.demo.images import ImageDemoSpec, write_image_demo
    from raylabel.demo.noise import plant_label_flips
    from raylabel.io.storage import StorageOptions
    from raylabel.report.audit_page import render_page
    from raylabel.train import train

    a = _args()
    root = Path(a.out or tempfile.mkdtemp(prefix="raylabel-bench-audit-"))
    classes = tuple(a.classes.split(","))
    spec = ImageDemoSpec(
        n_seed_per_class=a.per_class,
        n_drop=a.n_test,
        image_size=a.image_size,
        hard_fraction=a.hard_fraction,
        seed=a.seed,
        classes=classes,
        n_bad_items=0,
        mixed_formats=False,
    )
    data = write_image_demo(root / "data", spec)
    manifest, flipped = plant_label_flips(data.seed_dir, root / "noisy_seed.csv", a.flip, a.seed)
    ray.init(
        address="local", num_cpus=a.num_cpus, include_dashboard=False, logging_level=logging.WARNING
    )
    base = [
        f"seed.path={manifest}",
        f"output.root={root / 'out'}",
        f"model.image_size={a.image_size}",
        f"train.epochs={a.epochs}",
        "train.min_steps=0",
        f"train.batch_size={a.batch_size}",
        f"train.lr={a.lr}",
        f"train.seed={a.seed}",
        f"train.augment={a.augment}",
        "train.num_workers=1",
        "train.use_feedback=false",
        f"audit.folds={a.folds}",
        f"audit.method={a.method}",
        "audit.reuse=true",
        "qc.min_support=5",
    ]
    captured = _capture_probabilities()
    t0 = time.time()
    res = audit(load_config([], [*base, "audit.reuse=false"]))
    t_audit = time.time() - t0
    flagged = set(res.flagged_ids)
    hit = len(flagged & flipped)
    recall = hit / max(len(flipped), 1)
    precision = hit / max(len(flagged), 1)
    figures: dict[str, Any] = {
        "seed_items": res.summary["counts"]["items"],
        "planted_flips": len(flipped),
        "flagged": len(flagged),
        "flagged_and_planted": hit,
        "recall": round(recall, 3),
        "precision": round(precision, 3),
        "oos_accuracy_vs_given": round(res.summary["oos_accuracy"], 3),
        "audit_s": round(t_audit, 1),
    }
    # the ranking as a review queue: how many of the top-|planted| ranked items are flips
    ranked = read_issues(res.audit_dir, StorageOptions())
    ids, ranks = ranked["item_id"].to_pylist(), ranked["rank"].to_pylist()
    top = {i for i, r in zip(ids, ranks, strict=True) if r <= len(flipped)}
    figures["flips_in_top_planted"] = len(top & flipped)
    figures["methods"] = _compare_methods(captured, flipped)
    accs: dict[str, float] = {}
    for name, extra in (
        ("all_items", []),
        ("without_flagged", ["train.exclude_label_issues=true"]),
    ):
        t = time.time()
        tr = train(load_config([], [*base, *extra]))
        accs[name] = _accuracy(Path(tr.model_uri), data.drop_dir, data.truth_path, a.image_size)
        figures[f"train_{name}_s"] = round(time.time() - t, 1)
        figures[f"excluded_{name}"] = int(tr.card.training.get("audit", {}).get("excluded", 0))
    figures["test_items"] = a.n_test
    figures["acc_all_items"] = round(accs["all_items"], 4)
    figures["acc_without_flagged"] = round(accs["without_flagged"], 4)
    figures["acc_delta"] = round(accs["without_flagged"] - accs["all_items"], 4)
    figures["target_met"] = bool(recall >= 0.8 and precision >= 0.8 and figures["acc_delta"] >= 0)
    known = {k: figures[k] for k in ("planted_flips", "flagged_and_planted", "recall", "precision")}
    known |= {"held-out accuracy, all items": figures["acc_all_items"]}
    known |= {"held-out accuracy, without flagged": figures["acc_without_flagged"]}
    page = render_page({**res.summary, "known_answer": known})
    (root / "audit_report_with_truth.html").write_text(page)
    print(json.dumps({"args": vars(a), "figures": figures}, indent=2))
    print(
        f"planted {len(flipped)} flips in {figures['seed_items']} items; flagged {len(flagged)}; "
        f"recall {recall:.3f}, precision {precision:.3f}; held-out accuracy "
        f"{accs['all_items']:.4f} (all) vs {accs['without_flagged']:.4f} (without flagged)"
    )
    for method, m in figures["methods"].items():
        print(
            f"  {method:<22} flagged {m['flagged']:>4}  recall {m['recall']:.3f}  "
            f"precision {m['precision']:.3f}"
        )
    print(
        f"audit report: {res.audit_dir}/report.html; "
        f"with truth: {root}/audit_report_with_truth.html"
    )


if __name__ == "__main__":
    main()
