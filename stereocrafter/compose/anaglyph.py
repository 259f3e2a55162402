"""Red-cyan anaglyphs from a stereo pair (landscape.md §6.2).

- ``color``: R from the left eye, G and B from the right (what the reference writes).
- ``half-color``: R = BT.601 luma of the left eye, G and B from the right (less retinal rivalry).
- ``gray``: R = luma of the left eye, G = B = luma of the right.
- ``dubois``: Dubois' least-squares matrices, applied in linear light: sRGB is linearised, each eye's
  matrix product is clipped to 0..1, the two are added, clipped, and re-encoded to sRGB.
"""

from __future__ import annotations

from typing import Literal

import torch

from .packing import check_stereo_pair

AnaglyphMethod = Literal["dubois", "color", "half-color", "gray"]
ANAGLYPH_METHODS: tuple[AnaglyphMethod, ...] = ("dubois", "color", "half-color", "gray")

#: BT.601 luma weights.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

#: Dubois red-cyan least-squares matrices (rows: output R, G, B; columns: input R, G, B).
DUBOIS_LEFT = (
    (0.437, 0.449, 0.164),
    (-0.062, -0.062, -0.024),
    (-0.048, -0.050, -0.017),
)
DUBOIS_RIGHT = (
    (-0.011, -0.032, -0.007),
    (0.377, 0.761, 0.009),
    (-0.026, -0.093, 1.234),
)


def srgb_to_linear(values: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded 0..1 to linear light (IEC 61966-2-1)."""
    return torch.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values: torch.Tensor) -> torch.Tensor:
    """Linear light 0..1 to sRGB encoding (IEC 61966-2-1)."""
    values = values.clamp(0.0, 1.0)
    return torch.where(values <= 0.0031308, values * 12.92, 1.055 * values ** (1 / 2.4) - 0.055)


def _luma(images: torch.Tensor) -> torch.Tensor:
    weights = images.new_tensor(LUMA_WEIGHTS)
    return (images[..., :3] * weights).sum(dim=-1)


def make_anaglyph(left: torch.Tensor, right: torch.Tensor, method: AnaglyphMethod = "dubois") -> torch.Tensor:
    """Combine a stereo pair into a red-cyan anaglyph.

    Args:
        left, right: [T, H, W, 3] float images 0..1, sRGB-encoded (ComfyUI IMAGE).
        method: one of :data:`ANAGLYPH_METHODS`.

    Returns:
        [T, H, W, 3] float32 0..1.
    """
    check_stereo_pair(left, right)
    if left.shape[-1] != 3:
        raise ValueError(f"anaglyphs need RGB images with 3 channels, got {left.shape[-1]}.")
    left, right = left.float(), right.float()
    if method == "color":
        return torch.cat([left[..., :1], right[..., 1:]], dim=-1)
    if method == "half-color":
        return torch.cat([_luma(left).unsqueeze(-1), right[..., 1:]], dim=-1)
    if method == "gray":
        luma_right = _luma(right).unsqueeze(-1)
        return torch.cat([_luma(left).unsqueeze(-1), luma_right, luma_right], dim=-1)
    if method == "dubois":
        left_part = srgb_to_linear(left) @ left.new_tensor(DUBOIS_LEFT).T
        right_part = srgb_to_linear(right) @ right.new_tensor(DUBOIS_RIGHT).T
        return linear_to_srgb(left_part.clamp(0.0, 1.0) + right_part.clamp(0.0, 1.0))
    raise ValueError(f"anaglyph method must be one of {ANAGLYPH_METHODS}, got {method!r}.")
