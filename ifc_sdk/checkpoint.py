"""Reading and writing IFC weights safely.

Two formats:

* the reference's detectron2 checkpoint: a ``.pth`` pickle of ``{"model": state_dict, ...}`` with keys such as
  ``detr.backbone.0.backbone.res4.5.conv2.norm.running_var``. It is unpickled with ``weights_only=True`` on the
  CPU; every size is read from the tensor shapes, and a preset supplies what the weights cannot tell (input
  channel order, pixel statistics, ``stride_in_1x1``, number of heads).
* this SDK's format, the Hugging Face layout: a folder with ``model.safetensors`` and ``config.json``.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ifc_sdk.errors import CheckpointError
from ifc_sdk.modeling import IFC, IFCConfig, build_ifc, preset_config
from ifc_sdk.modeling.backbone import DEPTH_TO_BLOCKS

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
_REFERENCE_PREFIXES = (("detr.backbone.0.backbone.", "backbone."), ("detr.", ""))
_REFERENCE_DROPPED = ("criterion.",)  # the loss's class-weight buffer, not part of the model


def reference_key_to_sdk(key: str) -> str | None:
    """Map a reference state-dict key to this SDK's name; None for keys the model does not keep."""
    if key.startswith(_REFERENCE_DROPPED):
        return None
    for old, new in _REFERENCE_PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def convert_reference_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a reference (detectron2) state dict to this SDK's keys, dropping the criterion buffer."""
    out = {}
    for key, value in state_dict.items():
        new = reference_key_to_sdk(key)
        if new is not None:
            out[new] = value
    return out


def read_pth(path: str | os.PathLike, *, trusted: bool = False) -> dict[str, torch.Tensor]:
    """Read a reference ``.pth`` and return its model state dict with the reference's key names.

    Unpickling uses ``weights_only=True`` (tensors and plain containers only, no code). ``trusted=True`` allows
    a full unpickle for files whose origin the caller vouches for; it is never done silently.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            path,
            "refused to unpickle: the file holds objects other than tensors and plain containers "
            f"({str(exc).splitlines()[0]}). Only if you trust its origin, load it with trusted=True "
            "(or --trusted on the CLI).",
        ) from exc
    except Exception as exc:  # zip/pickle corruption surfaces as several exception types
        raise CheckpointError(
            path, f"not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "expected a dict {'model': state_dict, ...} or a state dict of tensors")
    return state


def _count_indexed(state_dict: dict, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    return max(indices) + 1 if indices else 0


def infer_config(
    state_dict: dict[str, torch.Tensor], base: IFCConfig, path: str | os.PathLike | None = None
) -> IFCConfig:
    """Read every size of the architecture from an SDK-keyed state dict; the rest comes from ``base``."""
    required = ("query_embed.weight", "transformer.memory_bus", "backbone.stem.conv1.weight")
    if not all(k in state_dict for k in required):
        raise CheckpointError(
            path,
            f"not an IFC checkpoint: none of {list(required)} found; "
            f"its keys start with {list(state_dict)[:5]}",
        )
    try:
        blocks = tuple(_count_indexed(state_dict, f"backbone.res{i}.") for i in range(2, 6))
        depth = next((d for d, b in DEPTH_TO_BLOCKS.items() if b == blocks), None)
        if depth is None:
            raise CheckpointError(
                path,
                f"ResNet blocks per stage {blocks} match no supported depth "
                f"({ {d: b for d, b in DEPTH_TO_BLOCKS.items()} })",
            )
        num_class_layers = _count_indexed(state_dict, "class_embed.layers.")
        bottleneck = state_dict["backbone.res2.0.conv1.weight"].shape[0]
        return base.replace(
            num_classes=state_dict[f"class_embed.layers.{num_class_layers - 1}.weight"].shape[0] - 1,
            hidden_dim=state_dict["query_embed.weight"].shape[1],
            num_queries=state_dict["query_embed.weight"].shape[0],
            dim_feedforward=state_dict["transformer.encoder.enc_layers.0.linear1.weight"].shape[0],
            num_enc_layers=_count_indexed(state_dict, "transformer.encoder.enc_layers."),
            num_dec_layers=_count_indexed(state_dict, "transformer.clip_decoder.layers."),
            num_memory_bus=state_dict["transformer.memory_bus"].shape[0],
            depth=depth,
            stem_channels=state_dict["backbone.stem.conv1.weight"].shape[0],
            res2_channels=state_dict["backbone.res2.0.conv3.weight"].shape[0],
            bottleneck_channels=bottleneck,
            num_groups=bottleneck // state_dict["backbone.res2.0.conv2.weight"].shape[1],
            categories=base.categories
            if base.num_classes
            == state_dict[f"class_embed.layers.{num_class_layers - 1}.weight"].shape[0] - 1
            else None,
        )
    except KeyError as exc:
        raise CheckpointError(path, f"not an IFC checkpoint: missing key {exc.args[0]!r}") from exc


def check_finite(state_dict: dict[str, torch.Tensor], path: str | os.PathLike | None = None) -> None:
    """Refuse weights containing NaN or infinity, naming the first offending tensors."""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(path, f"{len(bad)} tensor(s) hold NaN or infinite values, e.g. {bad[:5]}")


def load_state_dict_strict(
    model: IFC, state_dict: dict[str, torch.Tensor], path: str | os.PathLike | None = None
) -> None:
    """Load weights requiring exactly the model's keys and shapes; errors list the first differences."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), first: {missing[:8]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), first: {unexpected[:8]}")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatch(es), first: {wrong[:5]}")
        raise CheckpointError(path, "weights do not fit the architecture: " + "; ".join(parts))
    model.load_state_dict(state_dict, strict=True)


def model_from_state_dict(
    state_dict: dict[str, torch.Tensor], config: IFCConfig, path: str | os.PathLike | None = None
) -> IFC:
    """Build the model of ``config`` and load ``state_dict`` (SDK keys) strictly; the model is in eval mode."""
    check_finite(state_dict, path)
    model = build_ifc(config)
    load_state_dict_strict(model, state_dict, path)
    return model.eval()


def load_reference_checkpoint(
    path: str | os.PathLike, *, preset: str | None = None, trusted: bool = False, **overrides
) -> IFC:
    """Load a reference detectron2 ``.pth``. ``preset`` ("r50"/"r101") defaults to the one of the depth
    found in the weights; ``overrides`` set further config fields (e.g. ``categories``)."""
    state = convert_reference_state_dict(read_pth(path, trusted=trusted))
    if preset is None:
        depth = infer_config(state, preset_config("r50"), path).depth
        preset = {50: "r50", 101: "r101"}[depth]
    config = infer_config(state, preset_config(preset, **overrides), path)
    return model_from_state_dict(state, config, path)


def save_pretrained(model: IFC, out_dir: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``out_dir`` atomically (a temp folder renamed into
    place; an existing folder is replaced only once the new one is complete)."""
    out_dir = Path(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    check_finite(state, out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        save_file(state, tmp / WEIGHTS_NAME, metadata={"format": "pt", "library": "ifc_sdk"})
        (tmp / CONFIG_NAME).write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
        if out_dir.exists():
            backup = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            out_dir.rename(backup)
            tmp.rename(out_dir)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def load_pretrained(path: str | os.PathLike, **overrides) -> IFC:
    """Load this SDK's format: a folder (or its ``model.safetensors``) with ``config.json`` beside it."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    weights, config_file = folder / WEIGHTS_NAME, folder / CONFIG_NAME
    if path.is_file() and path.suffix == ".safetensors":
        weights = path
    for f in (weights, config_file):
        if not f.is_file():
            raise CheckpointError(
                f, f"missing: an ifc_sdk model folder holds {WEIGHTS_NAME} and {CONFIG_NAME}"
            )
    try:
        config = IFCConfig.from_dict({**json.loads(config_file.read_text()), **overrides})
    except json.JSONDecodeError as exc:
        raise CheckpointError(config_file, f"not valid JSON ({exc})") from exc
    except TypeError as exc:
        raise CheckpointError(config_file, f"bad config ({exc})") from exc
    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(weights, f"not a readable safetensors file ({exc})") from exc
    return model_from_state_dict(state, config, weights)


def convert_checkpoint(
    pth: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    preset: str | None = None,
    trusted: bool = False,
    **overrides,
) -> Path:
    """Convert a reference ``.pth`` into this SDK's safetensors folder; returns the folder."""
    model = load_reference_checkpoint(pth, preset=preset, trusted=trusted, **overrides)
    return save_pretrained(model, out_dir)


def load_checkpoint(
    path: str | os.PathLike, *, preset: str | None = None, trusted: bool = False, **overrides
) -> IFC:
    """Load a local checkpoint of either format, chosen by what ``path`` is."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "no such file or folder")
    if path.is_dir() or path.suffix == ".safetensors":
        return load_pretrained(path, **overrides)
    return load_reference_checkpoint(path, preset=preset, trusted=trusted, **overrides)
