"""Depth → disparity: the reference's mapping, clip-wide normalisation and bad-input errors."""

from __future__ import annotations

import pytest
import torch

from stereocrafter.warp.disparity import depth_to_disparity, max_disparity_pixels, normalize_depth


def test_normalisation_is_over_the_whole_clip_not_per_frame() -> None:
    depth = torch.stack([torch.full((2, 2), 1.0), torch.full((2, 2), 3.0), torch.full((2, 2), 5.0)])
    normalized = normalize_depth(depth)
    assert normalized[:, 0, 0].tolist() == [0.0, 0.5, 1.0]


def test_reference_mapping_near_moves_left_far_moves_right() -> None:
    depth = torch.tensor([[[0.0, 0.25, 0.5, 1.0]]])
    disparity = depth_to_disparity(depth, max_disparity=20.0)
    # (2d - 1) * max_disp with d normalised: 0 → -20, 0.25 → -10, 0.5 → 0, 1 → +20
    assert disparity[0, 0].tolist() == [-20.0, -10.0, 0.0, 20.0]


def test_convergence_moves_the_screen_plane_and_invert_flips_depth() -> None:
    depth = torch.tensor([[[0.0, 0.5, 1.0]]])
    assert depth_to_disparity(depth, 10.0, convergence=1.0)[0, 0].tolist() == [-20.0, -10.0, 0.0]
    assert depth_to_disparity(depth, 10.0, invert=True)[0, 0].tolist() == [10.0, 0.0, -10.0]


def test_fixed_depth_range_keeps_the_scale_across_chunks() -> None:
    chunk = torch.tensor([[[2.0, 4.0]]])
    disparity = depth_to_disparity(chunk, 10.0, depth_range=(0.0, 8.0))
    assert disparity[0, 0].tolist() == [-5.0, 0.0]


def test_constant_depth_gives_zero_disparity() -> None:
    assert torch.all(depth_to_disparity(torch.full((2, 3, 3), 7.0), 20.0) == 0)
    assert torch.all(normalize_depth(torch.full((2, 3, 3), 7.0)) == 0.5)


def test_percent_of_width() -> None:
    assert max_disparity_pixels(2.5, "percent of width", 1920) == pytest.approx(48.0)
    assert max_disparity_pixels(20.0, "pixels", 1920) == 20.0
    with pytest.raises(ValueError, match="unit"):
        max_disparity_pixels(1.0, "inches", 100)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        max_disparity_pixels(-1.0, "pixels", 100)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_depth_is_a_clear_error(bad: float) -> None:
    depth = torch.rand(2, 4, 4)
    depth[1, 2, 2] = bad
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        depth_to_disparity(depth, 20.0)


def test_empty_depth_and_bad_convergence_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        depth_to_disparity(torch.zeros(0, 4, 4), 20.0)
    with pytest.raises(ValueError, match="convergence"):
        depth_to_disparity(torch.rand(1, 4, 4), 20.0, convergence=1.5)
