"""stereocrafter.svd.compiled_svd without running a compiled graph (compilation takes minutes on a CPU): which modules
are compiled, that decompile restores them, and that the class-level feed-forward chunking keeps the math."""

from __future__ import annotations

import torch
from diffusers.models.resnet import SpatioTemporalResBlock
from tiny_models import tiny_unet_config, tiny_vae

from stereocrafter.depth.depthcrafter_unet import DepthCrafterUNet, chunk_feed_forward
from stereocrafter.svd.compiled_svd import (
    RowChunkedFeedForward,
    compile_unet_blocks,
    compile_vae,
    decompile,
    is_compiled,
    shareable_ff_chunking,
)
from stereocrafter.svd.frames_major_blocks import FramesMajorSpatioTemporalResBlock


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


def test_shareable_ff_chunking_keeps_rows_and_math(one_torch_thread: None) -> None:
    unet = _unet()
    chunk_feed_forward(unet, 50)
    reference = _forward(unet)
    converted = shareable_ff_chunking(unet)
    assert converted > 0
    modules = [m for m in unet.modules() if isinstance(m, RowChunkedFeedForward)]
    assert len(modules) == converted and all(m.max_rows == 50 and "forward" not in m.__dict__ for m in modules)
    assert torch.equal(_forward(unet), reference)
    assert shareable_ff_chunking(unet) == 0  # nothing left to convert


def test_compile_and_decompile_mark_modules(one_torch_thread: None) -> None:
    unet, vae = _unet(), tiny_vae()
    chunk_feed_forward(unet, 50)
    assert not is_compiled(unet)
    count = compile_unet_blocks(unet)
    assert count > 0 and is_compiled(unet)
    blocks = [m for m in unet.modules() if isinstance(m, SpatioTemporalResBlock)]
    assert blocks and all(getattr(m, "_compiled_call_impl", None) is not None for m in blocks)  # swapped AND compiled
    assert all(type(m) is FramesMajorSpatioTemporalResBlock for m in blocks)
    assert torch._dynamo.config.recompile_limit >= 256
    assert any(isinstance(m, RowChunkedFeedForward) for m in unet.modules())
    assert decompile(unet) == count and not is_compiled(unet)
    assert all(type(m) is SpatioTemporalResBlock for m in blocks)  # diffusers' classes back
    assert compile_vae(vae, encoder=False, max_attention_elements=1 << 20) == 1
    assert is_compiled(vae.decoder) and not is_compiled(vae.encoder)
    processors = {id(m.processor) for m in vae.modules() if hasattr(m, "processor")}
    assert len(processors) == 1  # one shared processor: no per-call swap
    assert decompile(vae) == 1
