"""Drift watch on demo drops: an unshifted drop passes, a planted class-mix shift alerts.

    python bench/drift_demo.py [--out DIR] [--n 600]

Trains a small_cnn on the image demo's seed (in-process, as bench/active_learning.py),
publishes it, then labels three demo drops with the real label stage, in this order:

- ``base``: uniform class mix;
- ``clean``: uniform class mix, other images (baseline: ``base``);
- ``shifted``: class weights 4 : 1 : 1 : 0.25 : 1 (baseline: ``clean``, the newest run of
  the same model).

and prints each run's drift verdict with the PSI of the class mix and of the confidence
histogram, the chi-square p-value and the error-share change.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from active_learning import CLASSES, decode_dir, publish, start_ray, train_model  # noqa: E402

from raylabel.demo.images import ImageDemoSpec, write_image_demo  # noqa: E402

SHIFT = (4.0, 1.0, 1.0, 0.25, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/raylabel-bench-drift"))
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--seed-per-class", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--size", type=int, default=32)
    args = ap.parse_args()
    import ray
    import torch

    from raylabel.config import load_config
    from raylabel.label import label

    torch.set_num_threads(2)
    out = args.out.resolve()
    classes = sorted(CLASSES)
    spec = ImageDemoSpec(
        n_seed_per_class=args.seed_per_class,
        n_drop=args.n,
        image_size=args.size,
        classes=CLASSES,
        n_bad_items=0,
        class_weights=(1.0,) * len(CLASSES),
        seed=20,
    )
    drops = {
        "base": spec,
        "clean": dataclasses.replace(spec, seed=21),
        "shifted": dataclasses.replace(spec, seed=22, class_weights=SHIFT),
    }
    paths = {name: write_image_demo(out / name, s) for name, s in drops.items()}
    seed_files = sorted(paths["base"].seed_dir.glob("*/*.png"))
    x = decode_dir(seed_files, args.size)
    y = np.array([classes.index(f.parent.name) for f in seed_files])
    version = publish(train_model(x, y, len(classes), args.epochs, seed=0), out, classes, args.size)
    start_ray()
    print("\n== drift watch on demo drops ==")
    print(
        f"model small_cnn trained on {len(x)} seed items; drops of {args.n} items; planted "
        f"shift: true class weights {dict(zip(CLASSES, SHIFT, strict=True))}"
    )
    print(
        "| drop | baseline | verdict | class-mix PSI | chi2 p | confidence PSI | KS | "
        "error share | label s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, p in paths.items():
        t0 = time.time()
        cfg = load_config(
            [],
            [
                f"drop.path={p.drop_dir}",
                f"drop.name={name}",
                f"output.root={out / 'output'}",
                f"run.model_version={version}",
                "run.force=true",
                "review.size=50",
                "review.uncertain_size=50",
                "infer.batch_size=128",
            ],
        )
        d = label(cfg).summary["drift"]
        took = time.time() - t0
        mix, conf, err = d.get("class_mix", {}), d.get("confidence", {}), d.get("error_share", {})
        base = d.get("baseline", {}).get("drop", "-")

        def f(v: object, fmt: str = ".3f") -> str:
            return "-" if v is None else format(v, fmt)

        print(
            f"| {name} | {base} | {d['verdict']} | {f(mix.get('psi'))} | "
            f"{f(mix.get('chi2_p'), '.2g')} | {f(conf.get('psi'))} | {f(conf.get('ks'))} | "
            f"{f(err.get('increase'), '+.3f')} | {took:.0f} |"
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
