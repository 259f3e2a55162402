"""Real-size SVD-xt architectures with random weights, shared by the GPU benchmarks (no download).

The UNet config is the one DepthCrafter and StereoCrafter ship (reference.md §4.2; StereoCrafter's differs only
in ``in_channels`` 9), the VAE and CLIP configs are SVD-xt-1-1's, the scheduler config is
``tests/tiny_models.SCHEDULER_CONFIG`` (a copy of SVD's scheduler_config.json).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.tiny_models import SCHEDULER_CONFIG  # noqa: E402,F401  (re-exported for the benchmarks)


def svd_unet_config(in_channels: int) -> dict[str, Any]:
    """The SVD UNet config: ``in_channels`` 8 for DepthCrafter, 9 for StereoCrafter."""
    return {
        "sample_size": 96,
        "in_channels": in_channels,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
        "up_block_types": ("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
        "block_out_channels": (320, 640, 1280, 1280),
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 768,
        "layers_per_block": 2,
        "cross_attention_dim": 1024,
        "transformer_layers_per_block": 1,
        "num_attention_heads": (5, 10, 20, 20),
        "num_frames": 25,
    }


def build_vae_and_clip(device: torch.device, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Module]:
    """SVD's temporal-decoder VAE and CLIP ViT-H/14 image encoder, random weights, eval mode on ``device``."""
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.device(device):
        vae = AutoencoderKLTemporalDecoder(
            down_block_types=("DownEncoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=4,
            sample_size=768,
            scaling_factor=0.18215,
            force_upcast=True,
        )
        config = CLIPVisionConfig(
            hidden_size=1280,
            intermediate_size=5120,
            num_hidden_layers=32,
            num_attention_heads=16,
            patch_size=14,
            image_size=224,
            projection_dim=1024,
            hidden_act="gelu",
        )
        config._attn_implementation = "sdpa"
        clip = CLIPVisionModelWithProjection(config)
    return place(vae, device, dtype), place(clip, device, dtype)


def place(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move to ``device``/``dtype`` in eval mode without gradients.

    Explicitly, even after building under ``torch.device(device)``: a few parameters are created with the legacy
    ``torch.Tensor(...)`` constructor, which ignores the default-device context (the UNet's temporal mix factors).
    """
    return module.to(device=device, dtype=dtype).eval().requires_grad_(False)
