"""The clip-level splatting stage: depth layouts, batching, progress, preview and input errors."""

from __future__ import annotations

import pytest
import torch

from stereocrafter.compose.preview import colorize_depth, splat_preview_grid
from stereocrafter.warp.stereo_warp import WarpSettings, warp_to_right_eye


def _clip(t: int = 5, h: int = 12, w: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    frames = torch.rand(t, h, w, 3, generator=gen)
    depth = torch.rand(t, h, w, generator=gen)
    return frames, depth


def test_batching_does_not_change_the_result_and_reports_progress() -> None:
    frames, depth = _clip()
    calls: list[tuple[int, int]] = []
    one_batch = warp_to_right_eye(frames, depth, batch_size=16)
    batched = warp_to_right_eye(frames, depth, batch_size=2, on_progress=lambda d, t: calls.append((d, t)))
    assert torch.equal(one_batch.right, batched.right)
    assert torch.equal(one_batch.occlusion, batched.occlusion)
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_image_depth_is_averaged_and_resized_to_the_frames() -> None:
    frames, depth = _clip()
    grey_image = depth.unsqueeze(-1).expand(-1, -1, -1, 3)
    torch.testing.assert_close(warp_to_right_eye(frames, grey_image).right, warp_to_right_eye(frames, depth).right)
    small = torch.nn.functional.interpolate(depth.unsqueeze(1), size=(6, 10)).squeeze(1)
    result = warp_to_right_eye(frames, small)
    assert result.right.shape == frames.shape and result.depth.shape == depth.shape


def test_constant_depth_is_a_pure_copy() -> None:
    frames, _ = _clip()
    result = warp_to_right_eye(frames, torch.full((5, 12, 20), 0.3))
    assert torch.equal(result.right, frames)
    assert torch.all(result.occlusion == 0)


def test_percent_of_width_disparity() -> None:
    frames, _ = _clip(1, 4, 50)
    depth = torch.zeros(1, 4, 50)
    depth[..., 25:] = 1.0  # right half near: +max, left half far: -max
    result = warp_to_right_eye(frames, depth, WarpSettings(max_disparity=4.0, disparity_unit="percent of width"))
    # 4 % of 50 px = 2 px: far pixels move right by 2, so the first 2 columns are holes.
    assert torch.all(result.occlusion[0, :, :2] == 1)
    assert torch.equal(result.right[0, :, 2:10], frames[0, :, 0:8])


def test_alpha_channel_is_ignored() -> None:
    frames, depth = _clip()
    rgba = torch.cat([frames, torch.ones(5, 12, 20, 1)], dim=-1)
    assert torch.equal(warp_to_right_eye(rgba, depth).right, warp_to_right_eye(frames, depth).right)


@pytest.mark.parametrize(
    ("frames", "depth", "message"),
    [
        (torch.zeros(0, 4, 4, 3), torch.zeros(0, 4, 4), "images is empty"),
        (torch.zeros(3, 4, 4, 3), torch.rand(2, 4, 4), "depth has 2 frames but images have 3"),
        (torch.zeros(2, 4, 4), torch.rand(2, 4, 4), "images must be an image batch"),
        (torch.zeros(2, 4, 4, 3), torch.rand(2, 1, 4, 4, 1), "depth must be an IMAGE"),
        (torch.zeros(2, 4, 4, 3), torch.full((2, 4, 4), float("nan")), "NaN"),
    ],
)
def test_bad_inputs_get_clear_errors(frames: torch.Tensor, depth: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        warp_to_right_eye(frames, depth)


def test_preview_grid_layout() -> None:
    frames, depth = _clip(2, 8, 10)
    result = warp_to_right_eye(frames, depth)
    grid = splat_preview_grid(frames, result.depth, result.occlusion, result.right, scale=1.0)
    assert grid.shape == (2, 16, 20, 3)
    assert torch.equal(grid[:, :8, :10], frames)
    assert torch.equal(grid[:, 8:, 10:], result.right)
    assert torch.equal(grid[:, 8:, :10, 0], result.occlusion)
    assert splat_preview_grid(frames, result.depth, result.occlusion, result.right, 0.5).shape == (2, 8, 10, 3)


def test_inferno_endpoints_match_matplotlib_within_the_fit() -> None:
    ends = colorize_depth(torch.tensor([[[0.0, 1.0]]]))[0, 0]
    # matplotlib inferno: first entry (0.0015, 0.0005, 0.0139), last (0.9884, 0.9984, 0.6449)
    torch.testing.assert_close(ends[0], torch.tensor([0.0015, 0.0005, 0.0139]), atol=0.02, rtol=0)
    torch.testing.assert_close(ends[1], torch.tensor([0.9884, 0.9984, 0.6449]), atol=0.02, rtol=0)
