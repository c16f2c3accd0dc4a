"""The schema as help text: `raylabel <stage> -h` and the generated docs/configuration.md
come from the fields' own help, so they cannot drift from the code."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from raylabel.config.schema import Config


def section_names() -> list[str]:
    """Top-level keys, for help text."""
    return [f.name for f in fields(Config)]


def flat_keys(obj: Any = None, prefix: str = "") -> list[str]:
    """All dotted keys of the schema, in schema order."""
    obj = Config() if obj is None else obj
    keys: list[str] = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            keys.extend(flat_keys(value, f"{prefix}{f.name}."))
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def key_docs(obj: Any = None, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, default, help) for every key of the schema, in schema order: the single
    source of `raylabel <stage> -h` and docs/configuration.md."""
    obj = Config() if obj is None else obj
    out: list[tuple[str, Any, str]] = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            out.extend(key_docs(value, f"{prefix}{f.name}."))
        else:
            out.append((f"{prefix}{f.name}", value, str(f.metadata.get("help", ""))))
    return out


def keys_help(sections: tuple[str, ...]) -> list[str]:
    """One line per key of the given top-level sections: `key = default  help`."""
    lines = []
    for key, default, text in key_docs():
        if key.split(".")[0] in sections:
            lines.append(f"{key} = {_yaml_value(default)}" + (f"  ({text})" if text else ""))
    return lines


REGENERATE_DOCS = (
    'python -c "from raylabel.config import configuration_markdown as m; '
    "open('docs/configuration.md', 'w').write(m())\""
)


def configuration_markdown() -> str:
    """docs/configuration.md: every key with its default and help, one table per section,
    generated from the schema (tests/unit/test_docs.py fails when the file lags)."""
    lines = [
        "# Configuration",
        "",
        "<!-- Generated from raylabel/config/ by raylabel.config.configuration_markdown();",
        f"     do not edit by hand. Regenerate: {REGENERATE_DOCS} -->",
        "",
        "Every key a stage reads, with its default and what it is for. Load order: schema",
        "defaults ← each `-c FILE.yaml` in order ← `key=value` overrides (dotted keys, e.g.",
        "`infer.batch_size=512`). Unknown keys, wrong types and impossible values stop before",
        "any work with exit code 2 and one line naming the key. `raylabel config [-c FILE]...",
        "[key=value]...` prints the resolved configuration; `raylabel <stage> -h` lists the keys",
        "that stage reads. [`conf/default.yaml`](../conf/default.yaml) spells out the defaults;",
        "`conf/*.yaml` holds ready-made files.",
        "",
        "Sections: "
        + ", ".join(f"[{n}](#{n})" for n in section_names() if is_dataclass(getattr(Config(), n)))
        + ".",
    ]
    lines += _markdown_section("Top level", Config.__doc__ or "", Config(), "", nested=False)
    for f in fields(Config):
        value = getattr(Config(), f.name)
        if is_dataclass(value):
            lines += _markdown_section(f"`{f.name}`", type(value).__doc__ or "", value, f.name)
    return "\n".join(lines) + "\n"


def _markdown_section(
    title: str, doc: str, obj: Any, prefix: str, nested: bool = True
) -> list[str]:
    dotted = f"{prefix}." if prefix else ""
    rows, subsections = [], []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            if nested:
                subsections += _markdown_section(
                    f"`{dotted}{f.name}`", type(value).__doc__ or "", value, dotted + f.name
                )
            continue
        text = _md_cell(str(f.metadata.get("help", "")))
        rows.append(f"| `{dotted}{f.name}` | `{_yaml_value(value)}` | {text} |")
    out = ["", f"## {title}" if prefix.count(".") == 0 else f"### {title}", ""]
    if doc.strip():
        out += [_md_cell(" ".join(doc.split())), ""]
    out += ["| key | default | meaning |", "|---|---|---|", *rows]
    return out + subsections


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    return str(value)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
