"""ComposeSBS and ComposeAnaglyph: the frame packings and anaglyphs people view on their devices."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..stereocrafter.compose.anaglyph import ANAGLYPH_METHODS, make_anaglyph
from ..stereocrafter.compose.packing import LAYOUTS, RESIZE_FILTERS, pack_stereo
from .schema_fields import extra_fields

CATEGORY = "StereoCrafter3D/output"


class ComposeSBS(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SC3D_ComposeSBS",
            **extra_fields("SC3D_ComposeSBS"),
            display_name="ComposeSBS",
            category=CATEGORY,
            description="Packs the left and right eyes into side-by-side or top-bottom frames.",
            inputs=[
                io.Image.Input("left", tooltip="Left-eye frames (usually the original video)."),
                io.Image.Input("right", tooltip="Right-eye frames, the same size and frame count as left."),
                io.Combo.Input(
                    "layout",
                    options=list(LAYOUTS),
                    default="full SBS",
                    tooltip=(
                        "full SBS: left | right at full width (VR headsets, DeoVR/SKYBOX). half SBS: each eye "
                        "squeezed to half width (3D TVs, YouTube 3D). TB: left on top. cross-eyed: right | "
                        "left, for free viewing."
                    ),
                ),
                io.Combo.Input(
                    "resize_filter",
                    options=list(RESIZE_FILTERS),
                    default="bicubic",
                    tooltip="Filter used to squeeze the eyes in the half formats (antialiased bicubic is sharpest).",
                ),
            ],
            outputs=[io.Image.Output(display_name="stereo", tooltip="The packed stereo frames.")],
        )

    @classmethod
    def execute(cls, left: torch.Tensor, right: torch.Tensor, layout: str, resize_filter: str) -> io.NodeOutput:
        return io.NodeOutput(pack_stereo(left, right, layout, resize_filter))


class ComposeAnaglyph(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SC3D_ComposeAnaglyph",
            **extra_fields("SC3D_ComposeAnaglyph"),
            display_name="ComposeAnaglyph",
            category=CATEGORY,
            description="Combines the left and right eyes into a red-cyan anaglyph for glasses.",
            inputs=[
                io.Image.Input("left", tooltip="Left-eye frames (seen through the red filter)."),
                io.Image.Input("right", tooltip="Right-eye frames (seen through the cyan filter)."),
                io.Combo.Input(
                    "method",
                    options=list(ANAGLYPH_METHODS),
                    default="dubois",
                    tooltip=(
                        "dubois: least-squares colours with the least ghosting (best default). color: red "
                        "from left, green+blue from right (the original StereoCrafter). half-color: grey red "
                        "channel, less rivalry. gray: monochrome, least rivalry."
                    ),
                ),
            ],
            outputs=[io.Image.Output(display_name="anaglyph", tooltip="The red-cyan anaglyph frames.")],
        )

    @classmethod
    def execute(cls, left: torch.Tensor, right: torch.Tensor, method: str) -> io.NodeOutput:
        return io.NodeOutput(make_anaglyph(left[..., :3], right[..., :3], method))
