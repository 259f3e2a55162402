"""stereocrafter.svd.frames_major_blocks: the compile-friendly GroupNorm, temporal convolution and spatio-temporal
ResNet block compute what diffusers' modules compute (float64, so any difference beyond rounding is a wrong formula)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.resnet import SpatioTemporalResBlock
from tiny_models import tiny_unet_config, tiny_vae

from stereocrafter.depth.depthcrafter_unet import DepthCrafterUNet
from stereocrafter.svd.frames_major_blocks import (
    FramesMajorSpatioTemporalResBlock,
    SplitGroupNorm,
    _split_count,
    group_norm,
    temporal_conv,
    use_frames_major_blocks,
)

TIGHT = {"rtol": 1e-10, "atol": 1e-10}


def _clip_view(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Frames-major [B·T, C, H, W] → diffusers' temporal layout [B, C, T, H, W]."""
    return x.reshape(-1, frames, *x.shape[1:]).permute(0, 2, 1, 3, 4)


def _frames_major(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T, H, W] → [B·T, C, H, W]."""
    return x.permute(0, 2, 1, 3, 4).reshape(-1, x.shape[1], *x.shape[3:])


@pytest.mark.parametrize("shape", [(2, 8, 32, 32), (3, 64, 5, 7), (1, 12, 96)])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_matches_torch(shape: tuple[int, ...], affine: bool) -> None:
    x = torch.randn(shape, dtype=torch.float64) * 3 + 1.5
    weight = torch.randn(shape[1], dtype=torch.float64) if affine else None
    bias = torch.randn(shape[1], dtype=torch.float64) if affine else None
    torch.testing.assert_close(group_norm(x, 4, weight, bias, 1e-6), F.group_norm(x, 4, weight, bias, 1e-6), **TIGHT)


@pytest.mark.parametrize("frames", [1, 3])
def test_group_norm_keeps_channels_last(frames: int) -> None:
    """Channels-last input (what compiled convolutions return): same values, and the output stays channels-last."""
    x = (torch.randn(6, 8, 5, 7, dtype=torch.float64) + torch.arange(8.0, dtype=torch.float64)[:, None, None]).to(
        memory_format=torch.channels_last
    )
    weight, bias = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    out = group_norm(x, 4, weight, bias, 1e-6, frames=frames)
    expected = _frames_major(F.group_norm(_clip_view(x.contiguous(), frames), 4, weight, bias, 1e-6))
    torch.testing.assert_close(out, expected, **TIGHT)
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()


def test_group_norm_splits_long_rows() -> None:
    """Rows are cut into parts (the point of the two stages); the combined statistics stay exact."""
    assert _split_count(8, 2048) == 2
    assert _split_count(32, 4 * 8 * 72 * 128) > 1
    assert _split_count(10_000, 1 << 20) == 1  # enough rows already
    assert _split_count(1, 1023) == 1 and _split_count(1, 3 * 4096) == 8  # 1536-element parts: never under 1024
    x = torch.randn(2, 8, 32, 32, dtype=torch.float64) + torch.linspace(0, 50, 32, dtype=torch.float64)
    torch.testing.assert_close(group_norm(x, 4, None, None, 1e-6), F.group_norm(x, 4, None, None, 1e-6), **TIGHT)


@pytest.mark.parametrize("batch", [1, 2])
def test_group_norm_over_frames_is_the_temporal_norm(batch: int) -> None:
    frames, channels = 5, 8
    offsets = torch.arange(frames * batch)[:, None, None, None]  # frames of different means: stats must span them
    x = torch.randn(batch * frames, channels, 6, 10, dtype=torch.float64) + offsets
    weight, bias = torch.randn(channels, dtype=torch.float64), torch.randn(channels, dtype=torch.float64)
    expected = F.group_norm(_clip_view(x, frames), 4, weight, bias, 1e-6)
    out = group_norm(x, 4, weight, bias, 1e-6, frames=frames)
    torch.testing.assert_close(out, _frames_major(expected), **TIGHT)


def test_group_norm_keeps_dtype_and_rejects_bad_groups() -> None:
    x = torch.randn(2, 8, 4, 4, dtype=torch.float16)
    assert group_norm(x, 4, None, None, 1e-6).dtype == torch.float16
    with pytest.raises(ValueError, match="groups"):
        group_norm(x, 3, None, None, 1e-6)


@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("batch", [1, 2])
def test_temporal_conv_matches_conv3d(kernel: int, batch: int) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(6, 4, (kernel, 1, 1), padding=(kernel // 2, 0, 0)).double()
    frames = 4
    x = torch.randn(batch * frames, 6, 3, 5, dtype=torch.float64)
    expected = _frames_major(conv(_clip_view(x, frames)))
    torch.testing.assert_close(temporal_conv(x, conv, frames), expected, **TIGHT)


def test_temporal_conv_reads_channels_last() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(6, 4, (3, 1, 1), padding=(1, 0, 0)).double()
    x = torch.randn(2 * 4, 6, 3, 5, dtype=torch.float64).to(memory_format=torch.channels_last)
    expected = _frames_major(conv(_clip_view(x.contiguous(), 4)))
    torch.testing.assert_close(temporal_conv(x, conv, 4), expected, **TIGHT)


@pytest.mark.parametrize("frames", [1, 2])
def test_temporal_conv_clips_shorter_than_the_kernel(frames: int) -> None:
    """Taps that reach past both ends of a clip add nothing (the Conv3d's zero padding)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(3, 5, (5, 1, 1), padding=(2, 0, 0)).double()
    x = torch.randn(2 * frames, 3, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(temporal_conv(x, conv, frames), _frames_major(conv(_clip_view(x, frames))), **TIGHT)


def test_compiled_temporal_conv_is_one_op(one_torch_thread: None) -> None:
    """Compiled, the taps stay inside the custom op (one node, no separate GEMMs whose outputs Inductor would each
    keep in a buffer of their own), and Inductor's code computes the same values."""
    graphs: list[torch.fx.GraphModule] = []

    def record(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]):  # noqa: ANN202 (a dynamo backend)
        graphs.append(gm)
        return gm.forward

    torch.manual_seed(0)
    conv = torch.nn.Conv3d(4, 6, (3, 1, 1), padding=(1, 0, 0))
    x = torch.randn(2 * 5, 4, 3, 7)
    with torch.inference_mode():
        expected = _frames_major(conv(_clip_view(x, 5)))
        torch.compile(lambda t: temporal_conv(t, conv, 5), fullgraph=True, backend=record)(x)
        compiled = torch.compile(lambda t: temporal_conv(t, conv, 5), fullgraph=True)(x)
    targets = [str(node.target) for node in graphs[0].graph.nodes if node.op == "call_function"]
    assert sum("temporal_taps" in t for t in targets) == 1
    assert not any(name in t for t in targets for name in ("matmul", "bmm", "conv"))
    torch.testing.assert_close(compiled, expected, rtol=1e-5, atol=1e-5)


def test_a_second_copy_of_the_package_gets_its_own_op() -> None:
    """ComfyUI imports the pack under its folder's name: a second copy's op must not replace this one's."""
    import importlib.util

    import stereocrafter.svd.frames_major_blocks as ours

    spec = importlib.util.spec_from_file_location("Other-Pack.stereocrafter.svd.frames_major_blocks", ours.__file__)
    other = importlib.util.module_from_spec(spec)
    other.__package__ = "Other-Pack.stereocrafter"
    spec.loader.exec_module(other)
    assert other._OP_NAMESPACE == "Other_Pack_stereocrafter" != ours._OP_NAMESPACE
    conv = torch.nn.Conv3d(2, 3, (3, 1, 1), padding=(1, 0, 0)).double()
    x = torch.randn(4, 2, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(other.temporal_conv(x, conv, 4), ours.temporal_conv(x, conv, 4), **TIGHT)


def test_old_torch_gets_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before torch 2.4 there is no custom_op: compile=True names the version and the fix, not an AttributeError."""
    import importlib.util

    import stereocrafter.svd.frames_major_blocks as ours

    monkeypatch.delattr(torch.library, "custom_op")
    spec = importlib.util.spec_from_file_location("old_torch_copy.frames_major_blocks", ours.__file__)
    with pytest.raises(ImportError, match=r"torch 2\.4 or newer.*turn compile off"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_temporal_conv_other_kernels_run_the_module() -> None:
    conv = torch.nn.Conv3d(3, 2, 3, padding=1).double()  # spatial taps too: not a temporal kernel
    x = torch.randn(2 * 3, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(temporal_conv(x, conv, 3), _frames_major(conv(_clip_view(x, 3))), **TIGHT)


@pytest.mark.parametrize(
    ("temb_channels", "merge_strategy", "switch"),
    [(16, "learned_with_images", False), (None, "learned", False), (None, "learned", True), (16, "fixed", False)],
)
def test_resblock_matches_diffusers(temb_channels: int | None, merge_strategy: str, switch: bool) -> None:
    torch.manual_seed(0)
    block = SpatioTemporalResBlock(
        32, 64, temb_channels=temb_channels, merge_strategy=merge_strategy, switch_spatial_to_temporal_mix=switch
    )
    block = block.double().eval()
    with torch.no_grad():
        block.time_mixer.mix_factor.fill_(0.3)  # not the 0.5 of init: a swapped alpha would show
    batch, frames = 2, 3
    x = torch.randn(batch * frames, 32, 4, 6, dtype=torch.float64)
    temb = torch.randn(batch * frames, 16, dtype=torch.float64) if temb_channels else None
    indicator = torch.zeros(batch, frames, dtype=torch.float64)
    with torch.no_grad():
        expected = block(x, temb, indicator)
        assert use_frames_major_blocks(block) == 1 + 4  # the block and its four GroupNorms
        assert type(block) is FramesMajorSpatioTemporalResBlock
        out = block(x, temb, indicator)
    torch.testing.assert_close(out, expected, **TIGHT)


def _unet_forward(unet: DepthCrafterUNet, batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 8, 8, 16, generator=g, dtype=unet.dtype)
    emb = torch.randn(batch, 3, unet.config.cross_attention_dim, generator=g, dtype=unet.dtype)
    ids = torch.tensor([[7.0, 127.0, 0.02]], dtype=unet.dtype).expand(batch, 3)
    with torch.inference_mode():
        return unet(x, torch.tensor(1.0), emb, ids, return_dict=False)[0]


@pytest.mark.parametrize("batch", [1, 2])
def test_unet_output_unchanged_and_restored(one_torch_thread: None, batch: int) -> None:
    torch.manual_seed(0)
    unet = DepthCrafterUNet(**tiny_unet_config(8)).eval().requires_grad_(False).double()
    reference = _unet_forward(unet, batch)
    changed = use_frames_major_blocks(unet)
    blocks = [m for m in unet.modules() if isinstance(m, SpatioTemporalResBlock)]
    norms = [m for m in unet.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert blocks and all(type(m) is FramesMajorSpatioTemporalResBlock for m in blocks)
    assert all(type(m) is SplitGroupNorm for m in norms) and changed == len(blocks) + len(norms)
    torch.testing.assert_close(_unet_forward(unet, batch), reference, **TIGHT)
    assert use_frames_major_blocks(unet, enable=False) == changed
    assert all(type(m) is SpatioTemporalResBlock for m in blocks)
    assert all(type(m) is torch.nn.GroupNorm for m in norms)


def test_vae_decode_unchanged(one_torch_thread: None) -> None:
    vae = tiny_vae().double()
    latents = torch.randn(5, 4, 6, 8, dtype=torch.float64)
    with torch.inference_mode():
        reference = vae.decode(latents, num_frames=5).sample
        assert use_frames_major_blocks(vae.decoder) > 0
        torch.testing.assert_close(vae.decode(latents, num_frames=5).sample, reference, **TIGHT)


def test_half_precision_rounding_only() -> None:
    """In half precision the rewrite differs from diffusers' block by rounding only (the taps' sum)."""
    torch.manual_seed(0)
    block = SpatioTemporalResBlock(32, 32, temb_channels=None, merge_strategy="learned").eval()
    x = torch.randn(2 * 4, 32, 4, 6)
    indicator = torch.zeros(2, 4)
    with torch.no_grad():
        expected = block.double()(x.double(), None, indicator.double())
        block = block.to(torch.bfloat16)
        eager = block(x.to(torch.bfloat16), None, indicator.to(torch.bfloat16)).double()
        use_frames_major_blocks(block)
        out = block(x.to(torch.bfloat16), None, indicator.to(torch.bfloat16)).double()
    eager_error = (eager - expected).abs().max()
    assert (out - expected).abs().max() <= 2 * eager_error + 1e-2
