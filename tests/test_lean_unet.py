"""stereocrafter.svd.lean_unet and DepthCrafterUNet's own up pass: the memory-lean execution computes what diffusers'
blocks compute (float64, so any difference beyond rounding is a wrong slice or a wrong blend)."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.models.resnet import AlphaBlender

from stereocrafter.depth.depthcrafter_unet import DepthCrafterUNet
from stereocrafter.svd.lean_unet import use_lean_blocks
from tests.tiny_models import tiny_unet_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TIGHT = {"rtol": 1e-10, "atol": 1e-10}


def _unet() -> DepthCrafterUNet:
    torch.manual_seed(0)
    return DepthCrafterUNet(**tiny_unet_config(8)).eval().requires_grad_(False).double()


def _inputs(unet: DepthCrafterUNet, batch: int, frames: int = 5, context_frames: int | None = None) -> tuple:
    g = torch.Generator().manual_seed(1)
    sample = torch.randn(batch, frames, 8, 8, 16, generator=g, dtype=torch.float64)
    context = torch.randn(
        batch, context_frames or frames, unet.config.cross_attention_dim, generator=g, dtype=torch.float64
    )
    ids = torch.tensor([[7.0, 127.0, 0.02]], dtype=torch.float64).expand(batch, 3)
    return sample, torch.tensor(1.3, dtype=torch.float64), context, ids


def test_up_pass_matches_diffusers_forward() -> None:
    """With one context for all frames DepthCrafter's UNet is diffusers' SVD UNet: its own up pass (which releases
    skips as it goes) must give diffusers' output."""
    unet = _unet()
    sample, t, context, ids = _inputs(unet, batch=2, context_frames=1)
    with torch.inference_mode():
        ours = unet(sample, t, context, ids, return_dict=False)[0]
        theirs = UNetSpatioTemporalConditionModel.forward(unet, sample, t, context, ids, return_dict=False)[0]
    torch.testing.assert_close(ours, theirs, **TIGHT)


@pytest.mark.parametrize(("batch", "chunks"), [(1, 3), (2, 2), (1, 64)])
def test_lean_blocks_same_output_and_restored(batch: int, chunks: int) -> None:
    """Chunk counts that divide neither the 5 frames nor the 8x16 positions, batched CFG, and more chunks than
    frames: all the plain output."""
    unet = _unet()
    inputs = _inputs(unet, batch)
    with torch.inference_mode():
        plain = unet(*inputs, return_dict=False)[0]
        changed = use_lean_blocks(unet, chunks)
        lean = unet(*inputs, return_dict=False)[0]
        restored_count = use_lean_blocks(unet, None)
        restored = unet(*inputs, return_dict=False)[0]
    assert changed > 0 and restored_count == changed
    assert not any("forward" in module.__dict__ for module in unet.modules())
    torch.testing.assert_close(lean, plain, **TIGHT)
    assert torch.equal(restored, plain)


def test_lean_blocks_leave_odd_latent_sizes_working() -> None:
    unet = _unet()
    sample = torch.randn(1, 3, 8, 7, 9, dtype=torch.float64)
    context = torch.randn(1, 3, unet.config.cross_attention_dim, dtype=torch.float64)
    ids = torch.tensor([[7.0, 127.0, 0.02]], dtype=torch.float64)
    with torch.inference_mode():
        plain = unet(sample, torch.tensor(1.0), context, ids, return_dict=False)[0]
        use_lean_blocks(unet, 2)
        lean = unet(sample, torch.tensor(1.0), context, ids, return_dict=False)[0]
    assert lean.shape == (1, 3, 4, 7, 9)
    torch.testing.assert_close(lean, plain, **TIGHT)


def test_blend_in_place_only_without_autograd() -> None:
    """The in-place blend writes into its inputs only without autograd; with it, the inputs stay untouched."""
    blender = AlphaBlender(alpha=0.3, merge_strategy="learned_with_images").double()
    assert use_lean_blocks(blender) == 1
    x_spatial, x_temporal = torch.randn(2, 4, 3, 5, 5, dtype=torch.float64), torch.randn(2, 4, 3, 5, 5).double()
    indicator = torch.zeros(2, 3, dtype=torch.float64)
    alpha = torch.sigmoid(blender.mix_factor.detach())
    expected = alpha * x_spatial + (1 - alpha) * x_temporal
    spatial_copy = x_spatial.clone()
    with torch.enable_grad():
        out = blender(x_spatial, x_temporal, indicator)
    assert torch.equal(x_spatial, spatial_copy) and out.requires_grad
    torch.testing.assert_close(out.detach(), expected, **TIGHT)
    with torch.no_grad():
        out = blender(x_spatial, x_temporal, indicator)
    assert out.data_ptr() == x_spatial.data_ptr()
    torch.testing.assert_close(out, expected, **TIGHT)
