"""StereoCrafter3D: 2D video to stereoscopic 3D in plain PyTorch (no ComfyUI import).

One subpackage per stage, in the order a conversion runs them:

- :mod:`.depth`: video depth (DepthCrafter ``depth_pipeline`` and its UNet, the light per-frame model, per-shot
  depth ranges);
- :mod:`.warp`: depth → ``disparity`` → forward ``splatting`` (CUDA kernel ``splat_cuda`` or PyTorch) into a right
  view and occlusion mask; ``stereo_warp`` runs it on a clip, ``hole_fill`` fills holes without a model;
- :mod:`.inpaint`: the inpainting models behind one interface (``inpaint_model``): StereoCrafter
  (``inpaint_pipeline``, ``inpaint_stream``, ``inpaint_unet``) and StereoCrafter2 (``inpaint2_pipeline``), with their
  ``temporal_chunks`` and spatial ``tiling``;
- :mod:`.svd`: the Stable Video Diffusion parts depth and StereoCrafter share (loading, VAE/CLIP preprocessing,
  compile, memory-lean and frames-major blocks);
- :mod:`.video`: video files in and out (``video_io``, ``encoders``, 16-bit ``depth_file``, shot ``scenes``);
- :mod:`.compose`: what the viewer gets (``packing`` SBS/TB, ``anaglyph``, ``spatial_media`` VR180, ``preview``).

At the top: the streaming converter (``convert``, ``parallel``, ``job_lock``), the command line (``__main__``), the
GPU memory plan (``memory_plan``) and the model folders (``model_files``, ``model_sources``).

The model pipelines need diffusers; they are imported on first use so that splatting and packing work without it.
"""

from importlib import import_module
from typing import Any

from .compose.anaglyph import make_anaglyph
from .compose.packing import pack_stereo
from .warp.disparity import depth_to_disparity, max_disparity_pixels, normalize_depth
from .warp.splatting import forward_splat, splat_torch
from .warp.stereo_warp import WarpResult, WarpSettings, warp_to_right_eye

# Public name -> the module that defines it, imported on first use.
_LAZY = {
    "DepthSettings": "depth.depth_pipeline",
    "VideoDepthPipeline": "depth.depth_pipeline",
    "LightDepthPipeline": "depth.light_depth",
    "LightDepthSettings": "depth.light_depth",
    "InpaintOptions": "inpaint.inpaint_model",
    "InpaintSettings": "inpaint.inpaint_pipeline",
    "StereoInpaintPipeline": "inpaint.inpaint_pipeline",
    "Inpaint2Settings": "inpaint.inpaint2_pipeline",
    "StereoCrafter2Pipeline": "inpaint.inpaint2_pipeline",
    "load_stereocrafter2": "inpaint.inpaint2_pipeline",
    "load_svd_components": "svd.svd_components",
    "fill_holes": "warp.hole_fill",
    "ConvertSettings": "convert",
    "convert_video": "convert",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConvertSettings",
    "DepthSettings",
    "Inpaint2Settings",
    "InpaintOptions",
    "InpaintSettings",
    "LightDepthPipeline",
    "LightDepthSettings",
    "StereoCrafter2Pipeline",
    "StereoInpaintPipeline",
    "VideoDepthPipeline",
    "WarpResult",
    "WarpSettings",
    "convert_video",
    "depth_to_disparity",
    "fill_holes",
    "forward_splat",
    "load_stereocrafter2",
    "load_svd_components",
    "make_anaglyph",
    "max_disparity_pixels",
    "normalize_depth",
    "pack_stereo",
    "splat_torch",
    "warp_to_right_eye",
]
