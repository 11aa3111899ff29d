"""benchmarks/hooks.py: the ablation's emulated earlier steps of the speed work compute the same result as the
library (bit-identical on the CPU) and put the library back afterwards; the instrumented run times every
stage without changing the result, of the library or of an emulated step."""

from __future__ import annotations

import numpy as np
import pytest
from reference import model, rgb_frames

from benchmarks.harness import STAGES, run_ours
from benchmarks.hooks import VARIANTS
from benchmarks.rows import Row
from ifc_sdk.modeling import backbone

NAME = "r50_seed0"


def _same(result, other, what: str) -> None:
    assert [t.frame_masks for t in result.tracks] == [t.frame_masks for t in other.tracks], what
    np.testing.assert_array_equal(
        [t.class_probs for t in result.tracks], [t.class_probs for t in other.tracks]
    )


def test_ablation_variants_compute_the_same_result():
    m = model(NAME)
    frames = list(rgb_frames(NAME)[:7])
    row = Row("t", "T=3", "r50", 3, 1, None)
    forwards = (backbone.ConvNorm.forward, backbone.BottleneckBlock.forward)
    results = {v: run_ours(m, frames, row, size=None, precision="fp32", variant=v).output for v in VARIANTS}
    assert (backbone.ConvNorm.forward, backbone.BottleneckBlock.forward) == forwards
    assert "frame_states" not in m.__dict__
    sdk = results.pop("sdk")
    assert sdk.tracks
    for variant, result in results.items():
        _same(result, sdk, variant)


@pytest.mark.parametrize("variant", ["sdk", "before"])
def test_instrumented_run_times_every_stage_and_restores_the_model(variant):
    """The breakdown's timers wrap what is bound, so they also time an emulated earlier step (the ablation's
    patched per-frame states are kept, not replaced by the library's)."""
    m = model(NAME)
    frames = list(rgb_frames(NAME)[:5])
    row = Row("t", "T=3", "r50", 3, 1, None)
    plain = run_ours(m, frames, row, size=None, precision="fp32")
    timed = run_ours(m, frames, row, size=None, precision="fp32", instrument=True, variant=variant)
    assert plain.stages is None
    assert set(timed.stages) == set(STAGES)
    for stage in ("preprocess", "backbone", "heads", "stitching", "output"):
        assert timed.stages[stage] > 0, stage
    assert sum(timed.stages.values()) <= timed.seconds * 1.001
    assert not {"normalize", "backbone_features", "frame_states", "forward_frame_states"} & set(m.__dict__)
    _same(timed.output, plain.output, variant)
