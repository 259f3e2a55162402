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
    from .nodes.splat_node import ForwardSplat

    class StereoCrafter3DExtension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return [ForwardSplat, ComposeSBS, ComposeAnaglyph]

    async def comfy_entrypoint() -> StereoCrafter3DExtension:
        return StereoCrafter3DExtension()
