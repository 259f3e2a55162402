"""StereoCrafter3D: 2D video to stereoscopic 3D in plain PyTorch (no ComfyUI import).

Stages: :mod:`depth_pipeline` (DepthCrafter video depth) → :mod:`disparity` → :mod:`splatting` (right view +
occlusion mask; :mod:`stereo_warp` runs it on a whole clip) → :mod:`inpaint_pipeline` (StereoCrafter inpainting) →
:mod:`packing` (SBS/TB) or :mod:`anaglyph`.

The model pipelines need diffusers; they are imported on first use so that splatting and packing work without it.
"""

from importlib import import_module
from typing import Any

from .anaglyph import make_anaglyph
from .disparity import depth_to_disparity, max_disparity_pixels, normalize_depth
from .packing import pack_stereo
from .splatting import forward_splat, splat_torch
from .stereo_warp import WarpResult, WarpSettings, warp_to_right_eye

_LAZY = {
    "DepthSettings": "depth_pipeline",
    "VideoDepthPipeline": "depth_pipeline",
    "InpaintSettings": "inpaint_pipeline",
    "StereoInpaintPipeline": "inpaint_pipeline",
    "load_svd_components": "svd_components",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DepthSettings",
    "InpaintSettings",
    "StereoInpaintPipeline",
    "VideoDepthPipeline",
    "WarpResult",
    "WarpSettings",
    "depth_to_disparity",
    "forward_splat",
    "load_svd_components",
    "make_anaglyph",
    "max_disparity_pixels",
    "normalize_depth",
    "pack_stereo",
    "splat_torch",
    "warp_to_right_eye",
]
