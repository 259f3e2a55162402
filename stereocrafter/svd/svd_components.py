"""The shared loader for the Stable Video Diffusion xt-1-1 components used by depth AND inpainting.

Loads the VAE (``AutoencoderKLTemporalDecoder``), the CLIP image encoder (``CLIPVisionModelWithProjection``), the CLIP
normalisation constants (``feature_extractor/preprocessor_config.json``) and the Euler scheduler config from the
``stabilityai/stable-video-diffusion-img2vid-xt-1-1`` layout (reference.md §5). Weights: safetensors only,
``*.fp16.safetensors`` preferred. The SVD ``unet/`` is never loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from ..model_files import (
    DIFFUSERS_WEIGHTS,
    SVD_REPO,
    TRANSFORMERS_WEIGHTS,
    ModelFilesError,
    build_module,
    find_svd_folder,
    find_weights,
    load_safetensors,
    read_json,
)
from .svd_preprocess import move_module

logger = logging.getLogger(__name__)

# OpenAI CLIP normalisation, used when preprocessor_config.json does not override it.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class SVDComponents:
    """The SVD parts both pipelines use. Modules are on the CPU after loading, in eval mode, gradients off.

    Attributes:
        vae: temporal-decoder VAE; ``vae.config.scaling_factor`` (0.18215) and ``force_upcast`` are read from it.
        image_encoder: CLIP ViT-H/14 with projection; ``image_embeds`` is [N, projection_dim=1024].
        clip_mean, clip_std: per-channel CLIP normalisation for 0..1 RGB input (the feature extractor's only job here).
        clip_size: the CLIP input side (224).
        scheduler_config: ``scheduler/scheduler_config.json``; build a fresh scheduler per run with
            :meth:`make_scheduler` (schedulers are stateful).
        folder: the SVD folder the parts came from.
    """

    vae: AutoencoderKLTemporalDecoder
    image_encoder: CLIPVisionModelWithProjection
    clip_mean: tuple[float, float, float] = CLIP_MEAN
    clip_std: tuple[float, float, float] = CLIP_STD
    clip_size: int = 224
    scheduler_config: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None

    @property
    def scheduler(self) -> EulerDiscreteScheduler:
        """A NEW Euler scheduler from the stored config (v-prediction, Karras sigmas for SVD)."""
        return self.make_scheduler()

    def make_scheduler(self) -> EulerDiscreteScheduler:
        """A fresh ``EulerDiscreteScheduler`` from ``scheduler_config`` (no shared step state between runs)."""
        return EulerDiscreteScheduler.from_config(self.scheduler_config)

    @property
    def vae_scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> SVDComponents:
        """Move/cast both modules in place; returns self."""
        move_module(self.vae, device, dtype)
        move_module(self.image_encoder, device, dtype)
        return self


def load_vae(
    folder: Path, dtype: torch.dtype, device: torch.device | str | None = None
) -> AutoencoderKLTemporalDecoder:
    """``vae/``: config.json + diffusion_pytorch_model(.fp16).safetensors → ``AutoencoderKLTemporalDecoder``."""
    config = read_json(folder / "config.json", "SVD VAE config", SVD_REPO)
    class_name = config.get("_class_name", "AutoencoderKLTemporalDecoder")
    if class_name != "AutoencoderKLTemporalDecoder":
        raise ModelFilesError(
            f"{folder} holds a {class_name}, not SVD's AutoencoderKLTemporalDecoder: download {SVD_REPO} (xt-1-1)."
        )
    weights = find_weights(folder, DIFFUSERS_WEIGHTS, SVD_REPO)
    logger.info("Loading SVD VAE from %s", weights)
    state = load_safetensors(weights, SVD_REPO, device)
    return build_module(lambda: AutoencoderKLTemporalDecoder.from_config(config), state, dtype, weights)


def load_image_encoder(
    folder: Path, dtype: torch.dtype, device: torch.device | str | None = None
) -> CLIPVisionModelWithProjection:
    """``image_encoder/``: config.json + model(.fp16).safetensors → ``CLIPVisionModelWithProjection``."""
    config_dict = read_json(folder / "config.json", "SVD CLIP image encoder config", SVD_REPO)
    if config_dict.get("model_type", "clip_vision_model") != "clip_vision_model":
        raise ModelFilesError(
            f"{folder / 'config.json'} is a {config_dict.get('model_type')} config, not a CLIP vision model: download "
            f"image_encoder/ again from {SVD_REPO}."
        )
    config = CLIPVisionConfig.from_dict(config_dict)
    # SDPA attention: same math as eager, less memory; transformers picks it only through from_pretrained.
    config._attn_implementation = "sdpa"
    weights = find_weights(folder, TRANSFORMERS_WEIGHTS, SVD_REPO)
    logger.info("Loading SVD CLIP image encoder from %s", weights)
    state = load_safetensors(weights, SVD_REPO, device)
    return build_module(lambda: CLIPVisionModelWithProjection(config), state, dtype, weights)


def load_clip_normalization(folder: Path) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    """(mean, std, side) from ``feature_extractor/preprocessor_config.json``."""
    config = read_json(folder / "preprocessor_config.json", "SVD CLIP feature extractor config", SVD_REPO)
    mean = tuple(float(v) for v in config.get("image_mean", CLIP_MEAN))
    std = tuple(float(v) for v in config.get("image_std", CLIP_STD))
    crop = config.get("crop_size", 224)
    side = int(crop.get("height", 224)) if isinstance(crop, dict) else int(crop)
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ModelFilesError(
            f"{folder / 'preprocessor_config.json'} has invalid image_mean/image_std: download it again."
        )
    return mean, std, side


def load_scheduler_config(folder: Path) -> dict[str, Any]:
    """``scheduler/scheduler_config.json``, checked to be the v-prediction Euler schedule SVD uses."""
    config = read_json(folder / "scheduler_config.json", "SVD scheduler config", SVD_REPO)
    if config.get("_class_name", "EulerDiscreteScheduler") != "EulerDiscreteScheduler":
        raise ModelFilesError(
            f"{folder} configures a {config.get('_class_name')}, not SVD's EulerDiscreteScheduler: download {SVD_REPO}."
        )
    if config.get("prediction_type") != "v_prediction":
        logger.warning("Scheduler prediction_type is %r; SVD xt-1-1 uses v_prediction", config.get("prediction_type"))
    return config


def load_svd_components(
    svd_dir: str | Path, dtype: torch.dtype = torch.float16, device: torch.device | str | None = None
) -> SVDComponents:
    """Load the SVD-xt-1-1 components in ``dtype`` (on the CPU unless ``device``).

    Args:
        svd_dir: the ``stable-video-diffusion-img2vid-xt-1-1`` folder (or its Hugging Face cache entry).
        dtype: weights dtype (fp16/bf16/fp32).
        device: where the weights go (None: the CPU, memory-mapped; a GPU: read tensor by tensor, see
            :func:`~.model_files.load_safetensors`).

    Raises:
        ModelFilesError: missing/corrupt files or a wrong folder, with the fix in the message.
    """
    folder = find_svd_folder(svd_dir)
    mean, std, side = load_clip_normalization(folder / "feature_extractor")
    scheduler_config = load_scheduler_config(folder / "scheduler")
    vae = load_vae(folder / "vae", dtype, device)
    image_encoder = load_image_encoder(folder / "image_encoder", dtype, device)
    return SVDComponents(
        vae=vae,
        image_encoder=image_encoder,
        clip_mean=mean,  # type: ignore[arg-type]
        clip_std=std,  # type: ignore[arg-type]
        clip_size=side,
        scheduler_config=scheduler_config,
        folder=folder,
    )
