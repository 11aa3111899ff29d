"""Drawing a frame: masks blended, boxes outlined, labels placed without covering each other, a legend."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from results_sample import H, W, dense_masks, sample_result

from ifc_sdk.errors import ConfigError
from ifc_sdk.results.plot import layout_labels, track_color


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_labels_of_crowded_instances_never_overlap():
    boxes = np.array(
        [[40 + 30 * (k % 4), 60 + 25 * (k // 4), 65 + 30 * (k % 4), 80 + 25 * (k // 4)] for k in range(12)]
    )
    sizes = [(90, 14)] * 12
    legend = (220, 0, 320, 100)
    rects = layout_labels(sizes, boxes, (240, 320), [legend])
    placed = [r for r in rects if r is not None]
    assert len(placed) == 12  # room for all of them in a 240x320 image
    for a, b in itertools.combinations(placed, 2):
        assert not _overlap(a, b)
    for x1, y1, x2, y2 in placed:
        assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240 and not _overlap((x1, y1, x2, y2), legend)
        assert (x2 - x1, y2 - y1) == (90, 14)
    assert rects[0] == (40, 46, 130, 60)  # the first label sits right above its box's top-left corner


def test_label_prefers_a_spot_clear_of_other_boxes_and_gives_up_when_full():
    boxes = np.array([[50, 50, 80, 70], [50, 30, 80, 49]])  # a second box right above the first
    rects = layout_labels([(20, 10), (20, 10)], boxes, (200, 200))
    # above its box would cover the other box: the label goes inside its box's top-left corner
    assert rects[0] == (50, 50, 70, 60)
    # three labels for three boxes filling half of a 10x40 image: two fit (the first clear of the
    # others' boxes), the third finds no free spot
    same = np.array([[0, 0, 20, 10]] * 3)
    assert layout_labels([(20, 10)] * 3, same, (10, 40)) == [(20, 0, 40, 10), (0, 0, 20, 10), None]


def test_plot_blends_masks_outlines_boxes_and_draws_a_legend():
    result = sample_result()
    image = np.full((H * 10, W * 10, 3), 90, np.uint8)
    out = result.plot(1, image)
    assert out.shape == image.shape and out.dtype == np.uint8 and (image == 90).all()
    masks = dense_masks()
    # inside track 1's mask, away from labels and box edges: 0.5 * 90 + 0.5 * colour
    y, x = 14 * 10 + 5, 18 * 10 + 5
    assert masks[1][1, 14, 18] and not masks[0][1, 14, 18]
    np.testing.assert_allclose(out[y, x], 45 + 0.5 * np.array(track_color(1)), atol=1)
    # track 1's box is outlined in its colour: left edge column x = 80, rows 60..159
    np.testing.assert_array_equal(out[120, 80], track_color(1))
    # far from every mask and from the legend the image is unchanged
    np.testing.assert_array_equal(out[190, 100], [90, 90, 90])
    # legend: a translucent dark panel in the corner the masks cover least (top right here)
    assert (out[1, W * 10 - 2] < 60).all()
    for k in range(3):  # one swatch per instance, in its track colour
        assert (out[:100, 160:] == track_color(k)).all(axis=-1).sum() >= 25


def test_plot_without_an_image_draws_on_the_kept_frame_or_black():
    result = sample_result()
    black = result.plot(0)
    assert black.shape == (H, W, 3) and (black[H - 1, 0] == 0).all()
    result.images = [np.full((H, W, 3), 200, np.uint8)] * 4
    assert (result.plot(0)[H - 1, 0] == 200).all()


def test_plot_refuses_a_bad_image():
    with pytest.raises(ConfigError, match="uint8"):
        sample_result().plot(0, np.zeros((H, W), np.uint8))
    with pytest.raises(ConfigError, match="alpha"):
        sample_result().plot(0, alpha=2.0)
