"""Every place where the benchmarks reach into ifc_sdk's internals, and nowhere else.

* `run_window`: one window through the network the way `VideoSegmenter` runs it (per-frame states, then the
  window's heads), for `models.calibrate_random_heads`, whose forward hooks capture the heads' inputs;
* `variant`: the earlier steps of the speed work, emulated by patching the backbone, the model's per-frame
  states and the segmenter (``fps.py --ablation``);
* `instrumented`: timers around the functions the predictor calls (the per-stage breakdown).

They touch the `IFC`'s ``normalize``, ``backbone_features``, ``frame_states``, ``forward_frame_states`` and
``forward_clips``, the backbone's ``ConvNorm`` / ``BottleneckBlock``, the segmenter's `EagerClipModel`
(``window_heads``, ``frame_chunk``), its private ``_emit`` and its tracker: when those change, this is the
file to fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch

from benchmarks.reference_style import StageTimer
from benchmarks.rows import Row
from ifc_sdk.inference import predictor as _predictor
from ifc_sdk.inference.predictor import VideoSegmenter
from ifc_sdk.modeling import kernels
from ifc_sdk.modeling.backbone import ConvNorm
from ifc_sdk.modeling.transformer import frame_slices


# ================================================================================================ calibration
def run_window(model, x: torch.Tensor) -> None:
    """Run one window of resized uint8 frames ``(T, 3, H, W)`` through the model for its forward hooks:
    per-frame states in backbone batches of 4 frames (never 1, see VideoSegmenter), then the window's heads."""
    states, size5 = [], None
    for part in frame_slices(len(x), 4):
        f = model.backbone_features(model.normalize(x[part]))
        size5 = tuple(f["res5"].shape[-2:])
        states.append(model.frame_states(f["res3"], f["res4"], f["res5"]))
    stacked = {k: torch.cat([s[k] for s in states]) for k in states[0]}
    model.forward_frame_states(stacked, len(x), size5)


# ================================================================================================ ablation
# ifc_sdk variants for the step-by-step measurements (--ablation), cumulative; "sdk" is the library as it is.
VARIANTS = {
    "before": "ifc_sdk before this work: backbone batches of `window` frames, out-of-place FrozenBN and "
    "residual add, heads from backbone features per window",
    "batches": "+ backbone batches of 2 frames (CPU)",
    "inplace": "+ in-place FrozenBN and residual add (CPU)",
    "reuse": "+ per-frame states (pos, input_proj, 1st encoder layer, mask adapters) reused across windows",
    "sdk": "+ per-frame parts of each window in groups of 2 frames (CPU) = ifc_sdk now",
}


_CONVNORM_FORWARD = ConvNorm.forward


def _legacy_convnorm_forward(self, x):  # ConvNorm.forward before this work: FrozenBN out of place on the CPU
    if not kernels.reference_kernels(x.device):  # the accelerator path did not change
        return _CONVNORM_FORWARD(self, x)
    return self.norm(torch.nn.Conv2d.forward(self, x))


def _legacy_bottleneck_forward(self, x):  # BottleneckBlock.forward before this work
    relu_ = torch.nn.functional.relu_
    out = relu_(self.conv1(x))
    out = relu_(self.conv2(out))
    out = self.conv3(out)
    shortcut = x if self.shortcut is None else self.shortcut(x)
    return relu_(out + shortcut)


@contextlib.contextmanager
def variant(model, name: str, row: Row):
    """Emulate an earlier step of ifc_sdk (`VARIANTS`); yields VideoSegmenter keyword arguments and a
    function applied to the segmenter. The library is put back on exit."""
    from ifc_sdk.modeling import backbone as bb

    if name not in VARIANTS:
        raise SystemExit(f"unknown variant {name!r}; choose from {list(VARIANTS)}")
    order = list(VARIANTS)
    step = order.index(name)
    saved = (bb.ConvNorm.forward, bb.BottleneckBlock.forward)
    if step < order.index("inplace"):
        bb.ConvNorm.forward, bb.BottleneckBlock.forward = _legacy_convnorm_forward, _legacy_bottleneck_forward
    if step < order.index("reuse"):

        def states(res3, res4, res5, mask5=None):
            return {"res3": res3, "res4": res4, "res5": res5}

        def heads(st, num_frames):
            out = model.forward_clips(st["res3"], st["res4"], st["res5"], num_frames, aux=False)
            return out["pred_logits"][0], out["pred_masks"][0]

        model.frame_states = states
    kwargs = {"batch_frames": row.window} if name == "before" else {}

    def adjust(segmenter):  # segmenter.model: the EagerClipModel wrapping `model`
        if step < order.index("reuse"):
            segmenter.model.window_heads = heads
        if step < order.index("sdk"):
            segmenter.model.frame_chunk = None

    try:
        yield kwargs, adjust
    finally:
        bb.ConvNorm.forward, bb.BottleneckBlock.forward = saved
        model.__dict__.pop("frame_states", None)


# ================================================================================================ breakdown
def timed_iter(items: Iterable, timer: StageTimer, stage: str) -> Iterator:
    """``items``, with the time spent waiting for each charged to ``stage``."""
    it = iter(items)
    while True:
        with timer(stage):
            try:
                item = next(it)
            except StopIteration:
                return
        yield item


def _timed(fn: Callable, timer: StageTimer, stage: str) -> Callable:
    def wrapper(*args, **kwargs):
        with timer(stage):
            return fn(*args, **kwargs)

    return wrapper


# Stage of each function the predictor calls (module level) and of each IFC method the EagerClipModel calls.
_PREDICTOR_STAGES = {"to_tensor": "preprocess", "resize_frames": "preprocess", "resized_mask_rles": "output"}
_MODEL_STAGES = {
    "normalize": "preprocess",
    "backbone_features": "backbone",
    "forward_clips": "heads",
    "frame_states": "heads",  # the per-frame part of the heads, run right after the backbone
    "forward_frame_states": "heads",
}


@contextlib.contextmanager
def instrumented(segmenter: VideoSegmenter, timer: StageTimer):
    """Charge ifc_sdk's work to stages by wrapping the functions the predictor calls (instrumented run only).
    Wraps what is bound now, so it composes with `variant`; everything is put back on exit."""
    model, tracker = segmenter.model.model, segmenter.tracker  # the IFC inside the EagerClipModel
    saved_module = {name: getattr(_predictor, name) for name in _PREDICTOR_STAGES}
    saved_model = {name: model.__dict__[name] for name in _MODEL_STAGES if name in model.__dict__}
    emit = segmenter._emit

    def timed_emit(*args, **kwargs):
        yield from timed_iter(emit(*args, **kwargs), timer, "output")

    try:
        for name, fn in saved_module.items():
            setattr(_predictor, name, _timed(fn, timer, _PREDICTOR_STAGES[name]))
        for name, stage in _MODEL_STAGES.items():
            setattr(model, name, _timed(getattr(model, name), timer, stage))
        tracker.add_clip = _timed(tracker.add_clip, timer, "stitching")
        tracker.pop_frames = _timed(tracker.pop_frames, timer, "stitching")
        segmenter._emit = timed_emit
        yield
    finally:
        for name, fn in saved_module.items():
            setattr(_predictor, name, fn)
        for name in _MODEL_STAGES:
            model.__dict__.pop(name, None)
        model.__dict__.update(saved_model)
