"""StereoCrafter3D for ComfyUI: 2D video to stereoscopic 3D (side-by-side, top-bottom, anaglyph).

ComfyUI loads this folder as a package and registers the nodes through ``comfy_entrypoint`` (V3 schema).
Only that is exported: a ``NODE_CLASS_MAPPINGS`` here would make ComfyUI skip the entrypoint.
"""

from __future__ import annotations

try:
    from comfy_api.latest import ComfyExtension, io
except ImportError:  # imported outside ComfyUI, e.g. by pytest collecting the repository root
    ComfyExtension = None

if ComfyExtension is not None:
    from .nodes.compose_nodes import ComposeAnaglyph, ComposeSBS
    from .nodes.convert_node import ConvertVideoTo3D
    from .nodes.depth_nodes import LoadDepthCrafter, VideoDepth
    from .nodes.fill_node import FillHoles
    from .nodes.inpaint2_nodes import LoadStereoCrafter2
    from .nodes.inpaint_nodes import LoadStereoCrafter, StereoInpaint
    from .nodes.light_depth_nodes import LightVideoDepth, LoadDepthAnything
    from .nodes.model_folders import register_model_folders
    from .nodes.splat_node import ForwardSplat

    class StereoCrafter3DExtension(ComfyExtension):
        async def on_load(self) -> None:
            """ComfyUI 0.33+: add the model folders before any node lists them."""
            register_model_folders()

        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            register_model_folders()  # ComfyUI 0.3.75 never calls on_load(); a no-op after it
            return [
                LoadDepthCrafter,
                VideoDepth,
                LoadDepthAnything,
                LightVideoDepth,
                ForwardSplat,
                FillHoles,
                LoadStereoCrafter,
                LoadStereoCrafter2,
                StereoInpaint,
                ComposeSBS,
                ComposeAnaglyph,
                ConvertVideoTo3D,
            ]

    async def comfy_entrypoint() -> StereoCrafter3DExtension:
        return StereoCrafter3DExtension()
