"""fp8 linear layers: which layers convert, and that the UNet output stays within fp8 rounding of the fp32 one.

torch._scaled_mm runs on the CPU too (slowly), so the conversion is checked here; speed is a GPU matter (bench/)."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention
from tiny_models import tiny_unet_config

from stereocrafter.depthcrafter_unet import DepthCrafterUNet
from stereocrafter.fp8_linear import FP8, Fp8Linear, use_fp8_linear


def _unet() -> DepthCrafterUNet:
    torch.manual_seed(0)
    return DepthCrafterUNet(**tiny_unet_config(8)).eval().requires_grad_(False)


def _forward(unet: DepthCrafterUNet) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 8, 8, 16, generator=g)
    emb = torch.randn(1, 3, unet.config.cross_attention_dim, generator=g)
    ids = torch.tensor([[7.0, 127.0, 0.02]])
    with torch.inference_mode():
        return unet(x, torch.tensor(1.0), emb, ids, return_dict=False)[0]


def test_linear_matches_within_fp8_rounding(one_torch_thread: None) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32)
    x = torch.randn(2, 7, 64)
    fp8 = Fp8Linear(linear)
    assert fp8.weight_fp8.dtype == FP8 and fp8.weight_fp8.shape == (32, 64)
    with torch.inference_mode():
        expected, out = linear(x), fp8(x)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    error = (out - expected).abs().max() / expected.abs().max()
    assert 0 < error < 0.05  # e4m3 keeps 3 mantissa bits: a few % at most, never exact


def test_rejects_sizes_the_fp8_kernels_cannot_take() -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        Fp8Linear(torch.nn.Linear(20, 32))


def test_unet_converts_transformer_linears_only(one_torch_thread: None) -> None:
    unet = _unet()
    reference = _forward(unet)
    converted = use_fp8_linear(unet)
    fp8_layers = [m for m in unet.modules() if isinstance(m, Fp8Linear)]
    assert converted == len(fp8_layers) > 0
    for module in unet.modules():
        if isinstance(module, Attention) and module.is_cross_attention:
            assert not any(isinstance(m, Fp8Linear) for m in module.modules())
    assert type(unet.time_embedding.linear_1) is torch.nn.Linear
    out = _forward(unet)
    assert torch.isfinite(out).all()
    error = (out - reference).abs().max() / reference.abs().max()
    assert 0 < error < 0.1
    assert use_fp8_linear(unet) == 0  # idempotent: nothing left to convert
