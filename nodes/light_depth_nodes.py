"""LoadDepthAnything and LightVideoDepth: the light per-frame depth model (Depth Anything V2 Small through
transformers), stabilised over time, for GPUs too small for DepthCrafter and users without the SVD licence."""

from __future__ import annotations

import comfy.model_management as model_management
import torch
from comfy_api.latest import io

from ..stereocrafter.depth.light_depth import (
    LightDepthPipeline,
    LightDepthSettings,
    processing_size,
    working_memory_bytes,
)
from ..stereocrafter.model_sources import DEPTH_ANYTHING
from . import comfy_runtime
from .loader_inputs import model_folder_input
from .managed_model import PRECISIONS, ManagedPipeline, choose_dtype
from .model_folders import resolve_model_dirs
from .schema_fields import extra_fields

CATEGORY = "StereoCrafter3D/depth"
DepthAnythingModel = io.Custom("SC3D_DEPTH_ANYTHING")
_DEFAULTS = LightDepthSettings()


class LoadDepthAnything(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SC3D_LoadDepthAnything",
            **extra_fields("SC3D_LoadDepthAnything"),
            display_name="LoadDepthAnything",
            category=CATEGORY,
            description=(
                "Loads a light per-frame depth model (Depth Anything V2 Small, depth-anything/Depth-Anything-V2-"
                "Small-hf, from models/depth_anything; Apache-2.0, about 100 MB) for LightVideoDepth: no diffusion "
                "model, no gated licence, a few hundred MB of GPU memory."
            ),
            inputs=[
                model_folder_input(
                    "depth_anything",
                    DEPTH_ANYTHING,
                    "Folder in models/depth_anything holding config.json, model.safetensors and "
                    "preprocessor_config.json (Depth Anything in the Hugging Face layout).",
                ),
                io.Combo.Input(
                    "precision",
                    options=list(PRECISIONS),
                    default="auto",
                    tooltip="Weights and compute dtype. auto: ComfyUI's choice for your GPU (fp16), fp32 on CPU.",
                ),
                io.Boolean.Input(
                    "download_missing",
                    default=False,
                    tooltip="Download the model from Hugging Face when the folder is missing (about 100 MB).",
                ),
            ],
            outputs=[
                DepthAnythingModel.Output(display_name="depth_anything", tooltip="Depth Anything for LightVideoDepth.")
            ],
        )

    @classmethod
    def validate_inputs(cls, depth_anything: str | None = None) -> bool:
        """Accept folder names that are not in the list: ComfyUI 0.33 would reject them before ``execute`` can say
        which folders it searched and about ``download_missing`` (naming the input here skips that check)."""
        return True

    @classmethod
    def execute(cls, depth_anything: str, precision: str, download_missing: bool) -> io.NodeOutput:
        dtype = choose_dtype(precision)
        (folder,) = resolve_model_dirs([(DEPTH_ANYTHING, depth_anything)], download_missing)
        fix = (
            f"put the {DEPTH_ANYTHING.repo_id} files there, or pick another folder (download_missing fetches the "
            "model only into a folder that does not exist yet)"
        )
        # Built on the offload device; ComfyUI's memory manager moves it to the GPU for each run and back.
        pipeline = LightDepthPipeline.from_pretrained(folder, model_management.unet_offload_device(), dtype, fix)
        model_id = f"{folder.resolve()} {dtype}"
        return io.NodeOutput(ManagedPipeline.wrap(pipeline, {"model": pipeline.model}, dtype, model_id))


class LightVideoDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SC3D_LightVideoDepth",
            **extra_fields("SC3D_LightVideoDepth"),
            display_name="LightVideoDepth",
            category=CATEGORY,
            description=(
                "Depth for a clip with a light per-frame model (LoadDepthAnything), stabilised over time: each "
                "frame's relative depth is scale/shift-aligned to the running clip, then static parts are averaged "
                "over a few frames while moving parts follow at once. Output: depth frames (near = bright, 0..1 over "
                "the clip) at the input size, as VideoDepth's, ready for ForwardSplat."
            ),
            inputs=[
                DepthAnythingModel.Input("depth_anything", tooltip="From LoadDepthAnything."),
                io.Image.Input("images", tooltip="The video frames."),
                io.Boolean.Input(
                    "align",
                    default=_DEFAULTS.align,
                    tooltip=(
                        "Scale/shift-align each frame's depth to the running clip (least squares on the pixels that "
                        "did not move): removes most of a per-frame model's flicker. Off: each frame's own scale."
                    ),
                ),
                io.Float.Input(
                    "temporal_strength",
                    default=_DEFAULTS.temporal_strength,
                    min=0.0,
                    max=0.95,
                    step=0.05,
                    tooltip=(
                        "Weight of the previous frame where nothing moved (0.6: about a 3-4 frame average; 0 = no "
                        "temporal filter). Moving parts always follow the new frame."
                    ),
                ),
                io.Float.Input(
                    "motion_tolerance",
                    default=_DEFAULTS.motion_tolerance,
                    min=0.005,
                    max=1.0,
                    step=0.005,
                    tooltip=(
                        "Depth change, as a share of the clip's depth range, that counts as motion: larger smooths "
                        "more (and may trail behind moving objects), smaller follows the model more closely."
                    ),
                ),
                io.Int.Input(
                    "batch_size",
                    default=_DEFAULTS.batch_size,
                    min=1,
                    max=64,
                    tooltip="Frames per model call: larger is faster on a big GPU and needs more memory.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="depth", tooltip="Depth frames, near = bright, same size and count as images."
                )
            ],
        )

    @classmethod
    def execute(
        cls,
        depth_anything: ManagedPipeline,
        images: torch.Tensor,
        align: bool,
        temporal_strength: float,
        motion_tolerance: float,
        batch_size: int,
    ) -> io.NodeOutput:
        if images.ndim != 4 or images.shape[0] == 0 or images.shape[-1] < 3:
            raise ValueError(f"images must be a non-empty batch [frames, H, W, 3], got shape {tuple(images.shape)}.")
        settings = LightDepthSettings(
            batch_size=batch_size,
            align=align,
            temporal_strength=temporal_strength,
            motion_tolerance=motion_tolerance,
        )
        settings.validate()
        pipeline: LightDepthPipeline = depth_anything.pipeline
        frames, height, width = images.shape[:3]
        size = processing_size(height, width, pipeline.size, pipeline.multiple)
        memory = working_memory_bytes(size, (height, width), min(batch_size, frames), pipeline.dtype)
        pipeline.device = depth_anything.load(memory)

        total = LightDepthPipeline.num_progress_steps(frames, settings)
        report = comfy_runtime.progress_reporter(total)
        depth = pipeline(
            images[..., :3],
            settings,
            progress=lambda batch, _step: report(batch + 1, total),
            interrupt=model_management.throw_exception_if_processing_interrupted,
        )
        rgb = depth.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()
        return io.NodeOutput(rgb.to(comfy_runtime.output_device()))
