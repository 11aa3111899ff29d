"""Which clip mapper a recipe builds, and the augmentations it passes on."""

from __future__ import annotations

import pytest

from ifc_sdk.data.transforms import COCOClipMapper, YTVISClipMapper
from ifc_sdk.errors import ConfigError
from ifc_sdk.training.loader import build_mapper
from ifc_sdk.training.recipes import get_recipe

CLASSES = {k: k - 1 for k in range(1, 6)}


def test_video_recipes_pass_their_sampling_and_crop_to_the_mapper() -> None:
    crop = build_mapper(get_recipe("demo_ytvis_crowded_crop"), CLASSES)
    assert isinstance(crop, YTVISClipMapper)
    assert (crop.crop_range, crop.num_frames, crop.frame_range) == ((128, 224), 5, 30)
    assert (crop.min_sizes, crop.max_size, crop.flip_prob) == ((224, 256, 288, 320), 600, 0.5)
    reference = build_mapper(get_recipe("r50_ytvis", num_classes=5), CLASSES)
    assert isinstance(reference, YTVISClipMapper) and reference.crop_range is None
    coco = build_mapper(get_recipe("demo_coco"), CLASSES)
    assert isinstance(coco, COCOClipMapper) and coco.crop_range == (112, 224)


def test_video_recipes_refuse_per_frame_sampling() -> None:
    with pytest.raises(ConfigError, match="choice_by_clip"):
        build_mapper(get_recipe("demo_ytvis_crowded_crop", flip="horizontal"), CLASSES)
    with pytest.raises(ConfigError, match="choice_by_clip"):
        build_mapper(get_recipe("r50_ytvis", min_size_sampling="choice"), CLASSES)
