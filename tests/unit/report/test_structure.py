"""The report package keeps its shape: small modules and functions, shared helpers only
through the kit's public names, and imports pointing one way (kit <- sections <- page)."""

from __future__ import annotations

import ast
from pathlib import Path

import raylabel.report

PACKAGE = Path(raylabel.report.__file__).parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
#: Modules of the package each module may import (the kit and plots sit at the bottom).
BOTTOM = {"kit": set(), "plots": {"kit"}}


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text()) for p in sorted(PACKAGE.glob("*.py"))}


def _package_imports(tree: ast.Module) -> list[tuple[str, str]]:
    """(module of the package, imported name) for every import from raylabel.report."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "raylabel.report":
                out.extend((a.name, "") for a in node.names)
            elif node.module.startswith("raylabel.report."):
                mod = node.module.removeprefix("raylabel.report.")
                out.extend((mod, a.name) for a in node.names)
    return out


def test_no_private_names_cross_modules() -> None:
    for name, tree in _modules().items():
        for mod, imported in _package_imports(tree):
            assert not imported.startswith("_"), f"{name} imports {mod}.{imported}"


def test_modules_and_functions_stay_small() -> None:
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert text.count("\n") <= MAX_MODULE_LINES, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= MAX_FUNCTION_LINES, f"{path.name}:{node.name} has {length} lines"


def test_kit_and_plots_are_the_bottom() -> None:
    modules = _modules()
    for name, allowed in BOTTOM.items():
        used = {mod for mod, _ in _package_imports(modules[name])}
        assert used <= allowed, f"{name} imports {used - allowed}"
    for name, tree in modules.items():
        if name not in ("run_page", "__init__"):  # render_html is the package entry
            used = {mod for mod, _ in _package_imports(tree)}
            assert "run_page" not in used, f"{name} imports the page"


def test_public_functions_say_why_in_one_line() -> None:
    for name, tree in _modules().items():
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                doc = ast.get_docstring(node)
                assert doc and "\n" not in doc.strip(), f"{name}.{node.name}"
