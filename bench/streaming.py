"""Streaming benchmark of the label stage: throughput and peak memory of every Ray process.

    python bench/streaming.py --n 100000 [--n 1000000] [--out DIR] [--image-size 32] [--keep]

For each N it

1. generates (once, cached under ``--out/drops/``) a drop of N small PNG images packed in
   Parquet (``item_id`` string, ``bytes`` binary; files of 50k rows, row groups of 5k),
   cycling through a pool of 2,000 distinct rendered images, written one row group at a
   time (never N images in memory);
2. trains (once, cached under ``--out/output-px<size>/models/``) a ``small_cnn`` on a tiny
   seed set;
3. runs the real label stage, ``raylabel.label.label(cfg)``, in a fresh child process that
   does ``ray.init(address="local", num_cpus=<all cores>, include_dashboard=False)`` (never
   joining another Ray instance on the machine), while a sampler thread sums the memory
   of the driver and every process of that Ray session (its process tree plus anything
   whose command line names the session): RSS every 0.5 s (``/proc/<pid>/status``), PSS
   and USS every 5 s (``/proc/<pid>/smaps_rollup``, what psutil's ``memory_full_info``
   reads; PSS splits shared object-store pages between the processes mapping them);
4. prints a table (wall time, items/s, peak RSS-sum, peak PSS-sum, labeled/errors) and,
   for several N, the peak ratio largest-N / smallest-N against the target <= 1.1 (#20;
   it was 1.2 before).

Each N is measured in its own Ray instance so that one run's leftovers (idle workers,
driver heap) cannot inflate the next one's peak. Results are also written as JSON under
``--out/results/``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

POOL_SIZE = 2000
ROWS_PER_FILE = 50_000
ROW_GROUP_ROWS = 5_000
SAMPLE_INTERVAL_S = 0.5
TARGET_RATIO = 1.1  # issue #20 (peak memory at 1M <= 1.1x that at 100k)
INFER_BATCH_SIZE = 512
MiB = 1024 * 1024
TOP_PROCS = 6
PSS_EVERY = 10  # PSS/USS every 10th sample (5 s); RSS every sample

# Settings of the label stage (recorded in the results).
LABEL_OVERRIDES = [
    "run.force=true",
    f"infer.batch_size={INFER_BATCH_SIZE}",
]
TRAIN_OVERRIDES = [
    "model.arch=small_cnn",
    "train.epochs=2",
    "train.batch_size=64",
    "train.num_workers=1",
    "train.val_fraction=0.3",
    "train.calibration=holdout",  # a model to label with; labeling is measured
    "train.min_steps=0",
    "qc.min_support=10",
]


# --------------------------------------------------------------------------- the drop


def _id_width(n: int) -> int:
    return max(7, len(str(n)))


def _render_pool(image_size: int, size: int = POOL_SIZE, seed: int = 0) -> list[bytes]:
    """`size` distinct PNG-encoded shapes (15% hard), deterministic in (image_size, seed)."""
    from raylabel.demo.images import DEFAULT_CLASSES, render_shape

    pool = []
    for i in range(size):
        rng = np.random.default_rng([seed, i])
        shape = DEFAULT_CLASSES[i % len(DEFAULT_CLASSES)]
        img = render_shape(shape, rng, image_size, hard=bool(rng.random() < 0.15))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        pool.append(buf.getvalue())
    return pool


def drop_dir(out: Path, n: int, image_size: int) -> Path:
    return out / "drops" / f"n{n}-px{image_size}"


def ensure_drop(out: Path, n: int, image_size: int) -> tuple[Path, float]:
    """The cached drop for (n, image_size), written if missing; returns (dir, seconds spent)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    final = drop_dir(out, n, image_size)
    if final.is_dir():
        return final, 0.0
    started = time.time()
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pool = _render_pool(image_size)
    schema = pa.schema([("item_id", pa.string()), ("bytes", pa.binary())])
    width = _id_width(n)
    n_files = -(-n // ROWS_PER_FILE)
    for f in range(n_files):
        lo, hi = f * ROWS_PER_FILE, min(n, (f + 1) * ROWS_PER_FILE)
        with pq.ParquetWriter(tmp / f"part-{f:05d}.parquet", schema) as writer:
            for start in range(lo, hi, ROW_GROUP_ROWS):
                idx = range(start, min(hi, start + ROW_GROUP_ROWS))
                batch = pa.table(
                    {
                        "item_id": pa.array([f"item-{i + 1:0{width}d}" for i in idx], pa.string()),
                        "bytes": pa.array([pool[i % len(pool)] for i in idx], pa.binary()),
                    },
                    schema=schema,
                )
                writer.write_table(batch, row_group_size=ROW_GROUP_ROWS)
        print(f"  drop n={n}: wrote file {f + 1}/{n_files}", flush=True)
    os.replace(tmp, final)  # the final directory exists only once it is complete
    return final, time.time() - started


# --------------------------------------------------------------------------- the model


def output_root(out: Path, image_size: int) -> Path:
    return out / f"output-px{image_size}"


def ensure_model(out: Path, image_size: int, num_cpus: int) -> tuple[str, float]:
    """A trained small_cnn under the output root (trained once); returns (version, seconds)."""
    from raylabel.io import layout
    from raylabel.io.storage import StorageOptions

    root = output_root(out, image_size)
    version = layout.latest_model(str(root), StorageOptions())
    if version:
        return version, 0.0
    import ray

    from raylabel.config import load_config
    from raylabel.demo.images import ImageDemoSpec, write_image_demo
    from raylabel.train import train

    started = time.time()
    paths = write_image_demo(
        out / f"seed-px{image_size}",
        ImageDemoSpec(
            n_seed_per_class=40,
            n_drop=6,
            image_size=image_size,
            n_bad_items=0,
            mixed_formats=False,
        ),
    )
    cfg = load_config(
        [],
        [
            *TRAIN_OVERRIDES,
            f"model.image_size={image_size}",
            f"seed.path={paths.seed_dir}",
            f"output.root={root}",
        ],
    )
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    try:
        result = train(cfg)
    finally:
        ray.shutdown()
    return result.model_version, time.time() - started


# --------------------------------------------------------------------------- memory sampler

_KB = 1024


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:  # the process is gone, or not ours to read
        return None


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(ppid, comm, state) from /proc/<pid>/stat."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    lp, rp = text.find("("), text.rfind(")")
    rest = text[rp + 2 :].split()
    return int(rest[1]), text[lp + 1 : rp], rest[0]


def _kb_fields(text: str, skip: int = 0) -> dict[str, int]:
    vals: dict[str, int] = {}
    for line in text.splitlines()[skip:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            vals[key] = int(parts[0]) * _KB
    return vals


def _rss(pid: int) -> int | None:
    """Resident set size in bytes from /proc/<pid>/status (kernel counters: cheap)."""
    text = _read(f"/proc/{pid}/status")
    return _kb_fields(text).get("VmRSS") if text else None


def _smaps_rollup(pid: int) -> dict[str, int] | None:
    """Rss, Pss and Uss (Private_Clean + Private_Dirty) in bytes, as psutil's
    memory_full_info() reads them. The kernel walks the page tables for this: costly for
    processes with large mappings, so it is sampled less often than RSS."""
    text = _read(f"/proc/{pid}/smaps_rollup")
    if not text:
        return None
    vals = _kb_fields(text, skip=1)
    if "Rss" not in vals:
        return None
    return {
        "rss": vals["Rss"],
        "pss": vals.get("Pss", vals["Rss"]),
        "uss": vals.get("Private_Clean", 0) + vals.get("Private_Dirty", 0),
        # shared memory (tmpfs): for Ray processes, the plasma object store's pages
        "pss_shmem": vals.get("Pss_Shmem", 0),
    }


def _role(pid: int, driver: int, comm: str, cmdline: str) -> str:
    if pid == driver:
        return "driver"
    for name in ("raylet", "gcs_server"):
        if comm == name or f"/{name} " in cmdline or cmdline.startswith(name):
            return name
    if comm.startswith("ray::") or "default_worker.py" in cmdline or cmdline.startswith("ray::"):
        return "workers"
    return "other"


@dataclass
class MemorySampler:
    """Memory of the driver + all processes of this Ray session, from a thread.

    Every `interval` s the RSS of each process (/proc/<pid>/status); every
    `interval * pss_every` s also its PSS and USS (/proc/<pid>/smaps_rollup), which costs
    ~0.1 s of CPU per pass on this machine and would otherwise perturb a 2-core benchmark.
    The sampler's own CPU time is recorded.
    """

    driver_pid: int
    session_name: str | None
    interval: float = SAMPLE_INTERVAL_S
    pss_every: int = PSS_EVERY
    samples: int = 0
    pss_samples: int = 0
    peak: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    max_procs: int = 0
    cpu_s: float = 0.0
    timeline: list[tuple[float, int, int | None, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _cmd_cache: dict[tuple[int, str], str] = field(default_factory=dict)

    def processes(self) -> dict[int, tuple[str, str]]:
        """pid -> (role, name) for the driver's process tree plus any process whose command
        line names the session."""
        table: dict[int, tuple[int, str]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            st = _stat(int(entry))
            if st and st[2] != "Z":  # zombies hold no memory
                table[int(entry)] = (st[0], st[1])
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        found = set()
        todo = [self.driver_pid]
        while todo:
            pid = todo.pop()
            if pid in found or pid not in table:
                continue
            found.add(pid)
            todo.extend(children.get(pid, []))
        out = {}
        for pid, (_, comm) in table.items():
            key = (pid, comm)
            cmd = self._cmd_cache.get(key)
            if cmd is None:
                raw = _read(f"/proc/{pid}/cmdline") or ""
                cmd = raw.replace("\x00", " ").strip()
                self._cmd_cache[key] = cmd
            if pid in found or (self.session_name and self.session_name in cmd):
                out[pid] = (_role(pid, self.driver_pid, comm, cmd), comm)
        return out

    def sample(self, with_pss: bool = True) -> dict[str, Any]:
        procs = self.processes()
        if not with_pss:
            rss = [r for r in (_rss(pid) for pid in procs) if r is not None]
            return {"rss": sum(rss), "procs": len(rss), "t": time.time()}
        totals = {"rss": 0, "pss": 0, "uss": 0, "pss_shmem": 0}
        by_role: dict[str, dict[str, int]] = {}
        per_proc = []
        for pid, (role, name) in procs.items():
            mem = _smaps_rollup(pid)
            if mem is None:
                continue
            per_proc.append({"pid": pid, "role": role, "name": name, **mem})
            r = by_role.setdefault(role, dict.fromkeys([*totals, "count"], 0))
            for k in totals:
                totals[k] += mem[k]
                r[k] += mem[k]
            r["count"] += 1
        top = sorted(per_proc, key=lambda p: -p["pss"])[:TOP_PROCS]
        return {
            **totals,
            "procs": len(per_proc),
            "by_role": by_role,
            "top": top,
            "t": time.time(),
        }

    def _update(self, s: dict[str, Any]) -> None:
        self.samples += 1
        self.max_procs = max(self.max_procs, s["procs"])
        pss = s.get("pss")
        self.timeline.append(
            (round(s["t"], 2), s["rss"] // MiB, None if pss is None else pss // MiB, s["procs"])
        )
        keys = ("rss", "pss", "uss") if pss is not None else ("rss",)
        if pss is not None:
            self.pss_samples += 1
        for k in keys:
            if s[k] > self.peak.get(k, -1):
                self.peak[k] = s[k]
                if k == "pss":  # where the memory was at the PSS peak
                    self.peak["at_pss_peak"] = s

    def _loop(self) -> None:
        tick = 0
        while not self._stop.is_set():
            t0 = time.monotonic()
            c0 = time.thread_time()
            tick += 1
            self._update(self.sample(with_pss=tick % self.pss_every == 0))
            self.cpu_s += time.thread_time() - c0
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))

    def start(self) -> None:
        self.baseline = self.sample()
        self._thread = threading.Thread(target=self._loop, name="mem-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._update(self.sample())


# --------------------------------------------------------------------------- one measurement


def _session_name() -> str | None:
    try:
        import ray._private.worker as w

        node = getattr(w, "_global_node", None)
        return getattr(node, "session_name", None)
    except Exception:
        return None


def _git_state() -> dict[str, Any]:
    """Which raylabel code was measured: HEAD plus a hash of uncommitted changes."""
    import hashlib

    repo = Path(__file__).resolve().parent.parent

    def git(*a: str) -> str:
        try:
            return subprocess.run(
                ["git", *a], cwd=repo, capture_output=True, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    diff = git("diff", "HEAD", "--", "raylabel")
    return {
        "head": git("rev-parse", "--short", "HEAD").strip(),
        "raylabel_dirty": bool(diff),
        "raylabel_diff_sha1": hashlib.sha1(diff.encode()).hexdigest()[:12] if diff else None,
    }


def measure(out: Path, n: int, image_size: int, num_cpus: int, keep: bool) -> dict[str, Any]:
    """Run the label stage on the cached drop of size n in this (fresh) process."""
    import ray

    from raylabel.config import load_config
    from raylabel.label import label

    drop = drop_dir(out, n, image_size)
    root = output_root(out, image_size)
    overrides = [
        *LABEL_OVERRIDES,
        f"drop.path={drop}",
        f"drop.name=bench-{n}",
        f"model.image_size={image_size}",
        f"output.root={root}",
    ]
    cfg = load_config([], overrides)
    git = _git_state()  # before the run: the workers import the code as it is now
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    t_init = time.time()
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    init_s = time.time() - t_init
    sampler = MemorySampler(driver_pid=os.getpid(), session_name=_session_name())
    load_before = os.getloadavg()
    try:
        sampler.start()
        started = time.time()
        result = label(cfg)
        wall = time.time() - started
        sampler.stop()
    finally:
        ray.shutdown()
    load_after = os.getloadavg()
    s = result.summary
    if not keep:
        shutil.rmtree(result.run_uri, ignore_errors=True)
    return {
        "n": n,
        "image_size": image_size,
        "num_cpus": num_cpus,
        "ray_init_s": init_s,
        "wall_s": wall,
        "items_per_s_summary": s["throughput_items_per_s"],
        "items_per_s_wall": n / wall,
        "durations_s": s["durations_s"],
        "pool": s["pool"],
        "counts": s["counts"],
        "run_uri": result.run_uri,
        "git": git,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "overrides": overrides,
        "infer": asdict(cfg.infer),
        "memory": {
            "peak_rss_sum": sampler.peak["rss"],
            "peak_pss_sum": sampler.peak["pss"],
            "peak_uss_sum": sampler.peak["uss"],
            "pss_shmem_at_pss_peak": sampler.peak["at_pss_peak"]["pss_shmem"],
            "at_pss_peak": sampler.peak["at_pss_peak"],
            "baseline": sampler.baseline,
            "samples": sampler.samples,
            "pss_samples": sampler.pss_samples,
            "sampler_cpu_s": sampler.cpu_s,
            "max_procs": sampler.max_procs,
            "timeline_t_rssMiB_pssMiB_procs": sampler.timeline,
            "session": sampler.session_name,
        },
    }


# --------------------------------------------------------------------------- report


def _mib(b: float) -> str:
    return f"{b / MiB:,.0f}"


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| N | label wall s | items/s (summary) | items/s (N/wall) | peak RSS-sum MiB "
        "| peak PSS-sum MiB | of which shm MiB | peak USS-sum MiB | procs | labeled | errors |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in results:
        m, c = r["memory"], r["counts"]
        shm = m.get("pss_shmem_at_pss_peak")
        lines.append(
            f"| {r['n']:,} | {r['wall_s']:.1f} | {r['items_per_s_summary']:,.0f} "
            f"| {r['items_per_s_wall']:,.0f} | {_mib(m['peak_rss_sum'])} "
            f"| {_mib(m['peak_pss_sum'])} | {'?' if shm is None else _mib(shm)} "
            f"| {_mib(m['peak_uss_sum'])} | {m['max_procs']} "
            f"| {c['labeled']:,} | {c['errors']:,} |"
        )
    return "\n".join(lines)


def details(r: dict[str, Any]) -> str:
    m = r["memory"]
    roles = m["at_pss_peak"]["by_role"]
    parts = ", ".join(
        f"{role} {_mib(v['pss'])} ({v['count']}; shm "
        f"{_mib(v['pss_shmem']) if 'pss_shmem' in v else '?'})"
        for role, v in sorted(roles.items())
    )
    top = ", ".join(f"{p['name']} {_mib(p['pss'])}" for p in m["at_pss_peak"].get("top", [])[:4])
    d = r["durations_s"]
    return "\n".join(
        [
            f"N={r['n']:,}: plan {d['plan']:.1f}s, pipeline {d['pipeline']:.1f}s, "
            f"review {d['review']:.1f}s, total {d['total']:.1f}s; "
            f"load average before/after {_load(r['loadavg_before'])} / "
            f"{_load(r['loadavg_after'])}",
            f"  baseline after ray.init: RSS-sum {_mib(m['baseline']['rss'])} MiB, "
            f"PSS-sum {_mib(m['baseline']['pss'])} MiB",
            f"  PSS at its peak by role, MiB (processes; of which shared memory): {parts}",
            f"  largest processes at the PSS peak, MiB: {top}",
            f"  {m['samples']} samples ({m.get('pss_samples', '?')} with PSS), "
            f"sampler CPU {m.get('sampler_cpu_s', float('nan')):.1f}s",
        ]
    )


def _load(avg: list[float]) -> str:
    return " ".join(f"{x:.2f}" for x in avg)


def ratio_lines(results: list[dict[str, Any]]) -> list[str]:
    if len(results) < 2:
        return []
    small = min(results, key=lambda r: r["n"])
    big = max(results, key=lambda r: r["n"])
    if small["n"] == big["n"]:
        return []
    out = []
    for key, name in (("peak_pss_sum", "PSS-sum"), ("peak_rss_sum", "RSS-sum")):
        ratio = big["memory"][key] / small["memory"][key]
        verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
        out.append(
            f"peak {name} ratio N={big['n']:,} / N={small['n']:,}: {ratio:.2f} "
            f"(target <= {TARGET_RATIO}: {verdict})"
        )
    return out


# --------------------------------------------------------------------------- main


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, action="append", required=True, help="drop size (repeat)")
    p.add_argument("--out", type=Path, default=Path("raylabel-bench"), help="cache/output root")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--keep", action="store_true", help="keep the labeled runs (default: delete)")
    p.add_argument("--_measure", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if any(n < 1 for n in args.n):
        p.error("--n must be >= 1")
    if args.image_size < 16:
        p.error("--image-size must be >= 16")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    out = args.out.resolve()
    num_cpus = os.cpu_count() or 1
    results_dir = out / "results"
    if args._measure:  # child: one N in a fresh Ray instance, result as JSON
        (n,) = args.n
        res = measure(out, n, args.image_size, num_cpus, args.keep)
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / f"bench-{n}-px{args.image_size}.json").write_text(
            json.dumps(res, indent=1, default=str)
        )
        return 0

    print(
        f"raylabel streaming benchmark: N={args.n}, image_size={args.image_size}, "
        f"num_cpus={num_cpus}, out={out}",
        flush=True,
    )
    for n in dict.fromkeys(args.n):
        _, secs = ensure_drop(out, n, args.image_size)
        how = f"generated in {secs:.1f}s" if secs else "cached"
        print(f"drop n={n}: {how}", flush=True)
    version, secs = ensure_model(out, args.image_size, num_cpus)
    how = f"trained in {secs:.1f}s" if secs else "cached"
    print(f"model {version}: {how}", flush=True)

    results = []
    for n in dict.fromkeys(args.n):
        print(f"\n== label stage, N={n:,} ==", flush=True)
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--_measure",
            "--n",
            str(n),
            "--out",
            str(out),
            "--image-size",
            str(args.image_size),
            *(["--keep"] if args.keep else []),
        ]
        rc = subprocess.call(cmd)
        if rc != 0:
            print(f"label stage for N={n} failed (exit {rc})", file=sys.stderr)
            return 1
        res_path = results_dir / f"bench-{n}-px{args.image_size}.json"
        results.append(json.loads(res_path.read_text()))

    print("\n== streaming label stage ==")
    print(
        f"machine: {num_cpus} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}; settings: {' '.join(results[0]['overrides'][:2])} "
        f"model.image_size={args.image_size}; pool {results[0]['pool']}"
    )
    print(table(results))
    for r in results:
        print(details(r))
    for line in ratio_lines(results):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
