"""Issue #17 item 2: `model.arch=hf` for images through the real stages, offline: tiny random
transformers image classifiers (a ViT and a ResNet) saved by the test with their image
processors, fine-tuned with Ray Train for the seed's classes, published with
`save_pretrained`, and used by `label`."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raylabel.config import ConfigError, load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.label import label
from raylabel.models.hf_image import processor_settings
from raylabel.train import train

pytestmark = pytest.mark.slow
CLASSES = ("circle", "square")


def _tiny_vit(out: Path) -> Path:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64, num_labels=5)  # fmt: skip
    ViTForImageClassification(config).save_pretrained(out, safe_serialization=True)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out)
    return out


def _tiny_resnet(out: Path) -> Path:
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                          layer_type="basic", num_labels=7)  # fmt: skip
    ResNetForImageClassification(config).save_pretrained(out, safe_serialization=True)
    ConvNextImageProcessor(size={"shortest_edge": 40}, crop_pct=1.0).save_pretrained(out)
    return out


@pytest.mark.parametrize(("make", "size"), [(_tiny_vit, 32), (_tiny_resnet, 40)])
def test_hf_image_model_trains_and_labels(
    ray_cluster: None, tmp_path: Path, make: object, size: int
) -> None:
    base = make(tmp_path / "base")  # type: ignore[operator]
    data = write_image_demo(tmp_path / "data", ImageDemoSpec(6, 12, 48, classes=CLASSES))
    common = [f"output.root={tmp_path / 'out'}", "model.arch=hf", f"model.pretrained={base}"]
    result = train(
        load_config(
            [],
            [*common, f"seed.path={data.seed_dir}", "train.epochs=1", "train.min_steps=2",
             "train.calibration=holdout", "train.num_workers=1", "qc.min_support=2",
             "train.backbone_lr_scale=0.1"],
        )
    )  # fmt: skip
    card = result.card
    assert (card.arch, card.classes) == ("hf", list(CLASSES))
    assert card.preprocessing["image_size"] == size  # the processor's, not model.image_size
    model_dir = Path(result.model_uri)
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved["id2label"] == {"0": "circle", "1": "square"}  # head re-initialised for 2
    assert (model_dir / "preprocessor_config.json").is_file()
    assert not list(model_dir.glob("*.bin"))  # safetensors only

    if size != 32:
        return  # one architecture labels too (the label path is the image family's)
    run = label(load_config([], [*common, f"drop.path={data.drop_dir}", "review.size=4"]))
    labeled = pq.read_table(Path(run.run_uri) / "labels")
    errors = pq.read_table(Path(run.run_uri) / "errors").num_rows
    assert labeled.num_rows + errors == 12 + 2 and errors == 2  # the planted bad items
    assert set(labeled.column("label").to_pylist()) <= set(CLASSES)


def test_hf_image_needs_its_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^model\.pretrained: required for model\.arch=hf"):
        load_config([], ["model.arch=hf"])
    assert processor_settings({"size": {"shortest_edge": 224}, "do_center_crop": True,
                               "crop_size": {"height": 192, "width": 192},
                               "image_mean": [0.1, 0.2, 0.3], "image_std": [1, 1, 1]}) == {
        "image_size": 192, "mean": [0.1, 0.2, 0.3], "std": [1.0, 1.0, 1.0]}  # fmt: skip
