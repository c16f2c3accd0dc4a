"""GPU smoke check of the model code paths (no Ray needed): bf16 autocast inference through
the real Predictor + InferenceActor for an image model (resnet50), the transformers image
families (ViT-B/16 as model.arch=hf, CLIP ViT-B/32 zero-shot as model.arch=clip) and a text
model (tiny BERT); a training step of each trainable one on the GPU, and head-only training
on features cached on the GPU (train.embedding_cache). Prints what it checked and
throughputs.

    python3 scripts/gpu_smoke.py     # on a machine with CUDA
"""

from __future__ import annotations

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


def main() -> None:
    assert torch.cuda.is_available(), "no CUDA device"
    print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__)
    with tempfile.TemporaryDirectory() as d:
        image_check(Path(d))
        for arch in ("vit_b16", "clip_b32"):
            transformer_check(Path(d), arch)
        text_check(Path(d))
    print("GPU smoke: all checks passed")


if __name__ == "__main__":
    main()
