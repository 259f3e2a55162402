"""A tiny random Depth Anything V2 in the exact Hugging Face layout of depth-anything/Depth-Anything-V2-Small-hf
(config.json, model.safetensors, preprocessor_config.json), for the unit tests and the e2e server's models/."""

from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_depth_anything(folder: str | Path) -> Path:
    """A random Depth Anything V2 (Small's layout, tiny widths, about 0.2 MB) saved as the Hub's files, with
    Depth-Anything-V2-Small-hf's processor settings (518 px, multiples of 14, ImageNet normalisation)."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    folder = Path(folder)
    torch.manual_seed(0)
    backbone = Dinov2Config(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, patch_size=14,
        image_size=518, out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type="relative",
    )  # fmt: skip
    model = DepthAnythingForDepthEstimation(config).eval()
    with torch.no_grad():  # a varied positive output: the random head's ReLU would give (nearly) all zeros
        model.head.conv3.bias.fill_(0.5)
        model.head.conv3.weight.mul_(1e4)
    model.save_pretrained(folder)
    DPTImageProcessor(
        do_resize=True, size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14, resample=3,
        do_rescale=True, do_normalize=True, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
        do_pad=False,
    ).save_pretrained(folder)  # fmt: skip
    return folder
