"""Structure checks: weights are accepted for a manifest entry only with exactly the keys and shapes of its
architecture, and the differences are named when they are not."""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import torch

from ifc_sdk.checkpoint import (
    check_finite,
    convert_reference_state_dict,
    load_state_dict_strict,
    read_pth,
    shape_differences,
)
from ifc_sdk.errors import CheckpointError
from ifc_sdk.modeling import IFC, IFCConfig, build_ifc
from ifc_sdk.weights.manifest import ModelEntry


def expected_shapes(config: IFCConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of the architecture of ``config`` with its shape."""
    fields = {k: v for k, v in config.to_dict().items() if k != "categories"}
    return dict(_expected_shapes(json.dumps(fields, sort_keys=True)))


@functools.lru_cache(maxsize=16)
def _expected_shapes(fields: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    with torch.no_grad():
        model = build_ifc(IFCConfig.from_dict(json.loads(fields)))
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def check_structure(
    entry: ModelEntry,
    shapes: dict[str, tuple[int, ...]],
    path: str | os.PathLike | None,
    config: IFCConfig | None = None,
    expected: dict[str, tuple[int, ...]] | None = None,
) -> None:
    """Refuse weights whose keys or shapes differ from the entry's architecture, naming the differences."""
    expected = expected or expected_shapes(config or entry.model_config())
    differences = shape_differences(expected, shapes)
    if not differences:
        return
    res4 = {int(m.group(1)) for k in shapes if (m := re.match(r"backbone\.res4\.(\d+)\.", k))}
    depth = {6: "ResNet-50", 23: "ResNet-101"}.get(len(res4), f"{len(res4)} res4 blocks")
    raise CheckpointError(
        path,
        f"wrong architecture for model '{entry.name}' (preset {entry.preset}, "
        f"{entry.num_classes} classes; the file looks like {depth}): " + "; ".join(differences),
    )


def build_checked(
    entry: ModelEntry,
    state: dict[str, torch.Tensor],
    path: str | os.PathLike | None,
    config: IFCConfig | None = None,
) -> IFC:
    """The entry's model with ``state`` loaded, after checking the exact keys and shapes; in eval mode."""
    model = build_ifc(config or entry.model_config())
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_structure(entry, {k: tuple(v.shape) for k, v in state.items()}, path, expected=expected)
    check_finite(state, path)
    load_state_dict_strict(model, state, path)
    return model.eval()


def read_state(path: Path, fmt: str, *, trusted: bool = False) -> dict[str, torch.Tensor]:
    """SDK-keyed tensors of a weights file: a ``detectron2-pth`` is unpickled with ``weights_only`` unless
    ``trusted``, an ``ifc-safetensors`` file is read as is."""
    if fmt == "detectron2-pth":
        return convert_reference_state_dict(read_pth(path, trusted=trusted))
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(path, f"not a readable safetensors file ({exc})") from exc
