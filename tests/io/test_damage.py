"""Timeline: frame slots from presentation timestamps; DecodeReport: the summary of what was lost."""

from __future__ import annotations

from ifc_sdk.io.damage import DecodeReport, Timeline


def _run(timeline: Timeline, packets: list[int], decoded: list[int | None]) -> list:
    for pts in packets:
        timeline.expect(pts)
    return [timeline.place(pts) for pts in decoded]


def test_constant_rate_gap_adds_missing_slots():
    timeline = Timeline(tick=100)
    placed = _run(timeline, [0, 100, 200, 500], [0, 100, 200, 500])  # 300, 400 lost by the demuxer
    assert placed == [([], 0), ([], 1), ([], 2), ([(3, 300), (4, 400)], 5)]
    assert timeline.constant_rate and timeline.num_slots == 6


def test_rejected_packets_keep_their_slots_whatever_the_rate():
    timeline = Timeline(tick=None)  # no frame rate: only packets tell slots
    placed = _run(timeline, [0, 40, 90, 130, 300], [0, 40, 130, 300])  # the decoder refused 90
    assert placed == [([], 0), ([], 1), ([(2, 90)], 3), ([], 4)]


def test_variable_frame_rate_adds_nothing():
    timeline = Timeline(tick=100)
    placed = _run(timeline, [0, 40, 130, 135, 600], [0, 40, 130, 135, 600])
    assert [index for _, index in placed] == [0, 1, 2, 3, 4] and all(not missing for missing, _ in placed)
    assert not timeline.constant_rate


def test_late_frames_are_dropped_and_pending_packets_counted():
    timeline = Timeline(tick=10)
    assert _run(timeline, [0, 10, 20, 30, 40], [0, 20, 10]) == [([], 0), ([(1, 10)], 2), None]
    assert timeline.pending() == 2  # 30 and 40 never decoded


def test_frames_without_timestamps_are_numbered_in_order():
    timeline = Timeline(tick=10)
    assert _run(timeline, [], [None, None, None]) == [([], 0), ([], 1), ([], 2)]


def test_report_summary_and_dict():
    report = DecodeReport(
        "clip.mkv", frames_expected=60, frames_decoded=50, missing=[3, 4, 5, 9], missing_at_end=6
    )
    assert report.damaged
    assert report.summary() == (
        "60 expected, 50 frames decoded, 4 missing (slots 3-5, 9, kept without masks), 6 missing at the end"
    )
    assert report.to_dict()["missing"] == [3, 4, 5, 9]
    assert not DecodeReport("ok.mp4", frames_expected=3, frames_decoded=3).damaged
