"""YTVISDataset and COCODataset: reading generated datasets, segmentation formats and error messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ifc_sdk.data.coco import COCODataset
from ifc_sdk.data.synthetic import SHAPE_CLASSES, generate_dataset, render_video
from ifc_sdk.data.ytvis import YTVISDataset
from ifc_sdk.errors import DatasetError

SMALL = {"height": 64, "width": 96}


@pytest.fixture(scope="module")
def ytvis_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(
        tmp_path_factory.mktemp("ytvis") / "ds", num_videos=3, seed=2, **SMALL, num_frames=6
    )


def test_reads_generated_ytvis(ytvis_json: Path) -> None:
    ds = YTVISDataset.from_json(ytvis_json)
    assert len(ds) == 3 and ds.num_classes == len(SHAPE_CLASSES)
    assert ds.class_names == list(SHAPE_CLASSES)
    assert ds.class_index == {i + 1: i for i in range(len(SHAPE_CLASSES))}
    for v, video in enumerate(ds):
        rendered = render_video((2, v), **SMALL, num_frames=6)
        assert len(video) == 6 and (video.height, video.width) == (64, 96)
        assert video.frame_paths[0] == ytvis_json.parent / "JPEGImages" / f"video{v:05d}" / "00000.jpg"
        frame = video.read_frame(3)
        assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
        assert np.abs(frame.astype(int) - rendered.frames[3]).mean() < 6  # JPEG
        assert [ds.class_index[i.category_id] for i in video.instances] == rendered.classes.tolist()
        for inst, masks in zip(video.instances, rendered.masks, strict=True):
            for t in range(6):
                assert inst.is_present(t) == masks[t].any()
                assert np.array_equal(inst.mask(t), masks[t])


def test_root_argument_and_official_layout(ytvis_json: Path, tmp_path: Path) -> None:
    # official layout: <dir>/train.json with frames in <dir>/train/JPEGImages, or an explicit root
    shutil.copytree(ytvis_json.parent / "JPEGImages", tmp_path / "train" / "JPEGImages")
    shutil.copy(ytvis_json, tmp_path / "train.json")
    ds = YTVISDataset.from_json(tmp_path / "train.json")
    assert ds[0].frame_paths[0] == tmp_path / "train" / "JPEGImages" / "video00000" / "00000.jpg"
    ds = YTVISDataset.from_json(tmp_path / "train.json", root=tmp_path / "train")
    assert ds[0].frame_paths[0].is_file()


def _write_frames(folder: Path, count: int, size: tuple[int, int]) -> list[str]:
    names = []
    for t in range(count):
        path = folder / "clips" / "a" / f"{t}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((*size, 3), 40 * t, dtype=np.uint8)).save(path)
        names.append(f"clips/a/{t}.jpg")
    return names


def test_segmentation_formats_and_relative_file_names(tmp_path: Path) -> None:
    h, w = 6, 5
    file_names = _write_frames(tmp_path, 4, (h, w))
    expected = np.zeros((h, w), dtype=bool)
    expected[1:4, 2:4] = True
    column_major = expected.T.flatten()  # uncompressed RLE counts run down columns, starting with zeros
    runs, value, count = [], False, 0
    for px in column_major:
        if px != value:
            runs.append(count)
            value, count = px, 0
        count += 1
    runs.append(count)
    polygon = [[2, 1, 4, 1, 4, 4, 2, 4]]  # pixel corners: covers rows 1..3, cols 2..3
    data = {
        "videos": [{"id": 7, "height": h, "width": w, "length": 4, "file_names": file_names}],
        "annotations": [
            {
                "id": 1,
                "video_id": 7,
                "category_id": 12,
                "segmentations": [{"size": [h, w], "counts": runs}, polygon, None, [[1, 2, 3]]],
            }
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 12, "name": "dog"}],
    }
    (tmp_path / "anno.json").write_text(json.dumps(data))
    ds = YTVISDataset.from_json(tmp_path / "anno.json")
    video = ds[0]
    assert video.frame_paths[2] == tmp_path / "clips" / "a" / "2.jpg"
    assert video.read_frame(2)[0, 0, 0] == pytest.approx(80, abs=2)
    inst = video.instances[0]
    assert ds.class_index[inst.category_id] == 1
    assert np.array_equal(inst.mask(0), expected)
    assert inst.mask(1).sum() > 0 and inst.mask(1)[2, 2]
    assert not inst.is_present(2) and not inst.mask(2).any()
    assert not inst.is_present(3)  # a polygon with fewer than 3 points is no segmentation


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "annotation file not found"),
        ("{not json", "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"videos": 3}', "expected a list under 'videos'"),
        ('{"videos": [{"id": 1}]}', "missing key"),
        ('{"videos": [{"id": 1, "height": 6, "width": 5, "file_names": ["nope/0.jpg"]}]}', "not found"),
    ],
)
def test_ytvis_errors_name_the_file(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError, match=message) as info:
        YTVISDataset.from_json(path)
    assert str(path) in str(info.value)


def test_ytvis_inconsistent_annotations(tmp_path: Path) -> None:
    file_names = _write_frames(tmp_path, 2, (6, 5))
    video = {"id": 1, "height": 6, "width": 5, "file_names": file_names}
    cases = [
        ({"id": 4, "video_id": 9, "category_id": 1, "segmentations": [None, None]}, "unknown video 9"),
        ({"id": 4, "video_id": 1, "category_id": 1, "segmentations": [None]}, "has 1 segmentations"),
        ({"id": 4, "video_id": 1, "category_id": 2, "segmentations": [None, None]}, "unknown category_id 2"),
        (
            {
                "id": 4,
                "video_id": 1,
                "category_id": 1,
                "segmentations": [{"size": [3, 3], "counts": "0"}, None],
            },
            "RLE of size",
        ),
    ]
    for anno, message in cases:
        data = {"videos": [video], "annotations": [anno], "categories": [{"id": 1, "name": "a"}]}
        (tmp_path / "a.json").write_text(json.dumps(data))
        with pytest.raises(DatasetError, match=message):
            YTVISDataset.from_json(tmp_path / "a.json")
    # a frame that disappears after loading is reported when it is read
    data = {"videos": [video], "annotations": [], "categories": []}
    (tmp_path / "a.json").write_text(json.dumps(data))
    ds = YTVISDataset.from_json(tmp_path / "a.json")
    ds[0].frame_paths[1].unlink()
    with pytest.raises(DatasetError, match="1.jpg"):
        ds[0].read_frame(1)


def test_reads_generated_coco(tmp_path: Path) -> None:
    path = generate_dataset(tmp_path / "coco", num_videos=3, seed=4, fmt="coco", **SMALL)
    ds = COCODataset.from_json(path)
    assert len(ds) == 3 and ds.num_classes == len(SHAPE_CLASSES)
    for i, image in enumerate(ds):
        rendered = render_video((4, i), **SMALL, num_frames=1)
        assert len(image) == 1 and image.frame_paths[0] == path.parent / "images" / f"{i:06d}.jpg"
        assert image.read_frame(0).shape == (64, 96, 3)
        assert [ds.class_index[a.category_id] for a in image.instances] == rendered.classes.tolist()
        for inst, masks in zip(image.instances, rendered.masks, strict=True):
            assert np.array_equal(inst.mask(0), masks[0])


def test_coco_errors(tmp_path: Path) -> None:
    path = tmp_path / "instances_val.json"
    with pytest.raises(DatasetError, match="annotation file not found"):
        COCODataset.from_json(path)
    path.write_text('{"images": [{"id": 1, "file_name": "x.jpg", "height": 4, "width": 4}]}')
    with pytest.raises(DatasetError, match="x.jpg.*not found"):
        COCODataset.from_json(path)
    path.write_text('{"annotations": []}')
    with pytest.raises(DatasetError, match="missing key 'images'"):
        COCODataset.from_json(path)
