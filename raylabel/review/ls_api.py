"""A small client of Label Studio's REST API (1.x): the project a drop's review tasks live in,
task import, and the JSON export `evaluate` reads. Plain HTTP from the standard library:
the official SDK pins numpy, httpx and a code generator that clash with ours, and five calls
do not need it.

Authentication follows the server: a personal access token (a JWT refresh token, the
default since Label Studio 1.15) is exchanged for a short-lived access token at
``/api/token/refresh/``; a legacy token is sent as ``Authorization: Token <key>``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from raylabel.errors import ReviewError, first_line

API_KEY_ENV = "LABEL_STUDIO_API_KEY"


def api_key_from_env() -> str:
    """The API key, from the environment only: a key in a config file ends up in git."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise ReviewError(
            f"{API_KEY_ENV} is not set: Label Studio's personal access token (Account & "
            "Settings > Personal Access Token) goes in the environment, never in the config"
        )
    return key


def _is_jwt(key: str) -> bool:
    parts = key.split(".")
    return len(parts) == 3 and all(parts)


@dataclass
class LabelStudioClient:
    """One server, one API key; every failure is a one-line ReviewError naming the call."""

    url: str
    api_key: str
    timeout_s: float = 60.0
    _access: str | None = field(default=None, repr=False)

    def _auth(self) -> str:
        if not _is_jwt(self.api_key):
            return f"Token {self.api_key}"
        if self._access is None:
            answer = self._send("POST", "/api/token/refresh/", {"refresh": self.api_key}, None)
            self._access = str(answer["access"])
        return f"Bearer {self._access}"

    def _send(self, method: str, path: str, body: Any, auth: str | None) -> Any:
        url = self.url.rstrip("/") + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth is not None:
            req.add_header("Authorization", auth)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            hint = f" (check {API_KEY_ENV})" if exc.code in (401, 403) else ""
            raise ReviewError(
                f"Label Studio {method} {path}: HTTP {exc.code}{hint}: {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReviewError(
                f"review.labelstudio.url: cannot reach {self.url} ({first_line(Exception(reason))})"
            ) from None
        return json.loads(raw) if raw.strip() else None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One authenticated API call; the JSON answer."""
        return self._send(method, path, body, self._auth())

    def find_project(self, title: str) -> dict[str, Any] | None:
        """The project with exactly this title (the first, by id), or None."""
        query = urllib.parse.urlencode({"title": title, "page_size": 100})
        found = [p for p in self._pages(f"/api/projects?{query}") if p.get("title") == title]
        return min(found, key=lambda p: int(p["id"])) if found else None

    def _pages(self, path: str) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            sep = "&" if "?" in path else "?"
            answer = self.call("GET", f"{path}{sep}page={page}")
            if isinstance(answer, list):  # unpaginated servers answer a plain list
                yield from answer
                return
            yield from answer.get("results", [])
            if not answer.get("next"):
                return
            page += 1

    def ensure_project(self, title: str, label_config: str, description: str) -> dict[str, Any]:
        """Create the project, or bring an existing one's labeling config up to date (Label
        Studio itself refuses a config that would orphan existing annotations)."""
        project = self.find_project(title)
        if project is None:
            body = {"title": title, "label_config": label_config, "description": description}
            return dict(self.call("POST", "/api/projects", body))
        if project.get("label_config", "").strip() != label_config.strip():
            project = self.call(
                "PATCH", f"/api/projects/{project['id']}", {"label_config": label_config}
            )
        return dict(project)

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations (Label Studio's JSON export)."""
        answer = self.call(
            "GET", f"/api/projects/{project_id}/export?exportType=JSON&download_all_tasks=true"
        )
        if not isinstance(answer, list):
            raise ReviewError(f"Label Studio export of project {project_id}: not a task list")
        return answer

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]], batch: int) -> int:
        """Import tasks in batches; returns how many the server created."""
        created = 0
        for start in range(0, len(tasks), batch):
            chunk = list(tasks[start : start + batch])
            answer = self.call("POST", f"/api/projects/{project_id}/import", chunk)
            created += int((answer or {}).get("task_count", len(chunk)))
        return created


def _detail(exc: urllib.error.HTTPError) -> str:
    """The server's one-line reason: Label Studio answers JSON with `detail` and
    `validation_errors`."""
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        return exc.reason if isinstance(exc.reason, str) else "no detail"
    if not isinstance(body, dict):
        return "no detail"
    detail = str(body.get("detail") or exc.reason)
    errors = body.get("validation_errors")
    if errors:
        detail += f" {json.dumps(errors)[:300]}"
    return " ".join(detail.split())
