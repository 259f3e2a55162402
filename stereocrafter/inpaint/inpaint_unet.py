"""Loading StereoCrafter's inpainting UNet: a stock ``UNetSpatioTemporalConditionModel`` with 9 input channels.

Layout (reference.md §5): ``TencentARC/StereoCrafter`` with ``unet_diffusers/{config.json,
diffusion_pytorch_model.safetensors}`` (the official code) or the same files at the root (the HF tree, svjack's
fork). The 9 input channels are [noisy latent (4), warped-frame latent (4), occlusion mask (1)].
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from diffusers import UNetSpatioTemporalConditionModel

from ..model_files import (
    DIFFUSERS_WEIGHTS,
    STEREOCRAFTER_REPO,
    ModelFilesError,
    build_module,
    describe_unet_config,
    find_unet_folder,
    find_weights,
    load_safetensors,
    read_json,
)

logger = logging.getLogger(__name__)

INPAINT_IN_CHANNELS = 9


def check_inpaint_unet(unet: torch.nn.Module) -> None:
    """Raise a :class:`ModelFilesError` unless ``unet`` takes StereoCrafter's 9 input channels."""
    config = getattr(unet, "config", None)
    in_channels = getattr(config, "in_channels", None)
    if in_channels != INPAINT_IN_CHANNELS:
        what = describe_unet_config({"in_channels": in_channels})
        hint = " (8 channels)" if in_channels == 8 else ""
        raise ModelFilesError(
            f"The inpainting UNet must take {INPAINT_IN_CHANNELS} input channels, this one takes {in_channels}: this "
            f"looks like {what}{hint}. Load the UNet from {STEREOCRAFTER_REPO} (unet_diffusers/)."
        )


def load_inpaint_unet(
    root: str | Path, dtype: torch.dtype = torch.float16, device: torch.device | str | None = None
) -> UNetSpatioTemporalConditionModel:
    """Load the StereoCrafter UNet in ``dtype`` (eval mode, gradients off; on the CPU unless ``device``).

    Args:
        root: the ``TencentARC/StereoCrafter`` folder (``unet_diffusers/`` inside, or the files at its root), or its
            Hugging Face cache entry.
        dtype: weights dtype (the checkpoint is fp16).
        device: where the weights go (None: the CPU, memory-mapped; a GPU: read tensor by tensor, see
            :func:`~.model_files.load_safetensors`).

    Raises:
        ModelFilesError: missing/corrupt files, pickle-only weights, or a UNet that is not 9-channel (e.g. the
            DepthCrafter UNet, 8 channels), with the fix in the message.
    """
    folder = find_unet_folder(root, expected_in_channels=INPAINT_IN_CHANNELS)
    config = read_json(folder / "config.json", "StereoCrafter UNet config", STEREOCRAFTER_REPO)
    weights = find_weights(folder, DIFFUSERS_WEIGHTS, STEREOCRAFTER_REPO)
    logger.info("Loading StereoCrafter inpainting UNet from %s", weights)
    state = load_safetensors(weights, STEREOCRAFTER_REPO, device)
    unet = build_module(lambda: UNetSpatioTemporalConditionModel.from_config(config), state, dtype, weights)
    check_inpaint_unet(unet)
    return unet
