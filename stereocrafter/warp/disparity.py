"""Depth maps to disparity in pixels, as the reference maps DepthCrafter's output (reference.md §1.5-1.6)."""

from __future__ import annotations

import logging
from typing import Literal

import torch

logger = logging.getLogger(__name__)

DisparityUnit = Literal["pixels", "percent of width"]
DISPARITY_UNITS: tuple[DisparityUnit, ...] = ("pixels", "percent of width")


def max_disparity_pixels(max_disparity: float, unit: DisparityUnit, width: int) -> float:
    """The largest disparity in pixels: ``max_disparity`` itself, or that percentage of ``width``; a ValueError for a
    negative, NaN or infinite value."""
    if not 0 <= max_disparity < float("inf"):
        raise ValueError(f"max_disparity must be a finite number >= 0, got {max_disparity}.")
    if unit == "pixels":
        return float(max_disparity)
    if unit == "percent of width":
        return float(max_disparity) * width / 100.0
    raise ValueError(f"disparity unit must be one of {DISPARITY_UNITS}, got {unit!r}.")


def check_disparity_fits(max_disparity: float, unit: DisparityUnit, width: int, name: str = "max_disparity") -> None:
    """A ValueError when the largest shift is over the frame width: every pixel would leave the view and the right
    eye come out empty (black). 1-3 % of the width is comfortable on most screens."""
    pixels = max_disparity_pixels(max_disparity, unit, width)
    if pixels > width:
        given = f"{max_disparity:g} px" if unit == "pixels" else f"{max_disparity:g} % of {width} px"
        raise ValueError(
            f"{name} {given} shifts pixels by up to {pixels:g} px, more than the frame's width ({width} px): the "
            "right eye would be empty. Use a few percent of the width (e.g. 20 px at 1080p, or 2 percent of width)."
        )


def depth_bounds(depth: torch.Tensor) -> tuple[float, float]:
    """(min, max) of a depth clip over all frames and pixels; a clear error for empty or non-finite depth."""
    if depth.numel() == 0:
        raise ValueError("depth is empty: it needs at least one frame.")
    finite = torch.isfinite(depth)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(
            f"depth has {bad} NaN or infinite values; fix the depth source (or clean it with a "
            "mask/replace node) before splatting."
        )
    return float(depth.min()), float(depth.max())


def _is_flat(low: float, high: float) -> bool:
    return high - low <= 1e-12 * max(1.0, abs(high))


def normalize_depth(depth: torch.Tensor, depth_range: tuple[float, float] | None = None) -> torch.Tensor:
    """Min-max normalise depth over the whole clip (all frames and pixels together).

    Args:
        depth: [T, H, W] float, any range; must be finite.
        depth_range: fixed (min, max) to normalise with instead of the clip's own, e.g. to keep the
            scale constant across chunks of a long video. Values outside are clamped.

    Returns:
        [T, H, W] float32 in 0..1. A constant clip has no depth information and comes out as 0.5.
    """
    low, high = depth_bounds(depth) if depth_range is None else depth_range
    if _is_flat(low, high):
        return torch.full_like(depth, 0.5, dtype=torch.float32)
    return ((depth.float() - low) / (high - low)).clamp(0.0, 1.0)


def depth_to_disparity(
    depth: torch.Tensor,
    max_disparity: float,
    convergence: float = 0.5,
    invert: bool = False,
    depth_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Disparity in pixels from a depth clip.

    ``disparity = (d - convergence) * 2 * max_disparity`` with ``d`` the clip-normalised depth
    (near = 1, as DepthCrafter emits it). With the default convergence 0.5 this is the reference's
    ``(2d - 1) * max_disp``: near pixels move left by ``max_disparity``, far pixels right by the same,
    mid-depth stays on the screen plane.

    Args:
        depth: [T, H, W] float, near = large (set ``invert`` for far = large).
        max_disparity: pixels at the original resolution (see :func:`max_disparity_pixels`).
        convergence: normalised depth of the zero-parallax (screen) plane, 0..1.
        invert: the depth map has far = 1 (e.g. metric depth); flip it first.
        depth_range: fixed normalisation bounds, see :func:`normalize_depth`.

    Returns:
        [T, H, W] float32 disparity in pixels. A constant clip carries no depth and gives zero
        disparity everywhere (the right view equals the left).
    """
    if not 0.0 <= convergence <= 1.0:
        raise ValueError(f"convergence must be within 0..1, got {convergence}.")
    low, high = depth_bounds(depth) if depth_range is None else depth_range
    if _is_flat(low, high):
        logger.warning("depth is constant over the clip: no parallax, the right view equals the left.")
        return torch.zeros_like(depth, dtype=torch.float32)
    normalized = normalize_depth(depth, (low, high))
    if invert:
        normalized = 1.0 - normalized
    return (normalized - convergence) * (2.0 * max_disparity)
