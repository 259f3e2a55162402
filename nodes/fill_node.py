"""FillHoles: the splat's occlusion holes filled from the background side, without a model."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..stereocrafter.warp.hole_fill import BLEND_PIXELS, MIN_COVERAGE, clean_occlusion, fill_holes
from ..stereocrafter.warp.stereo_warp import check_frames
from . import comfy_runtime
from .schema_fields import extra_fields

CATEGORY = "StereoCrafter3D/stereo"

# Working memory per pixel of one batch: the row scans' indices, prefix sums and the output copy (fp32).
_FILL_BYTES_PER_PIXEL = 64


class FillHoles(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SC3D_FillHoles",
            **extra_fields("SC3D_FillHoles"),
            display_name="FillHoles",
            category=CATEGORY,
            description=(
                "Fills the holes of ForwardSplat's right view without a model: each hole takes the background "
                "beside it (its right-hand side, where the disoccluded background continues), blended in over a "
                "few pixels; frame-border strips too. Fast on the GPU and the CPU, the same for identical frames. "
                "Outputs the mask of the filled pixels, so StereoInpaint can still redo them."
            ),
            inputs=[
                io.Image.Input("right", tooltip="The warped view with holes (ForwardSplat's right)."),
                io.Mask.Input("occlusion", tooltip="ForwardSplat's occlusion mask (1 = hole)."),
                io.Float.Input(
                    "min_coverage",
                    default=MIN_COVERAGE,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip=(
                        "Pixels whose splat coverage (1 - occlusion), or its average over 5 pixels of the row, is "
                        "below this are holes too: soft depth edges leave scattered pixels in a disocclusion, this "
                        "makes them one clean hole. 0 = only pixels where nothing landed (the reference's mask)."
                    ),
                ),
                io.Int.Input(
                    "blend",
                    default=BLEND_PIXELS,
                    min=0,
                    max=64,
                    tooltip="Pixels over which the fill fades from the hole's border into the background behind it.",
                ),
                io.Combo.Input(
                    "background_side",
                    options=["right", "left"],
                    default="right",
                    tooltip="Where each hole's background is: right for a right view (ForwardSplat), left for a "
                    "left view warped from the right.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="right", tooltip="The view with its holes filled."),
                io.Mask.Output(
                    display_name="occlusion",
                    tooltip="The holes that were filled (1), the input mask elsewhere: for StereoInpaint.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, right: torch.Tensor, occlusion: torch.Tensor, min_coverage: float, blend: int, background_side: str
    ) -> io.NodeOutput:
        check_frames(right, "right")
        right = right[..., :3]
        if occlusion.ndim == 2:
            occlusion = occlusion.unsqueeze(0)
        if occlusion.shape != right.shape[:3]:
            raise ValueError(
                f"occlusion is {tuple(occlusion.shape)} but right is {tuple(right.shape[:3])} frames x H x W: connect "
                "the mask that came with these frames (ForwardSplat's occlusion)."
            )
        device = comfy_runtime.compute_device()
        total, height, width = right.shape[:3]
        batch = comfy_runtime.frames_per_batch(height, width, _FILL_BYTES_PER_PIXEL, device)
        report = comfy_runtime.progress_reporter(total)
        out = comfy_runtime.output_device()
        filled, masks = [], []
        for start in range(0, total, batch):
            frames, holes = right[start : start + batch].to(device), occlusion[start : start + batch].to(device)
            filled.append(fill_holes(frames, holes, min_coverage, blend, background_side).to(out))
            masks.append(clean_occlusion(holes, min_coverage).to(out))
            report(min(start + batch, total), total)
        return io.NodeOutput(torch.cat(filled), torch.cat(masks))
