"""`raylabel <stage> [-c FILE.yaml]... [key=value]...` — a thin shell around the stages.

Exit codes: 0 success; 2 bad config or bad input (one line naming the key or path);
1 anything else. Every stage is a function `cfg -> result` with `summary_lines()`; this
module only parses, dispatches from one table and prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raylabel.errors import StageFailed, UsageError, first_line


@dataclass(frozen=True)
class Stage:
    """One row of the stage table: where the stage function lives and what it does."""

    module: str
    function: str
    summary: str
    description: str
    sections: tuple[str, ...]

    def run(self, cfg: Any) -> Any:
        """Import the stage only when it runs: `raylabel -h` stays instant."""
        import importlib

        return getattr(importlib.import_module(self.module), self.function)(cfg)


STAGES: dict[str, Stage] = {
    "train": Stage(
        "raylabel.train",
        "train",
        "fit, calibrate and publish a model from the seed",
        "Trains the classifier on seed.path (plus reviewed feedback) with Ray Train, "
        "calibrates its confidence on out-of-fold predictions of every seed item, picks "
        "per-class acceptance thresholds that reach qc.target_precision with a lower "
        "bound, and publishes models/<version>/.",
        ("seed", "modality", "task", "model", "train", "qc", "audit", "output", "storage", "run"),
    ),
    "promote": Stage(
        "raylabel.train",
        "promote",
        "point models/LATEST at a published model version",
        "The manual override of the promotion gate: `raylabel promote m-...` (or "
        "run.model_version=m-...) makes that published version the one labeling uses. "
        "A retrain the gate refused stays published beside LATEST for this.",
        ("output", "storage", "run"),
    ),
    "label": Stage(
        "raylabel.label",
        "label",
        "label a drop into a committed run",
        "Streams drop.path through decode tasks and inference actors, writes labels/ and "
        "errors/ Parquet (every item in exactly one), draws the stratified review sample "
        "and the active queue, then commits the run (_SUCCESS, then LATEST).",
        ("drop", "modality", "task", "infer", "qc", "review", "drift", "output", "storage", "run"),
    ),
    "sample": Stage(
        "raylabel.review",
        "resample",
        "redraw the review sample of a committed run",
        "Redraws review/ of a committed run with the current review.* settings.",
        ("drop", "review", "output", "storage", "run"),
    ),
    "evaluate": Stage(
        "raylabel.review",
        "evaluate_run",
        "reviewed labels -> accuracy estimates with intervals",
        "Joins review.reviewed (CSV or a Label Studio export) to the run's sample, "
        "estimates accuracy and accepted precision with stratified intervals, and writes "
        "the reviews as feedback for the next training.",
        ("drop", "review", "qc", "output", "storage", "run"),
    ),
    "review": Stage(
        "raylabel.review",
        "push_review",
        "review push: send a run's review tasks to a Label Studio project",
        "`raylabel review push` creates (or updates) the drop's Label Studio project at "
        "review.labelstudio.url and imports the run's sample and uncertain-queue tasks not "
        "already there; the API key comes from LABEL_STUDIO_API_KEY only. Then "
        "`raylabel evaluate review.reviewed=labelstudio` pulls the annotations back.",
        ("drop", "review", "output", "storage", "run"),
    ),
    "nightly": Stage(
        "raylabel.nightly",
        "nightly",
        "bring every ready drop under drops.root up to date, retraining when due",
        "Brings each ready drop under drops.root up to date: new drops are labeled, grown "
        "or changed ones get a new run that carries their unchanged items, unchanged ones "
        "are left alone. Retrains first when enough reviews arrived or the model is too "
        "old; a retrained model becomes LATEST only past the promotion gate. One lease "
        "per drop; nightly/index.html is the morning page (docs/nightly.md).",
        ("drops", "nightly", "seed", "drop", "train", "infer", "qc", "review", "output"),
    ),
    "audit": Stage(
        "raylabel.audit",
        "audit",
        "rank likely label errors in the seed",
        "Trains k fold models side by side, gives every seed item an out-of-sample "
        "prediction and ranks likely label errors with cleanlab.",
        ("seed", "modality", "task", "model", "audit", "train", "output", "storage"),
    ),
}


def _stage_help(stage: Stage) -> str:
    from raylabel.config import keys_help

    lines = [stage.description, "", "keys it reads (default, meaning):"]
    lines += [f"  {line}" for line in keys_help(stage.sections)]
    return "\n".join(lines)


class _Wrapped(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's lines (one paragraph or one key each) but wraps every long
    one to the terminal width; an indented line's continuation hangs under its text."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        for line in text.splitlines():
            body = line.lstrip()
            lead = indent + line[: len(line) - len(body)]
            hang = lead + "    " if line != body else lead
            wrapped = textwrap.wrap(
                body,
                max(width, 40),
                initial_indent=lead,
                subsequent_indent=hang,
                break_long_words=False,
                break_on_hyphens=False,
            )
            out.extend(wrapped or [""])
        return "\n".join(out)


EPILOG = (
    "Config: schema defaults <- each -c FILE.yaml in order <- key=value overrides; every "
    "key, its default and meaning: docs/configuration.md or `raylabel <stage> -h`.\n"
    "Exit codes: 0 success; 2 bad config or bad input (one line naming the key or path); "
    "1 anything else (RAYLABEL_DEBUG=1 adds the traceback)."
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="raylabel",
        description="Nightly distributed auto-labeling on Ray.",
        epilog=EPILOG,
        formatter_class=_Wrapped,
    )
    sub = p.add_subparsers(dest="stage", required=True)
    for name, stage in STAGES.items():
        sp = sub.add_parser(
            name,
            help=stage.summary,
            description=_stage_help(stage),
            epilog=EPILOG,
            formatter_class=_Wrapped,
        )
        if name == "review":  # `raylabel review push`: the one action, named for clarity
            sp.add_argument("action", choices=["push"], help="push: tasks to Label Studio")
        _config_args(sp)
    cp = sub.add_parser(
        "config",
        help="print the resolved configuration as YAML",
        description="Resolves defaults <- -c files <- key=value overrides, checks every "
        "key, and prints the result as YAML (nothing runs).",
        epilog=EPILOG,
        formatter_class=_Wrapped,
    )
    _config_args(cp)
    demo = sub.add_parser(
        "demo",
        help="generate demo data, train, label and grade the result",
        description="Generates a synthetic seed and drop whose truth is kept aside, runs "
        "train and label on them with the real stages, reviews the review sample with the "
        "truth, and grades the labels and the review-based estimates against it.",
        formatter_class=_Wrapped,
    )
    demo.add_argument("--out", default="./raylabel-demo", help="where data and outputs go")
    demo.add_argument("--modality", default="image", choices=["image", "text"])
    demo.add_argument(
        "--task",
        default="multiclass",
        choices=["multiclass", "multilabel"],
        help="multilabel: images holding a set of shapes / tickets tagged with a set of topics",
    )
    demo.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return p


def _config_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "-c",
        "--config",
        action="append",
        default=[],
        metavar="FILE.yaml",
        help="a YAML config file; repeat to layer several (a later file wins)",
    )
    sp.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted key overrides (e.g. infer.batch_size=512), applied after the files",
    )


def run_stage(stage: str, files: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Load config, run one stage, return its human summary lines."""
    from raylabel.config import load_config

    cfg = load_config(list(files), list(overrides))
    if stage == "config":
        from raylabel.config import to_yaml

        return [to_yaml(cfg).rstrip("\n")]
    result = STAGES[stage].run(cfg)
    failed = getattr(result, "failed", None)
    if failed:
        raise StageFailed(f"{len(failed)} drop(s) failed", result.summary_lines())
    return result.summary_lines()


def guarded(fn: Callable[[], list[str]]) -> int:
    """Run fn, print its summary; map failures to exit codes with one-line messages."""
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
        message = first_line(exc, default=name)
        if isinstance(exc, UsageError | FileNotFoundError):
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
    """The console script: parse, dispatch, print, exit code."""
    args = _parser().parse_args(argv)
    if args.stage == "demo":
        from raylabel.demo import run_demo, run_multilabel_demo

        demo = run_multilabel_demo if args.task == "multilabel" else run_demo
        return guarded(lambda: demo(Path(args.out), args.modality, list(args.overrides)))
    overrides = list(args.overrides)
    if args.stage == "promote":  # `raylabel promote VERSION`
        overrides = [o if "=" in o else f"run.model_version={o}" for o in overrides]
    return guarded(lambda: run_stage(args.stage, args.config, overrides))


def entry(argv: Sequence[str] | None = None) -> Any:
    """`python -m raylabel.cli`: exit with main's code."""
    sys.exit(main(argv))


if __name__ == "__main__":
    entry()
