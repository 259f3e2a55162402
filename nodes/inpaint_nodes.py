"""LoadStereoCrafter and StereoInpaint: fill the right view's disocclusion holes with StereoCrafter's SVD UNet, or
with StereoCrafter2 (LoadStereoCrafter2 in inpaint2_nodes.py gives the same model type)."""

from __future__ import annotations

from dataclasses import replace

import comfy.model_management as model_management
import torch
from comfy_api.latest import io

from ..stereocrafter.inpaint.inpaint_model import InpaintOptions, check_inpaint_model
from ..stereocrafter.inpaint.inpaint_pipeline import (
    DEFAULT_PIXEL_FRAMES,
    InpaintProgress,
    InpaintSettings,
    StereoInpaintPipeline,
)
from ..stereocrafter.inpaint.inpaint_unet import load_inpaint_unet
from ..stereocrafter.model_sources import STEREOCRAFTER, SVD
from ..stereocrafter.svd.svd_components import load_svd_components
from . import comfy_runtime
from .loader_inputs import compile_wanted, model_folder_input, shared_loader_inputs
from .managed_model import ManagedPipeline, choose_dtype
from .model_folders import resolve_model_dirs
from .schema_fields import extra_fields

CATEGORY = "StereoCrafter3D/inpaint"
StereoCrafterModel = io.Custom("SC3D_STEREOCRAFTER")

#: GPU memory the default automatic tile budget (1024x640 px x 23 frames per UNet call) needs beyond the weights.
_BYTES_PER_DEFAULT_BUDGET = 6 * 1024**3
_PROGRESS_RESOLUTION = 1000


class LoadStereoCrafter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SC3D_LoadStereoCrafter",
            **extra_fields("SC3D_LoadStereoCrafter"),
            display_name="LoadStereoCrafter",
            category=CATEGORY,
            description=(
                "Loads the StereoCrafter inpainting UNet (TencentARC/StereoCrafter, from models/stereocrafter) with "
                "the Stable Video Diffusion xt 1.1 VAE and CLIP encoder (from models/diffusers). Weights "
                "are non-commercial."
            ),
            inputs=[
                model_folder_input(
                    "stereocrafter",
                    STEREOCRAFTER,
                    "Folder in models/stereocrafter (with unet_diffusers/, or config.json + weights at its root).",
                ),
                *shared_loader_inputs(),
            ],
            outputs=[
                StereoCrafterModel.Output(display_name="stereocrafter", tooltip="StereoCrafter for StereoInpaint.")
            ],
        )

    @classmethod
    def validate_inputs(cls, stereocrafter: str | None = None, svd: str | None = None) -> bool:
        """Accept folder names that are not in the list: ComfyUI 0.33 would reject them before ``execute`` can say
        which folders it searched and about ``download_missing`` (naming the inputs here skips that check)."""
        return True

    @classmethod
    def execute(
        cls, stereocrafter: str, svd: str, precision: str, download_missing: bool, compile: bool = False
    ) -> io.NodeOutput:
        dtype = choose_dtype(precision)
        unet_dir, svd_dir = resolve_model_dirs([(STEREOCRAFTER, stereocrafter), (SVD, svd)], download_missing)
        unet = load_inpaint_unet(unet_dir, dtype)
        components = load_svd_components(svd_dir, dtype)
        pipeline = StereoInpaintPipeline.from_components(components, unet)
        pipeline.to(model_management.unet_offload_device())
        if compile_wanted(compile, "LoadStereoCrafter"):
            pipeline.compile()
        modules = {"unet": unet, "vae": components.vae, "image_encoder": components.image_encoder}
        model_id = f"{unet_dir.resolve()} {svd_dir.resolve()} {dtype}"
        return io.NodeOutput(ManagedPipeline.wrap(pipeline, modules, dtype, model_id))


class StereoInpaint(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SC3D_StereoInpaint",
            **extra_fields("SC3D_StereoInpaint"),
            display_name="StereoInpaint",
            category=CATEGORY,
            description=(
                "Fills the holes of a warped right view (from ForwardSplat or any warp + mask) with StereoCrafter or "
                "StereoCrafter2, in temporal chunks and spatial tiles so 1080p and long clips fit in memory."
            ),
            inputs=[
                StereoCrafterModel.Input("stereocrafter", tooltip="From LoadStereoCrafter or LoadStereoCrafter2."),
                io.Image.Input("right", tooltip="Warped right-eye frames with holes (ForwardSplat's right output)."),
                io.Mask.Input(
                    "occlusion",
                    tooltip="Holes to fill, 1 = hole (ForwardSplat's occlusion output); same frames and size.",
                ),
                io.Int.Input(
                    "steps", default=8, min=1, max=50, tooltip="Denoising steps (reference: 8; StereoCrafter2: 10)."
                ),
                io.Float.Input(
                    "guidance_scale",
                    default=1.0,
                    min=1.0,
                    max=3.0,
                    step=0.01,
                    tooltip="1.0 (default) skips guidance: half the UNet work. The reference uses 1.01, a ~1 % change. "
                    "StereoCrafter2 runs no guidance (ignored).",
                ),
                io.Int.Input(
                    "frames_chunk",
                    default=23,
                    min=2,
                    max=81,
                    tooltip="Frames per temporal chunk (reference: 23; StereoCrafter2: 81, rounded down to 1 + 4k).",
                ),
                io.Int.Input(
                    "overlap",
                    default=3,
                    min=0,
                    max=16,
                    tooltip="Frames shared by consecutive chunks (reference: 3; StereoCrafter2: 10).",
                ),
                io.Int.Input(
                    "tile_num",
                    default=0,
                    min=0,
                    max=8,
                    tooltip=(
                        "Tiles per side; 0 = automatic (StereoCrafter from free GPU memory, StereoCrafter2 2). More "
                        "tiles = less memory, slower (reference: 1 or 2)."
                    ),
                ),
                io.Int.Input(
                    "seed", default=0, min=0, max=2**31 - 1, tooltip="Noise seed; the same seed gives the same result."
                ),
                io.Boolean.Input(
                    "composite",
                    default=True,
                    tooltip=(
                        "Keep the warped pixels outside the (slightly grown, feathered) holes: full detail and "
                        "colour there. Off = the reference (whole frame regenerated)."
                    ),
                ),
                io.Combo.Input(
                    "seams",
                    options=["crossfade", "reference"],
                    default="crossfade",
                    tooltip=(
                        "crossfade: blend the overlapping frames of consecutive chunks (no brightness step). "
                        "reference: discard them."
                    ),
                ),
                io.Combo.Input(
                    "fit",
                    options=["pad", "crop"],
                    default="pad",
                    tooltip=(
                        "pad: pad to the model's size multiple and remove it after (keeps every pixel and frame). "
                        "crop: the reference's crop to multiples of 128 (StereoCrafter2: a clip shorter than a chunk "
                        "is cut to 1 + 4k frames, the rest keeps the warped input)."
                    ),
                ),
            ],
            outputs=[io.Image.Output(display_name="right", tooltip="Inpainted right-eye frames, same size and count.")],
        )

    @classmethod
    def execute(
        cls,
        stereocrafter: ManagedPipeline,
        right: torch.Tensor,
        occlusion: torch.Tensor,
        steps: int,
        guidance_scale: float,
        frames_chunk: int,
        overlap: int,
        tile_num: int,
        seed: int,
        composite: bool,
        seams: str,
        fit: str,
    ) -> io.NodeOutput:
        if right.ndim == 4 and occlusion.ndim == 3 and occlusion.shape[0] != right.shape[0]:
            raise ValueError(
                f"occlusion has {occlusion.shape[0]} frames but right has {right.shape[0]}; they must match one to "
                "one. Connect ForwardSplat's right and occlusion outputs from the same run."
            )
        model = check_inpaint_model(stereocrafter.pipeline, "stereocrafter")
        options = InpaintOptions(
            steps=steps,
            guidance_scale=guidance_scale,
            chunk_frames=frames_chunk,
            chunk_overlap=overlap,
            tiles=(tile_num, tile_num) if tile_num > 0 else None,
            composite=composite,
            seams=seams,
            fit=fit,
        )
        settings = model.settings_from(options)
        device = stereocrafter.load(_BYTES_PER_DEFAULT_BUDGET)
        if isinstance(settings, InpaintSettings) and tile_num == 0 and device.type == "cuda":
            # Scale the automatic tile budget with the memory left after loading the weights.
            free = model_management.get_free_memory(device)
            budget = int(DEFAULT_PIXEL_FRAMES * max(free * 0.8 / _BYTES_PER_DEFAULT_BUDGET, 0.25))
            settings = replace(settings, max_pixel_frames=budget)
        report = comfy_runtime.progress_reporter(_PROGRESS_RESOLUTION)

        def progress(state: InpaintProgress) -> None:
            report(round(state.fraction * _PROGRESS_RESOLUTION), _PROGRESS_RESOLUTION)

        result = model(
            right[..., :3],
            occlusion,
            settings,
            seed=seed,
            progress=progress,
            interrupt=model_management.throw_exception_if_processing_interrupted,
        )
        return io.NodeOutput(result.to(comfy_runtime.output_device()))
