"""GPU smoke check of the model code paths (no Ray needed): bf16 autocast inference through
the real Predictor + InferenceActor for an image model (resnet50), the transformers image
families (ViT-B/16 as model.arch=hf, CLIP ViT-B/32 zero-shot as model.arch=clip) and a text
model (tiny BERT); a training step of each trainable one on the GPU, and head-only training
on features cached on the GPU (train.embedding_cache); the device decoder
(infer.decode_on_device) against the CPU decoder. Prints what it checked and throughputs.

    python3 scripts/gpu_smoke.py                # on a machine with CUDA
    python3 scripts/gpu_smoke.py --device cpu   # the device decoder's check alone, on CPU
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from raylabel.label.actor import InferenceActor
from raylabel.models.card import ModelCard, save_model_dir
from raylabel.models.image import build_image_model
from raylabel.models.predictor import Predictor


def image_check(tmp: Path) -> None:
    classes = [f"c{i}" for i in range(10)]
    card = ModelCard(
        "m-gpu",
        "resnet50",
        "image",
        classes,
        {"image_size": 224},
        thresholds={c: 0.5 for c in classes},
    )
    save_model_dir(build_image_model("resnet50", len(classes)), card, tmp / "img")
    pred = Predictor.from_dir(tmp / "img", device="cuda")
    pred.model = pred.model.to(memory_format=torch.channels_last)
    actor = InferenceActor(lambda: pred, run_id="r", drop="d")
    n = 512
    batch = {
        "item_id": np.array([f"i{i}" for i in range(n)], dtype=object),
        "uri": np.array([f"u{i}" for i in range(n)], dtype=object),
        "pixels": np.random.default_rng(0).integers(0, 255, (n, 3, 224, 224), dtype=np.uint8),
        "error": np.array([None] * n, dtype=object),
        "error_stage": np.array([None] * n, dtype=object),
    }
    actor(batch)  # warm-up
    torch.cuda.synchronize()
    t = time.time()
    for _ in range(5):
        out = actor(batch)
    torch.cuda.synchronize()
    rate = 5 * n / (time.time() - t)
    assert out.num_rows == n and out.column("label").null_count == 0
    cpu_logits = Predictor.from_dir(tmp / "img", device="cpu").logits(batch["pixels"][:8])
    gpu_logits = pred.logits(batch["pixels"][:8])
    agree = float((cpu_logits.argmax(1) == gpu_logits.argmax(1)).mean())
    print(
        f"image: resnet50 bf16 actor path {rate:.0f} items/s (uint8 from host, batch {n}); "
        f"cpu-vs-gpu top-1 agreement {agree:.2f}"
    )
    model = build_image_model("resnet50", len(classes)).cuda()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.from_numpy(batch["pixels"][:64]).cuda()
    y = torch.randint(0, 10, (64,), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    print(f"image: one GPU training step ok (loss {loss.item():.3f})")


def transformer_check(tmp: Path, arch: str, device: str = "cuda", tiny: bool = False) -> None:
    """A published ViT / CLIP model through the bf16 actor path, CPU agreement, and
    frozen-body features cached on the device with a head step on them (`tiny` and
    `device="cpu"`: the same code, checked without a GPU)."""
    import transformer_models as tm

    from raylabel.models.head_task import head_inputs, head_module

    classes = [f"c{i}" for i in range(10)]
    size = 32 if tiny else 224
    card = ModelCard("m-" + arch, arch, "image", classes, {"image_size": size},
                     thresholds={c: 0.5 for c in classes})  # fmt: skip
    model = tm.build(arch, size, len(classes), tiny)
    tm.save(arch, model, card, tmp / arch)
    pred = Predictor.from_dir(tmp / arch, device=device)
    actor = InferenceActor(lambda: pred, run_id="r", drop="d")
    n = 256
    batch = _image_batch(n, size)
    actor(batch)  # warm-up
    _sync(device)
    t = time.time()
    for _ in range(3):
        out = actor(batch)
    _sync(device)
    rate = 3 * n / (time.time() - t)
    assert out.num_rows == n and out.column("label").null_count == 0
    cpu_logits = Predictor.from_dir(tmp / arch, device="cpu").logits(batch["pixels"][:8])
    agree = float((cpu_logits.argmax(1) == pred.logits(batch["pixels"][:8]).argmax(1)).mean())
    print(
        f"{arch}: bf16 actor path {rate:.0f} items/s; cpu-vs-{device} top-1 agreement {agree:.2f}"
    )

    class Frozen:  # the frozen task's two attributes the feature pass reads
        head = "backbone.classifier."

        def __init__(self, model: torch.nn.Module) -> None:
            self.model = model

    frozen = Frozen(model.to(device).eval())
    feats = head_inputs(frozen, batch["pixels"][:64], torch.device(device))
    head = head_module(frozen)
    opt = torch.optim.AdamW(head.parameters(), 1e-3)
    y = torch.zeros(64, dtype=torch.long, device=device)
    loss = torch.nn.functional.cross_entropy(head(torch.from_numpy(feats).to(device)), y)
    loss.backward()
    opt.step()
    print(f"{arch}: features cached on {device} {feats.shape}, head step ok ({loss.item():.3f})")


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _image_batch(n: int, size: int = 224) -> dict:
    return {
        "item_id": np.array([f"i{i}" for i in range(n)], dtype=object),
        "uri": np.array([f"u{i}" for i in range(n)], dtype=object),
        "pixels": np.random.default_rng(0).integers(0, 255, (n, 3, size, size), dtype=np.uint8),
        "error": np.array([None] * n, dtype=object),
        "error_stage": np.array([None] * n, dtype=object),
    }


def text_check(tmp: Path) -> None:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from raylabel.models.batches import pad
    from raylabel.models.hf_text import build_text_model

    words = [f"w{i}" for i in range(200)]
    base = tmp / "bert"
    base.mkdir()
    (base / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])
    )
    tok = BertTokenizerFast(vocab_file=str(base / "vocab.txt"))
    tok.save_pretrained(str(base))
    BertModel(
        BertConfig(
            vocab_size=205,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
        )
    ).save_pretrained(str(base), safe_serialization=True)
    classes = ["a", "b", "c"]
    model = build_text_model(str(base), classes).cuda()
    ids = [
        tok(" ".join(np.random.default_rng(i).choice(words, 20)))["input_ids"] for i in range(32)
    ]
    x, m = pad(ids, 0)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    out = model(input_ids=torch.from_numpy(x).cuda(), attention_mask=torch.from_numpy(m).cuda())
    loss = torch.nn.functional.cross_entropy(
        out.logits, torch.zeros(32, dtype=torch.long, device="cuda")
    )
    loss.backward()
    opt.step()
    card = ModelCard("m-text", "hf", "text", classes, {"max_length": 64})
    out_dir = tmp / "textmodel"
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tok.save_pretrained(str(out_dir))
    import json

    from raylabel.models.card import sha256_file

    card.weights_sha256 = sha256_file(out_dir / "model.safetensors")
    (out_dir / "model_card.json").write_text(json.dumps(card.to_json()))
    pred = Predictor.from_dir(out_dir, device="cuda")
    logits = pred.text_logits([np.asarray(s) for s in ids])
    assert logits.shape == (32, 3) and np.isfinite(logits).all()
    print(f"text: tiny BERT GPU training step ok (loss {loss.item():.3f}); bf16 inference ok")


def _decode_items() -> tuple[list[str], list[bytes]]:
    """JPEGs the device decodes (sizes, grey, progressive) and items it hands to the CPU."""
    from PIL import Image

    from raylabel.demo.images import DEFAULT_CLASSES, render_shape

    def enc(img: Image.Image, fmt: str = "JPEG", **kw: object) -> bytes:
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        return buf.getvalue()

    names, items = [], []
    for i, (w, h) in enumerate([(256, 256), (640, 480), (1000, 700), (37, 53), (300, 200)]):
        img = render_shape(DEFAULT_CLASSES[i % 6], np.random.default_rng(i), max(w, h), False)
        names.append(f"jpeg-{w}x{h}")
        items.append(enc(img.resize((w, h)), quality=90))
    grey = np.random.default_rng(0).integers(0, 255, (60, 80), dtype=np.uint8)
    names += ["jpeg-grey", "jpeg-progressive", "png", "jpeg-oversized", "jpeg-truncated"]
    items += [
        enc(Image.fromarray(grey, "L")),
        enc(
            render_shape(DEFAULT_CLASSES[0], np.random.default_rng(9), 256, False), progressive=True
        ),
        enc(render_shape(DEFAULT_CLASSES[1], np.random.default_rng(8), 64, False), "PNG"),
        enc(render_shape(DEFAULT_CLASSES[2], np.random.default_rng(7), 1200, False)),
        items[0][: len(items[0]) // 2],
    ]
    corrupt = bytearray(items[0])
    for k in range(corrupt.index(b"\xff\xda") + 20, len(corrupt) - 10, 7):
        corrupt[k] = 0xFF
    return [*names, "jpeg-corrupt"], [*items, bytes(corrupt)]


def device_decode_check(device: str) -> None:
    """The device decoder against the CPU decoder (Pillow), item by item: same error rows,
    pixels within the tolerance the CPU tests measured (resize and IDCT differ), then its
    batched throughput on 256 px JPEGs."""
    import pyarrow as pa

    from raylabel.inputs.decode import FetchDecode
    from raylabel.inputs.device_decode import DeviceDecode
    from raylabel.io.storage import StorageOptions

    names, items = _decode_items()
    batch = pa.table({"item_id": names, "uri": names, "bytes": items})
    worst = {}
    for size, crop in [(224, None), (224, 0.875), (64, None)]:
        fetch = FetchDecode(StorageOptions(), size, max_pixels=1000 * 1000, crop_fraction=crop)
        payloads, _, _ = fetch.read(batch)
        want = [fetch.decode_one(p) for p in payloads]  # the CPU path, no Ray needed
        rows, pixels = DeviceDecode(fetch, device)(batch)
        assert pixels.device.type == device and pixels.dtype == torch.uint8
        got_err = rows.column("error").to_pylist()
        for name, (arr, err), g_err, px in zip(
            names, want, got_err, pixels.cpu().numpy(), strict=True
        ):
            if name == "jpeg-corrupt" and err and not g_err:
                print(f"decode: {name} decoded on {device}, the CPU decoder refuses it ({err})")
                continue
            assert (err is None) == (g_err is None), (name, err, g_err)
            if arr is not None:
                d = float(np.abs(arr.astype(np.float64) - px.astype(np.float64)).mean() / 255)
                worst[name] = max(worst.get(name, 0.0), d)
    print(
        "decode: mean |device - cpu| per image, [0,1]:", {k: round(v, 4) for k, v in worst.items()}
    )
    assert max(worst.values()) < 0.03, worst
    fetch = FetchDecode(StorageOptions(), 224, 10**9)
    many = pa.table({"item_id": ["x"] * 256, "uri": ["x"] * 256, "bytes": [items[0]] * 256})
    decode = DeviceDecode(fetch, device)
    decode(many)
    _sync(device)
    t = time.time()
    for _ in range(5):
        decode(many)
    _sync(device)
    rate = 5 * 256 / (time.time() - t)
    print(f"decode: device decoder on {device}, 256 px JPEG -> 224, batch 256: {rate:.0f} items/s")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    if p.parse_args(argv).device == "cpu":
        device_decode_check("cpu")
        print("CPU smoke of the device decoder: passed")
        return
    assert torch.cuda.is_available(), "no CUDA device"
    print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__)
    device_decode_check("cuda")
    with tempfile.TemporaryDirectory() as d:
        image_check(Path(d))
        for arch in ("vit_b16", "clip_b32"):
            transformer_check(Path(d), arch)
        text_check(Path(d))
    print("GPU smoke: all checks passed")


if __name__ == "__main__":
    main()
