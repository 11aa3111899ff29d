"""The weights a run starts from: random, ImageNet backbone, or a previous stage's model (class head dropped).

detectron2's checkpointer loads ``MODEL.WEIGHTS`` by shape: ImageNet ``.pkl`` files fill the backbone only, and
a previous stage's model (COCO, 80 classes) fills everything but the class head's last layer when the new
task has another number of classes (YouTube-VIS, 40). `load_initial_weights` does the same for the SDK's formats;
`freeze_backbone` is detectron2's ``FREEZE_AT``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ifc_sdk.checkpoint import (
    WEIGHTS_NAME,
    check_finite,
    convert_reference_state_dict,
    load_state_dict_strict,
)
from ifc_sdk.errors import CheckpointError
from ifc_sdk.modeling.ifc import IFC
from ifc_sdk.training.imagenet import load_imagenet_backbone, torchvision_imagenet_state_dict
from ifc_sdk.training.recipes import Recipe

__all__ = [
    "class_head_keys",
    "freeze_backbone",
    "load_initial_weights",
    "load_finetune_init",
    "read_model_state",
]


def class_head_keys(state_dict: Mapping[str, Any]) -> list[str]:
    """Keys of the last layer of the class head (``class_embed.layers.<last>.*``)."""
    layers = sorted({int(k.split(".")[2]) for k in state_dict if k.startswith("class_embed.layers.")})
    if not layers:
        return []
    prefix = f"class_embed.layers.{layers[-1]}."
    return sorted(k for k in state_dict if k.startswith(prefix))


def read_model_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """SDK-keyed IFC weights from a model folder, a ``.safetensors`` file or a reference ``.pth``."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint (expected a model folder, .safetensors or .pth)")
    if path.suffix == ".safetensors":
        return load_file(path)
    obj = _load_pth(path)
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(path, "expected {'model': state_dict} or a state dict")
    return convert_reference_state_dict(state)


def _load_pth(path: Path) -> Any:
    """A ``.pth`` through the safe unpickler (tensors and plain containers only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(path, f"not a readable checkpoint ({type(exc).__name__}: {exc})") from exc


def _is_ifc_state(keys) -> bool:
    return any(k.startswith(("query_embed.", "detr.query_embed.")) for k in keys)


def load_finetune_init(
    model: IFC,
    state_dict: Mapping[str, torch.Tensor],
    *,
    drop_class_head: bool | None = None,
    path: str | os.PathLike | None = None,
) -> list[str]:
    """Initialise ``model`` from a previous stage's weights (e.g. COCO -> YouTube-VIS).

    The last class-head layer (``class_embed.layers.<last>.*``) is dropped (left at its fresh initialisation)
    when ``drop_class_head`` is True, or, by default (None), when its shape differs from the model's, which is
    what detectron2's checkpointer does for 80 -> 40 classes. Every other weight must fit exactly.

    Returns:
        The dropped keys.
    """
    state = dict(state_dict)
    check_finite(state, path)
    head = class_head_keys(state)
    expected = model.state_dict()
    mismatch = any(k in expected and tuple(expected[k].shape) != tuple(state[k].shape) for k in head)
    drop = mismatch if drop_class_head is None else drop_class_head
    dropped = head if drop else []
    if drop:
        for k in head:
            state[k] = expected[k]
    load_state_dict_strict(model, state, path)
    return dropped


def freeze_backbone(model: IFC, freeze_at: int) -> list[str]:
    """detectron2's ``FREEZE_AT``: 1 freezes the stem, 2 the stem and res2, ... Returns the frozen names."""
    stages = ["stem", "res2", "res3", "res4", "res5"][: max(0, freeze_at)]
    frozen = []
    for name, p in model.backbone.named_parameters():
        if name.split(".")[0] in stages:
            p.requires_grad_(False)
            frozen.append(f"backbone.{name}")
    return frozen


def load_initial_weights(
    model: IFC,
    init: str | os.PathLike | None,
    recipe: Recipe,
    *,
    drop_class_head: bool | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Load the starting weights ``init`` into ``model`` (see `ifc_sdk.training.train`).

    Returns:
        What was done, recorded in ``recipe.json``: ``{"source": ..., "kind": "imagenet" | "checkpoint",
        "unused": N}`` (backbone keys not used) or ``"dropped": [...]`` (class-head keys left fresh).
    """
    if init is None or str(init) == "scratch":
        if recipe.init != "scratch" and verbose:
            print(
                f"note: recipe {recipe.name!r} starts from {recipe.init} weights "
                f"({recipe.imagenet_weights or 'a previous stage'}) but no --init was given: "
                "training from random initialisation",
                file=sys.stderr,
            )
        return {"source": "scratch"}
    if str(init) == "torchvision":
        unused = load_imagenet_backbone(model.backbone, torchvision_imagenet_state_dict(model.config.depth))
        return {"source": "torchvision", "unused": len(unused)}
    path = Path(init)
    if path.suffix == ".pkl":
        unused = load_imagenet_backbone(model.backbone, path)
        return {"source": str(path), "kind": "imagenet", "unused": len(unused)}
    if path.suffix == ".pth" and path.is_file():
        obj = _load_pth(path)
        state = obj.get("model", obj) if isinstance(obj, dict) else {}
        if not _is_ifc_state(state):
            unused = load_imagenet_backbone(model.backbone, path)
            return {"source": str(path), "kind": "imagenet", "unused": len(unused)}
    dropped = load_finetune_init(model, read_model_state(path), drop_class_head=drop_class_head, path=path)
    return {"source": str(path), "kind": "checkpoint", "dropped": dropped}
