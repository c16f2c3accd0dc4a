"""Issue #17 items 1, 3 and 4 through the real stages: `train model.arch=resnet18
model.pretrained=torchvision` offline (hub cache seeded with a generated state dict under
torchvision's file name), the head alone trained (`model.freeze_backbone`, on features computed
once or through the whole model), then `label`."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from raylabel.cli import main
from raylabel.config import load_config
from raylabel.demo.images import ImageDemoSpec, write_image_demo
from raylabel.label import label
from raylabel.train import train

pytestmark = pytest.mark.slow


def _seed_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> dict[str, torch.Tensor]:
    """A generated resnet18 state dict where torchvision looks for its DEFAULT weights
    (TORCH_HOME's hub cache, the official file name): offline, as a cluster without network."""
    import torchvision
    from torchvision.models import ResNet18_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    torch.manual_seed(seed)
    seeded = torchvision.models.resnet18(weights=None).state_dict()
    cached = tmp_path / "th" / "hub" / "checkpoints" / Path(ResNet18_Weights.DEFAULT.url).name
    cached.parent.mkdir(parents=True)
    torch.save(seeded, cached)
    return seeded


def test_train_from_torchvision_weights_offline_then_label(
    ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = _seed_hub_cache(tmp_path, monkeypatch, seed=1)
    spec = ImageDemoSpec(8, 20, 32, classes=("circle", "square"), n_bad_items=1)
    data = write_image_demo(tmp_path / "data", spec)
    common = [f"output.root={tmp_path / 'out'}", "model.image_size=32", "model.arch=resnet18"]
    cfg = load_config(
        [],
        [
            *common,
            f"seed.path={data.seed_dir}",
            "model.pretrained=torchvision",
            "model.freeze_backbone=true",
            "train.epochs=2",
            "train.min_steps=0",
            "train.calibration=holdout",
            "qc.min_support=2",
        ],
    )
    result = train(cfg)
    start = result.card.preprocessing["pretrained"]
    assert start["source"] == "torchvision:ResNet18_Weights.IMAGENET1K_V1"
    assert start["matched_share"] == 1.0 and start["transforms"]["mean"]
    # framed as the weights' own transforms (shorter side, centre 224/256): labeling repeats it
    assert result.card.preprocessing["crop_fraction"] == 224 / 256
    trained = load_file(str(Path(result.model_uri) / "model.safetensors"))
    # training really started from the cached weights, and only the head moved
    for key in ("conv1.weight", "layer1.0.conv1.weight", "layer4.1.conv2.weight"):
        assert torch.equal(trained[f"backbone.{key}"], seeded[key]), key
    assert trained["backbone.fc.weight"].shape == (2, 512)

    run = label(load_config([], [*common, f"drop.path={data.drop_dir}", "review.size=4"]))
    labeled = pq.read_table(Path(run.run_uri) / "labels").num_rows
    errors = pq.read_table(Path(run.run_uri) / "errors").num_rows
    assert (labeled, errors) == (20, 1)


def test_a_wrong_pretrained_file_exits_2_before_training(
    ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import save_file

    spec = ImageDemoSpec(4, 1, 32, classes=("circle", "square"), n_bad_items=0)
    data = write_image_demo(tmp_path / "data", spec)
    wrong = tmp_path / "other.safetensors"
    save_file({"layer9.weight": torch.zeros(3, 3)}, str(wrong))
    code = main(
        [
            "train",
            f"seed.path={data.seed_dir}",
            f"output.root={tmp_path / 'out'}",
            "model.arch=resnet18",
            f"model.pretrained={wrong}",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "other.safetensors fills 0% of resnet18's weights" in err[0]
    assert not (tmp_path / "out" / "models").exists()


def test_backbone_lr_scale_fine_tunes_the_body_slowly(
    ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #17 item 4: `train.backbone_lr_scale` through Ray Train: the whole network
    trains, the pretrained body at a small fraction of the head's learning rate."""
    seeded = _seed_hub_cache(tmp_path, monkeypatch, seed=2)
    data = write_image_demo(
        tmp_path / "data", ImageDemoSpec(8, 4, 32, classes=("circle", "square"), n_bad_items=0)
    )
    result = train(
        load_config(
            [],
            [f"output.root={tmp_path / 'out'}", "model.image_size=32", "model.arch=resnet18",
             f"seed.path={data.seed_dir}", "model.pretrained=torchvision",
             "train.backbone_lr_scale=0.01", "train.epochs=2", "train.min_steps=0",
             "train.calibration=holdout", "train.num_workers=1", "qc.min_support=2"],
        )
    )  # fmt: skip
    assert result.card.training["backbone_lr_scale"] == 0.01
    trained = load_file(str(Path(result.model_uri) / "model.safetensors"))
    body = (trained["backbone.layer4.1.conv2.weight"] - seeded["layer4.1.conv2.weight"]).abs()
    assert 0 < float(body.max()) < 1e-3  # it moved (not frozen), at lr x 0.01 per step


def test_frozen_backbone_heads_train_on_features_computed_once(
    ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #17 item 4: with `model.freeze_backbone` the seed's features are computed once
    and every fold model and the final model train only their head on them; the body
    published, batch-norm statistics included, is the pretrained one, so labeling runs the
    very network the features came from."""
    seeded = _seed_hub_cache(tmp_path, monkeypatch, seed=3)
    spec = ImageDemoSpec(8, 16, 32, classes=("circle", "square"), n_bad_items=1)
    data = write_image_demo(tmp_path / "data", spec)
    common = [f"output.root={tmp_path / 'out'}", "model.image_size=32", "model.arch=resnet18"]
    result = train(
        load_config(
            [],
            [*common, f"seed.path={data.seed_dir}", "model.pretrained=torchvision",
             "model.freeze_backbone=true", "train.calibration_folds=3", "train.min_steps=20",
             "train.keep_fold_models=always", "qc.min_support=2"],
        )
    )  # fmt: skip
    card = result.card
    assert card.training["embedding_cache"] is True
    calib = card.training["calibration"]
    assert (calib["method"], calib["folds"], calib["items"]) == ("crossfit", 3, 16)
    model_dir = Path(result.model_uri)
    for weights in [model_dir, *sorted((model_dir / "folds").iterdir())]:
        trained = load_file(str(weights / "model.safetensors"))
        # batch-norm running statistics too: the body never ran in training mode
        for key in ("conv1.weight", "bn1.running_mean", "layer4.1.bn2.running_var"):
            assert torch.equal(trained[f"backbone.{key}"], seeded[key]), (weights, key)
        assert not torch.equal(trained["backbone.fc.weight"][:, :4], seeded["fc.weight"][:2, :4])
    assert len(list((model_dir / "folds").iterdir())) == 3

    run = label(load_config([], [*common, f"drop.path={data.drop_dir}", "review.size=4"]))
    labeled = pq.read_table(Path(run.run_uri) / "labels").num_rows
    errors = pq.read_table(Path(run.run_uri) / "errors").num_rows
    assert (labeled, errors) == (16, 1)


def test_embedding_cache_never_runs_the_whole_model(
    ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train.embedding_cache=never`: the frozen body runs every step in training mode, so its
    batch-norm statistics follow the seed's images (the behaviour before the cache)."""
    seeded = _seed_hub_cache(tmp_path, monkeypatch, seed=4)
    data = write_image_demo(
        tmp_path / "data", ImageDemoSpec(6, 2, 32, classes=("circle", "square"), n_bad_items=0)
    )
    result = train(
        load_config(
            [],
            [f"output.root={tmp_path / 'out'}", "model.image_size=32", "model.arch=resnet18",
             f"seed.path={data.seed_dir}", "model.pretrained=torchvision",
             "model.freeze_backbone=true", "train.embedding_cache=never", "train.epochs=1",
             "train.min_steps=0", "train.calibration=holdout", "train.num_workers=1",
             "qc.min_support=2"],
        )
    )  # fmt: skip
    assert result.card.training["embedding_cache"] is False
    trained = load_file(str(Path(result.model_uri) / "model.safetensors"))
    assert torch.equal(trained["backbone.conv1.weight"], seeded["conv1.weight"])
    assert not torch.equal(trained["backbone.bn1.running_mean"], seeded["bn1.running_mean"])
