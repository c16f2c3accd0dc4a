"""Issue #15, runs and models: published models and committed runs never change, a symlink
cannot pull a file from outside the drop into it, two drops never share a name, a rewrite
of a file is a new input, review CSVs cannot carry formulas, no pickle is loaded with a
tokenizer, and a tampered cached model is refused. Real local Ray and real files."""

from __future__ import annotations

import csv
import io
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from modelutil import publish_random_model
from PIL import Image

from raylabel.cli import main
from raylabel.config import load_config
from raylabel.errors import InputError, ModelLoadError
from raylabel.inputs.sources import plan_drop
from raylabel.io import layout
from raylabel.io.storage import StorageOptions
from raylabel.label import label
from raylabel.models.card import read_card
from raylabel.models.hf_text import load_tokenizer
from raylabel.models.loader import ModelLoader, expected_weights
from raylabel.review.draw import csv_cell

pytestmark = pytest.mark.slow
OPTS = StorageOptions()


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _drop(folder: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(_png(i))
    return folder


def test_hole5_training_into_an_existing_version_exits_2_and_leaves_it_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    version = publish_random_model(tmp_path, ["a", "b"])
    model_dir = tmp_path / "out" / "models" / version
    before = {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()}
    seed = tmp_path / "seed"
    for c in ("a", "b"):
        _drop(seed / c, [f"{c}{i}.png" for i in range(3)])
    args = [f"seed.path={seed}", f"output.root={tmp_path / 'out'}", f"run.model_version={version}"]
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"raylabel: error: run.model_version: {model_dir} already exists; published models "
        "never change (pick a new version)"
    ]
    assert {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()} == before
    # publishing is exclusive too, whoever calls it
    with pytest.raises(InputError, match="already exists"):
        layout.publish_model(model_dir, str(tmp_path / "out"), version, OPTS)


def test_hole5_the_model_cache_is_private_and_tampered_weights_are_refused(
    tmp_path: Path,
) -> None:
    version = publish_random_model(tmp_path, ["a", "b"])
    root = str(tmp_path / "out")
    card = read_card(tmp_path / "out" / "models" / version)
    loader = ModelLoader(root, version, OPTS, weights_sha256=expected_weights(card, False))
    assert loader().card.model_version == version
    cache = layout.private_cache_root()
    assert cache.stat().st_mode & 0o777 == 0o700 and cache.stat().st_uid == os.getuid()
    # weights changed after the run was planned (the card the driver read says otherwise)
    weights = tmp_path / "out" / "models" / version / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256 does not match the model card"):
        loader()


def test_hole7_symlinks_out_of_the_drop_become_error_rows(
    ray_cluster: None, tmp_path: Path
) -> None:
    drop = _drop(tmp_path / "drop", ["inside.png"])
    outside = _drop(tmp_path / "elsewhere", ["secret.png", "dir/other.png"])
    (drop / "linked.png").symlink_to(outside / "secret.png")
    (drop / "linkdir").symlink_to(outside / "dir")
    (drop / "ok-link.png").symlink_to(drop / "inside.png")  # stays inside: an item like any
    publish_random_model(tmp_path, ["a", "b"])
    result = label(load_config([], [f"drop.path={drop}", f"output.root={tmp_path / 'out'}"]))
    run = Path(result.run_uri)
    labels = sorted(pq.read_table(run / "labels").column("item_id").to_pylist())
    errors = pq.read_table(run / "errors").to_pylist()
    assert labels == ["inside.png", "ok-link.png"]
    assert sorted((e["item_id"], e["stage"]) for e in errors) == [
        ("linkdir/other.png", "input"),
        ("linked.png", "input"),
    ]
    assert all("resolves outside the drop root" in e["error"] for e in errors)


def test_hole9_drops_whose_names_collide_are_refused_with_both_named(
    ray_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _drop(tmp_path / "drops" / "night 1", ["a.png"])
    _drop(tmp_path / "drops" / "night_1", ["b.png"])
    publish_random_model(tmp_path, ["a", "b"])
    out = f"output.root={tmp_path / 'out'}"
    assert main(["nightly", f"drops.root={tmp_path / 'drops'}", out]) == 2
    err = capsys.readouterr().err
    assert "'night 1'" in err and "'night_1'" in err and "would both be named 'night_1'" in err
    assert not (tmp_path / "out" / "runs").exists()
    # `label` of one, then of the other under the same derived name
    assert main(["label", f"drop.path={tmp_path / 'drops' / 'night 1'}", out]) == 0
    capsys.readouterr()
    assert main(["label", f"drop.path={tmp_path / 'drops' / 'night_1'}", out]) == 2
    err = capsys.readouterr().err
    assert "night_1" in err and "night 1" in err and "set drop.name" in err


def test_hole10_a_rewritten_file_of_the_same_size_is_a_new_input(tmp_path: Path) -> None:
    drop = _drop(tmp_path / "drop", ["a.png", "b.png"])
    cfg = load_config([], [f"drop.path={drop}", f"output.root={tmp_path / 'out'}"])
    first = plan_drop(cfg).fingerprint
    data = (drop / "a.png").read_bytes()
    st = (drop / "a.png").stat()
    (drop / "a.png").write_bytes(data[::-1][: len(data)])  # re-encoded, same size
    os.utime(drop / "a.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert (drop / "a.png").stat().st_size == st.st_size
    assert plan_drop(cfg).fingerprint != first


def test_hole6_review_csv_cells_cannot_be_formulas(ray_cluster: None, tmp_path: Path) -> None:
    names = ["=HYPERLINK(1).png", "+cmd.png", "-x.png", "@sum.png", "\tt.png", "plain.png"]
    drop = _drop(tmp_path / "drop", names)
    publish_random_model(tmp_path, ["a", "b"])
    result = label(
        load_config(
            [],
            [
                f"drop.path={drop}",
                f"output.root={tmp_path / 'out'}",
                "review.size=3",
                "review.uncertain_strategy=least_confident",
            ],
        )
    )
    seen: set[str] = set()
    for name in ("sample.csv", "uncertain.csv"):  # an item is in one of the two
        rows = list(csv.DictReader((Path(result.run_uri) / "review" / name).open()))
        ids = {r["item_id"] for r in rows}
        assert ids and not any(i[0] in "=+-@\t\r" for i in ids), ids
        seen |= ids
    assert "'=HYPERLINK(1).png" in seen and len(seen) == len(names)
    assert csv_cell("-0.5") == "'-0.5" and csv_cell(-0.5) == -0.5  # numbers stay numbers


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_hole11_tokenizer_directories_with_pickles_are_refused(tmp_path: Path) -> None:
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "tokenizer.json").write_text("{}")
    (tok / "special_tokens_map.bin").write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(ModelLoadError, match=r"refusing to load a tokenizer directory"):
        load_tokenizer(str(tok))
    shutil.rmtree(tok)


def test_hole8_a_failed_latest_move_still_leaves_the_newest_committed_run_found(
    ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raylabel.errors import StorageError
    from raylabel.io import storage

    drop = _drop(tmp_path / "drop", ["a.png", "b.png"])
    publish_random_model(tmp_path, ["a", "b"])
    out = str(tmp_path / "out")
    cfg = load_config([], [f"drop.path={drop}", f"output.root={out}"])
    first = label(cfg).run_id
    real_write_text = storage.write_text

    def flaky(uri: str, text: str, opts: StorageOptions) -> None:
        if uri.endswith("/runs/drop/LATEST"):
            raise StorageError(f"write failed for {uri}: connection reset")
        real_write_text(uri, text, opts)

    monkeypatch.setattr(storage, "write_text", flaky)
    forced = load_config([], [f"drop.path={drop}", f"output.root={out}", "run.force=true"])
    with pytest.raises(StorageError) as info:
        label(forced)
    message = str(info.value)
    assert "is committed (_SUCCESS written) but LATEST could not be moved" in message
    second = message.split()[1]
    assert second != first
    assert (tmp_path / "out" / "runs" / "drop" / "LATEST").read_text().strip() == first
    assert layout.latest_run(out, "drop", OPTS) == second  # readers find the newest anyway
