"""Multilabel seeds: list labels (JSONL/Parquet), joined strings (CSV), folders refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raylabel.config import load_config
from raylabel.errors import ConfigError, InputError
from raylabel.inputs import sources


def _files(tmp_path: Path, n: int) -> list[str]:
    out = []
    for i in range(n):
        p = tmp_path / f"i{i}.png"
        p.write_bytes(b"x")
        out.append(str(p))
    return out


def _plan(path: Path, *extra: str) -> sources.SourcePlan:
    cfg = load_config(overrides=["task=multilabel", f"seed.path={path}", *extra])
    return sources.plan_seed(cfg)


def test_jsonl_lists_and_missing_labels(tmp_path: Path) -> None:
    uris = _files(tmp_path, 4)
    labels = [["dog", "cat"], [], None, ["dog"]]
    rows = [{"uri": u, "label": v} for u, v in zip(uris, labels, strict=True)]
    (tmp_path / "seed.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    plan = _plan(tmp_path / "seed.jsonl")
    assert plan.listing is not None
    assert plan.listing.column("label").to_pylist() == ["cat|dog", "", "", "dog"]
    assert plan.classes() == ["cat", "dog"]
    assert plan.label_index(plan.classes())["dog"] == 2
    assert plan.label_index(plan.classes())["cat|dog"] == 3
    assert plan.positive_weights(plan.classes()) == pytest.approx([3.0, 1.0])


def test_csv_joined_with_the_configured_separator(tmp_path: Path) -> None:
    uris = _files(tmp_path, 3)
    lines = ["uri,label", f"{uris[0]},cat;dog", f"{uris[1]},", f"{uris[2]}, dog "]
    (tmp_path / "seed.csv").write_text("\n".join(lines) + "\n")
    plan = _plan(tmp_path / "seed.csv", "seed.label_separator=;")
    assert plan.listing is not None
    assert plan.listing.column("label").to_pylist() == ["cat;dog", "", "dog"]
    assert plan.classes() == ["cat", "dog"]


def test_parquet_list_column(tmp_path: Path) -> None:
    uris = _files(tmp_path, 2)
    table = pa.table({"uri": uris, "label": pa.array([["b", "a"], []], pa.list_(pa.string()))})
    pq.write_table(table, tmp_path / "seed.parquet")
    plan = _plan(tmp_path / "seed.parquet")
    assert plan.listing is not None
    assert plan.listing.column("label").to_pylist() == ["a|b", ""]


def test_folder_seed_is_refused_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "seed" / "cat").mkdir(parents=True)
    (tmp_path / "seed" / "cat" / "a.png").write_bytes(b"x")
    with pytest.raises(InputError, match="class-per-folder seed cannot say"):
        _plan(tmp_path / "seed")


def test_a_class_holding_the_separator_names_the_row(tmp_path: Path) -> None:
    uris = _files(tmp_path, 2)
    rows = [{"uri": uris[0], "label": ["a"]}, {"uri": uris[1], "label": ["a|b"]}]
    (tmp_path / "seed.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    expected = re.escape("row 1: class 'a|b' contains seed.label_separator")
    with pytest.raises(InputError, match=expected):
        _plan(tmp_path / "seed.jsonl")


def test_multiclass_reading_is_unchanged(tmp_path: Path) -> None:
    uris = _files(tmp_path, 2)
    lines = ["uri,label", f"{uris[0]},cat|dog", f"{uris[1]},dog"]
    (tmp_path / "seed.csv").write_text("\n".join(lines) + "\n")
    cfg = load_config(overrides=[f"seed.path={tmp_path / 'seed.csv'}"])
    plan = sources.plan_seed(cfg)
    assert plan.classes() == ["cat|dog", "dog"]
    assert plan.positive_weights(plan.classes()) is None


@pytest.mark.parametrize(
    "override",
    ["model.arch=clip", "train.pseudo_labels.enabled=true", "infer.ensemble=always",
     "train.keep_fold_models=always"],
)  # fmt: skip
def test_unsupported_multilabel_combinations_stop_at_config(override: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"^{key}: .*task=multilabel"):
        load_config(overrides=["task=multilabel", override, "model.pretrained=/x"])


@pytest.mark.parametrize("override", ["train.audit_seed=true", "train.exclude_label_issues=true"])
def test_the_seed_audit_is_available_to_multilabel(override: str) -> None:
    cfg = load_config(overrides=["task=multilabel", override])
    assert cfg.train.audit_seed or cfg.train.exclude_label_issues
