"""A real Label Studio server on loopback for the review round-trip tests.

It runs from its own virtualenv (`scripts/setup_labelstudio.sh` builds .venv-labelstudio:
its pins clash with ours), on a fresh SQLite data dir, with no network. The fixture logs in
as a user would and creates a personal access token through the API, the key raylabel
reads from LABEL_STUDIO_API_KEY.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LS_VENV = Path(os.environ.get("RAYLABEL_LABEL_STUDIO_VENV", REPO / ".venv-labelstudio"))
EMAIL = "reviewer@example.com"
PASSWORD = "raylabel-test-pass"


@dataclass
class LabelStudioServer:
    url: str
    api_key: str  # a personal access token (JWT refresh token)
    proc: subprocess.Popen
    log: Path
    python: Path  # the server's venv python: has label-studio-sdk, for the "reviewer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_label_studio(data_dir: Path, timeout_s: float = 240.0) -> LabelStudioServer:
    """Start the server and return it once it answers, with a fresh access token."""
    exe = LS_VENV / "bin" / "label-studio"
    if not exe.exists():
        raise RuntimeError(f"no Label Studio at {exe}: run scripts/setup_labelstudio.sh")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "server.log"
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "DJANGO_DB": "sqlite",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data_dir), "--username", EMAIL, "--password", PASSWORD],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_healthy(url, proc, log, timeout_s)
        key = _personal_access_token(url)
    except BaseException:
        stop_label_studio_proc(proc)
        raise
    return LabelStudioServer(url, key, proc, log, LS_VENV / "bin" / "python")


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Label Studio exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1.0)
    tail = log.read_text()[-2000:]
    raise RuntimeError(f"Label Studio did not answer within {timeout_s}s: {tail}")


def _personal_access_token(url: str) -> str:
    """Log in through the web form (CSRF and session cookie) and create a token, as a user
    does on the Account & Settings page."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{url}/user/login/", timeout=30).read()

    def csrf() -> str:
        return next(c.value for c in jar if c.name == "csrftoken")

    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": csrf(), "email": EMAIL, "password": PASSWORD}
    ).encode()
    req = urllib.request.Request(f"{url}/user/login/", data=form, method="POST")
    req.add_header("Referer", f"{url}/user/login/")
    opener.open(req, timeout=30).read()
    req = urllib.request.Request(f"{url}/api/token/", data=b"{}", method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("X-CSRFToken", csrf())
    req.add_header("Referer", f"{url}/")
    with opener.open(req, timeout=30) as resp:
        return str(json.loads(resp.read())["token"])


def stop_label_studio_proc(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


REVIEWER = """
import json, sys
from label_studio_sdk import LabelStudio
url, key, project, run_id, answers_path = sys.argv[1:6]
answers = json.load(open(answers_path))
ls = LabelStudio(base_url=url, api_key=key)
reviewers = {u.email: u.id for u in ls.users.list()}
def reviewer(n):  # the n-th verdict of a task comes from the n-th reviewer
    email = f"reviewer{n}@example.com" if n else None
    if email is None:
        return None
    if email not in reviewers:
        reviewers[email] = ls.users.create(username=f"reviewer{n}", email=email).id
    return reviewers[email]
done = 0
for task in ls.tasks.list(project=int(project)):
    data = task.data or {}
    if data.get("run_id") != run_id or data.get("item_id") not in answers:
        continue
    tag = "image" if "image" in data else "text"
    for n, label in enumerate(answers[data["item_id"]]):
        extra = {"completed_by": reviewer(n)} if n else {}
        ls.annotations.create(id=task.id, result=[{"from_name": "label", "to_name": tag,
            "type": "choices", "value": {"choices": [label]}}], **extra)
        done += 1
print(done)
"""


def annotate(server: LabelStudioServer, project_id: int, run_id: str,
             answers: dict[str, list[str]], work: Path) -> int:  # fmt: skip
    """Reviewers at work: post annotations through the official SDK (label-studio-sdk, in the
    server's venv), one per verdict, the n-th verdict of a task by the n-th reviewer (a user
    of its own); returns how many were created."""
    path = work / f"answers-{run_id}.json"
    path.write_text(json.dumps(answers))
    out = subprocess.run(
        [str(server.python), "-c", REVIEWER, server.url, server.api_key, str(project_id),
         run_id, str(path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(f"reviewer script failed: {out.stderr[-2000:]}")
    return int(out.stdout.strip().splitlines()[-1])
