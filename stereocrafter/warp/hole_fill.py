"""Model-free filling of the splat's occlusion holes from the background side, in pure PyTorch.

In the right view every pixel moved left by its disparity, nearer pixels further: a hole opens on the right of a
near object, and what belongs in it is the background that continues on the hole's right (the far side, the one the
disocclusion came from). :func:`fill_holes` fills each hole pixel along its row from the first covered pixel on that
side (the other side only where the row has none, e.g. at the right frame border), with a short cross-fade from the
exact border pixel into the mean of the next few background pixels, so there is no seam at the border and no
single-pixel streak through the hole. Every step is a row-wise scan (cumulative min/max and sums), so it is
vectorised on any device and any batch, deterministic, and per frame: identical frames give identical fills.

Soft depth edges stretch the splat: where the stretch exceeds about 2x, targets get scattered partial coverage, a
zebra of empty and half-covered pixels instead of one hole. :func:`hole_mask` therefore also counts pixels whose
coverage, or whose local coverage along the row, is below ``min_coverage`` as holes, so the fill (and an inpainting
model given that mask) sees one clean hole.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

#: Coverage (1 - occlusion) below which a pixel, or a pixel whose row neighbourhood of :data:`COVERAGE_WINDOW`
#: pixels averages below it, is a hole. 0.5 keeps every pixel of a clean hole's border (a covered pixel beside a
#: wide hole averages 3/5 over 5 pixels) and catches splats stretched more than 2x (their mean coverage is
#: 1 / stretch). 0 keeps exactly the reference's mask (only pixels where nothing landed).
MIN_COVERAGE = 0.5
#: Row neighbourhood (pixels, odd) over which the local coverage is averaged.
COVERAGE_WINDOW = 5
#: Pixels of the cross-fade from the border pixel into the background mean (and the length of that mean).
BLEND_PIXELS = 4
#: Coverage at or below which a pixel is empty whatever ``min_coverage`` is (float rounding of 1 - clamp(0)).
EMPTY_COVERAGE = 1e-4

BackgroundSide = Literal["right", "left"]


def hole_mask(
    occlusion: torch.Tensor, min_coverage: float = MIN_COVERAGE, window: int = COVERAGE_WINDOW
) -> torch.Tensor:
    """Which pixels are holes: nothing landed, or the coverage (own or averaged over ``window`` pixels of the row)
    is below ``min_coverage``.

    Args:
        occlusion: [..., H, W] float, 1 = hole (the splat's ``1 - clamp(coverage)``).
        min_coverage: 0..1; 0 = only empty pixels (the reference's holes).
        window: odd row neighbourhood for the local coverage, >= 1.

    Returns:
        [..., H, W] bool, True = hole.
    """
    if not 0.0 <= min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be within 0..1, got {min_coverage}.")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd number of pixels >= 1, got {window}.")
    coverage = 1.0 - occlusion.float().clamp(0.0, 1.0)
    hole = coverage <= EMPTY_COVERAGE
    if min_coverage > 0.0:
        shape = coverage.shape
        rows = coverage.reshape(-1, 1, shape[-1])
        # Replicate padding: the frame border neither lowers nor raises the local coverage.
        local = F.avg_pool1d(F.pad(rows, (window // 2, window // 2), mode="replicate"), window, stride=1)
        hole = hole | (coverage < min_coverage) | (local.reshape(shape) < min_coverage)
    return hole


def clean_occlusion(
    occlusion: torch.Tensor, min_coverage: float = MIN_COVERAGE, window: int = COVERAGE_WINDOW
) -> torch.Tensor:
    """The occlusion mask with every :func:`hole_mask` pixel set to 1 (others unchanged): [..., H, W], same dtype."""
    return torch.where(hole_mask(occlusion, min_coverage, window), torch.ones_like(occlusion), occlusion)


def fill_holes(
    frames: torch.Tensor,
    occlusion: torch.Tensor,
    min_coverage: float = MIN_COVERAGE,
    blend: int = BLEND_PIXELS,
    background: BackgroundSide = "right",
    window: int = COVERAGE_WINDOW,
) -> torch.Tensor:
    """Fill the holes of warped views from the background side of each hole, row by row.

    Args:
        frames: [T, H, W, 3] (or [H, W, 3]) float 0..1, the warped view with holes (any values there).
        occlusion: [T, H, W] (or [H, W]) float, 1 = hole, as the splat returns it; not modified.
        min_coverage: see :func:`hole_mask` (0 = fill only where nothing landed).
        blend: pixels over which the fill fades from the hole's border pixel into the mean of the ``blend``
            background pixels behind it (0: copy the border pixel).
        background: the side each hole takes its colour from: ``"right"`` for a right view (the default),
            ``"left"`` for a left view warped from the right. A row with no covered pixel on that side uses the
            other; a row with none at all is left as it is.
        window: see :func:`hole_mask`.

    Returns:
        The filled frames, same shape, dtype and device as ``frames``; pixels outside the holes are unchanged.
    """
    if frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] (or [H, W, 3]), got shape {tuple(frames.shape)}.")
    if occlusion.shape != frames.shape[:-1]:
        raise ValueError(
            f"occlusion must be the frames' [T, H, W] {tuple(frames.shape[:-1])}, got {tuple(occlusion.shape)}; "
            "pass the mask that came with these frames."
        )
    if not frames.is_floating_point():
        raise ValueError(f"frames must be float 0..1, got {frames.dtype}.")
    if blend < 0:
        raise ValueError(f"blend must be >= 0 pixels, got {blend}.")
    if background not in ("right", "left"):
        raise ValueError(f"background must be 'right' or 'left', got {background!r}.")
    hole = hole_mask(occlusion.to(frames.device), min_coverage, window)
    if background == "left":  # mirror the rows, fill from the right, mirror back
        flipped = _fill_from_right(frames.flip(-2), hole.flip(-1), blend)
        return flipped.flip(-2)
    return _fill_from_right(frames, hole, blend)


def _fill_from_right(frames: torch.Tensor, hole: torch.Tensor, blend: int) -> torch.Tensor:
    """:func:`fill_holes` with the background on the right, ``hole`` already computed ([..., H, W] bool)."""
    shape = frames.shape
    width = shape[-2]
    hole = hole.reshape(-1, width)
    valid = ~hole
    cols = torch.arange(width, device=frames.device, dtype=torch.int32).expand_as(hole)
    # First covered column at or right of each pixel (width if none): a reversed running minimum; the last covered
    # column at or left of it (-1 if none): a running maximum. Full-frame scans; the rest runs per hole pixel only
    # (holes are a few percent of the frame: 10x less memory traffic than computing every pixel's fill).
    nearest_right = torch.where(valid, cols, width).flip(-1).cummin(dim=-1).values.flip(-1)
    nearest_left = torch.where(valid, cols, -1).cummax(dim=-1).values
    row, col = hole.nonzero(as_tuple=True)
    right_side = nearest_right[row, col]
    use_right = right_side < width
    source = torch.where(use_right, right_side, nearest_left[row, col]).long()
    has_source = source >= 0  # False only in rows without any covered pixel: left as they are
    row, col, source, use_right = row[has_source], col[has_source], source[has_source], use_right[has_source]
    rgb = frames.reshape(-1, width, 3)
    filled = rgb[row, source].float()
    if blend > 0 and row.numel():
        # Mean of the covered pixels among the ``blend`` columns from the border away from the hole, by prefix sums
        # along the rows (the border itself is covered, so the count is at least 1).
        weighted = F.pad(torch.cumsum(rgb.float() * valid.unsqueeze(-1), dim=1), (0, 0, 1, 0))
        counts = F.pad(torch.cumsum(valid, dim=1, dtype=torch.int32), (1, 0))
        far_end = torch.where(use_right, source + blend, source - blend)
        low = torch.where(use_right, source, far_end + 1).clamp(0, width)  # the window is columns [low, high)
        high = torch.where(use_right, far_end, source + 1).clamp(0, width)
        mean = (weighted[row, high] - weighted[row, low]) / (counts[row, high] - counts[row, low]).clamp(min=1)[:, None]
        # 0 at the pixel beside the border (exactly the border's colour), 1 from ``blend + 1`` pixels in.
        fade = (((source - col).abs().float() - 1.0) / blend).clamp(0.0, 1.0).unsqueeze(-1)
        filled = filled + fade * (mean - filled)
    out = rgb.clone()
    out[row, col] = filled.to(frames.dtype)
    return out.reshape(shape)
