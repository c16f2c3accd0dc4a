"""The workload profiles of bench/label_throughput.py: what each drop holds, which model
labels it, and where both are cached under the bench's ``--out``.

- ``png32_small_cnn``: 32-px PNGs, a trained ``small_cnn`` at 32 px. The original workload:
  its drop and model are bench/streaming.py's own caches (``drops/n<N>-px32``,
  ``output-px32``), so existing caches stay valid and the numbers stay comparable.
- ``jpeg224_small_cnn``: decode-bound. 224-px RGB JPEGs (quality 90) labeled by a
  ``small_cnn`` trained at ``model.image_size=64`` (trained like streaming's
  ``ensure_model``), so decoding and resizing a 224-px JPEG dominates the model.
- ``png64_resnet18``: model-bound. 64-px PNGs labeled by a ``resnet18`` at 64 px, randomly
  initialised (weights do not change the cost) and published the way ``train`` publishes
  a model (same card preprocessing), so ``raylabel label`` loads it as any other.

Every profile but png32 lives under ``--out/profiles/<name>/``.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streaming

LEGACY = "png32_small_cnn"
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Profile:
    """One workload: the drop's format and size, and the model that labels it."""

    name: str
    what: str
    fmt: str  # "PNG" | "JPEG"
    drop_px: int
    arch: str
    model_px: int
    trained: bool  # False: random init (the arch's cost does not depend on its weights)


_ALL = (
    Profile(LEGACY, "32-px PNG, small_cnn @32", "PNG", 32, "small_cnn", 32, trained=True),
    Profile(
        "jpeg224_small_cnn",
        "224-px JPEG q90, small_cnn @64 (decode-bound)",
        "JPEG",
        224,
        "small_cnn",
        64,
        trained=True,
    ),
    Profile(
        "png64_resnet18",
        "64-px PNG, resnet18 @64 (model-bound)",
        "PNG",
        64,
        "resnet18",
        64,
        trained=False,
    ),
)
PROFILES: dict[str, Profile] = {p.name: p for p in _ALL}


def base_dir(out: Path, p: Profile) -> Path:
    """png32 keeps streaming.py's cache layout at the top of ``--out``; others get their own."""
    return out if p.name == LEGACY else out / "profiles" / p.name


# --------------------------------------------------------------------------- drops


def drop_path(out: Path, p: Profile, n: int) -> Path:
    """Where the profile's drop of n items is cached (PNG drops: streaming's layout)."""
    if p.fmt == "PNG":
        return streaming.drop_dir(base_dir(out, p), n, p.drop_px)
    return base_dir(out, p) / "drops" / f"n{n}-jpeg{p.drop_px}-q{JPEG_QUALITY}"


def _jpeg_pool(px: int, size: int, seed: int = 0) -> list[bytes]:
    """`size` distinct RGB JPEG-encoded shapes (15% hard), rendered at px, deterministic."""
    from raylabel.demo.images import DEFAULT_CLASSES, render_shape

    pool = []
    for i in range(size):
        rng = np.random.default_rng([seed, i])
        shape = DEFAULT_CLASSES[i % len(DEFAULT_CLASSES)]
        img = render_shape(shape, rng, px, hard=bool(rng.random() < 0.15)).convert("RGB")
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=JPEG_QUALITY)
        pool.append(buf.getvalue())
    return pool


def _write_packed(final: Path, n: int, pool: list[bytes]) -> None:
    """N items cycling through `pool`, packed in Parquet exactly as streaming's drops are
    (same file and row-group sizes, same item ids); the directory appears only complete."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    schema = pa.schema([("item_id", pa.string()), ("bytes", pa.binary())])
    width = max(7, len(str(n)))
    n_files = -(-n // streaming.ROWS_PER_FILE)
    for f in range(n_files):
        lo, hi = f * streaming.ROWS_PER_FILE, min(n, (f + 1) * streaming.ROWS_PER_FILE)
        with pq.ParquetWriter(tmp / f"part-{f:05d}.parquet", schema) as writer:
            for start in range(lo, hi, streaming.ROW_GROUP_ROWS):
                idx = range(start, min(hi, start + streaming.ROW_GROUP_ROWS))
                batch = pa.table(
                    {
                        "item_id": pa.array([f"item-{i + 1:0{width}d}" for i in idx], pa.string()),
                        "bytes": pa.array([pool[i % len(pool)] for i in idx], pa.binary()),
                    },
                    schema=schema,
                )
                writer.write_table(batch, row_group_size=streaming.ROW_GROUP_ROWS)
        print(f"  drop n={n}: wrote file {f + 1}/{n_files}", flush=True)
    os.replace(tmp, final)


def ensure_drop(out: Path, p: Profile, n: int) -> tuple[Path, float]:
    """The profile's cached drop of n items, written if missing; (dir, seconds spent)."""
    if p.fmt == "PNG":
        return streaming.ensure_drop(base_dir(out, p), n, p.drop_px)
    final = drop_path(out, p, n)
    if final.is_dir():
        return final, 0.0
    started = time.time()
    _write_packed(final, n, _jpeg_pool(p.drop_px, min(streaming.POOL_SIZE, n)))
    return final, time.time() - started


# --------------------------------------------------------------------------- models


def model_root(out: Path, p: Profile, untrained: bool = False) -> Path:
    """The output root holding the profile's model (and C's runs). ``untrained`` (smoke runs)
    keeps random stand-ins for trained models apart, so a real cache never picks one up."""
    root = streaming.output_root(base_dir(out, p), p.model_px)
    return root.with_name(root.name + "-untrained") if untrained and p.trained else root


def publish_untrained(root: Path, p: Profile) -> str:
    """A random-init model of the profile's arch, published as ``train`` publishes one: the
    card's preprocessing comes from the model family, as ``make_card`` records it."""
    from raylabel.config import load_config
    from raylabel.demo.images import DEFAULT_CLASSES
    from raylabel.io import layout
    from raylabel.io.storage import StorageOptions
    from raylabel.models.card import ModelCard, save_model_dir
    from raylabel.models.image import build_image_model
    from raylabel.models.registry import family_for

    cfg = load_config([], [f"model.arch={p.arch}", f"model.image_size={p.model_px}"])
    classes = list(DEFAULT_CLASSES)
    version = layout.new_id("m-")
    card = ModelCard(
        model_version=version,
        arch=p.arch,
        modality="image",
        classes=classes,
        preprocessing=family_for("image", p.arch).card_preprocessing(cfg),
        thresholds={c: 0.9 for c in classes},
        threshold_source={c: "class" for c in classes},
        created_at=layout.utc_now().isoformat(),
    )
    staging = root.parent / f"{root.name}-staging" / version
    save_model_dir(build_image_model(p.arch, len(classes)), card, staging)
    layout.publish_model(staging, str(root), version, StorageOptions())
    shutil.rmtree(staging.parent, ignore_errors=True)
    return version


def ensure_model(out: Path, p: Profile, num_cpus: int, untrained: bool) -> tuple[str, float]:
    """The profile's model (made once): a small_cnn trained as streaming's ``ensure_model``
    trains one, or a published random init; returns (version, seconds spent)."""
    from raylabel.io import layout
    from raylabel.io.storage import StorageOptions

    root = model_root(out, p, untrained)
    version = layout.latest_model(str(root), StorageOptions())
    if version:
        return version, 0.0
    started = time.time()
    if p.trained and not untrained:
        version, _ = streaming.ensure_model(base_dir(out, p), p.model_px, num_cpus)
    else:
        version = publish_untrained(root, p)
    return version, time.time() - started
