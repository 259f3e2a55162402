"""The inputs that LoadDepthCrafter and LoadStereoCrafter share: model folder, SVD folder, precision, download,
compile."""

from __future__ import annotations

import logging

import comfy.model_management as model_management
from comfy_api.latest import io

from ..stereocrafter.model_sources import SVD, ModelSource
from .managed_model import PRECISIONS
from .model_folders import list_model_dirs

logger = logging.getLogger(__name__)


def model_folder_input(name: str, source: ModelSource, tooltip: str) -> io.Combo.Input:
    """A combo of the sub-folders of ``source``'s model folder, its download target first."""
    return io.Combo.Input(name, options=list_model_dirs(source), default=source.default_name, tooltip=tooltip)


def shared_loader_inputs() -> list[io.Input]:
    """``svd``, ``precision``, ``download_missing`` and ``compile``, in that order (their position is saved in
    workflows: new inputs go at the end; ``compile`` is optional so that API prompts without it still validate)."""
    return [
        model_folder_input(
            "svd",
            SVD,
            "Folder in models/diffusers holding stable-video-diffusion-img2vid-xt-1-1 (vae/, image_encoder/, ...).",
        ),
        io.Combo.Input(
            "precision",
            options=list(PRECISIONS),
            default="auto",
            tooltip=(
                "Weights and compute dtype. auto: ComfyUI's choice for your GPU (fp16 as the reference), fp32 on CPU."
            ),
        ),
        io.Boolean.Input(
            "download_missing",
            default=False,
            tooltip=(
                "Download missing weights from Hugging Face (about 3 GB + 1.5 GB). The SVD repository is gated: "
                "accept its licence on huggingface.co and log in first."
            ),
        ),
        io.Boolean.Input(
            "compile",
            default=False,
            optional=True,  # API prompts written before this input keep validating
            tooltip=(
                "torch.compile the model: faster on long videos with an NVIDIA GPU (VideoDepth about 1.9x, "
                "StereoInpaint about 1.6x), but the first run compiles for a few minutes (a later session on the "
                "same machine reuses Inductor's disk cache: VideoDepth then compiled in 30 s). The output changes "
                "by fp16 rounding only. Ignored on the CPU."
            ),
        ),
    ]


def compile_wanted(compile: bool, node: str) -> bool:
    """``compile`` when ComfyUI computes on CUDA; on other devices it is ignored (logged)."""
    if not compile:
        return False
    device = model_management.get_torch_device()
    if device.type != "cuda":
        logger.warning("%s: compile needs an NVIDIA GPU (ComfyUI computes on %s); ignored.", node, device)
        return False
    return True
