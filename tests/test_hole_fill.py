"""Model-free hole filling on the synthetic square-over-background scene."""

from __future__ import annotations

import pytest
import torch

from stereocrafter.warp.hole_fill import EMPTY_COVERAGE, clean_occlusion, fill_holes, hole_mask
from stereocrafter.warp.stereo_warp import WarpSettings, warp_to_right_eye

BACKGROUND = torch.tensor([0.2, 0.4, 0.6])
SQUARE = torch.tensor([0.9, 0.1, 0.1])


def _scene(frames: int = 3, height: int = 48, width: int = 160) -> tuple[torch.Tensor, torch.Tensor]:
    """A red square (depth 1) at rows 12..36, columns 60..110 over a flat blue background (depth 0)."""
    left = BACKGROUND.expand(frames, height, width, 3).clone()
    depth = torch.zeros(frames, height, width)
    left[:, 12:36, 60:110] = SQUARE
    depth[:, 12:36, 60:110] = 1.0
    return left, depth


def _warp(left: torch.Tensor, depth: torch.Tensor, convergence: float):
    return warp_to_right_eye(left, depth, WarpSettings(max_disparity=20, convergence=convergence, backend="torch"))


def _runs(row: torch.Tensor) -> int:
    """Number of runs of True in a 1-D bool tensor."""
    starts = row & ~torch.cat([torch.tensor([False]), row[:-1]])
    return int(starts.sum())


def test_disocclusion_takes_the_background_colour_and_nothing_else_changes():
    left, depth = _scene()
    warped = _warp(left, depth, convergence=0.0)  # background still, square 40 px to the left
    holes = warped.occlusion > 1 - EMPTY_COVERAGE
    # The square moved to 20..70: the hole is 70..110, square on its left, background on its right.
    assert holes[:, 12:36, 70:110].all() and holes.sum() == 3 * 24 * 40
    filled = fill_holes(warped.right, warped.occlusion)
    assert torch.allclose(filled[holes], BACKGROUND.expand(int(holes.sum()), 3), atol=1e-6)
    assert torch.equal(filled[~hole_mask(warped.occlusion)], warped.right[~hole_mask(warped.occlusion)])
    # Identical frames give identical fills (no flicker).
    assert torch.equal(filled[0], filled[1]) and torch.equal(filled[1], filled[2])
    assert torch.equal(warped.occlusion, _warp(left, depth, 0.0).occlusion)  # the mask is not modified


def test_frame_border_holes_are_filled_from_the_background():
    left, depth = _scene()
    warped = _warp(left, depth, convergence=1.0)  # square still, background 40 px to the right
    holes = hole_mask(warped.occlusion)
    assert holes[:, :, :40].all()  # the strip at the left border, in every row
    filled = fill_holes(warped.right, warped.occlusion)
    assert torch.allclose(filled[holes], BACKGROUND.expand(int(holes.sum()), 3), atol=1e-6)
    assert torch.equal(filled[~holes], warped.right[~holes])


def test_right_border_uses_the_left_neighbour():
    frames = torch.rand(1, 4, 12, 3)
    occlusion = torch.zeros(1, 4, 12)
    occlusion[..., 9:] = 1.0  # nothing to the right of these holes
    filled = fill_holes(frames, occlusion, blend=0)
    assert torch.equal(filled[..., 9:, :], frames[..., 8:9, :].expand(1, 4, 3, 3))


def test_blend_fades_from_the_border_pixel_into_the_background_mean():
    frames = torch.zeros(1, 1, 20, 3)
    frames[0, 0, :, 0] = torch.arange(20) / 20  # a red ramp, so the mean differs from the border pixel
    occlusion = torch.zeros(1, 1, 20)
    occlusion[0, 0, 4:10] = 1.0  # hole at 4..9, background border at 10
    filled = fill_holes(frames, occlusion, blend=3, min_coverage=0.0)[0, 0, :, 0]
    border, mean = 10 / 20, (10 + 11 + 12) / 3 / 20
    assert filled[9] == pytest.approx(border)  # beside the border: exactly the border's colour
    assert filled[8] == pytest.approx(border + (mean - border) / 3)
    assert filled[4:7].tolist() == pytest.approx([mean] * 3)  # 4+ px in: the background mean
    assert torch.equal(filled[:4], frames[0, 0, :4, 0]) and torch.equal(filled[10:], frames[0, 0, 10:, 0])


def test_soft_depth_edge_becomes_one_clean_hole():
    width = 160
    cols = torch.arange(width).float()
    # The square's right edge ramps from near to far over 12 px: the splat stretches it into scattered pixels.
    depth = (((72 - cols) / 12).clamp(0, 1) * (cols >= 20)).expand(2, 8, width).clone()
    left = torch.where((depth > 0.5)[..., None], SQUARE, BACKGROUND).clone()
    warped = _warp(left, depth, convergence=0.0)
    empty = warped.occlusion[0, 3] > 1 - EMPTY_COVERAGE
    assert _runs(empty) > 3  # the zebra: several empty runs with partly covered pixels between them
    holes = hole_mask(warped.occlusion)
    assert _runs(holes[0, 3]) == 1 and (holes[0, 3] >= empty).all()
    cleaned = clean_occlusion(warped.occlusion)
    assert torch.equal(cleaned[holes], torch.ones(int(holes.sum())))
    assert torch.equal(cleaned[~holes], warped.occlusion[~holes])
    filled = fill_holes(warped.right, warped.occlusion)
    # The hole ends where the ramp's far end lands: the fill there is the background's colour.
    last = int(holes[0, 3].nonzero().max())
    assert torch.allclose(filled[0, 3, last - 5 : last + 1], BACKGROUND.expand(6, 3), atol=1e-6)


def test_min_coverage_zero_is_the_reference_mask():
    occlusion = torch.rand(2, 16, 32)
    occlusion[occlusion > 0.8] = 1.0
    assert torch.equal(hole_mask(occlusion, min_coverage=0.0), occlusion >= 1.0)


def test_left_background_mirrors_and_single_frames_and_half_precision_work():
    frames, occlusion = torch.rand(2, 6, 30, 3), (torch.rand(2, 6, 30) > 0.7).float()
    mirrored = fill_holes(frames.flip(-2), occlusion.flip(-1), background="left").flip(-2)
    assert torch.equal(mirrored, fill_holes(frames, occlusion))
    assert torch.equal(fill_holes(frames[0], occlusion[0]), fill_holes(frames, occlusion)[0])
    half = fill_holes(frames.half(), occlusion.half())
    assert half.dtype == torch.float16 and (half.float() - fill_holes(frames, occlusion)).abs().max() < 2e-3


def test_rows_without_any_covered_pixel_are_left_as_they_are():
    frames = torch.rand(1, 3, 10, 3)
    occlusion = torch.zeros(1, 3, 10)
    occlusion[0, 1] = 1.0
    assert torch.equal(fill_holes(frames, occlusion)[0, 1], frames[0, 1])


def test_bad_inputs_name_the_input():
    frames = torch.rand(2, 4, 8, 3)
    with pytest.raises(ValueError, match="occlusion"):
        fill_holes(frames, torch.zeros(2, 4, 9))
    with pytest.raises(ValueError, match="frames"):
        fill_holes(frames[..., :2], torch.zeros(2, 4, 8))
    with pytest.raises(ValueError, match="min_coverage"):
        fill_holes(frames, torch.zeros(2, 4, 8), min_coverage=1.5)
    with pytest.raises(ValueError, match="background"):
        fill_holes(frames, torch.zeros(2, 4, 8), background="up")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_cpu():
    frames, occlusion = torch.rand(3, 64, 96, 3), (torch.rand(3, 64, 96) > 0.8).float()
    on_gpu = fill_holes(frames.cuda(), occlusion.cuda()).cpu()
    assert torch.allclose(on_gpu, fill_holes(frames, occlusion), atol=1e-6)


def test_cli_no_inpaint_fills_the_holes_unless_black(tmp_path):
    import av

    from stereocrafter.__main__ import main
    from stereocrafter.video.video_io import read_frames

    left, depth = _scene(frames=4)
    for name, clip in (("in.mp4", left), ("depth.mp4", depth[..., None].expand(-1, -1, -1, 3))):
        with av.open(str(tmp_path / name), "w") as out:
            video = out.add_stream("libx264", rate=24)
            video.width, video.height, video.pix_fmt, video.options = 160, 48, "yuv444p", {"crf": "0"}
            for index, image in enumerate((clip * 255).round().to(torch.uint8).numpy()):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = index
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
    common = [str(tmp_path / "in.mp4"), "--depth", str(tmp_path / "depth.mp4"), "--no-inpaint", "--convergence", "0"]
    assert main([*common, "-o", str(tmp_path / "filled.mp4"), "--codec", "h264", "--crf", "0"]) == 0
    assert main([*common, "-o", str(tmp_path / "black.mp4"), "--holes", "black", "--crf", "0"]) == 0
    hole = (slice(None), slice(12, 36), slice(160 + 72, 160 + 108))  # inside the 40 px hole of the right view
    filled = torch.cat(list(read_frames(tmp_path / "filled.mp4", 8)))[hole]
    black = torch.cat(list(read_frames(tmp_path / "black.mp4", 8)))[hole]
    assert black.max() < 0.05
    assert (filled - BACKGROUND).abs().max() < 0.03


def test_warp_settings_min_coverage_cleans_the_mask_and_zero_keeps_the_reference():
    cols = torch.arange(160).float()
    depth = (((72 - cols) / 12).clamp(0, 1) * (cols >= 20)).expand(2, 8, 160).clone()
    left = torch.where((depth > 0.5)[..., None], SQUARE, BACKGROUND).clone()
    reference = _warp(left, depth, convergence=0.0)
    settings = WarpSettings(max_disparity=20, convergence=0.0, backend="torch", min_coverage=0.5)
    cleaned = warp_to_right_eye(left, depth, settings)
    assert torch.equal(cleaned.right, reference.right)
    assert torch.equal(cleaned.occlusion, clean_occlusion(reference.occlusion, 0.5))
    assert not torch.equal(cleaned.occlusion, reference.occlusion)  # the zebra was there to clean
    # 1 - clamp(coverage) exactly by default: the splat's own mask.
    from stereocrafter.warp.disparity import depth_to_disparity
    from stereocrafter.warp.splatting import splat_torch

    _, raw = splat_torch(left, depth_to_disparity(depth, 20.0, 0.0, False))
    assert torch.equal(reference.occlusion, raw)
