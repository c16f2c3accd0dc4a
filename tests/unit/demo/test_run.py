"""Tests for `raylabel demo`'s driver: the overrides it builds and the report it prints.

The real stages need a Ray cluster (see tests/integration/test_demo_e2e.py); here they are
replaced by fakes so the wiring and every printed line can be pinned cheaply.
"""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from raylabel.config import Config, load_config
from raylabel.demo import run as demo_run
from raylabel.demo.images import ImageDemoSpec
from raylabel.demo.texts import TextDemoSpec

TINY_TEXT = TextDemoSpec(n_seed_per_class=4, n_drop=20, seed=1, n_bad_items=1)
TINY_IMAGE = ImageDemoSpec(n_seed_per_class=2, n_drop=6, image_size=16, seed=1, n_bad_items=1)

GRADE: dict[str, Any] = {
    "n_truth": 19,
    "n_graded": 19,
    "accuracy_all": 0.8,
    "accuracy_accepted": 0.95,
    "accuracy_needs_review": 0.5,
    "coverage": 0.625,
    "target_precision": 0.9,
}
EVALUATION: dict[str, Any] = {
    "estimates": {
        "overall": {"point": 0.75, "lower": 0.7, "upper": 0.85, "n_reviewed": 40},
        "accepted": {"point": 0.97, "lower": 0.93, "upper": 1.0, "n_reviewed": 25},
    }
}


class _Trained:
    model_uri = "/out/models/m-1"

    def summary_lines(self) -> list[str]:
        return ["trained: fake"]


class _Labeled:
    run_uri = "/out/runs/r-1"
    summary: dict[str, Any] = {"counts": {"labeled": 19, "input": 20, "errors": 1}}  # noqa: RUF012

    def summary_lines(self) -> list[str]:
        return ["labeled: fake"]


@pytest.fixture
def fake_stages(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Stand-ins for the Ray stages run_demo imports lazily, recording what they got."""
    seen: dict[str, Any] = {"evaluation": EVALUATION}

    def module(name: str, **attrs: Any) -> None:
        mod = types.ModuleType(name)
        for key, value in attrs.items():
            setattr(mod, key, value)
        monkeypatch.setitem(sys.modules, name, mod)

    def record_config(files: list[Any], overrides: list[str]) -> Config:
        seen["overrides"] = list(overrides)
        return load_config(files, overrides)

    def fake_grade(cfg: Config, run_dir: str, truth_path: Path) -> dict[str, Any]:
        seen["truth_path"] = truth_path
        return {**GRADE, "truth_by_id": {"item-000000.txt": "billing"}}

    def fake_evaluate(cfg: Config, run_uri: str, truth_by_id: dict[str, str]) -> Any:
        seen["truth_by_id"] = truth_by_id
        return seen["evaluation"]

    module("raylabel.cluster.session", connect=lambda cfg: None)
    module("raylabel.train", train=lambda cfg: _Trained())
    module("raylabel.label", label=lambda cfg: _Labeled())
    module("raylabel.review", evaluate_with_truth=fake_evaluate)
    monkeypatch.setattr(demo_run, "load_config", record_config)
    monkeypatch.setattr(demo_run, "grade", fake_grade)
    monkeypatch.setattr(demo_run, "minilm_dir", lambda: Path("/models/minilm"))
    return seen


def _report() -> list[str]:
    return [
        "",
        "== raylabel demo ==",
        "trained: fake",
        "labeled: fake",
        "",
        "graded against the truth kept aside (the pipeline never read it):",
        "  items labeled:             19 of 20 (1 unreadable -> errors/)",
        "  share accepted (coverage): 62.5%",
        "  accuracy of all labels:    80.0%",
        "  accuracy of accepted:      95.0%   (target precision 90%)",
        "  accuracy of needs-review:  50.0%",
        "  review-based estimate, all labels: 75.0% [70.0%, 85.0%] from 40 reviews "
        "- covers the truth 80.0%",
        "  review-based estimate, accepted labels: 97.0% [93.0%, 100.0%] from 25 reviews "
        "- covers the truth 95.0%",
        "",
        "outputs: /out/runs/r-1  (labels/, errors/, review/, summary.json, report.html)",
        "model:   /out/models/m-1",
    ]


def _split_time(lines: list[str]) -> tuple[list[str], str]:
    return lines[:-1], lines[-1]


def test_text_demo_report_and_overrides(fake_stages: dict[str, Any], tmp_path: Path) -> None:
    lines = demo_run.run_demo(tmp_path, "text", ["train.epochs=1"], spec=TINY_TEXT)
    body, timing = _split_time(lines)
    assert body == _report()
    assert re.fullmatch(r"time: data \d+s, train \d+s, label \d+s, total \d+s", timing)
    data = tmp_path.resolve() / "data"
    assert fake_stages["overrides"] == [
        *demo_run.TEXT_DEMO_OVERRIDES,
        "model.pretrained=/models/minilm",
        f"seed.path={data / 'seed' / 'seed.jsonl'}",
        f"drop.path={data / 'drop'}",
        f"output.root={tmp_path.resolve() / 'output'}",
        "train.epochs=1",
    ]
    assert fake_stages["truth_path"] == data / "truth" / "drop_truth.csv"
    assert fake_stages["truth_by_id"] == {"item-000000.txt": "billing"}
    saved = json.loads((tmp_path / "demo_grade.json").read_text())
    assert saved == {**GRADE, "evaluation": EVALUATION}


def test_rnn_text_demo_needs_no_minilm(
    fake_stages: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_minilm() -> Path:
        raise AssertionError("model.arch=rnn must not need the MiniLM extra")

    monkeypatch.setattr(demo_run, "minilm_dir", no_minilm)
    demo_run.run_demo(tmp_path, "text", ["model.arch=rnn"], spec=TINY_TEXT)
    assert fake_stages["overrides"][: len(demo_run.TEXT_RNN_DEMO_OVERRIDES)] == (
        demo_run.TEXT_RNN_DEMO_OVERRIDES
    )
    assert not any(o.startswith("model.pretrained=") for o in fake_stages["overrides"])


def test_explicit_pretrained_skips_minilm(
    fake_stages: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_minilm() -> Path:
        raise AssertionError("an explicit model.pretrained must win")

    monkeypatch.setattr(demo_run, "minilm_dir", no_minilm)
    demo_run.run_demo(tmp_path, "text", [f"model.pretrained={tmp_path}"], spec=TINY_TEXT)
    pretrained = [o for o in fake_stages["overrides"] if o.startswith("model.pretrained=")]
    assert pretrained == [f"model.pretrained={tmp_path}"]


def test_image_demo_report_and_overrides(fake_stages: dict[str, Any], tmp_path: Path) -> None:
    lines = demo_run.run_demo(tmp_path, "image", [], spec=TINY_IMAGE)
    body, _ = _split_time(lines)
    assert body == _report()
    data = tmp_path.resolve() / "data"
    assert fake_stages["overrides"] == [
        *demo_run.IMAGE_DEMO_OVERRIDES,
        f"seed.path={data / 'seed'}",
        f"drop.path={data / 'drop'}",
        f"output.root={tmp_path.resolve() / 'output'}",
    ]
    assert fake_stages["truth_path"] == data / "truth" / "drop_truth.csv"


def test_estimate_lines_without_reviews_and_misses(
    fake_stages: dict[str, Any], tmp_path: Path
) -> None:
    fake_stages["evaluation"] = {
        "estimates": {
            "overall": {"point": 0.6, "lower": 0.55, "upper": 0.7, "n_reviewed": 12},
            "accepted": {"point": None},
        }
    }
    lines = demo_run.run_demo(tmp_path, "image", [], spec=TINY_IMAGE)
    estimates = [line for line in lines if "review-based estimate" in line]
    assert estimates == [
        "  review-based estimate, all labels: 60.0% [55.0%, 70.0%] from 12 reviews "
        "- MISSES the truth 80.0%",
        "  review-based estimate, accepted labels: no reviewed items in that group",
    ]


def test_no_evaluation_prints_no_estimates(fake_stages: dict[str, Any], tmp_path: Path) -> None:
    fake_stages["evaluation"] = None
    lines = demo_run.run_demo(tmp_path, "image", [], spec=TINY_IMAGE)
    body, _ = _split_time(lines)
    assert body == [line for line in _report() if "review-based estimate" not in line]
