from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from raylabel.config import Config, flat_keys, load_config
from raylabel.demo.run import IMAGE_DEMO_OVERRIDES
from raylabel.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults_yaml_then_overrides(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text("train:\n  epochs: 3\n  lr: 0.1\nseed:\n  path: /s\n")
    b = tmp_path / "b.yaml"
    b.write_text("train:\n  epochs: 4\n")
    cfg = load_config([a, b], ["train.lr=0.5"])
    assert cfg.train.epochs == 4  # later file wins
    assert cfg.train.lr == 0.5  # override wins
    assert cfg.seed.path == "/s"
    assert cfg.train.batch_size == Config().train.batch_size  # schema default kept


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.epochs=-1", "train.epochs"),
        ("train.epochz=1", "train.epochz"),
        ("qc.target_precision=1.5", "qc.target_precision"),
        ("qc.target_precision=0", "qc.target_precision"),
        ("train.epochs=abc", "train.epochs"),
        ("model.arch=vit", "model.arch"),
        ("modality=audio", "modality"),
        ("train.val_fraction=1.0", "train.val_fraction"),
        ("review.bin_edges=[0.0,0.5]", "review.bin_edges"),
        ("storage.endpoint_url=localhost:9000", "storage.endpoint_url"),
        ("run.run_id=../x", "run.run_id"),
    ],
)
def test_bad_values_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config([], [override])
    message = str(info.value)
    assert message.startswith(key + ":"), message
    assert "\n" not in message


def test_unknown_key_in_yaml_names_file(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"train\.epoch: unknown key \(from .*x\.yaml\)"):
        load_config([f], [])


def test_missing_seed_path_is_reported_by_require() -> None:
    cfg = load_config([], [])
    with pytest.raises(ConfigError, match=r"seed\.path: required"):
        cfg.require("seed.path")


def test_shipped_yaml_files_load() -> None:
    shipped = sorted(p.name for p in (REPO / "conf").glob("*.yaml"))
    assert {"default.yaml", "image.yaml", "demo.yaml", "nightly.yaml"} <= set(shipped)
    for name in shipped:
        raw = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / name))
        needs_encoder = raw.get("modality") == "text" and raw.get("model", {}).get("arch") != "rnn"
        extra = ["model.pretrained=/models/encoder"] if needs_encoder else []
        cfg = load_config([REPO / "conf" / name], extra)
        assert isinstance(cfg, Config)
        # every value a shipped file sets is what the loaded config holds
        for section, values in raw.items():
            if isinstance(values, dict):
                for key, value in values.items():
                    overridden = extra and f"{section}.{key}" == "model.pretrained"
                    if not isinstance(value, dict) and not overridden:
                        assert getattr(getattr(cfg, section), key) == value, (name, section, key)
            else:
                assert getattr(cfg, section) == values, (name, section)


def test_default_yaml_matches_schema() -> None:
    assert load_config([REPO / "conf" / "default.yaml"], []) == Config()


def test_demo_yaml_matches_demo_settings() -> None:
    assert load_config([REPO / "conf" / "demo.yaml"], []) == load_config([], IMAGE_DEMO_OVERRIDES)


def test_flat_keys_cover_contract() -> None:
    keys = set(flat_keys())
    for key in (
        "seed.path",
        "drop.path",
        "modality",
        "model.arch",
        "model.image_size",
        "train.epochs",
        "train.batch_size",
        "train.lr",
        "train.num_workers",
        "train.use_gpu",
        "train.val_fraction",
        "train.seed",
        "infer.batch_size",
        "infer.num_actors",
        "infer.use_gpu",
        "qc.target_precision",
        "review.size",
        "review.seed",
        "output.root",
        "storage.endpoint_url",
    ):
        assert key in keys


def test_cli_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "raylabel.cli", "train", "train.epochs=-1", "seed.path=/x"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["raylabel: error: train.epochs: must be >= 1, got -1"]


def test_cli_missing_input_path_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "raylabel.cli",
            "train",
            f"seed.path={tmp_path / 'nope'}",
            f"output.root={tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "seed.path" in lines[0] and "nope" in lines[0]
