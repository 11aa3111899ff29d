"""Reading and writing IFC weights safely.

Two formats:

* the reference's detectron2 checkpoint: a ``.pth`` pickle of ``{"model": state_dict, ...}`` with keys such as
  ``detr.backbone.0.backbone.res4.5.conv2.norm.running_var``. It is unpickled with ``weights_only=True`` on the
  CPU; every size is read from the tensor shapes, and a preset supplies what the weights cannot tell (input
  channel order, pixel statistics, ``stride_in_1x1``, number of heads).
* this SDK's format, the Hugging Face layout: a folder with ``model.safetensors`` and ``config.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ifc_sdk.errors import CheckpointError, ConfigError, OutputError
from ifc_sdk.io.atomic import atomic_path, ensure_dir, sweep_temporaries
from ifc_sdk.modeling import IFC, IFCConfig, build_ifc, preset_config
from ifc_sdk.modeling.backbone import DEPTH_TO_BLOCKS

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
# Inclusive bounds of every size field of `IFCConfig`, checked before a model is built from a config file: far
# above the released models (hidden 256, 100 queries, 40 classes, 3+3 layers) and far below what exhausts memory.
SIZE_LIMITS: dict[str, tuple[int, int]] = {
    "num_classes": (1, 10_000),
    "hidden_dim": (1, 2048),
    "num_heads": (1, 64),
    "dim_feedforward": (1, 16_384),
    "num_enc_layers": (1, 24),
    "num_dec_layers": (1, 24),
    "num_memory_bus": (1, 256),
    "num_queries": (1, 1000),
    "mask_groups": (1, 256),
    "stem_channels": (1, 1024),
    "res2_channels": (1, 4096),
    "bottleneck_channels": (1, 1024),
    "num_groups": (1, 64),
    "res5_dilation": (1, 2),
}
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


def sizes_from_shapes(shapes: Mapping[str, Sequence[int]], path: str | os.PathLike | None = None) -> dict:
    """Every size of the architecture that SDK-keyed weights determine, read from their shapes alone."""
    required = ("query_embed.weight", "transformer.memory_bus", "backbone.stem.conv1.weight")
    if not all(k in shapes for k in required):
        raise CheckpointError(
            path,
            f"not an IFC checkpoint: none of {list(required)} found; its keys start with {list(shapes)[:5]}",
        )
    try:
        blocks = tuple(_count_indexed(shapes, f"backbone.res{i}.") for i in range(2, 6))
        depth = next((d for d, b in DEPTH_TO_BLOCKS.items() if b == blocks), None)
        if depth is None:
            raise CheckpointError(
                path,
                f"ResNet blocks per stage {blocks} match no supported depth "
                f"({ {d: b for d, b in DEPTH_TO_BLOCKS.items()} })",
            )
        bottleneck = shapes["backbone.res2.0.conv1.weight"][0]
        return {
            "num_classes": shapes[
                f"class_embed.layers.{_count_indexed(shapes, 'class_embed.layers.') - 1}.weight"
            ][0]
            - 1,
            "hidden_dim": shapes["query_embed.weight"][1],
            "num_queries": shapes["query_embed.weight"][0],
            "dim_feedforward": shapes["transformer.encoder.enc_layers.0.linear1.weight"][0],
            "num_enc_layers": _count_indexed(shapes, "transformer.encoder.enc_layers."),
            "num_dec_layers": _count_indexed(shapes, "transformer.clip_decoder.layers."),
            "num_memory_bus": shapes["transformer.memory_bus"][0],
            "depth": depth,
            "stem_channels": shapes["backbone.stem.conv1.weight"][0],
            "res2_channels": shapes["backbone.res2.0.conv3.weight"][0],
            "bottleneck_channels": bottleneck,
            "num_groups": bottleneck // shapes["backbone.res2.0.conv2.weight"][1],
        }
    except (KeyError, IndexError) as exc:
        raise CheckpointError(path, f"not an IFC checkpoint: missing or malformed {exc.args[0]!r}") from exc


def infer_config(
    state_dict: Mapping[str, torch.Tensor], base: IFCConfig, path: str | os.PathLike | None = None
) -> IFCConfig:
    """Read every size of the architecture from an SDK-keyed state dict; the rest comes from ``base``."""
    sizes = sizes_from_shapes({k: tuple(v.shape) for k, v in state_dict.items()}, path)
    categories = base.categories if base.num_classes == sizes["num_classes"] else None
    return base.replace(**sizes, categories=categories)


def check_config_fields(fields: Mapping, where: str | os.PathLike) -> None:
    """Refuse config values of the wrong type or outside `SIZE_LIMITS`, before anything is allocated.

    Raises `ConfigError` naming ``where`` (a file or a model) and the field.
    """
    for name, (low, high) in SIZE_LIMITS.items():
        if name not in fields:
            continue
        value = fields[name]
        if type(value) is not int:
            raise ConfigError(f"{where}: field {name!r} must be an integer, got {value!r}")
        if not low <= value <= high:
            raise ConfigError(
                f"{where}: field {name!r} = {value} is outside the supported range [{low}, {high}]"
            )
    if "depth" in fields and fields["depth"] not in DEPTH_TO_BLOCKS:
        raise ConfigError(
            f"{where}: field 'depth' = {fields['depth']!r} is not one of {sorted(DEPTH_TO_BLOCKS)}"
        )
    dropout = fields.get("dropout", 0.0)
    if type(dropout) not in (int, float) or not 0 <= dropout < 1:
        raise ConfigError(f"{where}: field 'dropout' = {dropout!r} is not a number in [0, 1)")
    for name in ("pixel_mean", "pixel_std"):
        value = fields.get(name, (1.0, 1.0, 1.0))
        if not (
            isinstance(value, list | tuple)
            and len(value) == 3
            and all(type(v) in (int, float) and math.isfinite(v) for v in value)
            and (name == "pixel_mean" or all(v > 0 for v in value))
        ):
            raise ConfigError(f"{where}: field {name!r} = {value!r} is not three finite (positive) numbers")


def safetensors_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """The key and shape of every tensor of a safetensors file, read from its header alone."""
    try:
        with safe_open(str(path), "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(path, f"not a readable safetensors file ({exc})") from exc


def check_finite(state_dict: dict[str, torch.Tensor], path: str | os.PathLike | None = None) -> None:
    """Refuse weights containing NaN or infinity, naming the first offending tensors."""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(path, f"{len(bad)} tensor(s) hold NaN or infinite values, e.g. {bad[:5]}")


def shape_differences(expected: Mapping[str, tuple], found: Mapping[str, tuple]) -> list[str]:
    """Why weights with keys and shapes ``found`` do not fit ``expected``, in words (empty when they fit)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [
        f"{k}: file {tuple(found[k])} vs model {tuple(v)}"
        for k, v in expected.items()
        if k in found and tuple(found[k]) != tuple(v)
    ]
    return [
        f"{len(keys)} {what}, first: {keys[:5]}"
        for keys, what in (
            (missing, "missing key(s)"),
            (unexpected, "unexpected key(s)"),
            (wrong, "shape mismatch(es)"),
        )
        if keys
    ]


def load_state_dict_strict(
    model: IFC, state_dict: dict[str, torch.Tensor], path: str | os.PathLike | None = None
) -> None:
    """Load weights requiring exactly the model's keys and shapes; errors list the first differences."""
    differences = shape_differences(
        {k: v.shape for k, v in model.state_dict().items()}, {k: v.shape for k, v in state_dict.items()}
    )
    if differences:
        raise CheckpointError(path, "weights do not fit the architecture: " + "; ".join(differences))
    model.load_state_dict(state_dict, strict=True)


def model_from_state_dict(
    state_dict: dict[str, torch.Tensor], config: IFCConfig, path: str | os.PathLike | None = None
) -> IFC:
    """Build the model of ``config`` and load ``state_dict`` (SDK keys) strictly; the model is in eval mode."""
    try:
        check_config_fields(config.to_dict(), path or "weights")
    except ConfigError as exc:
        raise CheckpointError(path, str(exc).removeprefix(f"{path}: ")) from None
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


def check_output_folder(out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Check that a model can be written into folder ``out_dir`` without destroying anything.

    An existing file there is an `OutputError`; so is a folder that already holds ``model.safetensors`` or
    ``config.json`` unless ``overwrite``. Nothing is created.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(out_dir, "the output folder is an existing file, not a folder")
    present = [n for n in (WEIGHTS_NAME, CONFIG_NAME) if (out_dir / n).exists()]
    if present and not overwrite:
        raise OutputError(
            out_dir,
            f"already holds a model ({', '.join(present)}); pass overwrite=True (--overwrite on the command "
            "line) to replace it, or choose another folder",
        )
    return out_dir


def save_pretrained(model: IFC, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into folder ``out_dir`` (created if needed); return it.

    Only these two files are written, each atomically (a temporary file renamed into place); anything else
    in the folder is left alone. A folder that already holds a model is refused unless ``overwrite``.
    Temporary files of an interrupted earlier save into the same folder are removed.
    """
    out_dir = check_output_folder(out_dir, overwrite=overwrite)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    check_finite(state, out_dir)
    # One metadata key: safetensors writes several from a hash map, in an order that varies per save, so the
    # same weights would get different bytes (and sha256s).
    data = safetensors_bytes(state, metadata={"format": "pt"})
    config = json.dumps(model.config.to_dict(), indent=2) + "\n"
    ensure_dir(out_dir)
    with _folder_lock(out_dir) as locked:
        if locked:  # no other save into this folder is running: what its temporaries left is stale
            sweep_temporaries(out_dir, f"{re.escape(WEIGHTS_NAME)}|{re.escape(CONFIG_NAME)}")
        check_output_folder(out_dir, overwrite=overwrite)  # again: another process may have written meanwhile
        with atomic_path(out_dir / WEIGHTS_NAME) as weights_tmp:
            weights_tmp.write_bytes(data)
            with atomic_path(out_dir / CONFIG_NAME) as config_tmp:  # in place first, the weights right after
                config_tmp.write_text(config)
    return out_dir


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[bool]:
    """Hold an advisory lock on ``folder`` itself (nothing is created in it); yields False where the
    platform has none (then nothing is swept)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield False
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # an unreadable folder: the writes that follow report what is wrong with it
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)


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
    check_config_fields(overrides, "load overrides")
    try:
        fields = json.loads(config_file.read_text())
        if not isinstance(fields, dict):
            raise CheckpointError(config_file, f"expected a JSON object, got a {type(fields).__name__}")
        check_config_fields(fields, config_file)
        config = IFCConfig.from_dict({**fields, **overrides})
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(config_file, f"not valid JSON ({exc})") from exc
    except OSError as exc:
        raise CheckpointError(config_file, f"cannot read ({exc})") from exc
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(
            config_file, f"bad config ({str(exc).removeprefix(f'{config_file}: ')})"
        ) from exc
    # Before the model or the weights are allocated: a config cannot ask for more than the weights file holds.
    held = sizes_from_shapes(safetensors_shapes(weights), weights)
    differ = [
        f"{k} = {getattr(config, k)} in the config, {v} in the weights"
        for k, v in held.items()
        if getattr(config, k) != v
    ]
    if differ:
        raise CheckpointError(config_file, f"does not match {weights.name}: " + "; ".join(differ))
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
    overwrite: bool = False,
    **overrides,
) -> Path:
    """Convert a reference ``.pth`` into this SDK's safetensors folder (see `save_pretrained` for what is
    written and when ``overwrite`` is needed); returns the folder."""
    check_output_folder(out_dir, overwrite=overwrite)  # before the conversion: fail fast
    model = load_reference_checkpoint(pth, preset=preset, trusted=trusted, **overrides)
    return save_pretrained(model, out_dir, overwrite=overwrite)


def load_checkpoint(
    path: str | os.PathLike, *, preset: str | None = None, trusted: bool = False, **overrides
) -> IFC:
    """Load a local checkpoint of either format, chosen by what ``path`` is."""
    if not os.fspath(path).strip():
        raise ConfigError("the checkpoint path is empty: give a .pth, a .safetensors file or a model folder")
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "no such file or folder")
    if path.is_dir() or path.suffix == ".safetensors":
        return load_pretrained(path, **overrides)
    return load_reference_checkpoint(path, preset=preset, trusted=trusted, **overrides)
