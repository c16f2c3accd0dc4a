"""Where an image model starts (issue #17 items 1 and 3): torchvision weights through the
hub cache, offline (the cache is seeded with a generated state dict under the official
file name); a state dict that does not fit stops the run naming the file and the share."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from raylabel.config import load_config
from raylabel.errors import ConfigError, InputError
from raylabel.fit.pretrained import pretrained_info, pretrained_local
from raylabel.models.card import ModelCard, save_model_dir
from raylabel.models.image import build_image_model


def _seed_hub(torch_home: Path, arch: str = "resnet18") -> dict[str, torch.Tensor]:
    """torchvision's own file name in the hub cache, holding a generated state dict."""
    import torchvision
    from torchvision.models import get_model_weights

    torch.manual_seed(0)
    state = getattr(torchvision.models, arch)(weights=None).state_dict()
    url = get_model_weights(arch).DEFAULT.url
    path = torch_home / "hub" / "checkpoints" / Path(url).name
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


def test_torchvision_default_weights_come_from_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    seeded = _seed_hub(tmp_path / "th")
    cfg = load_config([], ["model.arch=resnet18", "model.pretrained=torchvision"])
    local = pretrained_local(cfg, tmp_path)
    assert local is not None
    staged = load_file(local)
    assert torch.equal(staged["conv1.weight"], seeded["conv1.weight"])
    info = pretrained_info(local)
    assert info is not None
    assert info["source"] == "torchvision:ResNet18_Weights.IMAGENET1K_V1"
    assert info["transforms"]["crop_size"] == [224] and info["matched_share"] == 1.0

    named = load_config([], ["model.arch=resnet18", "model.pretrained=torchvision:IMAGENET1K_V1"])
    (tmp_path / "named").mkdir()
    assert pretrained_local(named, tmp_path / "named")
    bad = load_config([], ["model.arch=resnet18", "model.pretrained=torchvision:NOPE"])
    with pytest.raises(InputError, match=r"no torchvision weights 'NOPE'.*IMAGENET1K_V1"):
        pretrained_local(bad, tmp_path)


def test_an_unreadable_cached_checkpoint_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    cached = tmp_path / "th" / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a checkpoint")
    cfg = load_config([], ["model.arch=mobilenet_v3_small", "model.pretrained=torchvision"])
    with pytest.raises(InputError, match=r"torch hub cache .*mobilenet_v3_small-047dcff4\.pth"):
        pretrained_local(cfg, tmp_path)


def test_a_state_dict_that_does_not_fit_stops_naming_file_and_share(tmp_path: Path) -> None:
    import torchvision

    wrong = tmp_path / "mobilenet.safetensors"
    save_file(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), str(wrong))
    cfg = load_config([], ["model.arch=resnet18", f"model.pretrained={wrong}"])
    with pytest.raises(InputError, match=r"mobilenet.safetensors fills 0% of resnet18's weights"):
        pretrained_local(cfg, tmp_path)


def test_raylabel_own_saved_model_is_a_starting_point(tmp_path: Path) -> None:
    card = ModelCard("m-1", "resnet18", "image", ["a", "b", "c"], {"image_size": 32})
    save_model_dir(build_image_model("resnet18", 3), card, tmp_path / "m")
    own = tmp_path / "m" / "model.safetensors"
    cfg = load_config([], ["model.arch=resnet18", f"model.pretrained={own}"])
    local = pretrained_local(cfg, tmp_path)
    info = pretrained_info(local)
    assert info is not None and info["matched_share"] == 1.0


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.pretrained=torchvision"], "model.pretrained"),  # small_cnn has none
        (["model.freeze_backbone=true"], "model.freeze_backbone"),  # nothing to freeze
    ],
)
def test_impossible_starts_stop_before_any_work(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config([], overrides)
