"""Issue #8 items 10 and 12: hostile ids / paths stay confined; schema drift stops the run
before any work (exit 2, one line naming the column and the file)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from modelutil import publish_random_model
from PIL import Image

from raylabel import cli, cluster
from raylabel.config import load_config
from raylabel.errors import InputError
from raylabel.inputs.checks import INPUT_ERROR_COLUMN, inside
from raylabel.inputs.sources import plan_drop, plan_seed

# ------------------------------------------------------------------------------------------
# Item 12: schema drift -> exit 2 naming the column, before any Ray work
# ------------------------------------------------------------------------------------------


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning must refuse the input before the stage connects to Ray."""

    def forbidden(*_: object, **__: object) -> None:
        raise AssertionError("Ray work started before the input was checked")

    monkeypatch.setattr(cluster, "connect", forbidden)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _label_exit(capsys: pytest.CaptureFixture[str], tmp_path: Path, drop: Path, *extra: str):
    rc = cli.main(["label", f"drop.path={drop}", f"output.root={tmp_path / 'out'}", *extra])
    err = capsys.readouterr().err.strip()
    return rc, err


def _packed(path: Path, **columns: pa.Array) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize(
    ("name", "make", "needles"),
    [
        (
            "renamed uri column (csv)",
            lambda d: (d / "m.csv").write_text("item_id,url\na,a.png\n") and d / "m.csv",
            ["'uri'", "url", "m.csv"],
        ),
        (
            "uri is a number (jsonl)",
            lambda d: _jsonl(d / "m.jsonl", [{"item_id": "a", "uri": 7}]),
            ["'uri'", "int64", "m.jsonl"],
        ),
        (
            "mixed types in one column (jsonl)",
            lambda d: _jsonl(d / "m.jsonl", [{"uri": "a.png"}, {"uri": ["b.png"]}]),
            ["m.jsonl", "unreadable manifest"],
        ),
        (
            "null uri (parquet manifest)",
            lambda d: _packed(d / "m.parquet", uri=pa.array(["a.png", None])),
            ["'uri'", "null", "m.parquet"],
        ),
        (
            "float item ids (parquet manifest)",
            lambda d: _packed(d / "m.parquet", uri=pa.array(["a"]), item_id=pa.array([1.5])),
            ["'item_id'", "double", "m.parquet"],
        ),
        (
            "payload column is text, not bytes (packed parquet)",
            lambda d: _packed(d / "p.parquet", item_id=pa.array(["a"]), bytes=pa.array(["x"])),
            ["'bytes'", "string", "expected binary", "p.parquet"],
        ),
        (
            "packed parquet without item_id",
            lambda d: _packed(d / "p.parquet", id=pa.array(["a"]), bytes=pa.array([b"x"])),
            ["'item_id'", "columns: id, bytes", "p.parquet"],
        ),
    ],
)
def test_drop_schema_drift_exits_2_naming_the_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_ray: None, name: str, make, needles
) -> None:
    drop = make(tmp_path)
    rc, err = _label_exit(capsys, tmp_path, drop)
    assert rc == 2, (name, err)
    assert err.startswith("raylabel: error: drop.path: "), (name, err)
    assert "\n" not in err
    for needle in needles:
        assert needle in err, (name, needle, err)


def test_parquet_folder_whose_files_drifted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_ray: None
) -> None:
    root = tmp_path / "packed"
    root.mkdir()
    _packed(root / "part-0.parquet", item_id=pa.array(["a"]), bytes=pa.array([b"x"]))
    _packed(root / "part-1.parquet", item_id=pa.array([1]), bytes=pa.array([b"y"]))
    rc, err = _label_exit(capsys, tmp_path, root)
    assert rc == 2, err
    assert "part-1.parquet" in err and "'item_id'" in err and "first file" in err, err


def test_seed_label_drift_is_refused(tmp_path: Path) -> None:
    ints = _jsonl(tmp_path / "ints.jsonl", [{"uri": "a.png", "label": 1}])
    with pytest.raises(InputError, match=r"^seed\.path: .*column 'label' is int64.*quote"):
        plan_seed(load_config([], [f"seed.path={ints}"]))
    nulls = _jsonl(tmp_path / "nulls.jsonl", [{"uri": "a.png", "label": "x"}, {"uri": "b.png"}])
    with pytest.raises(InputError, match=r"column 'label' has 1 empty \(null\) values"):
        plan_seed(load_config([], [f"seed.path={nulls}"]))
    renamed = _jsonl(tmp_path / "renamed.jsonl", [{"uri": "a.png", "class": "x"}])
    with pytest.raises(InputError, match=r"no 'label' column \(columns: uri, class\)"):
        plan_seed(load_config([], [f"seed.path={renamed}"]))
    packed = _packed(
        tmp_path / "p.parquet", item_id=pa.array(["a"]), bytes=pa.array([b"x"]), label=[3]
    )
    with pytest.raises(InputError, match=r"p\.parquet column 'label' is int64"):
        plan_seed(load_config([], [f"seed.path={packed}"]))


def test_parquet_folder_of_uris_is_a_manifest(tmp_path: Path) -> None:
    """Formerly exit 1: a Parquet folder with `uri` and no payload column is a manifest."""
    root = tmp_path / "listing"
    root.mkdir()
    _packed(root / "a.parquet", uri=pa.array(["imgs/1.png"]), item_id=pa.array(["one"]))
    _packed(root / "b.parquet", uri=pa.array(["imgs/2.png"]), item_id=pa.array(["two"]))
    plan = plan_drop(load_config([], [f"drop.path={root}"]))
    assert plan.kind == "manifest"
    assert plan.listing.column("item_id").to_pylist() == ["one", "two"]
    assert plan.listing.column("uri").to_pylist() == [
        str(root / "imgs" / "1.png"),
        str(root / "imgs" / "2.png"),
    ]


# ------------------------------------------------------------------------------------------
# Item 10: ids and manifest paths that try to escape
# ------------------------------------------------------------------------------------------

ESCAPES = [
    "../outside.png",
    "/etc/passwd",
    "file:///etc/hostname",
    "imgs/../../outside.png",
    "s3://other-bucket/x.png",
    "gs://elsewhere/x.png",
]


def test_inside_the_drop_root() -> None:
    assert inside("/d/m/imgs/a.png", "/d/m")
    assert inside("/d/m/./imgs/a.png", "/d/m")
    assert inside("file:///d/m/a.png", "/d/m")
    assert not inside("/d/m", "/d/m")
    assert not inside("/d/mm/a.png", "/d/m")
    assert not inside("/d/m/../x.png", "/d/m")
    assert not inside("/etc/passwd", "/d/m")
    assert inside("s3://b/drops/d/x/y.png", "s3://b/drops/d")
    assert not inside("s3://b/drops/d/../e/y.png", "s3://b/drops/d")
    assert not inside("s3://b/drops/dd/y.png", "s3://b/drops/d")
    assert not inside("s3://other/drops/d/y.png", "s3://b/drops/d")
    assert not inside("/b/drops/d/y.png", "s3://b/drops/d")


def test_outside_uris_are_refused_unless_allowed(tmp_path: Path) -> None:
    rows = [{"item_id": f"e{i}", "uri": u} for i, u in enumerate(ESCAPES)]
    rows.append({"item_id": "ok", "uri": "imgs/./a.png"})
    manifest = _jsonl(tmp_path / "m.jsonl", rows)
    plan = plan_drop(load_config([], [f"drop.path={manifest}"]))
    refused = plan.listing.column(INPUT_ERROR_COLUMN).to_pylist()
    assert all(r and "drop.allow_outside_uris=true" in r for r in refused[:-1]), refused
    assert refused[-1] is None
    allowed = plan_drop(load_config([], [f"drop.path={manifest}", "drop.allow_outside_uris=true"]))
    assert INPUT_ERROR_COLUMN not in allowed.listing.column_names
    assert allowed.fingerprint == plan.fingerprint  # the setting does not change the input


def _png(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), (shade, 255 - shade, 90)).save(path)


def _snapshot(root: Path, skip: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and skip not in p.parents and p != skip
    }


@pytest.mark.slow
def test_hostile_ids_and_paths_stay_confined(ray_cluster: None, tmp_path: Path) -> None:
    """Ids like `../x`, `/etc/passwd`, `s3://other/...`, unicode and 1,000-char names are data,
    never paths: every write lands under runs/<drop>/<run_id>/; uris outside the drop's
    folder become error rows (stage `input`); every id is in exactly one table, once."""
    drop = tmp_path / "drop"
    _png(tmp_path / "outside.png", 10)  # a real image outside the drop root
    for i in range(6):
        _png(drop / "imgs" / f"{i}.png", 30 * i)
    hostile_ids = [
        "../x",
        "/etc/passwd",
        "s3://other-bucket/k.png",
        "ñandú/猫 🐈.png",
        "a" * 1000,
        "..\\..\\windows",
    ]
    rows = [{"item_id": i, "uri": f"imgs/{n}.png"} for n, i in enumerate(hostile_ids)]
    rows += [{"item_id": f"esc-{n}", "uri": u} for n, u in enumerate(ESCAPES)]
    manifest = _jsonl(drop / "manifest.jsonl", rows)
    publish_random_model(tmp_path, ["a", "b"])
    out = tmp_path / "out"
    before = _snapshot(tmp_path, out)
    rc = cli.main(
        ["label", f"drop.path={manifest}", f"output.root={out}", "review.size=4", "drop.name=h"]
    )
    assert rc == 0
    assert _snapshot(tmp_path, out) == before  # nothing written outside output.root
    (run,) = [p for p in (out / "runs" / "h").iterdir() if p.is_dir()]
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(out).parts
        in_run = rel[:3] == ("runs", "h", run.name) or rel == ("runs", "h", "LATEST")
        assert rel[0] == "models" or in_run, rel
    labels = pq.read_table(run / "labels").column("item_id").to_pylist()
    errors = pq.read_table(run / "errors").to_pylist()
    assert sorted(labels) == sorted(hostile_ids)
    assert sorted(e["item_id"] for e in errors) == sorted(f"esc-{n}" for n in range(len(ESCAPES)))
    assert {e["stage"] for e in errors} == {"input"}
    assert all("outside the drop root" in e["error"] for e in errors)
