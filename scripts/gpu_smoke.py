"""GPU smoke check of the model code paths (no Ray needed): bf16 autocast inference through
the real Predictor + InferenceActor for an image model (resnet50) and a text model (tiny
BERT), and a training step of each on the GPU. Prints what it checked and throughputs.

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
        text_check(Path(d))
    print("GPU smoke: all checks passed")


if __name__ == "__main__":
    main()
