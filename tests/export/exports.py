"""Exports shared by the export tests: each (model, format) is exported once per test session.

Exporting traces the model symbolically (tens of seconds on a busy 2-core machine), so the tests export the
reference fixture models and the tiny model once and reuse the folders. Folders live in one temporary
directory removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
from reference import model as reference_model
from tiny import tiny_model

from ifc_sdk.export import export

FORMATS = ("onnx", "openvino", "torchscript", "exported-program")
_ROOT = Path(tempfile.mkdtemp(prefix="ifc_export_tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


def models(name: str):
    """``"tiny"`` (random, 6 queries) or a reference fixture model (``"r50_seed0"``, ``"r101_seed1"``)."""
    return tiny_model() if name == "tiny" else reference_model(name)


@functools.cache
def exported(name: str, fmt: str) -> Path:
    """The folder of model ``name`` exported to ``fmt`` (fp32, no check: the tests compare themselves)."""
    out = _ROOT / f"{name}-{fmt}"
    export(models(name), format=fmt, out=out, check=False)
    return out


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def assert_same_result(result, eager, *, prob_atol: float = 1e-4, min_iou: float = 0.999) -> None:
    """``result`` equals the eager ``VideoResult``: same tracks, labels and order, class probabilities within
    ``prob_atol``, each track's masks with IoU >= ``min_iou``."""
    assert len(result.tracks) == len(eager.tracks)
    np.testing.assert_allclose(
        np.stack([t.class_probs for t in result.tracks]),
        np.stack([t.class_probs for t in eager.tracks]),
        rtol=0,
        atol=prob_atol,
    )
    mine = result.predictions(multi_class=True, threshold=0.01)
    theirs = eager.predictions(multi_class=True, threshold=0.01)
    assert [(p.label, p.track_id) for p in mine] == [(p.label, p.track_id) for p in theirs]
    for a, b in zip(result.tracks, eager.tracks):
        assert mask_iou(a.mask_array(), b.mask_array()) >= min_iou, (
            a.id,
            mask_iou(a.mask_array(), b.mask_array()),
        )
