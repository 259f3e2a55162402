"""LoadDepthCrafter and VideoDepth: temporally consistent video depth with DepthCrafter."""

from __future__ import annotations

import logging

import comfy.model_management as model_management
import torch
from comfy_api.latest import io

from ..stereocrafter.depth.depth_pipeline import (
    DEPTH_PRESETS,
    DepthSettings,
    VideoDepthPipeline,
    processing_size,
    working_memory_bytes,
)
from ..stereocrafter.depth.depthcrafter_unet import load_depthcrafter_unet
from ..stereocrafter.memory_plan import GIB, fit_resident_depth, gpu_budget_bytes
from ..stereocrafter.model_sources import DEPTHCRAFTER, SVD
from ..stereocrafter.svd.svd_components import load_svd_components
from . import comfy_runtime
from .loader_inputs import compile_wanted, model_folder_input, shared_loader_inputs
from .managed_model import ManagedPipeline, choose_dtype
from .model_folders import resolve_model_dirs
from .schema_fields import extra_fields

logger = logging.getLogger(__name__)

CATEGORY = "StereoCrafter3D/depth"
DepthCrafterModel = io.Custom("SC3D_DEPTHCRAFTER")

_FF_CHUNK_ROWS = 1 << 16


def fit_depth_to_gpu(
    device: torch.device, size: tuple[int, int], num_frames: int, settings: DepthSettings, dtype: torch.dtype
) -> DepthSettings:
    """``settings`` fitted to the GPU memory left once ComfyUI has placed the models (smaller VAE chunks, then a
    shorter window, logged), so a card with less free memory than DepthCrafter's window needs still runs."""
    budget = gpu_budget_bytes(device)
    if budget is None:
        return settings
    free = budget - torch.cuda.memory_allocated(device)
    fitted = fit_resident_depth(free, size, num_frames, settings, dtype)
    if fitted != settings:
        logger.info(
            "DepthCrafter fitted to %.1f GiB of free GPU memory: window %d, encode chunk %d, decode chunk %d "
            "(asked: %d, %d, %d)",
            free / GIB,
            fitted.window_size,
            fitted.encode_chunk_size,
            fitted.decode_chunk_size,
            settings.window_size,
            settings.encode_chunk_size,
            settings.decode_chunk_size,
        )
    return fitted


class LoadDepthCrafter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SC3D_LoadDepthCrafter",
            **extra_fields("SC3D_LoadDepthCrafter"),
            display_name="LoadDepthCrafter",
            category=CATEGORY,
            description=(
                "Loads DepthCrafter (tencent/DepthCrafter, from models/depthcrafter) with the Stable Video Diffusion "
                "xt 1.1 VAE and CLIP encoder (from models/diffusers). Weights are non-commercial."
            ),
            inputs=[
                model_folder_input(
                    "depthcrafter",
                    DEPTHCRAFTER,
                    "Folder in models/depthcrafter holding config.json and diffusion_pytorch_model.safetensors.",
                ),
                *shared_loader_inputs(),
            ],
            outputs=[DepthCrafterModel.Output(display_name="depthcrafter", tooltip="DepthCrafter for VideoDepth.")],
        )

    @classmethod
    def validate_inputs(cls, depthcrafter: str | None = None, svd: str | None = None) -> bool:
        """Accept folder names that are not in the list: ComfyUI 0.33 would reject them before ``execute`` can say
        which folders it searched and about ``download_missing`` (naming the inputs here skips that check)."""
        return True

    @classmethod
    def execute(
        cls, depthcrafter: str, svd: str, precision: str, download_missing: bool, compile: bool = False
    ) -> io.NodeOutput:
        dtype = choose_dtype(precision)
        unet_dir, svd_dir = resolve_model_dirs([(DEPTHCRAFTER, depthcrafter), (SVD, svd)], download_missing)
        unet = load_depthcrafter_unet(unet_dir, dtype)
        components = load_svd_components(svd_dir, dtype)
        offload = model_management.unet_offload_device()
        # Feed-forwards in row chunks: the same math, 4 GiB less UNet memory at 1024x576 (bench/README.md).
        pipeline = VideoDepthPipeline(
            unet,
            components,
            device=offload,
            dtype=dtype,
            ff_chunk_rows=_FF_CHUNK_ROWS,
            compile=compile_wanted(compile, "LoadDepthCrafter"),
        )
        modules = {"unet": unet, "vae": components.vae, "image_encoder": components.image_encoder}
        model_id = f"{unet_dir.resolve()} {svd_dir.resolve()} {dtype}"
        return io.NodeOutput(ManagedPipeline.wrap(pipeline, modules, dtype, model_id))


class VideoDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SC3D_VideoDepth",
            **extra_fields("SC3D_VideoDepth"),
            display_name="VideoDepth",
            category=CATEGORY,
            description=(
                "Flicker-free depth for a whole clip with DepthCrafter (sliding windows). Output: depth frames "
                "(near = bright, 0..1 over the clip) at the input size, ready for ForwardSplat or any other node."
            ),
            inputs=[
                DepthCrafterModel.Input("depthcrafter", tooltip="From LoadDepthCrafter."),
                io.Image.Input("images", tooltip="The video frames."),
                io.Int.Input(
                    "steps",
                    default=DEPTH_PRESETS["depthcrafter"]["num_inference_steps"],
                    min=1,
                    max=50,
                    tooltip="Denoising steps (default DepthCrafter 1.0.1's 5; StereoCrafter: 8).",
                ),
                io.Float.Input(
                    "guidance_scale",
                    default=DEPTH_PRESETS["depthcrafter"]["guidance_scale"],
                    min=1.0,
                    max=3.0,
                    step=0.05,
                    tooltip="Classifier-free guidance (default DepthCrafter 1.0.1's 1.0 = off; StereoCrafter: 1.2, "
                    "about 2x slower).",
                ),
                io.Int.Input(
                    "window_size",
                    default=DEPTH_PRESETS["depthcrafter"]["window_size"],
                    min=2,
                    max=200,
                    tooltip="Frames per window (default DepthCrafter 1.0.1's 110; StereoCrafter: 70).",
                ),
                io.Int.Input(
                    "overlap",
                    default=25,
                    min=0,
                    max=100,
                    tooltip="Frames shared by consecutive windows, blended for consistency.",
                ),
                io.Int.Input(
                    "seed", default=42, min=0, max=2**31 - 1, tooltip="Noise seed; the same seed gives the same depth."
                ),
                io.Int.Input(
                    "max_res",
                    default=1024,
                    min=64,
                    max=2048,
                    step=64,
                    tooltip=(
                        "Longest side DepthCrafter works at (multiples of 64); the depth is resized back to the "
                        "input size."
                    ),
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
        depthcrafter: ManagedPipeline,
        images: torch.Tensor,
        steps: int,
        guidance_scale: float,
        window_size: int,
        overlap: int,
        seed: int,
        max_res: int,
    ) -> io.NodeOutput:
        settings = DepthSettings(
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            window_size=window_size,
            overlap=overlap,
            seed=seed,
            max_res=max_res,
            # Two guidance passes: on an H100 as fast as one batched pass and 3 GiB lighter (bench/README.md).
            batch_cfg=False,
        )
        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(f"images must be a non-empty batch [frames, H, W, 3], got shape {tuple(images.shape)}.")
        pipeline: VideoDepthPipeline = depthcrafter.pipeline
        size = processing_size(images.shape[1], images.shape[2], max_res)
        device = depthcrafter.load(working_memory_bytes(size, images.shape[0], settings, pipeline.dtype))
        pipeline.device = device
        settings = fit_depth_to_gpu(device, size, images.shape[0], settings, pipeline.dtype)

        total = VideoDepthPipeline.num_progress_steps(images.shape[0], settings)
        report = comfy_runtime.progress_reporter(total)
        done = iter(range(1, total + 1))
        depth = pipeline(
            images[..., :3],
            settings,
            progress=lambda _window, _step: report(next(done), total),
            interrupt=model_management.throw_exception_if_processing_interrupted,
        )
        rgb = depth.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()
        return io.NodeOutput(rgb.to(comfy_runtime.output_device()))
