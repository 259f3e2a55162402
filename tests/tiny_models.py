"""Tiny random models written in the EXACT Hugging Face folder layouts the pack loads (no network).

- :func:`make_svd_folder`: ``stable-video-diffusion-img2vid-xt-1-1`` layout (model_index.json, vae/, image_encoder/,
  feature_extractor/, scheduler/; no unet/).
- :func:`make_depthcrafter_folder`: ``tencent/DepthCrafter`` layout (config.json + weights at the root, in_channels 8).
- :func:`make_stereocrafter_folder`: StereoCrafter's inpainting UNet (in_channels 9), in ``unet_diffusers/`` or at
  the root.

Sizes keep the real structure that matters to the pipelines: the VAE downsamples 8× (4 blocks), latents have 4
channels, CLIP's projection_dim equals the UNet's cross_attention_dim, 3 added time ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

CROSS_DIM = 32
TIME_ID_DIM = 8

SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": "0.24.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "trained_betas": None,
    "use_karras_sigmas": True,
}

PREPROCESSOR_CONFIG: dict[str, Any] = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}

MODEL_INDEX: dict[str, Any] = {
    "_class_name": "StableVideoDiffusionPipeline",
    "_diffusers_version": "0.24.0.dev0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
    "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
}


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread, then restore. Tiny models are overhead-bound: on a small shared machine one
    thread is as fast when idle and several times faster under contention (no OpenMP oversubscription)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def save_weights(module: torch.nn.Module, path: Path, dtype: torch.dtype = torch.float32) -> None:
    """Write a module's state dict as safetensors (contiguous copies, no shared storage)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(dtype).contiguous().clone() for k, v in module.state_dict().items()}
    save_file(state, str(path))


def tiny_vae(seed: int = 0) -> AutoencoderKLTemporalDecoder:
    torch.manual_seed(seed)
    return AutoencoderKLTemporalDecoder(
        down_block_types=("DownEncoderBlock2D",) * 4,
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        sample_size=64,
        scaling_factor=0.18215,
        force_upcast=True,
    ).eval()


def tiny_clip_config() -> CLIPVisionConfig:
    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=224,
        patch_size=32,
        projection_dim=CROSS_DIM,
        hidden_act="gelu",
    )


def tiny_clip(seed: int = 1) -> CLIPVisionModelWithProjection:
    torch.manual_seed(seed)
    return CLIPVisionModelWithProjection(tiny_clip_config()).eval()


def tiny_unet_config(in_channels: int) -> dict[str, Any]:
    return {
        "sample_size": 8,
        "in_channels": in_channels,
        "out_channels": 4,
        "down_block_types": ["CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"],
        "up_block_types": ["UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"],
        "block_out_channels": [32, 64],
        "addition_time_embed_dim": TIME_ID_DIM,
        "projection_class_embeddings_input_dim": 3 * TIME_ID_DIM,
        "layers_per_block": 1,
        "cross_attention_dim": CROSS_DIM,
        "transformer_layers_per_block": 1,
        "num_attention_heads": [2, 4],
        "num_frames": 25,
    }


def tiny_unet(in_channels: int, seed: int = 2) -> UNetSpatioTemporalConditionModel:
    torch.manual_seed(seed)
    return UNetSpatioTemporalConditionModel(**tiny_unet_config(in_channels)).eval()


def make_svd_folder(path: str | Path, fp16_variant: bool = True, full: bool = True) -> Path:
    """Write a tiny SVD-xt-1-1 folder. ``fp16_variant``: add ``*.fp16.safetensors`` (fp16) files; ``full``: add the
    plain ``*.safetensors`` (fp32) files. The real repository has both."""
    root = Path(path)
    write_json(root / "model_index.json", MODEL_INDEX)
    write_json(root / "scheduler" / "scheduler_config.json", SCHEDULER_CONFIG)
    write_json(root / "feature_extractor" / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    vae = tiny_vae()
    write_json(root / "vae" / "config.json", {"_class_name": "AutoencoderKLTemporalDecoder", **dict(vae.config)})
    clip = tiny_clip()
    write_json(root / "image_encoder" / "config.json", clip.config.to_dict())
    if fp16_variant:
        save_weights(vae, root / "vae" / "diffusion_pytorch_model.fp16.safetensors", torch.float16)
        save_weights(clip, root / "image_encoder" / "model.fp16.safetensors", torch.float16)
    if full:
        save_weights(vae, root / "vae" / "diffusion_pytorch_model.safetensors")
        save_weights(clip, root / "image_encoder" / "model.safetensors")
    return root


def _write_unet(folder: Path, in_channels: int, class_name: str, dtype: torch.dtype) -> Path:
    unet = tiny_unet(in_channels)
    config = {"_class_name": class_name, "_diffusers_version": "0.29.2", **tiny_unet_config(in_channels)}
    write_json(folder / "config.json", config)
    save_weights(unet, folder / "diffusion_pytorch_model.safetensors", dtype)
    return folder


def make_depthcrafter_folder(path: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """tencent/DepthCrafter layout: config.json (DepthCrafter's subclass name) + weights at the root, in_channels 8."""
    return _write_unet(Path(path), 8, "DiffusersUNetSpatioTemporalConditionModelDepthCrafter", dtype)


def make_stereocrafter_folder(path: str | Path, subfolder: str | None = "unet_diffusers") -> Path:
    """TencentARC/StereoCrafter layout: the in_channels-9 UNet in ``subfolder`` (or at the root when None).
    Returns the root."""
    root = Path(path)
    _write_unet(root / subfolder if subfolder else root, 9, "UNetSpatioTemporalConditionModel", torch.float32)
    return root
