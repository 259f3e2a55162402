"""Stereo frame packings: side-by-side and top-bottom, full or half resolution, and cross-eyed.

Conventions (landscape.md §6.1): SBS puts the left eye on the left, TB puts the left eye on top,
cross-eyed swaps the eyes for free viewing. Half formats squeeze each eye to half width (SBS) or half
height (TB) so the packed frame has the source size; the display stretches them back.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Layout = Literal["full SBS", "half SBS", "full TB", "half TB", "cross-eyed full SBS", "cross-eyed half SBS"]
LAYOUTS: tuple[Layout, ...] = (
    "full SBS",
    "half SBS",
    "full TB",
    "half TB",
    "cross-eyed full SBS",
    "cross-eyed half SBS",
)
ResizeFilter = Literal["bicubic", "bilinear", "area"]
RESIZE_FILTERS: tuple[ResizeFilter, ...] = ("bicubic", "bilinear", "area")

#: Player-friendly file-name suffixes (iw3 / DeoVR / SKYBOX conventions).
LAYOUT_SUFFIXES: dict[Layout, str] = {
    "full SBS": "_SBS_LR",
    "half SBS": "_half_SBS",
    "full TB": "_TB",
    "half TB": "_half_TB",
    "cross-eyed full SBS": "_SBS_RL",
    "cross-eyed half SBS": "_half_SBS_RL",
}


def check_stereo_pair(left: torch.Tensor, right: torch.Tensor) -> None:
    """Raise a ValueError naming the problem unless left and right are matching [T, H, W, C] batches."""
    for name, images in (("left", left), ("right", right)):
        if images.ndim != 4:
            raise ValueError(f"{name} must be an image batch [T, H, W, C], got shape {tuple(images.shape)}.")
        if images.shape[0] == 0:
            raise ValueError(f"{name} is empty: it needs at least one frame.")
    if left.shape != right.shape:
        raise ValueError(
            f"left {tuple(left.shape)} and right {tuple(right.shape)} must have the same frame count, "
            "size and channels; resize one of them or check that both come from the same clip."
        )


def resize_images(images: torch.Tensor, height: int, width: int, resize_filter: ResizeFilter) -> torch.Tensor:
    """Resize [T, H, W, C] images with a proper low-pass filter (antialiased when shrinking).

    ``bicubic`` and ``bilinear`` are antialiased (PIL-compatible kernels); ``area`` averages whole
    source pixels. Values are clamped to 0..1 because bicubic can overshoot.
    """
    if resize_filter not in RESIZE_FILTERS:
        raise ValueError(f"resize_filter must be one of {RESIZE_FILTERS}, got {resize_filter!r}.")
    if images.shape[1:3] == (height, width):
        return images
    channels_first = images.movedim(-1, 1)
    if resize_filter == "area":
        resized = F.interpolate(channels_first, size=(height, width), mode="area")
    else:
        resized = F.interpolate(
            channels_first, size=(height, width), mode=resize_filter, align_corners=False, antialias=True
        )
    return resized.movedim(1, -1).clamp(0.0, 1.0)


def pack_stereo(
    left: torch.Tensor, right: torch.Tensor, layout: Layout = "full SBS", resize_filter: ResizeFilter = "bicubic"
) -> torch.Tensor:
    """Pack a stereo pair into one frame per time step.

    Args:
        left, right: [T, H, W, C] float images 0..1 (the same shape).
        layout: one of :data:`LAYOUTS`.
        resize_filter: filter for the half formats.

    Returns:
        full SBS: [T, H, 2W, C]; half SBS: [T, H, 2*(W//2), C]; full TB: [T, 2H, W, C];
        half TB: [T, 2*(H//2), W, C]. Cross-eyed layouts put the right eye on the left.
    """
    check_stereo_pair(left, right)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    _, height, width, _ = left.shape
    if layout.startswith("cross-eyed"):
        left, right = right, left
    half = "half" in layout
    if "TB" in layout:
        if half:
            if height < 2:
                raise ValueError(f"half TB needs frames at least 2 pixels high, got {height}.")
            left = resize_images(left, height // 2, width, resize_filter)
            right = resize_images(right, height // 2, width, resize_filter)
        return torch.cat([left, right], dim=1)
    if half:
        if width < 2:
            raise ValueError(f"half SBS needs frames at least 2 pixels wide, got {width}.")
        left = resize_images(left, height, width // 2, resize_filter)
        right = resize_images(right, height, width // 2, resize_filter)
    return torch.cat([left, right], dim=2)
