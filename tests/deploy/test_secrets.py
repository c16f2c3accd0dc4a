"""No credentials anywhere in the deployment files: the Secret example holds placeholders
only and is never applied, the scanner finds keys, nothing committed looks like one, and
secret-looking env vars never carry inline values.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_support import (
    PLACEHOLDER,
    REPO,
    SECRET_EXAMPLE,
    SECRET_NAME,
    docs_of_kind,
    find_secrets,
    kustomization,
    load_docs,
    manifest_paths,
    scanned_files,
)


def test_secret_example_holds_placeholders_only_and_is_not_applied():
    (name, secret), *others = docs_of_kind("Secret")
    assert name == SECRET_EXAMPLE and not others, "the only Secret is the example"
    assert secret["metadata"]["name"] == "raylabel-s3"
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(values)
    assert set(values.values()) == {PLACEHOLDER}
    k = kustomization()
    listed = [
        *k.get("resources", []),
        *(f for g in k.get("configMapGenerator", []) for f in g["files"]),
    ]
    assert SECRET_EXAMPLE not in listed
    assert not k.get("secretGenerator"), "no secrets generated from files in the repo"


def test_secret_scanner_catches_keys():
    key_id = "AKIA" + "Q" * 16
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
    assert find_secrets(f"AWS_ACCESS_KEY_ID={key_id}")
    assert find_secrets(f"aws_secret_access_key: {secret}")
    assert find_secrets(f"value: {secret}")
    assert not find_secrets(f"AWS_SECRET_ACCESS_KEY: {PLACEHOLDER}")


@pytest.mark.parametrize("path", scanned_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_credentials_in_deployment_files(path: Path):
    hits = find_secrets(path.read_text(encoding="utf-8"))
    assert not hits, f"{path.relative_to(REPO)}: looks like a credential: {hits}"


def test_no_inline_secret_env_values():
    """Secret-looking variables come from a Secret (envFrom / valueFrom), never `value:`."""

    def walk(node: Any, where: str) -> Iterator[str]:
        """Every inline secret-looking env value anywhere in a manifest, however deep it sits."""
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "env" and isinstance(value, list):
                    for var in value:
                        if SECRET_NAME.search(var.get("name", "")) and "value" in var:
                            yield f"{where}: env {var['name']} has an inline value"
                yield from walk(value, where)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, where)

    bad = [hit for p in manifest_paths() for d in load_docs(p.name) for hit in walk(d, p.name)]
    assert not bad, "\n".join(bad)
