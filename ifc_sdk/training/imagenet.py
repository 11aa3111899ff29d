"""ImageNet backbone initialisation: torchvision ResNets and detectron2's converted ``.pkl`` files.

The reference starts COCO pre-training from ``detectron2://ImageNetPretrained/torchvision/R-50.pkl`` (R50,
converted from torchvision by ``tools/convert-torchvision-to-d2.py``, keys already in detectron2 naming) or
``detectron2://ImageNetPretrained/MSRA/R-101.pkl`` (Caffe2 "MSRA" naming such as ``res2_0_branch2a_w``,
``res_conv1_bn_s``; affine-only batch norms). Both are pickles of ``{"model" or "blobs": {name: numpy
array}, ...}``. This module reads them without executing pickled code (only numpy arrays and plain containers
are accepted), converts the names to this SDK's (= detectron2's) backbone names, and loads them into
``model.backbone``. A torchvision state dict (``resnet50-*.pth`` or ``torchvision.models.resnet50(weights=...)
.state_dict()``) is converted directly.

Like detectron2's FrozenBatchNorm loading, statistics missing from the file (the MSRA files hold only the
affine ``bn_s``/``bn_b``) are set to mean 0 and variance 1.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ifc_sdk.errors import CheckpointError, ConfigError
from ifc_sdk.modeling.backbone import ResNet

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays, scalars and plain containers."""

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load global {module}.{name}")


def read_pkl(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The ``{name: array}`` weights of a detectron2/Caffe2 ``.pkl`` (``{"model": ...}``, ``{"blobs": ...}``
    or a flat dict), read without executing pickled code; ``*_momentum`` blobs are dropped."""
    path = Path(path)
    try:
        data = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except FileNotFoundError:
        raise CheckpointError(path, "no such weights file") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(path, f"not a readable weights pickle ({type(exc).__name__}: {exc})") from exc
    if isinstance(data, dict):
        data = data.get("model", data.get("blobs", data))
    if not isinstance(data, Mapping):
        raise CheckpointError(path, f"expected a dict of arrays, found {type(data).__name__}")
    return {
        str(k): np.asarray(v)
        for k, v in data.items()
        if isinstance(v, np.ndarray | np.generic) and not str(k).endswith("_momentum")
    }


def convert_c2_names(keys: list[str]) -> dict[str, str]:
    """Caffe2/MSRA blob names -> detectron2 names (detectron2's ``convert_basic_c2_names`` for ResNets).

    ``res2_0_branch2a_w`` -> ``res2.0.conv1.weight``; ``res2_0_branch2a_bn_s`` -> ``res2.0.conv1.norm.weight``;
    ``res2_0_branch1_w`` -> ``res2.0.shortcut.weight``; ``conv1_w`` -> ``stem.conv1.weight``;
    ``res_conv1_bn_s`` -> ``stem.conv1.norm.weight``. Names already in detectron2 form are kept.
    """
    out = {}
    for key in keys:
        if "." in key:  # already detectron2 naming ("stem.conv1.weight", "res2.0.conv1.norm.bias")
            out[key] = key
            continue
        k = key.replace("_", ".")
        k = re.sub(r"\.b$", ".bias", k)
        k = re.sub(r"\.w$", ".weight", k)
        k = re.sub(r"bn\.s$", "norm.weight", k)
        k = re.sub(r"bn\.bias$", "norm.bias", k)
        k = re.sub(r"bn\.rm$", "norm.running_mean", k)
        k = re.sub(r"bn\.running\.mean$", "norm.running_mean", k)
        k = re.sub(r"bn\.riv$", "norm.running_var", k)
        k = re.sub(r"bn\.running\.var$", "norm.running_var", k)
        k = re.sub(r"bn\.gamma$", "norm.weight", k)
        k = re.sub(r"bn\.beta$", "norm.bias", k)
        k = re.sub(r"^res\.conv1\.norm\.", "conv1.norm.", k)
        k = re.sub(r"^conv1\.", "stem.conv1.", k)
        k = k.replace(".branch1.", ".shortcut.")
        k = k.replace(".branch2a.", ".conv1.")
        k = k.replace(".branch2b.", ".conv2.")
        k = k.replace(".branch2c.", ".conv3.")
        out[key] = k
    return out


def convert_torchvision_resnet(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision ResNet keys -> detectron2 backbone keys (``layer1.0.bn2.weight`` ->
    ``res2.0.conv2.norm.weight``, ``downsample.0/1`` -> ``shortcut``/``shortcut.norm``); ``fc`` and
    ``num_batches_tracked`` are dropped."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        k = re.sub(r"^conv1\.", "stem.conv1.", key)
        k = re.sub(r"^bn1\.", "stem.conv1.norm.", k)
        k = re.sub(r"^layer(\d)\.", lambda m: f"res{int(m.group(1)) + 1}.", k)
        k = re.sub(r"\.bn(\d)\.", r".conv\1.norm.", k)
        k = k.replace(".downsample.0.", ".shortcut.").replace(".downsample.1.", ".shortcut.norm.")
        out[k] = value
    return out


def _is_torchvision(keys) -> bool:
    return any(k.startswith("layer1.") for k in keys) and "conv1.weight" in keys


def backbone_state_dict(source: str | os.PathLike | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """detectron2-named backbone weights from a ``.pkl`` (detectron2 or Caffe2 names), a torchvision ResNet
    ``.pth`` / state dict, or a detectron2-named state dict."""
    if isinstance(source, Mapping):
        state = {k: torch.as_tensor(v) for k, v in source.items()}
    else:
        path = Path(source)
        if path.suffix == ".pkl":
            arrays = read_pkl(path)
            names = convert_c2_names(list(arrays))
            state = {names[k]: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in arrays.items()}
        else:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except FileNotFoundError:
                raise CheckpointError(path, "no such weights file") from None
            except Exception as exc:
                raise CheckpointError(
                    path, f"not a readable weights file ({type(exc).__name__}: {exc})"
                ) from exc
            state = obj.get("model", obj.get("state_dict", obj)) if isinstance(obj, dict) else None
            if not isinstance(state, dict):
                raise CheckpointError(path, "expected a state dict of tensors")
    if _is_torchvision(state):
        state = convert_torchvision_resnet(state)
    return state


def load_imagenet_backbone(
    backbone: ResNet, source: str | os.PathLike | Mapping[str, torch.Tensor]
) -> list[str]:
    """Load ImageNet weights into ``backbone`` (see `backbone_state_dict` for the accepted sources).

    Every backbone parameter must be present with the right shape, except FrozenBN running statistics, which
    default to mean 0 / variance 1 when absent. Extra entries (a classifier) are ignored.

    Returns:
        The names of the entries of ``source`` that were not used.

    Raises:
        CheckpointError: a backbone weight is missing or has another shape.
    """
    where = None if isinstance(source, Mapping) else source
    state = backbone_state_dict(source)
    expected = backbone.state_dict()
    new, missing, wrong = {}, [], []
    for key, value in expected.items():
        if key in state:
            if tuple(state[key].shape) != tuple(value.shape):
                wrong.append(f"{key}: file {tuple(state[key].shape)} vs model {tuple(value.shape)}")
            new[key] = state[key].to(value.dtype)
        elif key.endswith("norm.running_mean"):
            new[key] = torch.zeros_like(value)
        elif key.endswith("norm.running_var"):
            new[key] = torch.ones_like(value)
        else:
            missing.append(key)
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} backbone weight(s) missing, first: {missing[:6]}")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatch(es), first: {wrong[:4]}")
        raise CheckpointError(where, "ImageNet weights do not fit the backbone: " + "; ".join(parts))
    backbone.load_state_dict(new, strict=True)
    return sorted(set(state) - set(expected))


def torchvision_imagenet_state_dict(depth: int) -> dict[str, torch.Tensor]:
    """Download (through torchvision's cache) the ImageNet ``IMAGENET1K_V1`` weights of ResNet-``depth``,
    the weights detectron2 converted into ``torchvision/R-50.pkl``."""
    import torchvision

    builders = {50: ("resnet50", "ResNet50_Weights"), 101: ("resnet101", "ResNet101_Weights")}
    if depth not in builders:
        raise ConfigError(f"no torchvision ImageNet weights for ResNet-{depth}")
    fn, enum = builders[depth]
    weights = getattr(torchvision.models, enum).IMAGENET1K_V1
    return getattr(torchvision.models, fn)(weights=weights).state_dict()
