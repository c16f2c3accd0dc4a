"""Where an image model starts: `model.pretrained` resolved on the driver, checked, and
staged as a local safetensors file the training workers load.

Sources: `torchvision` / `torchvision:<WEIGHTS>` (torchvision's weights API and the torch
hub cache: it downloads where the cluster has network and reads `TORCH_HOME` where it does
not; the checkpoint is read with torch's weights-only loader, never as a pickle of code),
or a `.safetensors` state dict (local or s3://) in torchvision names or raylabel's own
`model.safetensors`. Whatever the source, a state dict that fills less than `MIN_MATCH`
of the architecture's body stops the run naming the file and the share: a wrong file must
not train silently from random weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raylabel.config import Config
from raylabel.errors import InputError, first_line
from raylabel.inputs import sources
from raylabel.io import storage
from raylabel.io.listing import check_input

MIN_MATCH = 0.9
INFO_SUFFIX = ".json"


def pretrained_local(cfg: Config, tmp: Path) -> str | None:
    """Stage `model.pretrained` as `tmp/pretrained.safetensors` (checked) and its provenance
    beside it (`pretrained_info`); None without a pretrained start."""
    spec = cfg.model.pretrained
    if not spec:
        return None
    if spec.split(":", 1)[0] == "torchvision":
        state, info = _torchvision_state(cfg.model.arch, spec)
    else:
        state, info = _file_state(cfg, spec)
    info.update(_check_match(cfg.model.arch, state, spec))
    from safetensors.torch import save_file

    dest = tmp / "pretrained.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest))
    Path(str(dest) + INFO_SUFFIX).write_text(json.dumps(info))
    return str(dest)


def pretrained_info(local: str | None) -> dict[str, Any] | None:
    """What the card records about the start: source, weights, match share, transforms."""
    if not local or not Path(local + INFO_SUFFIX).is_file():
        return None
    return json.loads(Path(local + INFO_SUFFIX).read_text())


def _file_state(cfg: Config, spec: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    opts = sources.storage_options(cfg)
    check_input(spec, opts, "model.pretrained")
    if not spec.endswith(".safetensors"):
        raise InputError(f"model.pretrained: {spec} must be a .safetensors state dict (no pickles)")
    try:
        state = load(storage.read_bytes(spec, opts))
    except SafetensorError as exc:
        raise InputError(f"model.pretrained: {spec} is not a safetensors file ({exc})") from None
    return state, {"source": spec}


def _torchvision_state(arch: str, spec: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arch's DEFAULT (or named) weights through torchvision and the hub cache."""
    import torch
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    name = spec.split(":", 1)[1] if ":" in spec else "DEFAULT"
    name = name.split(".", 1)[1] if name.startswith(enum.__name__ + ".") else name
    try:
        weights = enum[name] if name != "DEFAULT" else enum.DEFAULT
    except KeyError:
        known = ", ".join(w.name for w in enum)
        raise InputError(
            f"model.pretrained: {arch} has no torchvision weights {name!r} (known: {known})"
        ) from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        state = weights.get_state_dict(progress=False, weights_only=True)
    except Exception as exc:  # no network and nothing cached, or a bad cached file
        raise InputError(
            f"model.pretrained: torchvision weights {enum.__name__}.{weights.name} are not in "
            f"the torch hub cache ({cached}) and could not be fetched: {type(exc).__name__}: "
            f"{first_line(exc)}"
        ) from None
    t = weights.transforms()
    info = {
        "source": f"torchvision:{enum.__name__}.{weights.name}",
        "file": str(cached),
        "transforms": {
            "resize_size": list(getattr(t, "resize_size", []) or []),
            "crop_size": list(getattr(t, "crop_size", []) or []),
            "mean": list(getattr(t, "mean", []) or []),
            "std": list(getattr(t, "std", []) or []),
        },
    }
    return state, info


def _check_match(arch: str, state: dict[str, Any], spec: str) -> dict[str, Any]:
    """Refuse a state dict that does not fit the architecture (exit 2, the share named)."""
    from raylabel.models.image import as_backbone_state, backbone_match, build_image_model

    model = build_image_model(arch, 2)
    _, _, share = backbone_match(model, arch, as_backbone_state(state))
    if share < MIN_MATCH:
        raise InputError(
            f"model.pretrained: {spec} fills {share:.0%} of {arch}'s weights (below "
            f"{MIN_MATCH:.0%}); expected a {arch} state dict in torchvision names or a raylabel "
            "model.safetensors of the same arch"
        )
    return {"matched_share": round(share, 4)}
