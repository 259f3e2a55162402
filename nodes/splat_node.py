"""ForwardSplat: frames + depth → right view, occlusion mask and a preview grid."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..stereocrafter.compose.preview import splat_preview_grid
from ..stereocrafter.warp.disparity import DISPARITY_UNITS
from ..stereocrafter.warp.stereo_warp import WarpSettings, warp_to_right_eye
from . import comfy_runtime
from .schema_fields import extra_fields

CATEGORY = "StereoCrafter3D/stereo"

# Working memory per pixel of one splat batch: inputs and outputs in fp32 plus the PyTorch fallback's
# index and contribution buffers (the CUDA kernel needs far less).
_SPLAT_BYTES_PER_PIXEL = 160


def parallax_inputs() -> list[io.Input]:
    """``max_disparity``, ``disparity_unit`` and ``convergence``: how depth becomes parallax (ForwardSplat and
    ConvertVideoTo3D)."""
    return [
        io.Float.Input(
            "max_disparity",
            default=20.0,
            min=0.0,
            max=1000.0,
            step=0.1,
            tooltip=(
                "Largest shift of the nearest and farthest points, in the unit below. The total "
                "parallax range is twice this. Reference: 20 px; comfortable: 1-3 % of width."
            ),
        ),
        io.Combo.Input(
            "disparity_unit",
            options=list(DISPARITY_UNITS),
            default="pixels",
            tooltip="Whether max_disparity is in pixels or a percentage of the frame width.",
        ),
        io.Float.Input(
            "convergence",
            default=0.5,
            min=0.0,
            max=1.0,
            step=0.01,
            tooltip=(
                "Normalised depth that sits on the screen plane (zero parallax). 0.5 = mid-depth "
                "(reference); higher pushes the scene behind the screen, lower pops it out."
            ),
        ),
    ]


class ForwardSplat(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SC3D_ForwardSplat",
            **extra_fields("SC3D_ForwardSplat"),
            display_name="ForwardSplat",
            category=CATEGORY,
            description=(
                "Turns the input frames (the left eye) and their depth into the right eye by forward "
                "splatting, plus a mask of the holes that open up behind near objects (to inpaint)."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The video frames, used as the left eye."),
                io.MultiType.Input(
                    "depth",
                    types=[io.Image, io.Mask],
                    tooltip=(
                        "Depth for every frame, near = bright (as DepthCrafter, Depth Anything and most "
                        "depth nodes output it). IMAGE or MASK; colour channels are averaged and a "
                        "different size is resized to the frames. Frame counts must match."
                    ),
                ),
                *parallax_inputs(),
                io.Boolean.Input(
                    "invert",
                    default=False,
                    tooltip="Turn on if your depth map has far = bright (e.g. metric depth or distance).",
                ),
                io.Boolean.Input(
                    "reference_edges",
                    default=False,
                    tooltip=(
                        "Reproduce the original StereoCrafter border rule exactly (its bottom row is always "
                        "a hole and the right border is partly dropped). Off: every pixel that lands inside "
                        "the frame is kept."
                    ),
                ),
                io.Float.Input(
                    "preview_scale",
                    default=0.5,
                    min=0.1,
                    max=1.0,
                    step=0.05,
                    tooltip=(
                        "Size of each panel of the preview grid (left, depth, mask, right) relative to the "
                        "frames; 1.0 = the reference's full-size grid, which needs 4x the frames' memory."
                    ),
                ),
                io.Combo.Input(
                    "backend",
                    options=["auto", "cuda", "torch"],
                    default="auto",
                    tooltip=(
                        "auto: the compiled CUDA kernel on NVIDIA GPUs once it is built (in the background, about "
                        "30 s on first use), else pure PyTorch (same result). cuda: require the kernel (waits for the "
                        "build). torch: always the PyTorch implementation."
                    ),
                ),
            ],
            outputs=[
                io.Image.Output(display_name="right", tooltip="The right-eye frames; holes are black."),
                io.Mask.Output(display_name="occlusion", tooltip="1 where the right eye has a hole to inpaint."),
                io.Image.Output(display_name="preview", tooltip="2x2 grid: left | depth on top, mask | right below."),
            ],
        )

    @classmethod
    def execute(
        cls,
        images: torch.Tensor,
        depth: torch.Tensor,
        max_disparity: float,
        disparity_unit: str,
        convergence: float,
        invert: bool,
        reference_edges: bool,
        preview_scale: float,
        backend: str,
    ) -> io.NodeOutput:
        settings = WarpSettings(
            max_disparity=max_disparity,
            disparity_unit=disparity_unit,
            convergence=convergence,
            invert=invert,
            reference_edges=reference_edges,
            backend=backend,
        )
        device = comfy_runtime.compute_device()
        total, height, width = images.shape[:3] if images.ndim == 4 else (0, 0, 0)
        result = warp_to_right_eye(
            images,
            depth,
            settings,
            device=device,
            batch_size=comfy_runtime.frames_per_batch(height, width, _SPLAT_BYTES_PER_PIXEL, device),
            on_progress=comfy_runtime.progress_reporter(total),
        )
        preview = splat_preview_grid(images[..., :3], result.depth, result.occlusion, result.right, preview_scale)
        out = comfy_runtime.output_device()
        return io.NodeOutput(result.right.to(out), result.occlusion.to(out), preview.to(out))
