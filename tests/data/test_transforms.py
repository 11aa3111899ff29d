"""Training augmentations: frame sampling, resize parity with the reference, and the clip mappers."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ifc_sdk.data.coco import COCODataset
from ifc_sdk.data.synthetic import generate_dataset
from ifc_sdk.data.transforms import (
    COCOClipMapper,
    FrameTransform,
    YTVISClipMapper,
    random_crop_size,
    sample_frame_indices,
)
from ifc_sdk.data.ytvis import YTVISDataset
from ifc_sdk.inference.preprocess import resized_shape
from ifc_sdk.training.targets import prepare_targets

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "reference"


@pytest.fixture(scope="module")
def ytvis(tmp_path_factory: pytest.TempPathFactory) -> YTVISDataset:
    path = generate_dataset(
        tmp_path_factory.mktemp("ytvis") / "ds",
        num_videos=3,
        seed=11,
        height=48,
        width=80,
        num_frames=(8, 30),
    )
    return YTVISDataset.from_json(path)


def test_resized_shape_rule() -> None:
    assert resized_shape(240, 320, 120, 1333) == (120, 160)
    assert resized_shape(233, 351, 120, 1333) == (120, 181)
    assert resized_shape(100, 500, 120, 1333) == (120, 600)
    assert resized_shape(233, 351, 360, 400) == (266, 400)
    assert resized_shape(500, 100, 120, 1333) == (600, 120)
    assert resized_shape(720, 1280, 480, 768) == (432, 768)


def test_resize_matches_reference_mapper() -> None:
    path = REFERENCE / "preprocess.safetensors"
    if not path.exists():
        pytest.skip(
            f"reference preprocessing fixture {path} not found (expected ../shared beside the repository)"
        )
    fx = load_file(str(path))
    for key, expected in fx.items():
        if key.endswith(".raw") or ".RGB." not in key:
            continue
        raw = fx[key.split(".")[0] + ".raw"].numpy()
        if ".frame0." in key:
            raw = raw[:1]
        min_size, max_size = (int(part[3:]) for part in key.split(".")[-2:])
        size = resized_shape(raw.shape[1], raw.shape[2], min_size, max_size)
        tf = FrameTransform(crop=None, size=size, hflip=False)
        ours = torch.stack([torch.from_numpy(tf.apply_image(f)).permute(2, 0, 1) for f in raw])
        assert torch.equal(ours, expected), key


def test_sample_frame_indices() -> None:
    rng = random.Random(0)
    for _ in range(200):
        length = rng.randint(1, 80)
        idx = sample_frame_indices(length, 5, 20, rng)
        assert len(idx) == 5 and idx == sorted(idx)
        assert all(0 <= i < length for i in idx)
        assert max(idx) - min(idx) <= 40
        if length >= 5:  # at least 4 other frames lie within range of any reference frame: no repeats
            assert len(set(idx)) == 5
    assert sample_frame_indices(1, 3, 20, random.Random(0)) == [0, 0, 0]
    assert sample_frame_indices(30, 3, 20, random.Random(4)) == sample_frame_indices(
        30, 3, 20, random.Random(4)
    )


def test_random_crop_size_is_clamped() -> None:
    rng = random.Random(1)
    for _ in range(100):
        h, w = random_crop_size(500, 300, (384, 600), rng)
        assert 384 <= h <= 500 and w == 300


def _flip_of_frame(video, frame: int, out: torch.Tensor) -> bool:
    """Which of (unflipped, flipped) resized frame ``frame`` equals ``out`` (3, H, W)."""
    size = tuple(out.shape[-2:])
    matches = [
        torch.equal(
            torch.from_numpy(FrameTransform(None, size, flip).apply_image(video.read_frame(frame))),
            out.permute(1, 2, 0),
        )
        for flip in (False, True)
    ]
    assert sum(matches) == 1
    return matches[1]


def test_ytvis_mapper_clip_layout_and_flip_by_clip(ytvis: YTVISDataset) -> None:
    mapper = YTVISClipMapper(ytvis.class_index, num_frames=3, min_sizes=(96, 120), max_size=1333)
    flips = set()
    for seed in range(8):
        video = ytvis[seed % len(ytvis)]
        clip = mapper(video, random.Random(seed))
        frames, instances = clip["frames"], clip["instances"]
        t, _, h, w = frames.shape
        assert t == 3 and frames.dtype == torch.uint8 and h in (96, 120) and w == round(80 * h / 48)
        assert clip["video_id"] == video.id and clip["frame_indices"] == sorted(clip["frame_indices"])
        clip_flips = {_flip_of_frame(video, f, frames[i]) for i, f in enumerate(clip["frame_indices"])}
        assert len(clip_flips) == 1, "frames of one clip were flipped differently"
        flip = clip_flips.pop()
        flips.add(flip)
        n = len(instances[0]["gt_ids"])
        expected_ids = sorted(
            i.id for i in video.instances if any(i.is_present(f) for f in clip["frame_indices"])
        )
        assert n == len(expected_ids)
        for i, frame in enumerate(clip["frame_indices"]):
            inst = instances[i]
            assert inst["gt_classes"].shape == inst["gt_ids"].shape == (n,)
            assert inst["gt_masks"].shape == (n, h, w) and inst["gt_masks"].dtype == torch.bool
            tracks = {tr.id: tr for tr in video.instances}
            for row, inst_id in enumerate(expected_ids):
                track = tracks[inst_id]
                if not track.is_present(frame):
                    assert inst["gt_classes"][row] == mapper.num_classes and inst["gt_ids"][row] == -1
                    assert not inst["gt_masks"][row].any()
                    continue
                expected = FrameTransform(None, (h, w), flip).apply_mask(track.mask(frame))
                assert torch.equal(inst["gt_masks"][row], torch.from_numpy(expected))
                assert inst["gt_classes"][row] == ytvis.class_index[track.category_id]
                assert inst["gt_ids"][row] == (inst_id if expected.any() else -1)
    assert flips == {False, True}


def test_ytvis_mapper_crops_every_frame_of_a_clip_with_one_box(ytvis: YTVISDataset) -> None:
    """The optional clip crop: one box per clip, applied to frames and masks alike before the resize; objects
    it cuts away keep their class with id -1; without it the mapper draws what it always drew."""
    plain = YTVISClipMapper(ytvis.class_index, num_frames=3, min_sizes=(64,), flip_prob=0.0)
    cropped = YTVISClipMapper(
        ytvis.class_index, num_frames=3, min_sizes=(64,), flip_prob=0.0, crop_range=(24, 40)
    )
    boxes, cut_away = set(), 0
    for seed in range(12):
        video = ytvis[seed % len(ytvis)]
        clip = cropped(video, random.Random(seed))
        # replay the draws: frame indices, then the box's size and position
        rng = random.Random(seed)
        frames = sample_frame_indices(len(video), 3, 20, rng)
        crop_h, crop_w = random_crop_size(48, 80, (24, 40), rng)
        box = (rng.randint(0, 48 - crop_h), rng.randint(0, 80 - crop_w), crop_h, crop_w)
        assert 24 <= crop_h <= 40 and 24 <= crop_w <= 40 and clip["frame_indices"] == frames
        boxes.add(box)
        tf = FrameTransform(box, resized_shape(crop_h, crop_w, 64, 1333), False)
        assert tuple(clip["frames"].shape[-2:]) == tf.size
        tracks = {tr.id: tr for tr in video.instances}
        ids = sorted(i.id for i in video.instances if any(i.is_present(f) for f in frames))
        for i, frame in enumerate(frames):
            image = torch.from_numpy(tf.apply_image(video.read_frame(frame))).permute(2, 0, 1)
            assert torch.equal(clip["frames"][i], image)
            inst = clip["instances"][i]
            for row, inst_id in enumerate(ids):
                if not tracks[inst_id].is_present(frame):
                    continue
                expected = tf.apply_mask(tracks[inst_id].mask(frame))
                assert torch.equal(inst["gt_masks"][row], torch.from_numpy(expected))
                assert inst["gt_ids"][row] == (inst_id if expected.any() else -1)
                cut_away += not expected.any()
    assert len(boxes) == 12 and cut_away > 0
    # no crop: nothing more is drawn (the frames follow the frame indices directly) and whole frames are resized
    video = ytvis[0]
    clip = plain(video, random.Random(3))
    frames = sample_frame_indices(len(video), 3, 20, random.Random(3))
    tf = FrameTransform(None, resized_shape(48, 80, 64, 1333), False)
    assert clip["frame_indices"] == frames
    for i, frame in enumerate(frames):
        assert torch.equal(
            clip["frames"][i], torch.from_numpy(tf.apply_image(video.read_frame(frame))).permute(2, 0, 1)
        )


def test_mappers_are_deterministic_and_feed_prepare_targets(ytvis: YTVISDataset) -> None:
    mapper = YTVISClipMapper(ytvis.class_index, num_frames=4, min_sizes=(64,))
    a = mapper(ytvis[0], random.Random(5))
    b = mapper(ytvis[0], random.Random(5))
    assert torch.equal(a["frames"], b["frames"]) and a["frame_indices"] == b["frame_indices"]
    assert all(
        torch.equal(x["gt_masks"], y["gt_masks"]) for x, y in zip(a["instances"], b["instances"], strict=True)
    )
    clips = [a, mapper(ytvis[1], random.Random(6))]
    hmax = max(c["frames"].shape[-2] for c in clips)
    wmax = max(c["frames"].shape[-1] for c in clips)
    targets = prepare_targets([c["instances"] for c in clips])
    for clip, target in zip(clips, targets, strict=True):
        n = len(target["labels"])
        assert n <= len(clip["instances"][0]["gt_ids"])
        assert target["ids"].shape == (n, 4)
        assert target["masks"].shape == (n, 4, -(-hmax // 4), -(-wmax // 4))
        assert ((target["labels"] >= 0) & (target["labels"] < mapper.num_classes)).all()


def test_coco_mapper(tmp_path: Path) -> None:
    path = generate_dataset(tmp_path / "coco", num_videos=2, seed=3, fmt="coco", height=120, width=160)
    ds = COCODataset.from_json(path)
    mapper = COCOClipMapper(
        ds.class_index, num_frames=3, crop_range=(60, 100), min_sizes=(80, 96), max_size=200
    )
    for seed in range(4):
        clip = mapper(ds[seed % 2], random.Random(seed))
        t, c, h, w = clip["frames"].shape
        assert (t, c) == (3, 3) and min(h, w) in (80, 96) and max(h, w) <= 200
        n = len(ds[seed % 2].instances)
        for inst in clip["instances"]:
            assert inst["gt_masks"].shape == (n, h, w)
            assert inst["gt_classes"].lt(mapper.num_classes).all()
            present = inst["gt_masks"].flatten(1).any(1)
            assert torch.equal(inst["gt_ids"] != -1, present)
            assert inst["gt_ids"][present].tolist() == torch.arange(n)[present].tolist()
    # without crop and flip the single frame is the resized image
    plain = COCOClipMapper(ds.class_index, crop_range=None, min_sizes=(60,), flip_prob=0.0)
    clip = plain(ds[0], random.Random(0))
    expected = FrameTransform(None, (60, 80), False).apply_image(ds[0].read_frame(0))
    assert torch.equal(clip["frames"][0].permute(1, 2, 0), torch.from_numpy(expected))
