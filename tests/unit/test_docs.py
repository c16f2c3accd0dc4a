"""The documentation against the code: docs/configuration.md is generated from the schema,
and every relative link (and repository path) in README.md and docs/*.md must resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from raylabel.config import REGENERATE_DOCS, configuration_markdown

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [REPO / "README.md", *DOCS]

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"`[^`\n]*`")
# a repository path in a code span: `raylabel/io/layout.py`, `tests/unit/test_docs.py::test_x`
REPO_PATH = re.compile(
    r"`((?:raylabel|tests|bench|scripts|jobs|conf|k8s|docs)/[A-Za-z0-9_./-]*[A-Za-z0-9_])"
    r"(?:::\w+)?`"
)


def _prose(text: str) -> str:
    """The text outside fenced code blocks (whose '#' lines are comments, not headings)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        out.append("" if fenced else line)
    return "\n".join(out)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to '-', repeats -1, -2."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in _prose(page.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _links(page: Path) -> list[str]:
    prose = CODE_SPAN.sub("", _prose(page.read_text(encoding="utf-8")))
    return LINK.findall(prose)


def test_configuration_md_matches_the_schema() -> None:
    path = REPO / "docs" / "configuration.md"
    want = configuration_markdown()
    have = path.read_text(encoding="utf-8") if path.is_file() else ""
    assert have == want, (
        "docs/configuration.md does not match raylabel/config.py (a key, default or help "
        f"changed). Regenerate it from the repository root: {REGENERATE_DOCS}"
    )


def test_configuration_md_lists_every_key_with_help() -> None:
    from raylabel.config import flat_keys, key_docs

    text = configuration_markdown()
    for key in flat_keys():
        assert f"| `{key}` |" in text, key
    assert all(help_text for _, _, help_text in key_docs()), "every key needs a help text"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_repository_paths_in_code_spans_exist(page: Path) -> None:
    """`raylabel/...py`, `tests/...`, `bench/...` named in prose: a rename updates the docs."""
    prose = _prose(page.read_text(encoding="utf-8"))
    missing = sorted(
        {p for p in REPO_PATH.findall(prose) if "<" not in p and not (REPO / p).exists()}
    )
    assert not missing, f"{page.relative_to(REPO)} names paths that do not exist: {missing}"


def test_old_top_level_docs_are_not_mentioned() -> None:
    old = re.compile(r"\b(RELIABILITY|BENCHMARKS)\.md\b")
    hits = [str(p.relative_to(REPO)) for p in PAGES if old.search(p.read_text(encoding="utf-8"))]
    assert not hits, f"RELIABILITY.md / BENCHMARKS.md moved to docs/: still named in {hits}"


def test_readme_starts_with_the_two_setup_commands_and_stays_short() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[2] == "```bash"
    assert lines[3].startswith("./scripts/setup.sh && .venv/bin/raylabel demo ")
    # CI (.ci/run) runs exactly this second command
    assert lines[4].startswith("./scripts/setup.sh && .venv/bin/python -m pytest -q ")
    assert lines[5] == "```"
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail into docs/"
