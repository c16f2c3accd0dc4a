"""Issue #17 item 5: `model.arch=clip` through the real stages, offline: a tiny random CLIP
(model, tokenizer and image processor saved by the test) labels a drop from class prompts
with nothing trained; the seed only calibrates and sets thresholds (plumbing, not accuracy)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from raylabel.config import ConfigError, load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.label import label
from raylabel.train import train

pytestmark = pytest.mark.slow
CLASSES = ("circle", "square")


def _tiny_clip(out: Path) -> Path:
    """A random CLIP small enough for CPU tests, with a character-level CLIP tokenizer."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    vocab: dict[str, int] = {}
    for c in "abcdefghijklmnopqrstuvwxyz .,":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    eos = vocab["<|endoftext|>"]
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 37,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 40, "bos_token_id": vocab["<|startoftext|>"],
                     "eos_token_id": eos, "pad_token_id": eos},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32,
                       "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2},
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(out, safe_serialization=True)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(out)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(out)
    return out


def _prompt_head(base: Path, prompts: list[str]) -> torch.Tensor:
    """The zero-shot head computed here through transformers' own text features."""
    from transformers import AutoTokenizer, CLIPModel

    clip = CLIPModel.from_pretrained(base, local_files_only=True).eval()
    enc = AutoTokenizer.from_pretrained(base, local_files_only=True)(
        prompts, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        out = clip.get_text_features(**enc)
    feats = out if torch.is_tensor(out) else out.pooler_output
    return feats / feats.norm(dim=-1, keepdim=True) * clip.logit_scale.exp()


def test_clip_labels_a_drop_from_prompts_calibrated_on_the_seed(
    ray_cluster: None, tmp_path: Path
) -> None:
    base = _tiny_clip(tmp_path / "clip")
    data = write_image_demo(tmp_path / "data", ImageDemoSpec(6, 12, 48, classes=CLASSES))
    common = [f"output.root={tmp_path / 'out'}", "model.arch=clip", f"model.pretrained={base}"]
    prompts = "a drawing of a {label}."
    result = train(
        load_config(
            [], [*common, f"seed.path={data.seed_dir}", f"model.prompts={prompts}",
                 "qc.min_support=2"]
        )
    )  # fmt: skip
    card = result.card
    assert (card.arch, card.classes) == ("clip", list(CLASSES))
    calib = card.training["calibration"]
    assert (calib["method"], calib["items"]) == ("zero_shot", 12)
    assert card.training["epochs_run"] == 0
    assert card.preprocessing["prompt_template"] == prompts
    assert card.preprocessing["image_size"] == 32  # the CLIP processor's
    model_dir = Path(result.model_uri)
    weights = load_file(str(model_dir / "model.safetensors"))
    head = _prompt_head(base, ["a drawing of a circle.", "a drawing of a square."])
    torch.testing.assert_close(weights["backbone.classifier.weight"], head, rtol=1e-5, atol=1e-5)
    original = load_file(str(base / "model.safetensors"))
    for key in ("vision_model.embeddings.patch_embedding.weight", "visual_projection.weight"):
        assert torch.equal(weights[f"backbone.clip.{key}"], original[key])  # nothing trained
    assert not list(model_dir.glob("*.bin"))

    run = label(load_config([], [*common, f"drop.path={data.drop_dir}", "review.size=4"]))
    labeled = pq.read_table(Path(run.run_uri) / "labels")
    errors = pq.read_table(Path(run.run_uri) / "errors").num_rows
    assert labeled.num_rows + errors == 12 + 2 and errors == 2  # the planted bad items
    assert set(labeled.column("label").to_pylist()) <= set(CLASSES)
    assert run.summary["model_version"] == result.model_version


def test_clip_config_is_checked_before_any_work() -> None:
    with pytest.raises(ConfigError, match=r"^model\.pretrained: required for model\.arch=clip"):
        load_config([], ["model.arch=clip"])
    with pytest.raises(ConfigError, match=r"^model\.prompts: .* has no \{label\}"):
        load_config([], ["model.arch=clip", "model.pretrained=/m", "model.prompts=a photo"])
