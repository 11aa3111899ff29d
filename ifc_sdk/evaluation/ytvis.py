"""YouTube-VIS video AP/AR, re-implemented to give the numbers of the official evaluator.

The official metric is ``ytvoseval.py`` of the YouTube-VOS fork of the COCO API
(``github.com/youtubevos/cocoapi``), used both locally and by the YTVIS benchmark server. This module
reproduces its 12 summary stats (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl) including
its quirks: the spatio-temporal IoU (summed intersections over summed unions, frames paired with ``zip``),
area ranges of 128² and 256² with inclusive bounds, crowds matched with plain IoU and absorbing any number of
predictions, stable (mergesort) score ordering, the "later GT wins on equal IoU" tie break, matches stored
as GT ids (so a GT with id 0 never counts as a match), ``maxDets`` applied per (video, category) without
re-matching, and accumulation over videos in ascending id order. ``pycocotools.mask`` converts polygons and
uncompressed RLE and computes mask areas; the IoU (on foreground run intervals decoded from the compressed
counts), the matching and the accumulation are our own vectorised numpy code. The four fixture cases in
``shared/fixtures/ytvis_eval`` (official outputs) are reproduced exactly (difference 0).

Deliberate differences from the official code, all on inputs it rejects or mishandles:

- An empty results list crashes the official loader. Here it means "no predictions": every stat is 0
  where the ground truth has objects in that area range, and -1 where it has none.
- A result naming a video that is not in the ground truth is an assertion error there and an
  :class:`~ifc_sdk.errors.EvaluationError` naming the video ids here.
- A mask whose size differs from its video's height and width makes the official merge return an empty
  mask (the frame then adds nothing to intersection or union; only a log line says so). Here it raises
  :class:`~ifc_sdk.errors.EvaluationError`, since it is always a bug in the file; so do RLE counts that
  do not add up to the frame's pixel count.
- Results may also use uncompressed RLE or polygons (the official loader accepts only compressed RLE).
- A GT annotation without ``areas`` (a KeyError there) gets its averaged area from its masks.
- A score that is NaN or infinite, or a ``segmentations`` list (GT or result) whose length differs from its
  video's frame count (``length``, else the number of ``file_names``), is scored silently there (NaN sorts
  arbitrarily, ``zip`` drops frames) and an :class:`~ifc_sdk.errors.EvaluationError` naming the video here.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ifc_sdk.errors import EvaluationError

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS = (1, 10, 100)
AREA_RANGES = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 128.0**2),
    "medium": (128.0**2, 256.0**2),
    "large": (256.0**2, 1e5**2),
}

# (name, is AP, IoU threshold index or None for all, area range, maxDets), in the official summary order.
_SUMMARY = (
    ("AP", True, None, "all", 100),
    ("AP50", True, 0, "all", 100),
    ("AP75", True, 5, "all", 100),
    ("APs", True, None, "small", 100),
    ("APm", True, None, "medium", 100),
    ("APl", True, None, "large", 100),
    ("AR1", False, None, "all", 1),
    ("AR10", False, None, "all", 10),
    ("AR100", False, None, "all", 100),
    ("ARs", False, None, "small", 100),
    ("ARm", False, None, "medium", 100),
    ("ARl", False, None, "large", 100),
)

RLE = dict[str, Any]


@dataclass(eq=False)
class Track:
    """One GT annotation or one prediction: per-frame compressed RLEs (``None`` where absent)."""

    id: int  # GT annotation id, or the 1-based position in the results file
    video_id: int
    category_id: int
    score: float  # 1.0 for GT
    iscrowd: bool
    avg_area: float  # mean of the non-zero per-frame areas (0 when none)
    rles: list[RLE | None]
    areas: np.ndarray  # per-frame mask pixel count, 0 where absent
    frame_pixels: int  # height * width of the video


@dataclass
class GroundTruth:
    """A loaded YouTube-VIS ground-truth file."""

    video_sizes: dict[int, tuple[int, int]]  # video id -> (height, width)
    category_ids: list[int]  # sorted
    tracks: list[Track]  # in file order; annotations of unknown videos or categories are dropped
    video_lengths: dict[int, int] = field(default_factory=dict)  # video id -> frames, where the GT says
    video_names: dict[int, str] = field(default_factory=dict)  # video id -> its frame folder, where known

    def describe(self, video_id: int) -> str:
        """``video 3`` or ``video 3 ('0b6db1c6fd')`` for messages."""
        name = self.video_names.get(video_id)
        return f"video {video_id}" + (f" ({name!r})" if name else "")

    def check_length(self, video_id: int, segmentations: Any, where: str) -> None:
        """Raise `EvaluationError` if ``segmentations`` does not hold one entry per frame of the video."""
        length = self.video_lengths.get(video_id)
        if length is not None and isinstance(segmentations, list) and len(segmentations) != length:
            raise EvaluationError(
                f"{where}: {self.describe(video_id)} has {length} frames, but 'segmentations' has "
                f"{len(segmentations)} entries (expected one per frame, null where absent)"
            )


def _load_json(source: str | os.PathLike | Any, what: str) -> tuple[Any, str]:
    """Return ``(data, name)``: the parsed JSON of a path, or ``source`` itself if already loaded."""
    if not isinstance(source, (str, os.PathLike)):
        return source, what
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvaluationError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"{path}: cannot read {what} file ({exc})") from exc
    try:
        return json.loads(text), str(path)
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{path}: {what} file is not valid JSON ({exc})") from exc


def _field(entry: Any, key: str, where: str) -> Any:
    if not isinstance(entry, Mapping) or key not in entry:
        raise EvaluationError(f"{where}: missing field {key!r}")
    return entry[key]


def _int_field(entry: Any, key: str, where: str) -> int:
    value = _field(entry, key, where)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise EvaluationError(f"{where}: {key!r} must be an integer, got {value!r}") from None


def _to_rle(segm: Any, height: int, width: int, where: str) -> RLE | None:
    """Normalise one frame's segmentation (RLE, uncompressed RLE or polygons) to compressed RLE."""
    if not segm:
        return None
    try:
        if isinstance(segm, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
        elif isinstance(segm, Mapping) and "counts" in segm and "size" in segm:
            is_compressed = not isinstance(segm["counts"], list)
            rle = segm if is_compressed else mask_utils.frPyObjects(dict(segm), height, width)
        else:
            raise EvaluationError(f"{where}: a segmentation must be an RLE dict, polygons or null")
        size = list(rle["size"])
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise EvaluationError(f"{where}: malformed segmentation ({exc!r})") from exc
    if size != [height, width]:
        raise EvaluationError(
            f"{where}: mask size {size} does not match the video's [height, width] [{height}, {width}]"
        )
    return rle


def _segmentations(entry: Any, where: str, size: tuple[int, int]) -> tuple[list[RLE | None], np.ndarray]:
    """Normalise the ``segmentations`` of a GT or results entry; return the RLEs and per-frame areas."""
    segms = _field(entry, "segmentations", where)
    if not isinstance(segms, list):
        raise EvaluationError(f"{where}: 'segmentations' must be a list with one entry per frame")
    height, width = size
    rles = [_to_rle(s, height, width, f"{where}, frame {t}") for t, s in enumerate(segms)]
    present = [r for r in rles if r is not None]
    areas = np.zeros(len(rles), dtype=np.int64)
    if present:
        try:
            areas[[r is not None for r in rles]] = mask_utils.area(present)
        except (TypeError, ValueError) as exc:
            raise EvaluationError(f"{where}: malformed RLE ({exc})") from exc
    return rles, areas


def _mean_truthy(values: Sequence[Any]) -> float:
    kept = [v for v in values if v]
    return float(np.mean(kept)) if kept else 0.0


def load_ground_truth(gt: str | os.PathLike | Mapping[str, Any]) -> GroundTruth:
    """Load a YouTube-VIS ground-truth file (path or loaded dict)."""
    data, name = _load_json(gt, "ground truth")
    if not isinstance(data, Mapping) or not all(k in data for k in ("videos", "categories", "annotations")):
        raise EvaluationError(
            f"{name}: ground truth must be an object with 'videos', 'categories' and 'annotations'"
        )
    video_sizes, video_lengths, video_names = {}, {}, {}
    for i, v in enumerate(data["videos"]):
        where = f"{name}: videos[{i}]"
        video_id = _int_field(v, "id", where)
        video_sizes[video_id] = (_int_field(v, "height", where), _int_field(v, "width", where))
        files = v.get("file_names") if isinstance(v, Mapping) else None
        if v.get("length") is not None:
            video_lengths[video_id] = _int_field(v, "length", where)
        elif isinstance(files, list):
            video_lengths[video_id] = len(files)
        if isinstance(files, list) and files and isinstance(files[0], str) and "/" in files[0]:
            video_names[video_id] = files[0].rsplit("/", 1)[0]
    category_ids = sorted(
        {_int_field(c, "id", f"{name}: categories[{i}]") for i, c in enumerate(data["categories"])}
    )
    known_categories = set(category_ids)
    ground_truth = GroundTruth(video_sizes, category_ids, [], video_lengths, video_names)
    for i, ann in enumerate(data["annotations"]):
        where = f"{name}: annotations[{i}]"
        video_id = _int_field(ann, "video_id", where)
        category_id = _int_field(ann, "category_id", where)
        if video_id not in video_sizes or category_id not in known_categories:
            continue
        ground_truth.check_length(video_id, ann.get("segmentations"), where)
        rles, areas = _segmentations(ann, where, video_sizes[video_id])
        given = ann.get("areas")
        ground_truth.tracks.append(
            Track(
                id=_int_field(ann, "id", where),
                video_id=video_id,
                category_id=category_id,
                score=1.0,
                iscrowd=bool(ann.get("iscrowd", 0)),
                avg_area=_mean_truthy(given if given is not None else areas.tolist()),
                rles=rles,
                areas=areas,
                frame_pixels=math.prod(video_sizes[video_id]),
            )
        )
    return ground_truth


def load_results(results: str | os.PathLike | Sequence[Mapping[str, Any]], gt: GroundTruth) -> list[Track]:
    """Load YouTube-VIS results (path or loaded list) against ``gt``; one track per entry, in file order.

    Entries of categories unknown to ``gt`` are kept here and dropped by the evaluation, as officially.
    Raises :class:`EvaluationError` if an entry names a video that is not in ``gt``.
    """
    data, name = _load_json(results, "results")
    if not isinstance(data, list):
        raise EvaluationError(
            f"{name}: results must be a JSON list of {{video_id, category_id, score, segmentations}}"
        )
    video_ids = [_int_field(r, "video_id", f"{name}: results[{i}]") for i, r in enumerate(data)]
    unknown = sorted(set(video_ids) - set(gt.video_sizes))
    if unknown:
        raise EvaluationError(f"{name}: results name video ids not in the ground truth: {unknown}")
    tracks = []
    for i, (entry, video_id) in enumerate(zip(data, video_ids, strict=True)):
        where = f"{name}: results[{i}]"
        category_id = _int_field(entry, "category_id", where)
        score = _field(entry, "score", where)
        if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(score):
            raise EvaluationError(
                f"{where} ({gt.describe(video_id)}): 'score' must be a finite number, got {score!r}"
            )
        gt.check_length(video_id, entry.get("segmentations"), where)
        rles, areas = _segmentations(entry, where, gt.video_sizes[video_id])
        tracks.append(
            Track(
                id=i + 1,
                video_id=video_id,
                category_id=category_id,
                score=float(score),
                iscrowd=False,
                avg_area=_mean_truthy(areas.tolist()),
                rles=rles,
                areas=areas,
                frame_pixels=math.prod(gt.video_sizes[video_id]),
            )
        )
    return tracks


def group_by_pair(
    gt: GroundTruth, predictions: Sequence[Track]
) -> dict[tuple[int, int], tuple[list[Track], list[Track]]]:
    """Group tracks per (video, category) that has GT or predictions: ``(predictions, gts)``.

    Predictions are stable-sorted by descending score and cut to the top ``MAX_DETS[-1]``; GTs keep file
    order. Predictions of categories unknown to ``gt`` are dropped. Keys are sorted (video, then category).
    """
    known = set(gt.category_ids)
    dts: dict[tuple[int, int], list[Track]] = {}
    gts: dict[tuple[int, int], list[Track]] = {}
    for track in gt.tracks:
        gts.setdefault((track.video_id, track.category_id), []).append(track)
    for track in predictions:
        if track.category_id in known:
            dts.setdefault((track.video_id, track.category_id), []).append(track)
    pairs = {}
    for key in sorted(dts.keys() | gts.keys()):
        pair_dts = dts.get(key, [])
        order = np.argsort([-d.score for d in pair_dts], kind="mergesort")[: MAX_DETS[-1]]
        pairs[key] = ([pair_dts[i] for i in order], gts.get(key, []))
    return pairs


def _stack_areas(tracks: Sequence[Track], frames: int) -> np.ndarray:
    out = np.zeros((len(tracks), frames), dtype=np.int64)
    for i, track in enumerate(tracks):
        out[i, : len(track.areas)] = track.areas
    return out


def _foreground_runs(track: Track) -> tuple[np.ndarray, np.ndarray]:
    """The track's foreground pixels as sorted disjoint intervals ``[start, end)`` over its whole video.

    Pixel ``p`` (column-major) of frame ``t`` is at ``t * frame_pixels + p``, so intersecting two tracks'
    intervals sums the per-frame intersections. The compressed counts strings are decoded vectorised, as
    ``rleFrString`` of the COCO mask API does: 5-bit groups with a continuation bit (0x20) and a sign bit
    (0x10) on the last group, offset by 48, and count ``m > 2`` stored as a delta to count ``m - 2``.
    """
    frames = [t for t, rle in enumerate(track.rles) if rle is not None]
    if not frames:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    strings = [track.rles[t]["counts"] for t in frames]
    strings = [c.encode("ascii") if isinstance(c, str) else bytes(c) for c in strings]
    lengths = np.array([len(b) for b in strings])
    chars = np.frombuffer(b"".join(strings), dtype=np.uint8).astype(np.int64) - 48
    last = (chars & 0x20) == 0  # the last character of a number
    if not chars.size or not last[np.cumsum(lengths)[lengths > 0] - 1].all():
        raise ValueError("an RLE counts string is empty or ends inside a number")
    number_of_char = np.cumsum(last) - last
    first = np.flatnonzero(np.concatenate([[True], last[:-1]]))  # first character of each number
    shift = 5 * (np.arange(chars.size) - first[number_of_char])
    values = np.add.reduceat((chars & 0x1F) << shift, first)
    negative = (chars[last] & 0x10) != 0
    values[negative] -= np.int64(1) << (shift[last][negative] + 5)
    string_of_number = np.repeat(np.arange(len(strings)), lengths)[first]
    base = np.searchsorted(string_of_number, np.arange(len(strings)))[string_of_number]  # its count 0
    m = np.arange(values.size) - base
    odd, even = m % 2 == 1, (m % 2 == 0) & (m >= 2)
    # Undo the deltas: counts 1, 3, 5, ... and 2, 4, 6, ... are running sums within each string.
    cum_odd = np.cumsum(np.where(odd, values, 0))
    cum_even = np.cumsum(np.where(even, values, 0))
    counts = np.where(odd, cum_odd - cum_odd[base], np.where(even, cum_even - cum_even[base], values))
    cum = np.cumsum(counts)
    run_end = cum - (cum[base] - counts[base])  # within the frame
    totals = np.zeros(len(strings), dtype=np.int64)
    np.add.at(totals, string_of_number, counts)
    if (counts < 0).any() or (totals != track.frame_pixels).any():
        raise ValueError(f"RLE counts do not add up to the frame's {track.frame_pixels} pixels")
    keep = odd & (counts > 0)
    end = run_end[keep] + np.asarray(frames, dtype=np.int64)[string_of_number[keep]] * track.frame_pixels
    return end - counts[keep], end


def _covered_by(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many pixels before each of ``points`` lie in the sorted disjoint intervals ``[starts, ends)``."""
    starts = np.concatenate([[-1], starts])  # a zero-length sentinel run before everything
    lengths = np.concatenate([[0], ends - starts[1:]])
    before = np.cumsum(lengths) - lengths
    j = np.searchsorted(starts, points, side="right") - 1
    return before[j] + np.minimum(points - starts[j], lengths[j])


def _runs_or_raise(track: Track, what: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return _foreground_runs(track)
    except ValueError as exc:
        raise EvaluationError(f"video {track.video_id}: malformed RLE in {what} ({exc})") from exc


def track_iou(dts: Sequence[Track], gts: Sequence[Track]) -> np.ndarray:
    """Spatio-temporal IoU matrix ``(len(dts), len(gts))``: Σ_t |D_t ∩ G_t| / Σ_t |D_t ∪ G_t|.

    Frames are paired by index up to the shorter track of each pair; an absent (or empty) mask adds its
    partner's area to the union only; a zero total union gives IoU 0. The tracks must share one video.
    """
    n_d, n_g = len(dts), len(gts)
    if n_d == 0 or n_g == 0:
        return np.zeros((n_d, n_g))
    len_d = np.array([len(d.rles) for d in dts])
    len_g = np.array([len(g.rles) for g in gts])
    frames = int(max(len_d.max(), len_g.max()))
    # Cumulative areas with a leading 0 column: cum[:, L] is the area summed over the first L frames.
    cum_d = np.pad(np.cumsum(_stack_areas(dts, frames), axis=1), ((0, 0), (1, 0)))
    cum_g = np.pad(np.cumsum(_stack_areas(gts, frames), axis=1), ((0, 0), (1, 0)))
    paired = np.minimum(len_d[:, None], len_g[None, :])
    area_sum = cum_d[np.arange(n_d)[:, None], paired] + cum_g[np.arange(n_g)[None, :], paired]
    # Intersections: every prediction run against each GT's runs (frames absent on either side add 0).
    runs = [_runs_or_raise(d, f"result #{d.id}") for d in dts]
    owner = np.repeat(np.arange(n_d), [len(r[0]) for r in runs])
    starts = np.concatenate([r[0] for r in runs])
    ends = np.concatenate([r[1] for r in runs])
    inter = np.zeros((n_d, n_g), dtype=np.int64)
    for j, gt in enumerate(gts):
        g_starts, g_ends = _runs_or_raise(gt, f"GT id {gt.id}")
        overlap = _covered_by(ends, g_starts, g_ends) - _covered_by(starts, g_starts, g_ends)
        inter[:, j] = np.bincount(owner, weights=overlap, minlength=n_d).astype(np.int64)
    union = area_sum - inter
    return np.divide(inter, union, out=np.zeros((n_d, n_g)), where=union > 0)


def _match(
    ious: np.ndarray, gt_ids: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching at every IoU threshold of predictions (score order) to GTs (non-ignored first).

    Returns, per (threshold, prediction), the matched GT's id (0: unmatched, so a GT with id 0 never
    counts, as officially) and its column (-1: unmatched).
    """
    n_t, (n_d, n_g) = len(IOU_THRESHOLDS), ious.shape
    matched_ids = np.zeros((n_t, n_d), dtype=np.int64)
    matched_gt = np.full((n_t, n_d), -1)
    if n_d == 0 or n_g == 0:
        return matched_ids, matched_gt
    bar = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]
    taken = np.zeros((n_t, n_g), dtype=bool)
    rows = np.arange(n_t)
    for d in range(n_d):
        candidates = ~(taken & ~gt_crowd) & (ious[d] >= bar)
        regular = candidates & ~gt_ignore
        # A regular candidate stops the search at the first ignored GT; otherwise ignored GTs compete.
        candidates = np.where(regular.any(axis=1, keepdims=True), regular, candidates)
        scored = np.where(candidates, ious[d], -np.inf)
        best = n_g - 1 - np.argmax(scored[:, ::-1], axis=1)  # highest IoU, the later GT on ties
        hit = candidates[rows, best]
        matched_gt[hit, d] = best[hit]
        matched_ids[hit, d] = gt_ids[best[hit]]
        taken[rows[hit], best[hit]] = True
    return matched_ids, matched_gt


@dataclass
class _PairEval:
    """Matching of one (video, category) pair for one area range, predictions in score order."""

    scores: np.ndarray  # (D,)
    matched: np.ndarray  # (T, D) bool: matched to a GT with a non-zero id
    ignored: np.ndarray  # (T, D) bool
    n_regular_gt: int


def _evaluate_pair(
    dts: list[Track], gts: list[Track], ious: np.ndarray, area_range: tuple[float, float]
) -> _PairEval:
    lo, hi = area_range
    crowd = np.array([g.iscrowd for g in gts], dtype=bool)
    gt_area = np.array([g.avg_area for g in gts], dtype=np.float64)
    ignore = crowd | (gt_area < lo) | (gt_area > hi)
    order = np.argsort(ignore, kind="mergesort")
    gt_ids = np.array([g.id for g in gts], dtype=np.int64)[order]
    matched_ids, matched_gt = _match(ious[:, order], gt_ids, ignore[order], crowd[order])
    dt_area = np.array([d.avg_area for d in dts], dtype=np.float64)
    outside = (dt_area < lo) | (dt_area > hi)
    matched = matched_ids != 0
    # A match inherits its GT's ignore flag; the appended False serves the unmatched (column -1).
    ignored = np.append(ignore[order], False)[matched_gt]
    ignored |= ~matched & outside[None, :]
    return _PairEval(
        scores=np.array([d.score for d in dts], dtype=np.float64),
        matched=matched,
        ignored=ignored,
        n_regular_gt=int(np.count_nonzero(~ignore)),
    )


def _accumulate(pairs: Sequence[_PairEval], max_det: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Precision ``(T, R)`` and recall ``(T,)`` of one category, or ``None`` without regular GT."""
    n_regular = sum(p.n_regular_gt for p in pairs)
    if n_regular == 0:
        return None
    scores = np.concatenate([p.scores[:max_det] for p in pairs])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([p.matched[:, :max_det] for p in pairs], axis=1)[:, order]
    ignored = np.concatenate([p.ignored[:, :max_det] for p in pairs], axis=1)[:, order]
    tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
    n_t, n_d = tp.shape
    precision = np.zeros((n_t, len(RECALL_THRESHOLDS)))
    recall = np.zeros(n_t)
    if n_d == 0:
        return precision, recall
    rc = tp / n_regular
    pr = tp / (fp + tp + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    recall = rc[:, -1]
    for t in range(n_t):
        idx = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
        reached = idx < n_d
        precision[t, reached] = pr[t, idx[reached]]
    return precision, recall


def _summarize(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    """The 12 official stats from precision ``(T, R, K, A, M)`` and recall ``(T, K, A, M)``."""
    areas, out = list(AREA_RANGES), {}
    for name, is_ap, t, area, max_det in _SUMMARY:
        s = (precision if is_ap else recall)[..., areas.index(area), MAX_DETS.index(max_det)]
        if t is not None:
            s = s[t]
        valid = s[s > -1]
        out[name] = float(np.mean(valid)) if valid.size else -1.0
    return out


def evaluate_ytvis(
    gt: str | os.PathLike | Mapping[str, Any], results: str | os.PathLike | Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """Official YouTube-VIS ``segm`` stats of ``results`` against ``gt`` (paths or loaded JSON).

    Returns the 12 stats keyed by :data:`STAT_NAMES`; -1 where no category has a non-crowd GT in that
    area range. An empty results list scores 0 wherever there is GT (the official loader crashes on it).
    """
    ground_truth = load_ground_truth(gt)
    pairs = group_by_pair(ground_truth, load_results(results, ground_truth))
    n_k, n_a, n_m = len(ground_truth.category_ids), len(AREA_RANGES), len(MAX_DETS)
    precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), n_k, n_a, n_m))
    recall = -np.ones((len(IOU_THRESHOLDS), n_k, n_a, n_m))
    per_category: dict[int, list[tuple[list[Track], list[Track], np.ndarray]]] = {}
    for (_, category_id), (dts, gts) in pairs.items():  # ascending video id within each category
        per_category.setdefault(category_id, []).append((dts, gts, track_iou(dts, gts)))
    for k, category_id in enumerate(ground_truth.category_ids):
        for a, area_range in enumerate(AREA_RANGES.values()):
            evals = [_evaluate_pair(*pair, area_range) for pair in per_category.get(category_id, [])]
            for m, max_det in enumerate(MAX_DETS):
                acc = _accumulate(evals, max_det)
                if acc is not None:
                    precision[:, :, k, a, m], recall[:, k, a, m] = acc
    return _summarize(precision, recall)


def format_table(metrics: Mapping[str, float]) -> str:
    """The 12 stats as the official evaluator's summary lines."""
    lines = []
    for name, is_ap, t, area, max_det in _SUMMARY:
        title, kind = ("Average Precision", "(AP)") if is_ap else ("Average Recall", "(AR)")
        iou = (
            f"{IOU_THRESHOLDS[0]:0.2f}:{IOU_THRESHOLDS[-1]:0.2f}"
            if t is None
            else f"{IOU_THRESHOLDS[t]:0.2f}"
        )
        lines.append(
            f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6s} | maxDets={max_det:>3d} ] = {metrics[name]:0.3f}"
        )
    return "\n".join(lines)
