"""Schema fields that only newer ComfyUI versions have, passed only where ``io.Schema`` takes them."""

from __future__ import annotations

import dataclasses

from comfy_api.latest import io

#: Search words for each node id (ComfyUI 0.33's node search matches them besides the display name).
SEARCH_ALIASES: dict[str, list[str]] = {
    "SC3D_LoadDepthCrafter": ["depthcrafter", "video depth model", "depth estimation", "2d to 3d"],
    "SC3D_VideoDepth": ["video depth", "depth map", "depth estimation", "depthcrafter", "2d to 3d"],
    "SC3D_LoadDepthAnything": ["depth anything", "light depth model", "depth estimation", "no diffusion", "2d to 3d"],
    "SC3D_LightVideoDepth": ["video depth", "depth anything", "fast depth", "depth estimation", "2d to 3d"],
    "SC3D_ForwardSplat": ["depth warp", "stereo", "right eye", "disparity", "novel view", "2d to 3d"],
    "SC3D_LoadStereoCrafter": ["stereocrafter", "stereo inpainting model", "2d to 3d"],
    "SC3D_LoadStereoCrafter2": ["stereocrafter2", "wan vace", "stereo inpainting model", "2d to 3d"],
    "SC3D_FillHoles": ["fill holes", "hole filling", "disocclusion", "no model", "stereo", "2d to 3d"],
    "SC3D_StereoInpaint": ["stereo inpaint", "fill holes", "disocclusion", "stereo", "2d to 3d"],
    "SC3D_ComposeSBS": ["sbs", "side by side", "top bottom", "half sbs", "stereo", "vr", "3d tv"],
    "SC3D_ComposeAnaglyph": ["anaglyph", "red cyan", "3d glasses", "stereo"],
    "SC3D_ConvertVideoTo3D": ["2d to 3d", "video to 3d", "stereo", "stereoscopic", "sbs", "anaglyph", "vr", "3d video"],
}


def supported(fields: dict[str, object], schema: type = io.Schema) -> dict[str, object]:
    """``fields`` without the ones ``schema`` (a dataclass) does not have, e.g. ``search_aliases`` on 0.3.75."""
    names = {field.name for field in dataclasses.fields(schema)}
    return {name: value for name, value in fields.items() if name in names}


def extra_fields(node_id: str) -> dict[str, object]:
    """The newer-ComfyUI schema fields of ``node_id`` that this ComfyUI takes (``io.Schema(**extra_fields(id))``)."""
    return supported({"search_aliases": SEARCH_ALIASES[node_id]})
