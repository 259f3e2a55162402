"""Forward splatting: hand-computed cases and the PyTorch implementation against a slow, obvious loop."""

from __future__ import annotations

import math

import pytest
import torch

from stereocrafter.warp.splatting import forward_splat, splat_torch


def loop_splat(frames: torch.Tensor, disparity: torch.Tensor, reference_edges: bool):
    """Obviously-correct scalar version of the splatting contract (tiny inputs only)."""
    t, h, w, _ = frames.shape
    acc = torch.zeros(t, h, w, 3, dtype=torch.float64)
    den = torch.zeros(t, h, w, dtype=torch.float64)
    cov = torch.zeros(t, h, w, dtype=torch.float64)
    for b in range(t):
        for y in range(h):
            row = [float(v) for v in disparity[b, y] if math.isfinite(float(v))]
            rowmin = min(row) if row else 0.0
            for x in range(w):
                d = float(disparity[b, y, x])
                if not math.isfinite(d):
                    continue
                weight = 1.414 ** min(d - rowmin, 200.0)
                target = x - d
                x0 = math.floor(target)
                frac = target - x0
                if reference_edges and not (x0 >= 0 and x0 + 1 <= w - 1 and y + 1 <= h - 1):
                    continue
                for col, bilinear in ((x0, 1 - frac), (x0 + 1, frac)):
                    if 0 <= col < w:
                        acc[b, y, col] += weight * bilinear * frames[b, y, x].double()
                        den[b, y, col] += weight * bilinear
                        cov[b, y, col] += bilinear
    right = acc / den.clamp(min=1e-6).unsqueeze(-1)
    return right, 1 - cov.clamp(0, 1)


def _frames(t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(t, h, w, 3, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("reference_edges", [False, True])
def test_torch_matches_slow_loop_with_collisions_and_nan(reference_edges: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    frames = _frames(2, 5, 13, seed=2)
    # Sharp-edged disparity: a near block over a sub-pixel ramp makes collisions and holes.
    disparity = torch.linspace(-3.3, 2.7, 13).expand(2, 5, 13).clone()
    disparity[:, 1:4, 4:8] = 6.25
    disparity += 0.3 * torch.rand(2, 5, 13, generator=gen)
    disparity[1, 2, 3] = float("nan")
    right, occlusion = splat_torch(frames, disparity, reference_edges)
    expected_right, expected_occlusion = loop_splat(frames, disparity, reference_edges)
    torch.testing.assert_close(right.double(), expected_right, atol=1e-5, rtol=0)
    torch.testing.assert_close(occlusion.double(), expected_occlusion, atol=1e-6, rtol=0)


def test_integer_shift_moves_pixels_and_leaves_holes_at_the_right_border() -> None:
    frames = _frames(1, 3, 8)
    right, occlusion = forward_splat(frames, torch.full((1, 3, 8), 2.0))
    assert torch.equal(right[0, :, :6], frames[0, :, 2:])
    assert torch.all(right[0, :, 6:] == 0)
    assert torch.all(occlusion[0, :, :6] == 0) and torch.all(occlusion[0, :, 6:] == 1)


def test_negative_integer_shift_opens_the_left_border() -> None:
    frames = _frames(1, 2, 6)
    right, occlusion = forward_splat(frames, torch.full((1, 2, 6), -1.0))
    assert torch.equal(right[0, :, 1:], frames[0, :, :5])
    assert torch.all(occlusion[0, :, 0] == 1) and torch.all(occlusion[0, :, 1:] == 0)


def test_half_pixel_shift_averages_neighbours_and_covers_the_last_column_half() -> None:
    frames = _frames(1, 1, 6)
    right, occlusion = forward_splat(frames, torch.full((1, 1, 6), 0.5))
    # Target j receives half of source j and half of source j+1; the last column only half of itself.
    expected = (frames[0, 0, :5] + frames[0, 0, 1:]) / 2
    torch.testing.assert_close(right[0, 0, :5], expected)
    torch.testing.assert_close(right[0, 0, 5], frames[0, 0, 5])
    torch.testing.assert_close(occlusion[0, 0], torch.tensor([0, 0, 0, 0, 0, 0.5]))


def test_reference_edges_drop_partial_corners_and_the_bottom_row() -> None:
    frames = _frames(1, 3, 6)
    disparity = torch.full((1, 3, 6), 0.5)
    right, occlusion = forward_splat(frames, disparity, reference_edges=True)
    # Source 0 would put half a pixel outside (column -1): the reference drops all of it.
    torch.testing.assert_close(right[0, 0, 0], frames[0, 0, 1])
    assert occlusion[0, 0, 0] == pytest.approx(0.5)
    # The bottom row is always a hole in the reference.
    assert torch.all(right[0, 2] == 0) and torch.all(occlusion[0, 2] == 1)
    ours_right, ours_occlusion = forward_splat(frames, disparity)
    assert torch.all(ours_occlusion[0, 2, :5] == 0)
    torch.testing.assert_close(ours_right[0, 2, :5], (frames[0, 2, :5] + frames[0, 2, 1:]) / 2)


def test_pixel_landing_in_last_column_is_kept_by_default_dropped_by_reference() -> None:
    frames = _frames(1, 2, 5)
    disparity = torch.zeros(1, 2, 5)
    disparity[0, 0, 4] = -0.0  # stays at x = 4 = W-1 exactly
    _, occlusion = forward_splat(frames, disparity)
    _, ref_occlusion = forward_splat(frames, disparity, reference_edges=True)
    assert occlusion[0, 0, 4] == 0
    assert ref_occlusion[0, 0, 4] == 1  # x0 + 1 = W is outside, so the reference drops it


def test_near_pixel_wins_a_collision_by_the_soft_zbuffer_weight() -> None:
    frames = torch.zeros(1, 1, 8, 3)
    frames[0, 0, :, 0] = 1.0  # background red
    frames[0, 0, 5] = torch.tensor([0.0, 0.0, 1.0])  # one near blue pixel
    disparity = torch.zeros(1, 1, 8)
    disparity[0, 0, 5] = 2.0  # lands on x = 3, on top of the background pixel 3
    right, occlusion = forward_splat(frames, disparity)
    near_weight = 1.414**2.0  # relative to the row minimum 0
    blue_share = near_weight / (near_weight + 1.0)
    torch.testing.assert_close(right[0, 0, 3], torch.tensor([1 - blue_share, 0.0, blue_share]))
    assert occlusion[0, 0, 5] == 1  # the near pixel left a hole where it was


def test_much_nearer_pixel_dominates() -> None:
    frames = torch.zeros(1, 1, 16, 3)
    frames[..., 0] = 1.0
    frames[0, 0, 12] = torch.tensor([0.0, 0.0, 1.0])
    disparity = torch.zeros(1, 1, 16)
    disparity[0, 0, 12] = 10.0  # lands on x = 2
    right, _ = forward_splat(frames, disparity)
    blue_share = 1.414**10 / (1.414**10 + 1)
    assert right[0, 0, 2, 2] == pytest.approx(blue_share, abs=1e-6)
    assert blue_share > 0.96


def test_half_precision_inputs_give_outputs_in_their_dtype() -> None:
    frames = _frames(1, 4, 9).half()
    right, occlusion = forward_splat(frames, torch.full((1, 4, 9), 1.0))
    assert right.dtype == torch.float16 and occlusion.dtype == torch.float16
    torch.testing.assert_close(right[0, :, :8], frames[0, :, 1:])


def test_huge_disparity_range_does_not_overflow() -> None:
    frames = _frames(1, 1, 400)
    disparity = torch.linspace(-190.0, 190.0, 400).view(1, 1, 400)
    right, occlusion = forward_splat(frames, disparity)
    assert torch.isfinite(right).all() and torch.isfinite(occlusion).all()


@pytest.mark.parametrize(
    ("frames", "disparity", "message"),
    [
        (torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), "frames must be"),
        (torch.zeros(2, 4, 4, 3), torch.zeros(3, 4, 4), "disparity must be"),
        (torch.zeros(1, 4, 4, 3, dtype=torch.uint8), torch.zeros(1, 4, 4), "floating point"),
    ],
)
def test_bad_inputs_get_clear_errors(frames: torch.Tensor, disparity: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        forward_splat(frames, disparity)


def test_cuda_backend_on_cpu_tensors_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="backend='cuda'"):
        forward_splat(torch.zeros(1, 2, 2, 3), torch.zeros(1, 2, 2), backend="cuda")
