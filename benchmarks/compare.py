"""Whether two runs gave the same predictions: ifc_sdk against the baseline, reduced precision against fp32."""

from __future__ import annotations

import numpy as np

MATCHED_IOU = 0.5  # a track pair overlapping at least this much is the same object


def compare_outputs(ours, base) -> dict:
    """ifc_sdk's `VideoResult` against the baseline's `ReferenceOutput`: same outputs (labels, tracks, order),
    scores, track class probabilities and mask pixels."""
    if isinstance(base, Exception):
        return {"equal": False, "note": f"baseline failed: {base}"}
    preds = ours.predictions(multi_class=True, threshold=0.01)
    info = {
        "tracks": len(ours.tracks),
        "baseline_tracks": int(base.track_cls.shape[0]),
        "outputs": len(preds),
        "baseline_outputs": len(base.labels),
    }
    same_list = [p.label for p in preds] == base.labels and [p.track_id for p in preds] == base.track_idx
    info["labels_and_order_equal"] = same_list
    if info["tracks"] == info["baseline_tracks"] and info["tracks"]:
        probs = np.stack([t.class_probs for t in ours.tracks])
        info["max_class_prob_abs_diff"] = float(np.abs(probs - base.track_cls.numpy()).max())
        mine = np.stack([t.mask_array() for t in ours.tracks])
        theirs = base.track_masks.numpy()
        info["mask_pixels_differing"] = int((mine != theirs).sum())
        info["mask_pixels"] = int(mine.size)
    if same_list and preds:
        info["max_score_rel_diff"] = float(
            max(abs(p.score - s) / max(abs(s), 1e-12) for p, s in zip(preds, base.scores))
        )
    info["equal"] = bool(
        same_list
        and info["tracks"] == info["baseline_tracks"]
        and info.get("max_score_rel_diff", 0.0) <= 1e-5
        and info.get("mask_pixels_differing", 0) <= 1e-4 * max(info.get("mask_pixels", 1), 1)
    )
    return info


def _areas_and_intersections(ref_tracks, other_tracks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Video-level mask areas of both track lists and their pairwise intersections, summed over frames from the
    compressed RLEs (pycocotools' RLE IoU, nothing decoded: a long HD video's masks do not fit in memory)."""
    from pycocotools import mask as mask_utils

    area_a, area_b = np.zeros(len(ref_tracks)), np.zeros(len(other_tracks))
    inter = np.zeros((len(ref_tracks), len(other_tracks)))
    frames = {f for t in (*ref_tracks, *other_tracks) for f in t.frame_masks}
    for f in sorted(frames):
        ia = [i for i, t in enumerate(ref_tracks) if f in t.frame_masks]
        ib = [j for j, t in enumerate(other_tracks) if f in t.frame_masks]
        ra, rb = [ref_tracks[i].frame_masks[f] for i in ia], [other_tracks[j].frame_masks[f] for j in ib]
        aa = mask_utils.area(ra).astype(np.float64) if ra else np.zeros(0)
        ab = mask_utils.area(rb).astype(np.float64) if rb else np.zeros(0)
        area_a[ia] += aa
        area_b[ib] += ab
        if ra and rb:
            iou = np.asarray(mask_utils.iou(ra, rb, [0] * len(rb)), dtype=np.float64).reshape(
                len(ra), len(rb)
            )
            inter[np.ix_(ia, ib)] += np.round(iou * (aa[:, None] + ab[None, :]) / (1 + iou))  # |A&B| from IoU
    return area_a, area_b, inter


def mask_iou_between(ref, other) -> dict:
    """Video-level mask IoU of two results' tracks (e.g. fp32 vs bf16): tracks are paired by Hungarian
    matching on IoU; unmatched reference tracks count as 0. Returns the area-weighted and the plain mean, and
    the mean and least IoU of the matched tracks (pairs with IoU >= `MATCHED_IOU`)."""
    from scipy.optimize import linear_sum_assignment

    counts = {"tracks": len(ref.tracks), "other_tracks": len(other.tracks)}
    if not ref.tracks:
        same = 1.0 if not other.tracks else 0.0
        return {"mask_iou": same, "mask_iou_mean": same, **counts, "matched": 0}
    area, area_b, inter = _areas_and_intersections(ref.tracks, other.tracks)  # inter: (tracks, other tracks)
    best = np.zeros(len(area))
    if other.tracks:
        union = area[:, None] + area_b[None, :] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        rows, cols = linear_sum_assignment(iou, maximize=True)
        best[rows] = iou[rows, cols]
    weighted = float((best * area).sum() / area.sum()) if area.sum() else float(best.mean())
    matched = best[best >= MATCHED_IOU]
    return {
        "mask_iou": weighted,
        "mask_iou_mean": float(best.mean()),
        **counts,
        "matched": len(matched),  # reference tracks whose pair overlaps it with IoU >= MATCHED_IOU
        "matched_iou_mean": float(matched.mean()) if len(matched) else None,
        "matched_iou_min": float(matched.min()) if len(matched) else None,
    }
