"""Structure checks: weights are accepted for a manifest entry only with exactly its architecture's keys and
shapes, compared before any model of that architecture is allocated."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from ifc_sdk.checkpoint import (
    check_finite,
    convert_reference_state_dict,
    expected_shapes,
    load_state_dict_strict,
    read_pth,
    shape_differences,
)
from ifc_sdk.errors import CheckpointError
from ifc_sdk.modeling import IFC, IFCConfig, build_ifc
from ifc_sdk.weights.manifest import ModelEntry


def check_structure(
    entry: ModelEntry,
    shapes: dict[str, tuple[int, ...]],
    path: str | os.PathLike | None,
    config: IFCConfig | None = None,
) -> None:
    """Refuse weights whose keys or shapes differ from the entry's architecture, naming the differences."""
    differences = shape_differences(expected_shapes(config or entry.model_config()), shapes)
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
    config = config or entry.model_config()
    check_structure(entry, {k: tuple(v.shape) for k, v in state.items()}, path, config)
    check_finite(state, path)
    model = build_ifc(config)
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
