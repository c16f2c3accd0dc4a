"""A real Ray head started with `ray start --head` on loopback, for the job-submission path.

Stopped by killing exactly the processes of this head (found by its private temp dir),
never with `ray stop`, which would also kill the test session's own cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RayHead:
    temp_dir: Path
    gcs_port: int
    dashboard_url: str
    ray_bin: str

    def client_env(self) -> dict[str, str]:
        """What a client needs to submit to a token-authenticated 2.60 head."""
        env = dict(os.environ)
        env["RAY_AUTH_MODE"] = "token"
        env.pop("RAY_ADDRESS", None)
        return env


def start_head(ray_bin: str, env: dict[str, str], num_cpus: int = 2) -> RayHead:
    temp = Path(tempfile.mkdtemp(prefix="rlh", dir="/tmp"))  # short: unix socket paths
    gcs, dash = free_port(), free_port()
    cmd = [
        ray_bin,
        "start",
        "--head",
        f"--port={gcs}",
        f"--dashboard-port={dash}",
        "--dashboard-host=127.0.0.1",
        "--include-dashboard=true",
        f"--num-cpus={num_cpus}",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
        # every port explicit: the test session's own Ray (ray.init) already holds the
        # defaults, and a job agent that cannot bind its port never accepts submissions
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    head = RayHead(temp, gcs, f"http://127.0.0.1:{dash}", ray_bin)
    if proc.returncode != 0:
        stop_head(head)
        raise RuntimeError(f"ray start failed: {proc.stderr[-2000:]}")
    return head


def _processes(head: RayHead) -> list[psutil.Process]:
    found: dict[int, psutil.Process] = {}
    marker = str(head.temp_dir)
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in p.info["cmdline"] or []):
                found[p.pid] = p
                for child in p.children(recursive=True):
                    found[child.pid] = child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return list(found.values())


def stop_head(head: RayHead, timeout: float = 15.0) -> None:
    procs = _processes(head)
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    shutil.rmtree(head.temp_dir, ignore_errors=True)


def submit(head: RayHead, working_dir: Path, args: list[str], timeout: float = 600) -> str:
    """`ray job submit` and wait; returns the job's output, raises if it did not succeed."""
    cmd = [
        head.ray_bin,
        "job",
        "submit",
        "--address",
        head.dashboard_url,
        "--working-dir",
        str(working_dir),
        "--",
        *args,
    ]
    start = time.time()
    for _ in range(30):  # right after `ray start` the job agent may not be up yet
        proc = subprocess.run(
            cmd,
            env=head.client_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=working_dir,
        )
        out = proc.stdout + proc.stderr
        if "No available agent to submit job" not in out:
            break
        time.sleep(2)
    if proc.returncode != 0 or "succeeded" not in out:
        raise AssertionError(
            f"job failed (rc={proc.returncode}, {time.time() - start:.0f}s):\n{out[-4000:]}"
        )
    return out
