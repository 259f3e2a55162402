"""The splatting preview: the reference's 2x2 grid of left view, coloured depth, occlusion mask and right view."""

from __future__ import annotations

import torch

from .packing import resize_images

# Degree-6 polynomial fit of matplotlib's "inferno" colour map (Matt Zucker's CC0 fit); within ~1/100
# of the 256-entry table, enough for a preview and it avoids shipping the table or needing matplotlib.
_INFERNO_COEFFS = (
    (0.0002189403691192265, 0.001651004631001012, -0.01948089843709184),
    (0.1065134194856116, 0.5639564367884091, 3.932712388889277),
    (11.60249308247187, -3.972853965665698, -15.9423941062914),
    (-41.70399613139459, 17.43639888205313, 44.35414519872813),
    (77.162935699427, -33.40235894210092, -81.80730925738993),
    (-71.31942824499214, 32.62606426397723, 73.20951985803202),
    (25.13112622477341, -12.24266895238567, -23.07032500287172),
)


def colorize_depth(depth: torch.Tensor) -> torch.Tensor:
    """Inferno colours for normalised depth: [T, H, W] in 0..1 → [T, H, W, 3] float32 in 0..1."""
    t = depth.float().clamp(0.0, 1.0).unsqueeze(-1)
    coeffs = torch.tensor(_INFERNO_COEFFS, dtype=torch.float32, device=depth.device)
    color = coeffs[-1].expand(*t.shape[:-1], 3)
    for coeff in reversed(coeffs[:-1]):
        color = coeff + t * color  # Horner's rule
    return color.clamp(0.0, 1.0)


def splat_preview_grid(
    left: torch.Tensor,
    depth: torch.Tensor,
    occlusion: torch.Tensor,
    right: torch.Tensor,
    scale: float = 1.0,
) -> torch.Tensor:
    """The reference's preview grid, optionally scaled down to save memory.

    Args:
        left: [T, H, W, 3] left view 0..1.
        depth: [T, H, W] normalised depth 0..1 (near = 1).
        occlusion: [T, H, W] mask 0..1, shown white where there are holes.
        right: [T, H, W, 3] splatted right view 0..1.
        scale: size of each panel relative to the input, 0 < scale <= 1.

    Returns:
        [T, 2h, 2w, 3] float32 with h, w = round(H*scale), round(W*scale):
        top row left | depth, bottom row mask | right (as reference.md §1.9).
    """
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"preview scale must be within (0, 1], got {scale}.")
    height = max(1, round(left.shape[1] * scale))
    width = max(1, round(left.shape[2] * scale))
    panels = [
        left.float(),
        colorize_depth(depth),
        occlusion.float().unsqueeze(-1).expand(-1, -1, -1, 3),
        right.float(),
    ]
    top_left, top_right, bottom_left, bottom_right = (resize_images(panel, height, width, "area") for panel in panels)
    top = torch.cat([top_left, top_right], dim=2)
    bottom = torch.cat([bottom_left, bottom_right], dim=2)
    return torch.cat([top, bottom], dim=1)
