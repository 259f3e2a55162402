"""The splatting stage for a whole clip: depth in any layout → disparity → right view and occlusion mask.

This is what the ForwardSplat node runs, usable from a script: it validates the inputs, normalises the
depth over the whole clip, and splats batches of frames on the chosen device so that only one batch is
ever there at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .disparity import DisparityUnit, depth_to_disparity, max_disparity_pixels, normalize_depth
from .hole_fill import clean_occlusion
from .splatting import Backend, forward_splat


@dataclass(frozen=True)
class WarpSettings:
    """How depth becomes parallax; defaults are the reference's (20 px, screen plane at mid-depth)."""

    max_disparity: float = 20.0
    disparity_unit: DisparityUnit = "pixels"
    convergence: float = 0.5
    invert: bool = False
    reference_edges: bool = False
    backend: Backend = "auto"
    #: Occlusion pixels whose splat coverage, or its average over a few pixels of the row, is below this become 1
    #: (:func:`~.hole_fill.clean_occlusion`): a soft depth edge's scattered pixels make one clean hole for an
    #: inpainting model. 0 (default) keeps the reference's mask, 1 - clamp(coverage), exactly.
    min_coverage: float = 0.0


@dataclass(frozen=True)
class WarpResult:
    """Right view [T, H, W, 3], occlusion [T, H, W] (1 = hole) and normalised depth [T, H, W], all float32."""

    right: torch.Tensor
    occlusion: torch.Tensor
    depth: torch.Tensor


def check_frames(frames: torch.Tensor, name: str = "images") -> None:
    """Raise a ValueError naming ``name`` unless ``frames`` is a non-empty [T, H, W, 3] float batch."""
    if frames.ndim != 4 or frames.shape[-1] not in (3, 4):
        raise ValueError(f"{name} must be an image batch [frames, height, width, 3], got shape {tuple(frames.shape)}.")
    if frames.shape[0] == 0:
        raise ValueError(f"{name} is empty: it needs at least one frame.")
    if not frames.is_floating_point():
        raise ValueError(f"{name} must be float 0..1, got {frames.dtype}.")


def depth_channels_mean(depth: torch.Tensor) -> torch.Tensor:
    """IMAGE-like depth [..., C] → [...] float32, its first three channels averaged (grey depth as any depth node
    writes it)."""
    return depth[..., :3].float().mean(dim=-1)


def depth_to_frame_size(depth: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Bring a depth clip into [T, H, W] float32 at the frames' size.

    Accepts a MASK-like [T, H, W] or [H, W], or an IMAGE-like [T, H, W, C] (channels are averaged, so
    3-channel grey depth from any depth node works). A different height/width is resized bilinearly;
    a different frame count is an error.
    """
    if depth.ndim == 2:
        depth = depth.unsqueeze(0)
    if depth.ndim == 4:
        depth = depth_channels_mean(depth)
    if depth.ndim != 3:
        raise ValueError(
            f"depth must be an IMAGE [frames, H, W, C] or a MASK [frames, H, W], got shape {tuple(depth.shape)}."
        )
    if depth.shape[0] == 0:
        raise ValueError("depth is empty: it needs at least one frame.")
    if depth.shape[0] != frames.shape[0]:
        raise ValueError(
            f"depth has {depth.shape[0]} frames but images have {frames.shape[0]}; they must match one to "
            "one. Load both clips with the same frame cap, skip and rate settings."
        )
    depth = depth.float()
    if depth.shape[1:] != frames.shape[1:3]:
        depth = F.interpolate(
            depth.unsqueeze(1), size=tuple(frames.shape[1:3]), mode="bilinear", align_corners=False
        ).squeeze(1)
    return depth


def warp_to_right_eye(
    frames: torch.Tensor,
    depth: torch.Tensor,
    settings: WarpSettings = WarpSettings(),
    device: torch.device | str | None = None,
    batch_size: int = 16,
    on_progress: Callable[[int, int], None] | None = None,
    depth_range: tuple[float, float] | None = None,
) -> WarpResult:
    """Splat a left-eye clip into the right eye using its depth.

    Args:
        frames: [T, H, W, 3] float 0..1 (a 4th alpha channel is ignored), the left view, any device.
        depth: [T, H, W], [T, H, W, C] or [H, W] depth, near = large unless ``settings.invert``.
        settings: disparity mapping and splatting options.
        device: where to splat (default: the frames' device). Outputs stay on the frames' device.
        batch_size: frames per splat call; bounds the memory used on ``device``.
        on_progress: called with (frames done, total frames) after each batch.
        depth_range: fixed (min, max) depth to normalise with instead of this clip's own, so that chunks of a
            long video share one scale.

    Returns:
        A :class:`WarpResult` of float32 tensors on the frames' device.
    """
    check_frames(frames)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    frames = frames[..., :3]
    depth = depth_to_frame_size(depth, frames)
    total, _, width, _ = frames.shape
    max_disparity = max_disparity_pixels(settings.max_disparity, settings.disparity_unit, width)
    disparity = depth_to_disparity(depth, max_disparity, settings.convergence, settings.invert, depth_range)
    device = torch.device(device) if device is not None else frames.device

    right = torch.empty(frames.shape, dtype=torch.float32, device=frames.device)
    occlusion = torch.empty(disparity.shape, dtype=torch.float32, device=frames.device)
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        batch_right, batch_occlusion = forward_splat(
            frames[start:stop].to(device),
            disparity[start:stop].to(device),
            reference_edges=settings.reference_edges,
            backend=settings.backend,
        )
        right[start:stop] = batch_right
        occlusion[start:stop] = (
            batch_occlusion if not settings.min_coverage else clean_occlusion(batch_occlusion, settings.min_coverage)
        )
        if on_progress is not None:
            on_progress(stop, total)
    normalized = normalize_depth(depth, depth_range)
    if settings.invert:
        normalized = 1.0 - normalized
    return WarpResult(right=right, occlusion=occlusion, depth=normalized)
