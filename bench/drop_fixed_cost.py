"""Fixed cost per drop, as a nightly pays it: several drops labeled in one Ray session.

    python bench/drop_fixed_cost.py [--n 20000] [--drops 4] [--profile png32_small_cnn]

``raylabel nightly`` starts Ray once and labels every pending drop in that session, so Ray's
own start is paid once per night; what each further drop pays is its actor pool's cold
start, the review, the summary, the report and the commit. This bench measures exactly that
side by side with the bare loop on the same cached drop and model
(``bench/label_throughput.py``'s caches and contender A):

- A: the bare single-process loop over the drop, run ``--drops`` times (fresh process each
  time, so each pays its own model load, as a script run per drop would);
- C: one child process, one ``ray.init``, then ``raylabel.label.label(cfg)`` on the same
  drop ``--drops`` times under distinct drop names (``run.force``), each a complete committed
  run with its review sample and report.

Printed per drop: C's wall time and phases; then ``C - A`` (median over drops after the first:
the first also pays Ray Data's per-session start) as the fixed cost per drop, and C/A.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import label_throughput as lt  # the bench's own helpers beside it
import throughput_profiles as tp


def run_session(drop: Path, root: Path, drops: int, batch_size: int) -> list[dict[str, Any]]:
    """C: one Ray session, ``drops`` label runs of the drop; each run's wall and phases."""
    import ray

    from raylabel.config import load_config
    from raylabel.label import label

    t0 = time.time()
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    out = [{"ray_init_s": time.time() - t0}]
    try:
        for i in range(drops):
            cfg = load_config(
                [],
                [
                    "run.force=true",
                    f"infer.batch_size={batch_size}",
                    f"drop.path={drop}",
                    f"drop.name=fixed-cost-{i}",
                    f"output.root={root}",
                ],
            )
            t = time.time()
            s = label(cfg).summary
            out.append({"wall_s": time.time() - t, "durations_s": s["durations_s"]})
            shutil.rmtree(root / "runs" / f"fixed-cost-{i}", ignore_errors=True)
    finally:
        ray.shutdown()
    return out


def _child(args: argparse.Namespace) -> int:
    out = args.out.resolve()
    profile = tp.PROFILES[args.profile]
    drop = tp.drop_path(out, profile, args.n)
    root = tp.model_root(out, profile, args.untrained_models)
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    res = run_session(drop, root, args.drops, args.batch_size)
    Path(args._child).write_text(json.dumps(res))
    return 0


def _bare(args: argparse.Namespace, out: Path) -> float:
    """One A run in a fresh process (label_throughput's child); its wall seconds."""
    cmd = [
        sys.executable, str(Path(lt.__file__)), "--_child", "A", "--profile", args.profile,
        "--n", str(args.n), "--out", str(out), "--batch-size", str(args.batch_size),
    ]  # fmt: skip
    cmd += ["--untrained-models"] if args.untrained_models else []
    subprocess.run(cmd, check=True)
    return json.loads(lt.result_path(out, args.profile, "A", args.n).read_text())["wall_s"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--drops", type=int, default=4)
    p.add_argument("--profile", default=tp.LEGACY, choices=sorted(tp.PROFILES))
    p.add_argument("--out", type=Path, default=Path("raylabel-bench"))
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument(
        "--untrained-models", action="store_true", help="random-init stand-ins (smoke runs)"
    )
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        return _child(args)
    out = args.out.resolve()
    prep = argparse.Namespace(
        profile=[args.profile], n=[args.n], untrained_models=args.untrained_models
    )
    lt.prepare(prep, out, os.cpu_count() or 1)
    bare = [_bare(args, out) for _ in range(args.drops)]
    res_file = out / "results" / f"fixed-cost-{args.profile}-{args.n}.json"
    res_file.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, __file__, *(argv or sys.argv[1:]), "--_child", str(res_file)],
                   check=True)  # fmt: skip
    session = json.loads(res_file.read_text())
    print(f"\n== fixed cost per drop: {args.profile}, N={args.n:,}, {args.drops} drops ==")
    print(f"ray.init (once per session): {session[0]['ray_init_s']:.1f}s")
    print("| drop | A bare loop s | C raylabel label s | C - A s | C phases |")
    print("|---|---|---|---|---|")
    for i, (a, c) in enumerate(zip(bare, session[1:], strict=True)):
        phases = ", ".join(f"{k} {v:.1f}" for k, v in c["durations_s"].items())
        print(f"| {i + 1} | {a:.1f} | {c['wall_s']:.1f} | {c['wall_s'] - a:.1f} | {phases} |")
    later = [c["wall_s"] - a for a, c in zip(bare[1:], session[2:], strict=True)]
    if later:
        a_med = statistics.median(bare[1:])
        c_med = statistics.median(c["wall_s"] for c in session[2:])
        print(
            f"drops 2..{args.drops}: fixed cost per drop (median C - A) "
            f"{statistics.median(later):.1f}s (target <= 5 s); C/A {a_med / c_med:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
