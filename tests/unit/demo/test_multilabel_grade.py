"""Tests for grading a multi-label run: hand-made tables with known answers, and the wiring
of `raylabel demo --task multilabel` with the stages replaced by fakes writing real tables."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raylabel.cli import main
from raylabel.config import Config, load_config
from raylabel.demo import multilabel_run
from raylabel.demo.multilabel_data import TRUTH_SCHEMA
from raylabel.demo.multilabel_grade import grade_lines, grade_multilabel
from raylabel.demo.multilabel_images import MultilabelImageSpec
from raylabel.demo.multilabel_texts import MultilabelTextSpec
from raylabel.io.schema import MULTILABEL_SCHEMA

CLASSES = ("a", "b", "c")


def _truth(rows: dict[str, list[str] | None]) -> pa.Table:
    return pa.table(
        {"item_id": list(rows), "labels": list(rows.values()), "hard": [False] * len(rows)},
        schema=TRUTH_SCHEMA,
    )


def _labels(rows: list[tuple[str, list[str], bool]]) -> pa.Table:
    return pa.table(
        {
            "item_id": [r[0] for r in rows],
            "labels": [r[1] for r in rows],
            "accepted": [r[2] for r in rows],
        }
    )


def _errors(ids: list[str]) -> pa.Table:
    return pa.table({"item_id": pa.array(ids, pa.string())})


TRUTH = _truth({"1": ["a"], "2": ["a", "b"], "3": [], "4": ["c"], "5": ["b"], "bad": None})
LABELS = _labels(
    [
        ("1", ["a"], True),  # exact
        ("2", ["a"], True),  # misses b: tp 1, fn 1
        ("3", ["c"], True),  # false c
        ("4", ["c"], False),  # not accepted: not graded
        ("5", ["b"], True),  # exact
    ]
)


def test_known_answers() -> None:
    g = grade_multilabel(TRUTH, LABELS, _errors(["bad"]), CLASSES, 0.9)
    assert g["all_accounted"] and g["n_input"] == 6
    assert (g["n_labeled"], g["n_errors"], g["n_missing"]) == (5, 1, 0)
    assert g["n_graded"] == 5 and g["n_accepted"] == 4
    assert g["coverage"] == pytest.approx(4 / 5)
    assert g["exact_set_accuracy"] == pytest.approx(2 / 4)
    assert g["micro_precision"] == pytest.approx(3 / 4)  # tp a, a, b; predicted a, a, c, b
    assert g["micro_recall"] == pytest.approx(3 / 4)  # true a, a, b, b
    assert g["per_class"]["a"] == {"precision": 1.0, "recall": 1.0, "n_predicted": 2, "n_true": 2}
    assert g["per_class"]["b"] == {"precision": 1.0, "recall": 0.5, "n_predicted": 1, "n_true": 2}
    assert g["per_class"]["c"] == {"precision": 0.0, "recall": None, "n_predicted": 1, "n_true": 0}
    assert not g["exact_meets_target"] and not g["micro_precision_meets_target"]
    passing = grade_multilabel(TRUTH, LABELS, _errors(["bad"]), CLASSES, 0.5)
    assert passing["exact_meets_target"] and passing["micro_precision_meets_target"]


def test_missing_unexpected_and_repeated_items_are_reported() -> None:
    labels = _labels([("1", ["a"], True), ("2", ["a", "b"], True), ("zz", ["a"], True)])
    g = grade_multilabel(TRUTH, labels, _errors(["2", "bad"]), CLASSES, 0.9)
    assert not g["all_accounted"]
    assert g["missing"] == ["3", "4", "5"] and g["n_missing"] == 3
    assert g["unexpected"] == ["zz"] and g["repeated"] == ["2"]
    assert g["n_graded"] == 2  # the unexpected row has no truth to grade against
    assert g["exact_set_accuracy"] == 1.0
    text = "\n".join(grade_lines(g))
    assert "3 missing, 1 unexpected, 1 repeated" in text


def test_nothing_accepted_grades_as_none_not_pass() -> None:
    labels = _labels([("1", ["a"], False)])
    g = grade_multilabel(_truth({"1": ["a"]}), labels, _errors([]), CLASSES, 0.9)
    assert g["coverage"] == 0.0 and g["exact_set_accuracy"] is None
    assert g["micro_precision"] is None and not g["exact_meets_target"]
    assert "n/a" in "\n".join(grade_lines(g))


def test_report_lines() -> None:
    g = grade_multilabel(TRUTH, LABELS, _errors(["bad"]), CLASSES, 0.7)
    assert grade_lines(g)[2:9] == [
        "  items in:                  6  -> 5 labeled + 1 errors (every item accounted for)",
        "  share accepted (coverage): 80.0%",
        "  exact-set accuracy:        50.0%   (BELOW target 70%)",
        "  micro precision:           75.0%   (meets target 70%)",
        "  micro recall:              75.0%",
        "  per class (accepted rows): precision / recall (predicted, true)",
        "    a            100.0% / 100.0%  (2, 2)",
    ]


# --------------------------------------------------------------------------- wiring


class _Trained:
    model_uri = "/out/models/m-1"

    def summary_lines(self) -> list[str]:
        return ["trained: fake"]


@pytest.fixture
def fake_stages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """Stand-ins for the Ray stages: label writes a run whose rows are the truth itself."""
    seen: dict[str, Any] = {}

    def fake_label(cfg: Config) -> Any:
        seen["cfg"] = cfg
        run = tmp_path / "run"
        for d in ("labels", "errors"):
            (run / d).mkdir(parents=True, exist_ok=True)
        truth = pq.read_table(seen["truth_path"]).to_pylist()
        good = [t for t in truth if t["labels"] is not None]
        rows = [
            {"item_id": t["item_id"], "uri": t["item_id"], "labels": t["labels"],
             "undecided_labels": [], "accepted": not t["hard"]}
            for t in good
        ]  # fmt: skip
        pq.write_table(
            pa.Table.from_pylist(rows, schema=_partial_schema()), run / "labels" / "p.parquet"
        )
        bad = [t["item_id"] for t in truth if t["labels"] is None]
        pq.write_table(_errors(bad), run / "errors" / "p.parquet")
        return types.SimpleNamespace(run_uri=str(run), summary_lines=lambda: ["labeled: fake"])

    real_data = multilabel_run._data

    def record_data(*args: Any) -> Any:
        base, truth_path, classes = real_data(*args)
        seen["truth_path"], seen["base"] = truth_path, base
        return base, truth_path, classes

    def module(name: str, **attrs: Any) -> None:
        mod = types.ModuleType(name)
        for key, value in attrs.items():
            setattr(mod, key, value)
        monkeypatch.setitem(sys.modules, name, mod)

    module("raylabel.cluster.session", connect=lambda cfg: None)
    module("raylabel.train", train=lambda cfg: _Trained())
    module("raylabel.label", label=fake_label)
    monkeypatch.setattr(multilabel_run, "_data", record_data)
    monkeypatch.setattr(multilabel_run, "minilm_dir", lambda: Path("/models/minilm"))
    monkeypatch.setattr(
        multilabel_run,
        "MULTILABEL_IMAGE_SPEC",
        MultilabelImageSpec(n_seed=8, n_drop=10, image_size=24),
    )
    monkeypatch.setattr(
        multilabel_run, "MULTILABEL_TEXT_SPEC", MultilabelTextSpec(n_seed=8, n_drop=10)
    )
    return seen


def _partial_schema() -> pa.Schema:
    keep = ("item_id", "uri", "labels", "undecided_labels", "accepted")
    return pa.schema([MULTILABEL_SCHEMA.field(n) for n in keep])


def test_cli_task_flag_runs_graded_multilabel_image_demo(
    fake_stages: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["demo", "--out", str(tmp_path / "d"), "--task", "multilabel", "train.epochs=1"]) == 0
    )
    out = capsys.readouterr().out
    assert "== raylabel demo (multilabel) ==" in out and "every item accounted for" in out
    cfg = fake_stages["cfg"]
    assert (cfg.task, cfg.modality, cfg.train.epochs) == ("multilabel", "image", 1)
    assert cfg.seed.path.endswith("seed.jsonl")
    grade = json.loads((tmp_path / "d" / "demo_grade.json").read_text())
    assert grade["exact_set_accuracy"] == 1.0 and grade["micro_precision"] == 1.0
    assert grade["n_input"] == 12 and grade["n_errors"] == 2 and grade["all_accounted"]


def test_text_demo_uses_the_rnn_unless_hf(fake_stages: dict[str, Any], tmp_path: Path) -> None:
    multilabel_run.run_multilabel_demo(tmp_path / "t", "text", [])
    cfg = fake_stages["cfg"]
    assert (cfg.task, cfg.modality, cfg.model.arch) == ("multilabel", "text", "rnn")
    assert not any(o.startswith("model.pretrained=") for o in fake_stages["base"])
    multilabel_run.run_multilabel_demo(tmp_path / "h", "text", ["model.arch=hf"])
    assert fake_stages["cfg"].model.arch == "hf"
    assert fake_stages["cfg"].model.pretrained == "/models/minilm"


def test_multiclass_demo_is_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    called: list[str] = []
    monkeypatch.setattr("raylabel.demo.run_demo", lambda *a: called.append("multiclass") or [])
    monkeypatch.setattr(
        "raylabel.demo.run_multilabel_demo", lambda *a: called.append("multilabel") or []
    )
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert main(["demo", "--out", str(tmp_path), "--task", "multilabel", "--modality", "text"]) == 0
    assert called == ["multiclass", "multilabel"]
    assert load_config([], ["task=multilabel"]).task == "multilabel"
