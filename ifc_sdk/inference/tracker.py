"""Clip-level tracking: link each clip's instances to tracks by soft IoU on the frames clips share.

Same decisions as the reference's ``Videos`` buffer, without its dense ``(L, 50, L, H/8, W/8)`` arrays and its
cap of 50 tracks: only the last ``window`` clips (the ones a new clip is compared with) and the running per-frame
sums of frames that a later clip can still cover are kept, so memory does not grow with the video's length.

Reference semantics (see the fixture README):

* A new clip is compared with the last m stored clips, m = its number of frames. For a stored clip c, track s
  and new instance i, on the frames both clips cover:
  ``siou_c = sum_f sum_px p_s * p_i / (sum_f sum_px (p_s + p_i - p_s * p_i) + 1e-6)``; the scores are summed
  over c and divided by (number of compared clips in which s appears + 1e-6).
* Scores <= 0.05 are zeroed, Hungarian assignment maximises the total, pairs > 0.05 are accepted; every
  other instance opens a new track in ascending instance order.
* A track's mask logits per frame are the mean over the clips it appears in that cover the frame; its class
  probabilities the mean over the clips it appears in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

SIOU_THRESHOLD = 0.05
EPS = 1e-6


@dataclass
class _StoredClip:
    frames: list[int]  # frame indices covered by the clip
    track_ids: list[int]  # track of each instance
    probs: torch.Tensor  # (n, t, h, w) sigmoid of the mask logits


@dataclass
class TrackState:
    """Running class statistics of one track (final once the video ends)."""

    id: int
    cls_sum: torch.Tensor  # (K+1,) sum of the softmax vectors of the clips the track appears in
    num_clips: int = 0

    @property
    def class_probs(self) -> np.ndarray:
        """float32 ``(K+1,)`` mean class probabilities so far."""
        return (self.cls_sum / self.num_clips).numpy().astype(np.float32)


@dataclass
class _FrameSums:
    logits: dict[int, torch.Tensor] = field(default_factory=dict)  # track id -> (h, w) sum of mask logits
    counts: dict[int, int] = field(default_factory=dict)


class ClipTracker:
    """Consumes clips in order and releases per-frame averaged mask logits once no later clip can change them.

    Args:
        window: maximum clip length (how many past clips a new clip may be compared with).
        siou_threshold: minimum soft IoU to continue a track.
    """

    def __init__(self, window: int, siou_threshold: float = SIOU_THRESHOLD) -> None:
        self.siou_threshold = siou_threshold
        self.tracks: list[TrackState] = []
        self._history: deque[_StoredClip] = deque(maxlen=window)
        self._frames: dict[int, _FrameSums] = {}

    def add_clip(self, frames: list[int], mask_logits: torch.Tensor, class_logits: torch.Tensor) -> list[int]:
        """Add one clip's predictions and return the track of each of its instances.

        Args:
            frames: the t frame indices of the clip, ascending.
            mask_logits: float ``(Q, t, h, w)`` per-query mask logits.
            class_logits: float ``(Q, K+1)`` class logits (last = no-object).

        Returns:
            Track id of each instance (queries whose argmax is not no-object, ascending query order).
        """
        # Mask logits stay on their device (a GPU keeps the per-pixel work); class probabilities and the
        # bookkeeping live on the CPU. On the CPU nothing moves.
        mask_logits = mask_logits.float()
        cls_probs = class_logits.float().cpu().softmax(-1)
        keep = torch.nonzero(cls_probs.argmax(-1) != cls_probs.shape[-1] - 1).flatten()
        logits = mask_logits[keep.to(mask_logits.device)]  # (n, t, h, w)
        cls_probs = cls_probs[keep]  # (n, K+1)
        probs = logits.sigmoid()
        assignment = self._match(frames, probs)
        for i, track_id in enumerate(assignment):
            if track_id is None:
                track_id = len(self.tracks)
                self.tracks.append(TrackState(track_id, torch.zeros_like(cls_probs[i])))
                assignment[i] = track_id
            track = self.tracks[track_id]
            track.cls_sum += cls_probs[i]
            track.num_clips += 1
            for j, f in enumerate(frames):
                sums = self._frames.setdefault(f, _FrameSums())
                if track_id in sums.logits:
                    sums.logits[track_id] += logits[i, j]
                    sums.counts[track_id] += 1
                else:
                    sums.logits[track_id] = logits[i, j].clone()
                    sums.counts[track_id] = 1
        self._history.append(_StoredClip(list(frames), list(assignment), probs))
        return assignment

    def _match(self, frames: list[int], probs: torch.Tensor) -> list[int | None]:
        n = probs.shape[0]
        compared = list(self._history)[-len(frames) :] if self._history else []
        candidates = sorted({t for clip in compared for t in clip.track_ids})
        if n == 0 or not candidates:
            return [None] * n
        row = {t: r for r, t in enumerate(candidates)}
        siou = torch.zeros(len(candidates), n, dtype=torch.float64)
        appear = torch.zeros(len(candidates), dtype=torch.float64)
        pos = {f: j for j, f in enumerate(frames)}
        flat_new = probs.flatten(2)  # (n, t, hw)
        for clip in compared:
            shared = [(j, pos[f]) for j, f in enumerate(clip.frames) if f in pos]
            if not shared:
                continue
            old = clip.probs.flatten(2)[:, [a for a, _ in shared]].flatten(1)  # (s, o*hw)
            new = flat_new[:, [b for _, b in shared]].flatten(1)  # (n, o*hw)
            inter = old @ new.T  # (s, n)
            union = old.sum(1, keepdim=True) + new.sum(1)[None] - inter
            rows = torch.tensor([row[t] for t in clip.track_ids], dtype=torch.long)
            siou[rows] += (inter / (union + EPS)).double().cpu()
            appear[rows] += 1
        siou = siou / (appear[:, None] + EPS)
        siou[siou <= self.siou_threshold] = 0
        assignment: list[int | None] = [None] * n
        for r, i in zip(*linear_sum_assignment(siou.numpy(), maximize=True)):
            if siou[r, i] > self.siou_threshold:
                assignment[i] = candidates[r]
        return assignment

    def pop_frames(self, upto: int | None = None) -> list[tuple[int, list[int], torch.Tensor | None]]:
        """Release frames ``< upto`` (all when None), in order.

        Returns ``(frame, track_ids, mean_logits (n, h, w))`` per frame; ``mean_logits`` is None for a frame no
        track covers.
        """
        ready = sorted(f for f in self._frames if upto is None or f < upto)
        out = []
        for f in ready:
            sums = self._frames.pop(f)
            ids = sorted(sums.logits)
            mean = torch.stack([sums.logits[t] / sums.counts[t] for t in ids]) if ids else None
            out.append((f, ids, mean))
        return out
