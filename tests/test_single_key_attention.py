"""The single-key cross-attention shortcut: same UNet output as diffusers' default processor, only where it applies."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from tiny_models import tiny_unet_config

from stereocrafter.depth.depthcrafter_unet import DepthCrafterUNet
from stereocrafter.svd.single_key_attention import SingleKeyCrossAttnProcessor, use_single_key_cross_attention


def _unet() -> DepthCrafterUNet:
    torch.manual_seed(0)
    return DepthCrafterUNet(**tiny_unet_config(8)).eval().requires_grad_(False)


def _forward(unet: DepthCrafterUNet, batch: int = 1, frames: int = 3) -> torch.Tensor:
    g, dtype = torch.Generator().manual_seed(1), unet.dtype
    x = torch.randn(batch, frames, 8, 8, 16, generator=g, dtype=dtype)
    emb = torch.randn(batch, frames, unet.config.cross_attention_dim, generator=g, dtype=dtype)
    ids = torch.tensor([[7.0, 127.0, 0.02]], dtype=dtype).expand(batch, 3)
    with torch.inference_mode():
        return unet(x, torch.tensor(1.0), emb, ids, return_dict=False)[0]


@pytest.mark.parametrize("batch", [1, 2])
def test_unet_output_unchanged(one_torch_thread: None, batch: int) -> None:
    unet = _unet().double()  # float64: any difference beyond rounding would be a wrong shortcut
    reference = _forward(unet, batch)
    changed = use_single_key_cross_attention(unet)
    cross = [m for m in unet.modules() if isinstance(m, Attention) and m.is_cross_attention]
    assert changed == len(cross) > 0  # spatial and temporal transformer blocks
    assert len({id(m.processor) for m in cross}) == 1
    assert all(
        type(m.processor) is AttnProcessor2_0
        for m in unet.modules()
        if isinstance(m, Attention) and not m.is_cross_attention
    )
    queries = []
    for m in cross:
        m.to_q.register_forward_hook(lambda *_: queries.append(1))
    out = _forward(unet, batch)
    assert not queries  # every cross-attention took the shortcut
    torch.testing.assert_close(out, reference, rtol=1e-12, atol=1e-12)
    assert use_single_key_cross_attention(unet, enable=False) == changed
    assert all(type(m.processor) is AttnProcessor2_0 for m in unet.modules() if isinstance(m, Attention))
    assert torch.equal(_forward(unet, batch), reference)
    assert len(queries) == len(cross)  # the default processor is back


def test_skips_the_query_projection(one_torch_thread: None) -> None:
    """The shortcut must not touch the queries: a NaN in the attended tokens does not reach the output."""
    attn = Attention(query_dim=16, cross_attention_dim=8, heads=2, dim_head=8).eval()
    attn.set_processor(SingleKeyCrossAttnProcessor())
    x = torch.randn(3, 5, 16)
    context = torch.randn(3, 1, 8)
    with torch.inference_mode():
        expected = AttnProcessor2_0()(attn, x, context)
        out = attn(x, encoder_hidden_states=context)
        torch.testing.assert_close(out, expected)
        assert torch.isfinite(attn(torch.full_like(x, float("nan")), encoder_hidden_states=context)).all()


@pytest.mark.parametrize("case", ["two_keys", "self", "mask"])
def test_other_calls_use_the_default_processor(one_torch_thread: None, case: str) -> None:
    attn = Attention(query_dim=16, cross_attention_dim=16, heads=2, dim_head=8).eval()
    attn.set_processor(SingleKeyCrossAttnProcessor())
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 16, generator=g)
    context = {"two_keys": torch.randn(2, 2, 16, generator=g), "self": None, "mask": torch.randn(2, 1, 16, generator=g)}
    mask = torch.zeros(2, 1, 1) if case == "mask" else None
    with torch.inference_mode():
        expected = AttnProcessor2_0()(attn, x, context[case], mask)
        torch.testing.assert_close(attn(x, encoder_hidden_states=context[case], attention_mask=mask), expected)
