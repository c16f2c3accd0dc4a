"""GPU labeling vs. its ceilings: model-only, CPU decode and device decode (one script,
< 10 minutes).

    python bench/gpu.py [--n 50000] [--arch resnet50] [--image-size 224] [--out DIR]
    python bench/gpu.py --n 256 --arch small_cnn --image-size 64 --batch-size 64   # CPU smoke

1. Writes N JPEG images (a pool of 512 distinct rendered shapes at 256 px, cycled) packed
   in Parquet (``item_id``, ``bytes``).
2. Model-only ceiling: the same architecture, bf16 autocast, channels_last, batch
   ``--batch-size`` of synthetic uint8 tensors already on the GPU: items/s of the forward
   pass alone (on CPU: float32, same batch).
3. Decode-only ceiling: every CPU core decoding the Parquet's JPEGs to
   ``--image-size`` with raylabel's own decoder (a process pool): items/s.
4. Device-decode ceiling: raylabel's device decoder (infer.decode_on_device: batched
   ``decode_jpeg`` on the GPU, nvjpeg, then the resize there) over the Parquet's JPEGs held
   in memory, batches of ``--batch-size``, for up to ``--model-seconds``: items/s (on CPU:
   torchvision's CPU decoder, one thread).
5. raylabel: an (untrained, weights do not change the cost) model of that architecture
   published the way ``train`` publishes one, then ``raylabel.label.label(cfg)`` with
   ``infer.use_gpu`` when a GPU is present and ``infer.decode_on_device=never`` (CPU decode
   tasks), and again with ``infer.decode_on_device=always`` when a GPU is present: items/s
   of the pipeline phase and end to end.

Prints the rates, raylabel / min(model-only, decode-only) and, on a GPU, raylabel with device
decode / min(model-only, device-decode), against the target >= 0.8. Results go to
``--out/results/gpu.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import transformer_models as tm  # the bench's own helper beside it

POOL = 512
ROWS_PER_FILE = 10_000


def write_drop(out: Path, n: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raylabel.demo.images import DEFAULT_CLASSES, render_shape

    drop = out / f"gpu-drop-{n}"
    if drop.is_dir():
        return drop
    tmp = drop.with_name(drop.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    pool = []
    for i in range(POOL):
        rng = np.random.default_rng([7, i])
        img = render_shape(DEFAULT_CLASSES[i % len(DEFAULT_CLASSES)], rng, 256, hard=False)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        pool.append(buf.getvalue())
    for f, lo in enumerate(range(0, n, ROWS_PER_FILE)):
        idx = range(lo, min(n, lo + ROWS_PER_FILE))
        pq.write_table(
            pa.table(
                {
                    "item_id": [f"img-{i:08d}" for i in idx],
                    "bytes": pa.array([pool[i % POOL] for i in idx], pa.binary()),
                }
            ),
            tmp / f"part-{f:04d}.parquet",
            row_group_size=2_000,
        )
    tmp.rename(drop)
    return drop


def _build(arch: str, size: int, n_classes: int, tiny: bool) -> Any:
    """torchvision/raylabel archs by name; the transformers ones (vit_b16, clip_b32) from
    bench/transformer_models.py."""
    if arch in tm.ARCHS:
        return tm.build(arch, size, n_classes, tiny)
    from raylabel.models.image import build_image_model

    return build_image_model(arch, n_classes)


def model_only(arch: str, size: int, batch: int, seconds: float, tiny: bool = False) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    model = _build(arch, size, 6, tiny).to(device).eval()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    x = torch.randint(0, 255, (batch, 3, size, size), dtype=torch.uint8, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with (
            torch.inference_mode(),
            torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda),
        ):
            model(x)

    for _ in range(3):
        step()
    if cuda:
        torch.cuda.synchronize()
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        step()
        n += batch
    if cuda:
        torch.cuda.synchronize()
    return {"items_per_s": n / (time.perf_counter() - t0), "device": device}


def _decode_file(args: tuple[str, int]) -> int:
    import pyarrow.parquet as pq

    from raylabel.inputs.decode import decode_image

    path, size = args
    n = 0
    for b in pq.read_table(path, columns=["bytes"]).column("bytes").to_pylist():
        decode_image(b, size, 10**9)
        n += 1
    return n


def decode_only(drop: Path, size: int) -> dict:
    files = sorted(str(p) for p in drop.glob("*.parquet"))
    cores = os.cpu_count() or 1
    t0 = time.perf_counter()
    with ProcessPoolExecutor(cores) as ex:
        n = sum(ex.map(_decode_file, [(f, size) for f in files]))
    return {"items_per_s": n / (time.perf_counter() - t0), "cores": cores}


def device_decode_only(drop: Path, size: int, batch: int, seconds: float) -> dict:
    """raylabel's device decoder alone on the drop's payloads (already in memory, as the
    actors get them), cut into inference batches; a GPU when there is one."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from raylabel.inputs.decode import FetchDecode
    from raylabel.inputs.device_decode import DeviceDecode
    from raylabel.io.storage import StorageOptions

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    table = pa.concat_tables(pq.read_table(p) for p in sorted(drop.glob("*.parquet")))
    table = table.append_column("uri", table.column("item_id"))
    decode = DeviceDecode(FetchDecode(StorageOptions(), size, 10**9), device)
    decode(table.slice(0, batch))  # warm-up: nvjpeg handles, kernels
    if cuda:
        torch.cuda.synchronize()
    t0, n, errors = time.perf_counter(), 0, 0
    for lo in range(0, table.num_rows, batch):
        rows, _ = decode(table.slice(lo, batch))
        n += rows.num_rows
        errors += rows.num_rows - rows.column("error").null_count
        if time.perf_counter() - t0 > seconds:
            break
    if cuda:
        torch.cuda.synchronize()
    return {"items_per_s": n / (time.perf_counter() - t0), "device": device, "errors": errors}


def publish(out: Path, arch: str, size: int, tiny: bool = False) -> tuple[str, str]:
    from raylabel.io import layout
    from raylabel.io.storage import StorageOptions
    from raylabel.models.card import ModelCard, save_model_dir

    classes = ["circle", "cross", "hexagon", "square", "star", "triangle"]
    root = out / f"gpu-output-{arch}-{size}{'-tiny' if tiny else ''}"
    version = layout.latest_model(str(root), StorageOptions())
    if version:
        return str(root), version
    version = layout.new_id("m-")
    card = ModelCard(
        model_version=version,
        arch=arch,
        modality="image",
        classes=classes,
        preprocessing={"image_size": size},
        thresholds={c: 0.9 for c in classes},
        threshold_source={c: "class" for c in classes},
        created_at=layout.utc_now().isoformat(),
    )
    staging = out / "gpu-staging" / version
    if arch in tm.ARCHS:
        tm.save(arch, _build(arch, size, len(classes), tiny), card, staging)
    else:
        save_model_dir(_build(arch, size, len(classes), tiny), card, staging)
    layout.publish_model(staging, str(root), version, StorageOptions())
    return str(root), version


def raylabel_rate(
    drop: Path, root: str, version: str, args: argparse.Namespace, on_device: str = "never"
) -> dict:
    import ray
    import torch

    from raylabel.config import load_config
    from raylabel.label import label

    gpu = torch.cuda.is_available()
    cfg = load_config(
        [],
        [
            f"drop.path={drop}",
            "drop.name=gpu-bench",
            f"output.root={root}",
            f"run.model_version={version}",
            "run.force=true",
            f"infer.use_gpu={str(gpu).lower()}",
            f"infer.batch_size={args.batch_size}",
            f"infer.decode_on_device={on_device}",
        ],
    )
    t0 = time.time()
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    try:
        result = label(cfg)
    finally:
        ray.shutdown()
    s = result.summary
    return {
        "items_per_s": s["throughput_items_per_s"],
        "end_to_end_items_per_s": args.n / (time.time() - t0),
        "pool": s["pool"],
        "durations_s": s["durations_s"],
        "gpu": gpu,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument(
        "--arch",
        default="resnet50",
        help="small_cnn | resnet18 | resnet50 | mobilenet_v3_small | vit_b16 (model.arch=hf) "
        "| clip_b32 (model.arch=clip)",
    )
    p.add_argument("--tiny", action="store_true", help="transformers archs: tiny configs (smoke)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--model-seconds", type=float, default=20.0)
    p.add_argument("--out", type=Path, default=Path("raylabel-bench"))
    args = p.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    drop = write_drop(out, args.n)
    print(f"drop: {args.n:,} JPEGs in {time.time() - t0:.1f}s", flush=True)
    m = model_only(args.arch, args.image_size, args.batch_size, args.model_seconds, args.tiny)
    print(f"model-only ({m['device']}): {m['items_per_s']:,.0f} items/s", flush=True)
    d = decode_only(drop, args.image_size)
    print(f"decode-only ({d['cores']} cores): {d['items_per_s']:,.0f} items/s", flush=True)
    dd = device_decode_only(drop, args.image_size, args.batch_size, args.model_seconds)
    print(f"device-decode ({dd['device']}): {dd['items_per_s']:,.0f} items/s", flush=True)
    root, version = publish(out, args.arch, args.image_size, args.tiny)
    r = raylabel_rate(drop, root, version, args)
    ratio = r["items_per_s"] / min(m["items_per_s"], d["items_per_s"])
    print(
        f"raylabel label ({'GPU' if r['gpu'] else 'CPU'}, CPU decode): {r['items_per_s']:,.0f} "
        f"items/s (pipeline), {r['end_to_end_items_per_s']:,.0f} end to end; pool {r['pool']}"
    )
    verdict = "met" if ratio >= 0.8 else "NOT met"
    print(f"raylabel / min(model-only, decode-only) = {ratio:.2f} (target >= 0.8: {verdict})")
    res = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "model_only": m,
        "decode_only": d,
        "device_decode_only": dd,
        "raylabel": r,
        "ratio": ratio,
    }
    if r["gpu"]:
        rd = raylabel_rate(drop, root, version, args, on_device="always")
        ratio_d = rd["items_per_s"] / min(m["items_per_s"], dd["items_per_s"])
        print(
            f"raylabel label (GPU, device decode): {rd['items_per_s']:,.0f} items/s "
            f"(pipeline), {rd['end_to_end_items_per_s']:,.0f} end to end; pool {rd['pool']}"
        )
        verdict = "met" if ratio_d >= 0.8 else "NOT met"
        print(
            f"raylabel device decode / min(model-only, device-decode) = {ratio_d:.2f} "
            f"(target >= 0.8: {verdict})"
        )
        res.update(raylabel_device_decode=rd, ratio_device_decode=ratio_d)
    else:
        print("raylabel label (device decode): skipped, no GPU (the CPU tests cover that path)")
    (out / "results").mkdir(exist_ok=True)
    (out / "results" / "gpu.json").write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
