"""The inputs that LoadDepthCrafter and LoadStereoCrafter share: model folder, SVD folder, precision, download."""

from __future__ import annotations

from comfy_api.latest import io

from ..stereocrafter.model_sources import SVD, ModelSource
from .managed_model import PRECISIONS
from .model_folders import list_model_dirs


def model_folder_input(name: str, source: ModelSource, tooltip: str) -> io.Combo.Input:
    """A combo of the sub-folders of ``source``'s model folder, its download target first."""
    return io.Combo.Input(name, options=list_model_dirs(source), default=source.default_name, tooltip=tooltip)


def shared_loader_inputs() -> list[io.Input]:
    """``svd``, ``precision`` and ``download_missing``, in that order (their position is saved in workflows)."""
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
    ]
