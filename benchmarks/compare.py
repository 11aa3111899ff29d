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


def mask_iou_between(ref, other) -> dict:
    """Video-level mask IoU of two results' tracks (e.g. fp32 vs bf16): tracks are paired by Hungarian
    matching on IoU; unmatched reference tracks count as 0. Returns the area-weighted and the plain mean, and
    the mean and least IoU of the matched tracks (pairs with IoU >= `MATCHED_IOU`)."""
    from scipy.optimize import linear_sum_assignment

    a = [t.mask_array() for t in ref.tracks]
    b = [t.mask_array() for t in other.tracks]
    if not a:
        return {"mask_iou": 1.0 if not b else 0.0, "mask_iou_mean": 1.0 if not b else 0.0, "tracks": 0}
    iou = np.zeros((len(a), max(len(b), 1)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            union = np.logical_or(x, y).sum()
            iou[i, j] = np.logical_and(x, y).sum() / union if union else 1.0
    rows, cols = linear_sum_assignment(iou, maximize=True)
    best = np.zeros(len(a))
    best[rows] = iou[rows, cols]
    area = np.array([x.sum() for x in a], dtype=np.float64)
    weighted = float((best * area).sum() / area.sum()) if area.sum() else float(best.mean())
    matched = best[best >= MATCHED_IOU]
    return {
        "mask_iou": weighted,
        "mask_iou_mean": float(best.mean()),
        "tracks": len(a),
        "other_tracks": len(b),
        "matched": len(matched),  # reference tracks whose pair overlaps it with IoU >= MATCHED_IOU
        "matched_iou_mean": float(matched.mean()) if len(matched) else None,
        "matched_iou_min": float(matched.min()) if len(matched) else None,
    }
