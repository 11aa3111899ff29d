"""Reference-style video inference: the execution strategy of the original IFC code, as a speed baseline.

Written from ``../shared/fixtures/reference/README.md`` (the reference's video path), not from
``ifc_sdk.inference``. What it reproduces is the reference's *execution strategy*; the per-clip network is
ifc_sdk's `IFC.forward_clips` (the same computation as the reference's ``forward_post_backbone``, checked
against the fixtures by ``tests/modeling``), so a speed-up measured against this baseline comes from how the
video is processed, not from a different network:

* every frame is decoded and resized first (no overlap with compute), the whole video is normalised into one
  batch (detectron2's ``ImageList``) and goes through the backbone **at once**;
* clips of T frames start every S frames (the last one shifted back to end at the last frame); each clip runs
  the transformer and heads on its slice of the whole-video features;
* tracking uses the reference's ``Videos`` buffers: mask logits and mask probabilities in two dense float32
  arrays of shape ``(L, 50, L, h8, w8)`` plus validity ``(L, 50, L)`` and class probabilities ``(L, 50, K+1)``
  (memory quadratic in the video length L; more than 50 tracks is an error, as in the reference); soft IoU is
  computed by broadcasting ``(clips, tracks, 1, frames, HW)`` against ``(1, 1, instances, frames, HW)``;
* ``get_result`` averages the buffers over clips (0/0 = NaN for frames a track never covers), bilinearly
  resizes the ``(N_tracks, L, h8, w8)`` logits to the output size in one call and thresholds at 0;
* with ``MULTI_CLS_ON`` every (track, class) pair above 0.01 is one output holding its own copy of the
  track's ``(L, H, W)`` boolean masks, and the YouTube-VIS evaluator encodes every output frame by frame into
  COCO RLE (``instances_to_coco_json_video``).

`run_reference_style` returns the outputs in the reference's order (track-major, then class ascending) and
fills an optional `StageTimer` with the time of each stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment

MAX_TRACKS = 50  # the reference's fixed buffer size (num_max_inst)
MATCH_THRESHOLD = 0.05
CLASS_THRESHOLD = 0.01


class StageTimer:
    """Accumulates wall time per named stage. Stages may nest: time is charged to the innermost open stage
    only (a stage's own time excludes the nested ones). On CUDA it synchronises at stage boundaries, so use
    it in instrumented runs only (synchronising removes the overlap between stages)."""

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.sync = device is not None and torch.device(device).type == "cuda"
        self._stack: list[list] = []  # [stage, start of its current uninterrupted stretch]

    def _charge(self, now: float) -> None:
        if self._stack:
            stage, since = self._stack[-1]
            self.seconds[stage] = self.seconds.get(stage, 0.0) + now - since

    @contextmanager
    def __call__(self, stage: str):
        if self.sync:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self._charge(now)
        self._stack.append([stage, now])
        try:
            yield
        finally:
            if self.sync:
                torch.cuda.synchronize()
            now = time.perf_counter()
            self._charge(now)
            self._stack.pop()
            if self._stack:
                self._stack[-1][1] = now

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def total(self) -> float:
        return sum(self.seconds.values())


@contextmanager
def _null(_stage: str):
    yield


# ------------------------------------------------------------------------------------------ preprocessing
def reference_resized_shape(height: int, width: int, short: int, max_size: int = 1333) -> tuple[int, int]:
    """detectron2 ``ResizeShortestEdge.get_output_shape``."""
    scale = short * 1.0 / min(height, width)
    new_h, new_w = (short, scale * width) if height < width else (scale * height, short)
    if max(new_h, new_w) > max_size:
        scale = max_size * 1.0 / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


def reference_mapper(
    frames: Sequence[np.ndarray], short: int | None, max_size: int = 1333
) -> list[torch.Tensor]:
    """``YTVISDatasetMapper(is_train=False)``: per frame PIL bilinear resize, then a CHW uint8 tensor."""
    out = []
    for image in frames:
        if short is not None:
            h, w = reference_resized_shape(image.shape[0], image.shape[1], short, max_size)
            if (h, w) != image.shape[:2]:
                image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
        out.append(torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))))
    return out


# ------------------------------------------------------------------------------------------ the Videos buffer
@dataclass
class Clip:
    frame_idx: list[int]
    cls_probs: torch.Tensor  # (n, K+1)
    mask_logits: torch.Tensor  # (n, t, h, w)
    mask_probs: torch.Tensor  # (n, t, h, w)

    @property
    def num_instance(self) -> int:
        return self.cls_probs.shape[0]


class TooManyTracksError(RuntimeError):
    """More than 50 tracks: the reference's fixed-size buffer cannot hold them (a shape error there)."""


class Videos:
    """The reference's dense tracking buffers (see the module docstring)."""

    def __init__(
        self,
        clip_len: int,
        video_length: int,
        num_classes: int,
        mask_size: tuple[int, int],
        device: torch.device | str = "cpu",
    ) -> None:
        length = video_length
        self.clip_len = clip_len
        self.saved_logits = torch.zeros(length, MAX_TRACKS, length, *mask_size, device=device)
        self.saved_masks = torch.zeros(length, MAX_TRACKS, length, *mask_size, device=device)
        self.saved_valid = torch.zeros(length, MAX_TRACKS, length, dtype=torch.bool, device=device)
        self.saved_cls = torch.zeros(length, MAX_TRACKS, num_classes + 1, device=device)
        self.saved_idx_set: set[int] = set()
        self.num_clip = 0
        self.num_inst = 0
        self.assignments: list[list[int]] = []  # track row of each instance, per clip (for tests)

    @staticmethod
    def get_siou(
        input_masks: torch.Tensor, saved_masks: torch.Tensor, saved_valid: torch.Tensor
    ) -> torch.Tensor:
        """``input (N_i, O, h, w)``, ``saved (C, N_s, O, h, w)``, ``valid (C, N_s, O)`` -> ``(N_s, N_i)``."""
        input_masks = input_masks.flatten(-2)[None, None]  # 1, 1, N_i, O, HW
        saved_masks = saved_masks.flatten(-2).unsqueeze(2)  # C, N_s, 1, O, HW
        valid = saved_valid[:, :, None, :, None].float()  # C, N_s, 1, O, 1
        numerator = saved_masks * input_masks  # C, N_s, N_i, O, HW
        denominator = saved_masks + input_masks - numerator
        numerator = (numerator * valid).sum(dim=(-1, -2))
        denominator = (denominator * valid).sum(dim=(-1, -2))
        siou = numerator / (denominator + 1e-6)  # C, N_s, N_i
        num_valid_clip = (saved_valid.flatten(2).sum(dim=2) > 0).sum(dim=0)  # N_s
        return siou.sum(dim=0) / (num_valid_clip[:, None] + 1e-6)

    def update(self, clip: Clip) -> list[int]:
        n = clip.num_instance
        assignment: list[int | None] = [None] * n
        overlap = sorted(self.saved_idx_set.intersection(clip.frame_idx))
        if overlap and n > 0 and self.num_inst > 0:
            first = max(0, self.num_clip - len(clip.frame_idx))  # the last m stored clips, m = clip length
            saved_masks = self.saved_masks[first : self.num_clip, : self.num_inst][:, :, overlap]
            saved_valid = self.saved_valid[first : self.num_clip, : self.num_inst][:, :, overlap]
            input_masks = clip.mask_probs[:, [clip.frame_idx.index(f) for f in overlap]]
            siou = self.get_siou(input_masks, saved_masks, saved_valid)
            siou = siou * (siou > MATCH_THRESHOLD)
            rows, cols = linear_sum_assignment(siou.cpu().numpy(), maximize=True)
            for r, c in zip(rows.tolist(), cols.tolist()):
                if siou[r, c] > MATCH_THRESHOLD:
                    assignment[c] = r
        for i in range(n):
            if assignment[i] is None:
                assignment[i] = self.num_inst
                self.num_inst += 1
        if self.num_inst > MAX_TRACKS:
            raise TooManyTracksError(f"{self.num_inst} tracks: the reference's buffer holds {MAX_TRACKS}")
        if n:
            rows = torch.tensor(assignment, device=self.saved_logits.device)[:, None]
            cols = torch.tensor(clip.frame_idx, device=self.saved_logits.device)[None, :]
            self.saved_logits[self.num_clip, rows, cols] = clip.mask_logits
            self.saved_masks[self.num_clip, rows, cols] = clip.mask_probs
            self.saved_valid[self.num_clip, rows, cols] = True
            self.saved_cls[self.num_clip, rows[:, 0]] = clip.cls_probs
        self.saved_idx_set.update(clip.frame_idx)
        self.num_clip += 1
        self.assignments.append(list(assignment))
        return assignment

    def get_result(self, image_size: tuple[int, int], timer=_null) -> tuple[torch.Tensor, torch.Tensor]:
        """-> class probs ``(N, K+1)``, boolean masks ``(N, L, H, W)``."""
        with timer("stitching"):
            logits = self.saved_logits[: self.num_clip, : self.num_inst]  # C, N, L, h, w
            valid = self.saved_valid[: self.num_clip, : self.num_inst]  # C, N, L
            cls = self.saved_cls[: self.num_clip, : self.num_inst]  # C, N, K+1
            logits = logits.sum(dim=0) / valid.sum(dim=0)[..., None, None]  # N, L, h, w (NaN where 0/0)
            out_cls = cls.sum(dim=0) / (valid.sum(dim=2) > 0).sum(dim=0)[:, None]
        with timer("output"):
            out_masks = F.interpolate(logits, size=image_size, mode="bilinear", align_corners=False) > 0
        return out_cls, out_masks


# ------------------------------------------------------------------------------------------ inference
@dataclass
class ReferenceOutput:
    scores: list[float]
    labels: list[int]
    track_idx: list[int]  # row of `track_masks` of each output
    masks: list[torch.Tensor]  # per output (L, H, W) bool (copies, as in the reference)
    rles: list[list[dict]] | None  # per output, per frame (the evaluator's encoding); None if not encoded
    track_cls: torch.Tensor  # (N_tracks, K+1)
    track_masks: torch.Tensor  # (N_tracks, L, H, W) bool
    num_clips: int
    assignments: list[list[int]] = field(default_factory=list)


def clip_windows(num_frames: int, window: int, stride: int) -> list[list[int]]:
    """The reference's clip loop: start every ``stride`` frames; the clip reaching the end is shifted back to
    end at the last frame and is the last one."""
    clips = []
    for start in range(0, num_frames, stride):
        end = start + window
        last = end >= num_frames
        if last:
            start, end = max(0, num_frames - window), num_frames
        clips.append(list(range(start, end)))
        if last:
            break
    return clips


def encode_output_rles(masks: torch.Tensor) -> list[dict]:
    """``instances_to_coco_json_video``: one RLE per frame of one output's ``(L, H, W)`` masks."""
    return [mask_utils.encode(np.array(m[:, :, None], order="F", dtype="uint8"))[0] for m in masks.numpy()]


@torch.inference_mode()
def run_reference_style(
    model,
    frames: Sequence[np.ndarray] | Callable[[], Sequence[np.ndarray]],
    *,
    window: int,
    stride: int = 1,
    size: int | None = 360,
    max_size: int = 1333,
    output_size: tuple[int, int] | None = None,
    precision: str = "fp32",
    encode: bool = True,
    timer=None,
) -> ReferenceOutput:
    """Segment a video the way the reference does.

    Args:
        model: an `ifc_sdk.modeling.IFC` in eval mode.
        frames: uint8 ``(H, W, 3)`` RGB frames, or a callable that decodes them (timed as "decode").
        window, stride: T and S (``SAMPLING_FRAME_NUM``, ``CLIP_STRIDE``).
        size, max_size: test-time shortest-edge resize (None keeps the frames).
        output_size: ``(height, width)`` of the masks (default: the input frames' size).
        precision: "fp32", "bf16" or "fp16" (autocast on CUDA only).
        encode: encode every output into per-frame COCO RLEs (the evaluator's work).
        timer: a `StageTimer` (stages decode, preprocess, backbone, heads, stitching, output).
    """
    timer = timer or StageTimer(model.device)
    device = model.device
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if dtype is not None and device.type != "cuda":
        raise ValueError("reduced precision is only supported on CUDA")

    def autocast():
        return torch.autocast("cuda", dtype=dtype) if dtype is not None else _nullcontext()

    with timer("decode"):
        frames = list(frames() if callable(frames) else frames)
    num_frames = len(frames)
    height, width = output_size or frames[0].shape[:2]
    with timer("preprocess"):
        images = reference_mapper(frames, size, max_size)
        # Ifc.preprocess_image: to device, normalise each frame, ImageList.from_tensors (one padded batch)
        images = [model.normalize(x.to(device)[None])[0] for x in images]
        batch = images[0].new_zeros(len(images), 3, *(max(s) for s in zip(*(x.shape[-2:] for x in images))))
        for i, x in enumerate(images):
            batch[i, :, : x.shape[-2], : x.shape[-1]].copy_(x)
        del images
    with timer("backbone"), autocast():
        features = model.backbone_features(batch)  # the whole video at once
        features = {k: features[k] for k in ("res3", "res4", "res5")}
    del batch
    mask_size = tuple(features["res3"].shape[-2:])
    with timer("stitching"):
        video = Videos(window, num_frames, model.num_classes, mask_size, device)
    for frame_idx in clip_windows(num_frames, window, stride):
        with timer("heads"), autocast():
            clip = {k: v[frame_idx[0] : frame_idx[-1] + 1] for k, v in features.items()}
            out = model.forward_clips(clip["res3"], clip["res4"], clip["res5"], len(frame_idx), aux=False)
        with timer("stitching"):
            cls_probs = out["pred_logits"][0].float().softmax(-1)
            keep = cls_probs.argmax(-1) != cls_probs.shape[-1] - 1
            logits = out["pred_masks"][0][keep].float()
            video.update(Clip(frame_idx, cls_probs[keep], logits, logits.sigmoid()))
    del features
    track_cls, track_masks = video.get_result((height, width), timer)
    with timer("output"):
        scores = track_cls[:, :-1]
        track_idx, labels = torch.where(scores > CLASS_THRESHOLD)
        out_scores = scores[track_idx, labels]
        out_masks = track_masks[track_idx].cpu()  # one copy per output, as the reference returns them
        masks = list(out_masks.unbind(0))
        rles = [encode_output_rles(m) for m in masks] if encode else None
    return ReferenceOutput(
        out_scores.tolist(),
        labels.tolist(),
        track_idx.tolist(),
        masks,
        rles,
        track_cls.cpu(),
        track_masks.cpu(),
        video.num_clip,
        video.assignments,
    )


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
