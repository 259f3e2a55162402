"""Per-shot depth ranges: percentiles against numpy's, stray pixels ignored, the ease across a cut, flat shots."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereocrafter.depth.shot_depth import ShotRangeAccumulator, frame_ranges, normalize_per_frame


def test_percentile_ranges_per_shot_match_numpy_and_ignore_stray_pixels():
    gen = torch.Generator().manual_seed(0)
    shot1 = 0.2 + 0.3 * torch.rand(7, 20, 30, generator=gen)
    shot2 = 0.6 + 0.2 * torch.rand(5, 20, 30, generator=gen)
    shot2[2, 3, 4] = 1.0  # one stray near pixel
    depth = torch.cat([shot1, shot2])
    acc = ShotRangeAccumulator([(0, 7), (7, 12)], (0.5, 99.5))
    for chunk in depth.split(4):  # chunks straddle the cut
        acc.add(chunk)
    ranges = acc.finish()
    for (low, high), shot in zip(ranges, (shot1, shot2), strict=True):
        assert low == pytest.approx(np.percentile(shot.numpy(), 0.5), abs=1 / 4096)
        assert high == pytest.approx(np.percentile(shot.numpy(), 99.5), abs=1 / 4096)
    assert ranges[1][1] < 0.81  # the stray pixel does not set the range


def test_unfinished_shots_are_an_error():
    acc = ShotRangeAccumulator([(0, 3), (3, 6)])
    acc.add(torch.rand(4, 2, 2))
    with pytest.raises(ValueError, match="ended at frame 4"):
        acc.finish()


def test_range_eases_after_a_cut_and_never_narrows_below_the_shot():
    segments, ranges = [(0, 10), (10, 20)], [(0.0, 0.4), (0.6, 1.0)]
    bounds = frame_ranges(segments, ranges, 8, 8, transition_frames=3).tolist()
    assert bounds[:2] == [[0.0, 0.4], [0.0, 0.4]]  # frames 8, 9: shot 1
    # frames 10, 11, 12: lows 0.15, 0.3, 0.45 (1/4, 2/4, 3/4 of the way); highs held at the shot's own 1.0
    assert [b[0] for b in bounds[2:5]] == pytest.approx([0.15, 0.3, 0.45])
    assert [b[1] for b in bounds[2:5]] == pytest.approx([1.0, 1.0, 1.0])
    assert bounds[5:] == [[0.6, 1.0]] * 3
    assert frame_ranges(segments, ranges, 10, 1, transition_frames=0).tolist() == [[0.6, 1.0]]


def test_normalize_per_frame_clamps_and_flat_is_half():
    depth = torch.tensor([[[0.1, 0.5, 0.9]], [[0.3, 0.3, 0.3]]])
    bounds = torch.tensor([[0.2, 0.6], [0.3, 0.3]], dtype=torch.float64)
    out = normalize_per_frame(depth, bounds)
    assert out[0, 0].tolist() == pytest.approx([0.0, 0.75, 1.0])
    assert out[1, 0].tolist() == [0.5, 0.5, 0.5]


def test_a_short_source_can_be_left_to_the_caller_to_report():
    acc = ShotRangeAccumulator([(0, 3), (3, 6), (6, 9)])
    acc.add(torch.linspace(0, 1, 4 * 100).view(4, 10, 10))  # shot 1 and one frame of shot 2
    ranges = acc.finish(complete=False)
    assert len(ranges) == 3 and ranges[2] == ranges[1] and ranges[1][0] > ranges[0][1] - 0.01


def test_a_constant_shot_has_a_flat_range():
    acc = ShotRangeAccumulator([(0, 2), (2, 4)])
    acc.add(torch.cat([torch.full((2, 5, 5), 0.502), torch.linspace(0.2, 0.7, 50).view(2, 5, 5)]))
    (flat, ramp) = acc.finish()
    assert flat == (pytest.approx(0.502), pytest.approx(0.502))
    assert 0.2 <= ramp[0] < 0.21 and 0.69 < ramp[1] <= 0.7  # within the values, not the bins' outer edges
