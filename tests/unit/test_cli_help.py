"""`raylabel <stage> -h` explains the stage and every key it reads; `raylabel config` prints
the resolved YAML; a bad key is one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from raylabel.cli import STAGES, main
from raylabel.config import key_docs

REPO = Path(__file__).resolve().parents[2]
HELP = {key: (default, text) for key, default, text in key_docs()}


def _help(capsys: pytest.CaptureFixture[str], stage: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main([stage, "-h"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_label_help_describes_the_stage_and_its_keys(capsys: pytest.CaptureFixture[str]) -> None:
    out = _flat(_help(capsys, "label"))
    assert _flat(STAGES["label"].description) in out
    assert f"infer.batch_size = 256 ({HELP['infer.batch_size'][1]})" in out
    assert "drop.allow_outside_uris = false" in out  # YAML spelling, as one would type it
    assert "train.epochs" not in out  # only the sections the stage reads


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_help_lists_its_keys_with_help(
    stage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _flat(_help(capsys, stage))
    assert _flat(STAGES[stage].description) in out
    listed = [k for k in HELP if k.split(".")[0] in STAGES[stage].sections]
    assert listed
    for key in listed:
        assert f"{key} = " in out, key
        assert _flat(HELP[key][1]) in out, key


def test_help_lines_are_wrapped_to_the_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    lines = _help(capsys, "train").splitlines()
    too_long = [line for line in lines if len(line) > 80 and " " in line.strip()]
    assert not too_long, too_long


def test_config_prints_resolved_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "qc.bound=wilson"]) == 0
    out = capsys.readouterr().out
    assert "qc:\n" in out
    assert "  bound: wilson\n" in out


def test_config_bad_key_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "qc.no_such_key=1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "qc.no_such_key" in lines[0]


def test_readme_lists_every_stage() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in [*STAGES, "config", "demo"]:
        assert f"raylabel {name} " in readme, name
