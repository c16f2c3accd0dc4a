"""raylabel.sources planning (driver side, no Ray) on local folders and manifests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raylabel.config import Config, load_config
from raylabel.errors import ConfigError, InputError, InputNotFound
from raylabel.inputs.sources import drop_name, plan_drop, plan_seed


def _cfg(*overrides: str) -> Config:
    return load_config([], list(overrides))


def _write(path: Path, data: bytes | str = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def seed_folder(tmp_path: Path) -> Path:
    root = tmp_path / "seed"
    _write(root / "dog" / "d1.png", b"d1")
    _write(root / "dog" / "nested" / "d2.jpg", b"d22")
    _write(root / "cat" / "c1.PNG", b"c1")
    _write(root / "bird" / "b1.jpeg", b"b1")
    _write(root / "cat" / "notes.txt", "not an image")
    _write(root / "cat" / ".DS_Store", b"junk")
    _write(root / "__MACOSX" / "cat" / "._c1.PNG", b"resource fork")
    _write(root / "_temporary" / "0" / "y.png", b"half-written by a job")
    return root


@pytest.fixture
def drop_folder(tmp_path: Path) -> Path:
    root = tmp_path / "drop-2024-05-01"
    _write(root / "a.png", b"aaaa")
    _write(root / "b.JPG", b"bb")
    _write(root / "sub" / "deeper" / "c.webp", b"c")
    _write(root / "sub" / "readme.md", "skip me")
    _write(root / "._a.png", b"h")  # AppleDouble
    _write(root / ".DS_Store", b"h")
    _write(root / "_SUCCESS", b"")
    return root


# ------------------------------------------------------------------------------------------
# Folders
# ------------------------------------------------------------------------------------------


def test_image_folder_seed(seed_folder: Path) -> None:
    plan = plan_seed(_cfg(f"seed.path={seed_folder}"))
    assert plan.kind == "folder"
    assert plan.num_items == 4 == plan.listing.num_rows
    assert plan.skipped == {"os_metadata": 2, "marker": 1, "extension": 1}
    rows = plan.listing.to_pylist()
    assert [(r["item_id"], r["label"]) for r in rows] == [
        ("bird/b1.jpeg", "bird"),
        ("cat/c1.PNG", "cat"),
        ("dog/d1.png", "dog"),
        ("dog/nested/d2.jpg", "dog"),  # the label is the first path component
    ]
    assert all(r["uri"] == str(seed_folder / r["item_id"]) for r in rows)
    assert plan.classes() == ["bird", "cat", "dog"]


def test_image_folder_seed_with_a_file_at_the_root(seed_folder: Path) -> None:
    _write(seed_folder / "stray.png", b"s")
    with pytest.raises(InputError, match=r"^seed\.path: .*'stray\.png'"):
        plan_seed(_cfg(f"seed.path={seed_folder}"))


def test_flat_drop_folder(drop_folder: Path) -> None:
    plan = plan_drop(_cfg(f"drop.path={drop_folder}"))
    assert plan.kind == "folder"
    assert plan.listing.column_names == ["item_id", "uri", "size"]
    assert plan.listing.column("size").to_pylist() == [4, 2, 1]
    assert plan.skipped == {"marker": 1, "os_metadata": 2, "extension": 1}
    assert plan.listing.column("item_id").to_pylist() == [
        "a.png",
        "b.JPG",
        "sub/deeper/c.webp",
    ]
    assert plan.listing.column("uri").to_pylist() == [
        str(drop_folder / "a.png"),
        str(drop_folder / "b.JPG"),
        str(drop_folder / "sub" / "deeper" / "c.webp"),
    ]
    assert plan.num_items == 3
    assert plan.duplicates == 0
    assert plan.classes() == []


def test_drop_folder_extension_filter(drop_folder: Path) -> None:
    plan = plan_drop(_cfg(f"drop.path={drop_folder}", "drop.extensions=[.webp,.md]"))
    assert plan.listing.column("item_id").to_pylist() == ["sub/deeper/c.webp", "sub/readme.md"]


def test_folder_without_matching_files(tmp_path: Path) -> None:
    _write(tmp_path / "d" / "notes.txt", "x")
    with pytest.raises(InputNotFound, match=r"^drop\.path has no files with extensions"):
        plan_drop(_cfg(f"drop.path={tmp_path / 'd'}"))


def test_relative_drop_folder_gives_absolute_uris(
    drop_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(drop_folder.parent)
    plan = plan_drop(_cfg(f"drop.path={drop_folder.name}"))
    assert plan.listing.column("uri")[0].as_py() == str(drop_folder / "a.png")


# ------------------------------------------------------------------------------------------
# Manifests
# ------------------------------------------------------------------------------------------


def _manifest_rows() -> list[dict[str, str]]:
    return [
        {"uri": "imgs/a.png", "label": "cat", "item_id": "A"},
        {"uri": "/abs/b.png", "label": "dog", "item_id": "B"},
        {"uri": "s3://bucket/c.png", "label": "cat", "item_id": "C"},
        {"uri": "imgs/a2.png", "label": "dog", "item_id": "A"},  # duplicate id
    ]


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix
    if suffix == ".csv":
        cols = list(rows[0])
        lines = [",".join(cols)] + [",".join(r[c] for c in cols) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    elif suffix in (".jsonl", ".json"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("name", ["m.csv", "m.jsonl", "m.parquet"])
def test_seed_manifest(tmp_path: Path, name: str) -> None:
    manifest = _write_manifest(tmp_path / "lists" / name, _manifest_rows())
    plan = plan_seed(_cfg(f"seed.path={manifest}"))
    assert plan.kind == "manifest"
    assert plan.num_items == 4
    assert plan.duplicates == 1
    assert plan.listing.column_names == ["item_id", "uri", "label", "duplicate"]
    assert plan.listing.column("item_id").to_pylist() == ["A", "B", "C", "A"]
    assert plan.listing.column("uri").to_pylist() == [
        str(tmp_path / "lists" / "imgs" / "a.png"),  # relative: against the manifest's folder
        "/abs/b.png",
        "s3://bucket/c.png",
        str(tmp_path / "lists" / "imgs" / "a2.png"),
    ]
    assert plan.listing.column("duplicate").to_pylist() == [False, False, False, True]
    assert plan.classes() == ["cat", "dog"]


@pytest.mark.parametrize("name", ["m.csv", "m.jsonl", "m.parquet"])
def test_drop_manifest_without_item_id_uses_the_uri(tmp_path: Path, name: str) -> None:
    rows = [{"uri": "x/1.png"}, {"uri": "x/2.png"}, {"uri": "x/1.png"}]
    manifest = _write_manifest(tmp_path / name, rows)
    plan = plan_drop(_cfg(f"drop.path={manifest}"))
    assert plan.kind == "manifest"
    assert plan.listing.column("item_id").to_pylist() == ["x/1.png", "x/2.png", "x/1.png"]
    assert plan.listing.column("uri").to_pylist() == [
        str(tmp_path / "x" / "1.png"),
        str(tmp_path / "x" / "2.png"),
        str(tmp_path / "x" / "1.png"),
    ]
    assert plan.listing.column("duplicate").to_pylist() == [False, False, True]
    assert plan.duplicates == 1
    assert plan.num_items == 3


def test_manifest_given_as_a_relative_path_gives_absolute_uris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray workers do not share the driver's working directory: uris must not depend on it."""
    _write_manifest(tmp_path / "m.csv", [{"uri": "imgs/a.png"}])
    monkeypatch.chdir(tmp_path)
    plan = plan_drop(_cfg("drop.path=m.csv"))
    assert plan.listing.column("uri").to_pylist() == [str(tmp_path / "imgs" / "a.png")]


def test_csv_manifest_keeps_ids_and_labels_as_strings(tmp_path: Path) -> None:
    manifest = _write(tmp_path / "m.csv", "uri,item_id,label\na.png,007,1\nb.png,8,2\n")
    plan = plan_seed(_cfg(f"seed.path={manifest}"))
    assert plan.listing.column("item_id").to_pylist() == ["007", "8"]
    assert plan.classes() == ["1", "2"]


def test_seed_manifest_without_label_column(tmp_path: Path) -> None:
    manifest = _write_manifest(tmp_path / "m.csv", [{"uri": "a.png", "item_id": "a"}])
    with pytest.raises(InputError, match=r"^seed\.path: .*'label'"):
        plan_seed(_cfg(f"seed.path={manifest}"))


def test_seed_manifest_with_a_custom_label_column(tmp_path: Path) -> None:
    manifest = _write_manifest(tmp_path / "m.jsonl", [{"uri": "a.png", "cls": "x"}])
    plan = plan_seed(_cfg(f"seed.path={manifest}", "seed.label_column=cls"))
    assert plan.classes() == ["x"]


def test_manifest_without_uri_column(tmp_path: Path) -> None:
    manifest = _write_manifest(tmp_path / "m.csv", [{"path": "a.png", "label": "x"}])
    with pytest.raises(InputError, match=r"^drop\.path: .*'uri'"):
        plan_drop(_cfg(f"drop.path={manifest}"))


def test_unreadable_manifest_is_one_line(tmp_path: Path) -> None:
    manifest = _write(tmp_path / "m.jsonl", '{"uri": "a.png"}\n{not json\n')
    with pytest.raises(InputError, match="unreadable manifest") as info:
        plan_drop(_cfg(f"drop.path={manifest}"))
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------
# Packed Parquet
# ------------------------------------------------------------------------------------------


def test_parquet_with_inline_bytes(tmp_path: Path) -> None:
    path = tmp_path / "packed.parquet"
    table = pa.table(
        {
            "item_id": ["i0", "i1", "i2"],
            "bytes": [b"\x89PNG0", b"\x89PNG1", b"\x89PNG2"],
            "label": ["a", "b", "a"],
        }
    )
    pq.write_table(table, path, row_group_size=2)
    drop = plan_drop(_cfg(f"drop.path={path}"))
    assert drop.kind == "parquet"
    assert drop.num_items == 3
    assert drop.parquet_files == [str(path)]
    assert drop.payload_column == "bytes"
    assert drop.listing is None

    seed = plan_seed(_cfg(f"seed.path={path}"))
    assert seed.kind == "parquet"
    assert seed.listing.to_pylist() == [
        {"item_id": "i0", "label": "a"},
        {"item_id": "i1", "label": "b"},
        {"item_id": "i2", "label": "a"},
    ]
    assert seed.classes() == ["a", "b"]


def test_parquet_folder_counts_rows_of_every_file(tmp_path: Path) -> None:
    root = tmp_path / "packed"
    root.mkdir()
    for i, n in enumerate((2, 5)):
        pq.write_table(
            pa.table({"item_id": [f"{i}-{k}" for k in range(n)], "image": [b"x"] * n}),
            root / f"part-{i}.parquet",
        )
    plan = plan_drop(_cfg(f"drop.path={root}", "drop.payload_column=image"))
    assert plan.kind == "parquet"
    assert plan.num_items == 7
    assert plan.payload_column == "image"
    assert plan.parquet_files == [str(root / "part-0.parquet"), str(root / "part-1.parquet")]


def test_parquet_without_payload_nor_uri_column(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"item_id": ["a"], "data": [b"x"]}), path)
    with pytest.raises(InputError, match=r"^drop\.path: .*'bytes'.*'uri'"):
        plan_drop(_cfg(f"drop.path={path}"))
    with pytest.raises(InputError, match=r"'blob'"):
        plan_drop(_cfg(f"drop.path={path}", "drop.payload_column=blob"))


def test_parquet_seed_without_label_column(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"item_id": ["a"], "bytes": [b"x"]}), path)
    with pytest.raises(InputError, match=r"^seed\.path: .*'label'"):
        plan_seed(_cfg(f"seed.path={path}"))


def test_parquet_without_item_id(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"bytes": [b"x"]}), path)
    with pytest.raises(InputError, match=r"'item_id'"):
        plan_drop(_cfg(f"drop.path={path}"))


# ------------------------------------------------------------------------------------------
# Missing and empty inputs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "plan"), [("seed.path", plan_seed), ("drop.path", plan_drop)])
def test_missing_path_names_the_key(tmp_path: Path, key: str, plan: object) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(InputNotFound, match=rf"^{key} not found: .*nope") as info:
        plan(_cfg(f"{key}={missing}"))  # type: ignore[operator]
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("key", "plan"), [("seed.path", plan_seed), ("drop.path", plan_drop)])
def test_empty_folder(tmp_path: Path, key: str, plan: object) -> None:
    empty = tmp_path / "empty"
    _write(empty / ".DS_Store", b"hidden files do not count")
    (empty / "subdir").mkdir()
    with pytest.raises(InputNotFound, match=rf"^{key} is empty"):
        plan(_cfg(f"{key}={empty}"))  # type: ignore[operator]


def test_unset_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^drop\.path: required"):
        plan_drop(_cfg())


# ------------------------------------------------------------------------------------------
# Fingerprints
# ------------------------------------------------------------------------------------------


def test_folder_fingerprints(seed_folder: Path, drop_folder: Path) -> None:
    seed_cfg = _cfg(f"seed.path={seed_folder}")
    drop_cfg = _cfg(f"drop.path={drop_folder}")
    seed_fp, drop_fp = plan_seed(seed_cfg).fingerprint, plan_drop(drop_cfg).fingerprint
    assert plan_seed(seed_cfg).fingerprint == seed_fp
    assert plan_drop(drop_cfg).fingerprint == drop_fp
    assert len(seed_fp) == len(drop_fp) == 16

    _write(seed_folder / "dog" / "d1.png", b"a new, longer image")
    _write(drop_folder / "a.png", b"a new, longer image")
    assert plan_seed(seed_cfg).fingerprint != seed_fp
    assert plan_drop(drop_cfg).fingerprint != drop_fp


def test_drop_folder_fingerprint_changes_when_files_are_added_or_renamed(
    drop_folder: Path,
) -> None:
    cfg = _cfg(f"drop.path={drop_folder}")
    seen = {plan_drop(cfg).fingerprint}
    _write(drop_folder / "new.png", b"n")
    seen.add(plan_drop(cfg).fingerprint)
    os.rename(drop_folder / "new.png", drop_folder / "renamed.png")
    seen.add(plan_drop(cfg).fingerprint)
    assert len(seen) == 3


def test_seed_fingerprint_changes_when_a_file_moves_class(seed_folder: Path) -> None:
    cfg = _cfg(f"seed.path={seed_folder}")
    before = plan_seed(cfg).fingerprint
    _write(seed_folder / "cat" / "nested" / "d2.jpg", b"d22")
    os.remove(seed_folder / "dog" / "nested" / "d2.jpg")
    assert plan_seed(cfg).fingerprint != before


@pytest.mark.parametrize("labeled", [True, False])
def test_manifest_fingerprint(tmp_path: Path, labeled: bool) -> None:
    rows = [{"uri": "a.png", "label": "x"}, {"uri": "b.png", "label": "y"}]
    manifest = _write_manifest(tmp_path / "m.jsonl", rows)
    cfg = _cfg(f"seed.path={manifest}", f"drop.path={manifest}")
    plan = plan_seed if labeled else plan_drop
    first = plan(cfg).fingerprint
    assert plan(cfg).fingerprint == first
    _write_manifest(manifest, [*rows, {"uri": "c.png", "label": "x"}])
    assert plan(cfg).fingerprint != first


def test_parquet_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"item_id": ["a"], "bytes": [b"x"]}), path)
    cfg = _cfg(f"drop.path={path}")
    first = plan_drop(cfg).fingerprint
    assert plan_drop(cfg).fingerprint == first
    pq.write_table(pa.table({"item_id": ["a", "b"], "bytes": [b"x", b"y"]}), path)
    assert plan_drop(cfg).fingerprint != first


# ------------------------------------------------------------------------------------------
# drop_name
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/data/drops/2024-05-01", "2024-05-01"),
        ("/data/drops/2024-05-01/", "2024-05-01"),
        ("s3://bucket/drops/week 18/", "week_18"),
        ("/data/lists/night_7.csv", "night_7"),
        ("/data/lists/night_7.JSONL", "night_7"),
        ("file:///data/packed.parquet", "packed"),
    ],
)
def test_drop_name_from_the_path(path: str, name: str) -> None:
    assert drop_name(_cfg(f"drop.path={path}")) == name


def test_drop_name_setting_wins() -> None:
    assert drop_name(_cfg("drop.path=/data/x.csv", "drop.name=nightly-42")) == "nightly-42"


def test_drop_name_that_cannot_be_derived() -> None:
    with pytest.raises(ConfigError, match=r"^drop\.name"):
        drop_name(_cfg("drop.path=/data/.csv"))


def test_planning_does_not_start_ray(drop_folder: Path) -> None:
    import ray

    was_running = ray.is_initialized()  # a Ray-backed test earlier in the session may own one
    plan_drop(_cfg(f"drop.path={drop_folder}"))
    plan_seed(_cfg(f"seed.path={drop_folder.parent}", "seed.format=folder"))
    assert ray.is_initialized() == was_running
