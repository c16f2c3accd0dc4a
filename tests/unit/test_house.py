"""The house rules, checked on every run: layers and no cycles (import-linter), declared
dependencies (deptry), ruff (docstrings on public names included), no module reaching into
another's private names, and sizes a reader can hold."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PACKAGE = REPO / "raylabel"
CODE_DIRS = ("raylabel", "bench", "scripts", "jobs", "tests")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
MAX_TEST_FILE_LINES = 500


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / name
    if not exe.exists():
        pytest.fail(f"{name} is not installed in {BIN} (it is a dev dependency)")
    env = {"NO_COLOR": "1", "PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [str(exe), *args], cwd=REPO, capture_output=True, text=True, timeout=300, env=env
    )


def _python_files(*dirs: str) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        out += [p for p in (REPO / d).rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(out)


def test_import_contracts_hold() -> None:
    proc = _tool("lint-imports")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout


def test_declared_dependencies_match_imports() -> None:
    proc = _tool("deptry", ".")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_ruff_lint_and_format() -> None:
    lint = _tool("ruff", "check", *CODE_DIRS)
    assert lint.returncode == 0, lint.stdout[-4000:]
    fmt = _tool("ruff", "format", "--check", *CODE_DIRS)
    assert fmt.returncode == 0, fmt.stdout[-4000:]


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("raylabel"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(REPO)}: {node.module}.{alias.name}")
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    found = [hit for p in _python_files(*CODE_DIRS) for hit in _private_imports(p)]
    assert not found, "\n".join(found)


def _long_functions(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            if n > MAX_FUNCTION_LINES:
                out.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {n} lines")
    return out


def test_modules_and_functions_are_sized_for_a_reader() -> None:
    big = [
        f"{p.relative_to(REPO)}: {n} lines"
        for p in _python_files("raylabel")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    long = [hit for p in _python_files("raylabel") for hit in _long_functions(p)]
    assert not big, "\n".join(big)
    assert not long, "\n".join(long)


def test_test_files_stay_under_500_lines() -> None:
    big = [
        f"{p.relative_to(REPO)}: {n} lines"
        for p in _python_files("tests")
        if (n := len(p.read_text().splitlines())) > MAX_TEST_FILE_LINES
    ]
    assert not big, "\n".join(big)


def test_every_package_has_a_face_that_says_why() -> None:
    faces = sorted(PACKAGE.glob("*/__init__.py"))
    assert len(faces) >= 12
    for face in faces:
        doc = ast.get_docstring(ast.parse(face.read_text()))
        assert doc and len(doc) > 40, f"{face.relative_to(REPO)} needs a docstring saying why"
