"""Damaged video: frame slots from presentation timestamps, and the report of what was lost.

The rule: a frame's index is its slot on the video's timeline, not the count of frames decoded before it. Slots
come from the demuxed packets (every video packet's timestamp is one slot, whether or not the decoder accepts
it) and, for a constant-rate stream, from the frame rate (a jump of k frame durations between two packets
means k - 1 packets were lost, e.g. a Matroska cluster skipped after garbage bytes). A slot without a decoded
frame is *missing*: it keeps its index, so every later frame keeps its own. Slots after the last decoded frame
(a truncated file) add no frames; they are counted in `DecodeReport.missing_at_end`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

__all__ = ["DAMAGE_POLICIES", "DecodeReport", "Timeline"]

DAMAGE_POLICIES = ("warn", "error", "ignore")
_TOLERANCE = 0.1  # of a frame duration: how far an interval may be from a whole number of frames


@dataclass
class DecodeReport:
    """What decoding one video found; ``damaged`` when anything was lost or concealed.

    Attributes:
        source: the video's path or URL.
        frames_expected: frames the container announces (header count, or duration x rate for a constant-rate
            single-stream file); None when it does not say (live streams, frame folders, arrays).
        frames_decoded: frames the decoder returned.
        frames_corrupt: decoded frames the decoder flagged as corrupt (errors concealed; masks are kept).
        decode_errors: packets the decoder rejected.
        missing: slots with no decoded frame, in order; the segmenter saw the previous good frame there and
            their masks are dropped.
        missing_at_end: expected frames after the last decoded one (a truncated file).
        stopped_by: the read error that ended decoding early, if any.
    """

    source: str
    frames_expected: int | None = None
    frames_decoded: int = 0
    frames_corrupt: int = 0
    decode_errors: int = 0
    missing: list[int] = field(default_factory=list)
    missing_at_end: int = 0
    stopped_by: str | None = None

    @property
    def damaged(self) -> bool:
        return bool(
            self.frames_corrupt
            or self.decode_errors
            or self.missing
            or self.missing_at_end
            or self.stopped_by
        )

    def summary(self) -> str:
        """One line: what was expected and what was lost, e.g. for a warning or the CLI."""
        parts = [f"{self.frames_decoded} frames decoded"]
        if self.frames_expected is not None:
            parts.insert(0, f"{self.frames_expected} expected")
        if self.missing:
            parts.append(f"{len(self.missing)} missing (slots {_ranges(self.missing)}, kept without masks)")
        if self.missing_at_end:
            parts.append(f"{self.missing_at_end} missing at the end")
        if self.frames_corrupt:
            parts.append(f"{self.frames_corrupt} decoded from corrupt data")
        if self.decode_errors:
            parts.append(f"{self.decode_errors} packet(s) rejected by the decoder")
        if self.stopped_by:
            parts.append(f"reading stopped early ({self.stopped_by})")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "frames_expected": self.frames_expected,
            "frames_decoded": self.frames_decoded,
            "frames_corrupt": self.frames_corrupt,
            "decode_errors": self.decode_errors,
            "missing": list(self.missing),
            "missing_at_end": self.missing_at_end,
            "stopped_by": self.stopped_by,
        }


def _ranges(indices: list[int], limit: int = 6) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"`` (the first ``limit`` runs)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    text = [f"{a}-{b}" if b > a else f"{a}" for a, b in runs[:limit]]
    return ", ".join(text) + (", ..." if len(runs) > limit else "")


class Timeline:
    """Assigns frame slots from presentation timestamps (in time-base ticks), in presentation order.

    Call `expect` for every demuxed packet and `place` for every decoded frame (decoders return frames in
    presentation order, after every packet that precedes them). ``tick`` is the nominal frame duration; while
    every interval between slots is a whole number of ticks the stream counts as constant-rate and a jump of
    k ticks adds k - 1 missing slots. The first interval that is not (variable frame rate) turns that off.
    """

    def __init__(self, tick: int | None = None) -> None:
        self.tick = tick if tick and tick > 0 else None
        self.constant_rate = self.tick is not None
        self.num_slots = 0
        self._expected: list[int] = []  # heap of packet timestamps not placed yet
        self._last: int | None = None

    def expect(self, pts: int | None) -> None:
        """A packet of the stream was demuxed: its timestamp is a slot."""
        if pts is not None and (self._last is None or pts > self._last):
            heapq.heappush(self._expected, pts)

    def place(self, pts: int | None) -> tuple[list[tuple[int, int]], int] | None:
        """Slot of a decoded frame: ``(missing, index)`` where ``missing`` lists ``(index, pts)`` of the slots
        lost just before it; None when the frame is not after the previous one (its slot is already taken)."""
        if pts is None:
            self.num_slots += 1
            return [], self.num_slots - 1
        if self._last is not None and pts <= self._last:
            return None
        lost: list[int] = []
        while self._expected and self._expected[0] <= pts:
            p = heapq.heappop(self._expected)
            if p < pts and (not lost or p != lost[-1]):
                lost.append(p)
        missing: list[tuple[int, int]] = []
        prev = self._last
        for p in [*lost, pts]:
            if prev is not None:
                for q in self._grid(prev, p):
                    missing.append((self.num_slots, q))
                    self.num_slots += 1
            if p != pts:
                missing.append((self.num_slots, p))
                self.num_slots += 1
            prev = p
        self._last = pts
        self.num_slots += 1
        return missing, self.num_slots - 1

    def pending(self) -> int:
        """Packets after the last placed frame that never decoded."""
        return len(set(self._expected))

    def _grid(self, prev: int, pts: int) -> list[int]:
        if not self.constant_rate:
            return []
        gap = pts - prev
        k = round(gap / self.tick)
        if k < 1 or abs(gap - k * self.tick) > _TOLERANCE * self.tick:
            self.constant_rate = False  # variable frame rate: timing cannot tell lost frames
            return []
        return [prev + j * self.tick for j in range(1, k)]
