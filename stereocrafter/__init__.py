"""StereoCrafter3D: 2D video to stereoscopic 3D in plain PyTorch (no ComfyUI import).

Stages: depth → :mod:`disparity` → :mod:`splatting` (right view + occlusion mask) → inpainting →
:mod:`packing` (SBS/TB) or :mod:`anaglyph`. :mod:`stereo_warp` runs the splatting stage on a whole clip.
"""

from .anaglyph import make_anaglyph
from .disparity import depth_to_disparity, max_disparity_pixels, normalize_depth
from .packing import pack_stereo
from .splatting import forward_splat, splat_torch
from .stereo_warp import WarpResult, WarpSettings, warp_to_right_eye

__all__ = [
    "WarpResult",
    "WarpSettings",
    "depth_to_disparity",
    "forward_splat",
    "make_anaglyph",
    "max_disparity_pixels",
    "normalize_depth",
    "pack_stereo",
    "splat_torch",
    "warp_to_right_eye",
]
