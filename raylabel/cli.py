"""`raylabel <stage> [-c FILE.yaml]... [key=value]...` — a thin shell around the stages.

Exit codes: 0 success; 2 bad config or bad input (one line naming the key or path);
1 anything else.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

USAGE_ERRORS = (
    "ConfigError",
    "InputNotFound",
    "InputError",
    "ModelLoadError",
    "ReviewError",
)
STAGES = ("train", "label", "sample", "evaluate", "nightly", "audit")


class StageFailed(Exception):
    """A stage that finished but with failures (e.g. one nightly drop); exit 1."""

    def __init__(self, message: str, lines: list[str]) -> None:
        super().__init__(message)
        self.lines = lines


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="raylabel",
        description="Nightly distributed auto-labeling on Ray.",
        epilog="Config: defaults <- each -c FILE.yaml in order <- key=value overrides.",
    )
    sub = p.add_subparsers(dest="stage", required=True)
    for stage in STAGES:
        sp = sub.add_parser(stage, help=f"run the {stage} stage")
        sp.add_argument("-c", "--config", action="append", default=[], metavar="FILE.yaml")
        sp.add_argument("overrides", nargs="*", metavar="key=value")
    demo = sub.add_parser("demo", help="generate demo data, train, label and grade the result")
    demo.add_argument("--out", default="./raylabel-demo", help="where data and outputs go")
    demo.add_argument("--modality", default="image", choices=["image", "text"])
    demo.add_argument("overrides", nargs="*", metavar="key=value")
    return p


def run_stage(stage: str, files: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Load config, run one stage, return its human summary lines."""
    from raylabel.config import load_config

    cfg = load_config(list(files), list(overrides))
    if stage == "train":
        from raylabel.train import train

        return train(cfg).summary_lines()
    if stage == "label":
        from raylabel.label import label

        return label(cfg).summary_lines()
    if stage == "sample":
        from raylabel.stages import resample

        return resample(cfg)
    if stage == "evaluate":
        from raylabel.stages import evaluate_run

        return evaluate_run(cfg)
    if stage == "audit":
        from raylabel.audit import audit

        return audit(cfg).summary_lines()
    if stage == "nightly":
        from raylabel.nightly import nightly

        result = nightly(cfg)
        if result.failed:
            raise StageFailed(f"{len(result.failed)} drop(s) failed", result.summary_lines())
        return result.summary_lines()
    raise ValueError(f"unknown stage {stage}")


def guarded(fn: Callable[[], list[str]]) -> int:
    """Run fn, print its summary; map failures to exit codes with one-line messages."""
    from raylabel.storage import redact

    try:
        lines = fn()
    except StageFailed as exc:
        for line in exc.lines:
            print(line)
        print(f"raylabel: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("raylabel: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the top of the program: every failure gets a readable line
        name = type(exc).__name__
        message = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else name)
        if name in USAGE_ERRORS or isinstance(exc, FileNotFoundError):
            print(f"raylabel: error: {message}", file=sys.stderr)
            return 2
        if os.environ.get("RAYLABEL_DEBUG"):
            import traceback

            traceback.print_exc()
        print(f"raylabel: failed: {name}: {message}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.stage == "demo":
        from raylabel.demo import run_demo

        return guarded(lambda: run_demo(Path(args.out), args.modality, list(args.overrides)))
    return guarded(lambda: run_stage(args.stage, args.config, args.overrides))


def entry(argv: Sequence[str] | None = None) -> Any:
    sys.exit(main(argv))


if __name__ == "__main__":
    entry()
