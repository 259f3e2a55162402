"""SVD building blocks rewritten for ``torch.compile``: no layout permutes, GroupNorm statistics in two stages.

Why (measured on an H200, the git history of bench/README.md): Inductor compiles diffusers' blocks into a
few very slow kernels. ``SpatioTemporalResBlock`` permutes its frames-major [B·T, C, H, W] activations to [B, C, T, H,
W] for the temporal ResNet (GroupNorm over C/G × T × H × W, a (3, 1, 1) ``Conv3d``) and back; and every ``nn.GroupNorm``
becomes ONE reduction per (sample, group) row, fused with the pass that applies it. A batch-1 clip's temporal norm has
32 such rows of millions of elements, a decoder chunk's spatial norm 256: too few programs to fill the GPU (one 2.4 GB
norm of the decoder took 12.8 ms, about 20 times its memory traffic).

Here:

- :func:`group_norm` computes partial statistics over many short rows (``[samples, channels, splits]``), combines
  them per group exactly (mean of means; mean of variances plus the variance of the means: equal-size parts), then
  applies them in a separate element-wise pass, in whatever memory layout the input has. ``frames > 1`` normalises
  that many consecutive samples together: the temporal norm of the [B, C, T, H, W] view, computed on the
  frames-major tensor without moving it.
- :func:`temporal_conv` runs a (k, 1, 1) ``Conv3d`` on the frames-major tensor as k batched GEMMs ([C_out, C_in] ×
  [C_in, H·W] per frame), each accumulating into the output frames its frame offset reaches (zeros beyond the clip's
  ends), inside one custom op (:func:`temporal_taps`) so that no tap needs a buffer of its own.
- :class:`FramesMajorSpatioTemporalResBlock` is ``SpatioTemporalResBlock`` with its temporal half and its mixing done
  that way; :class:`SplitGroupNorm` is ``nn.GroupNorm`` through :func:`group_norm`.

Same math as diffusers' modules (tests compare them in float64); in fp16 only the rounding differs: the temporal
convolution's output is rounded to fp16 after each tap is added. Meant for compiled models: eagerly these run more
kernels than the modules they replace. :func:`use_frames_major_blocks` swaps them in (and back) by class, in place.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from diffusers.models.resnet import SpatioTemporalResBlock, TemporalResnetBlock

if not hasattr(torch.library, "custom_op"):
    raise ImportError(
        f"compile needs torch 2.4 or newer (torch.library.custom_op); this is torch {torch.__version__}. "
        "Update torch, or turn compile off."
    )

# The custom op's namespace names this copy of the package: ComfyUI imports the pack under its folder's name, and two
# copies (or a script's ``import stereocrafter`` next to it) must not redefine one another's op.
_OP_NAMESPACE = re.sub(r"\W", "_", __package__ or "stereocrafter")

# Partial-statistics rows to aim for: a few per streaming multiprocessor on current GPUs (132 on an H100/H200).
TARGET_ROWS = 4096
MIN_SPLIT_LENGTH = 1024  # do not split a row into parts shorter than this


def _split_count(rows: int, length: int) -> int:
    """How many equal parts to cut each of ``rows`` reduction rows of ``length`` elements into (a power of two)."""
    splits = 1
    while rows * splits < TARGET_ROWS and length % (2 * splits) == 0 and length // (2 * splits) >= MIN_SPLIT_LENGTH:
        splits *= 2
    return splits


def group_norm(
    x: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
    frames: int = 1,
) -> torch.Tensor:
    """GroupNorm of ``x`` [N, C, *spatial] (any float dtype; statistics in float32 or wider).

    ``frames`` > 1 normalises each run of ``frames`` consecutive samples together: for ``x`` = the frames-major
    [B·T, C, H, W] activations and ``frames`` = T, the result is ``nn.GroupNorm`` of the [B, C, T, H, W] view, laid
    out frames-major. Returns a tensor of ``x``'s shape and dtype, in ``x``'s memory layout.

    Statistics are taken per CHANNEL over parts of the positions, then combined per group: that reads a
    channels-last tensor (what compiled convolutions return) as it lies in memory, where per-group rows would
    gather across it.
    """
    n, channels = x.shape[0], x.shape[1]
    if channels % num_groups or n % frames:
        raise ValueError(f"group_norm: {channels} channels / {num_groups} groups, {n} samples / {frames} frames")
    positions = x[0, 0].numel()
    splits = _split_count(n * channels, positions)
    stats_dtype = torch.promote_types(x.dtype, torch.float32)
    clips = x.reshape(n // frames, frames, channels, positions)  # a view of contiguous and channels-last alike
    parts = clips.reshape(n // frames, frames, channels, splits, positions // splits).to(stats_dtype)
    part_var, part_mean = torch.var_mean(parts, dim=-1, unbiased=False)  # [B, T, C, S]
    grouped = (n // frames, frames, num_groups, channels // num_groups, splits)
    part_var, part_mean = part_var.view(grouped), part_mean.view(grouped)
    mean = part_mean.mean(dim=(1, 3, 4), keepdim=True)  # [B, 1, G, 1, 1]
    var = (part_var + (part_mean - mean).square()).mean(dim=(1, 3, 4), keepdim=True)
    scale = torch.rsqrt(var + eps).expand(-1, -1, -1, channels // num_groups, -1)  # [B, 1, G, C/G, 1]
    shift = -mean * scale
    if weight is not None:
        per_channel = weight.to(stats_dtype).view(1, 1, num_groups, -1, 1)
        scale, shift = scale * per_channel, shift * per_channel
    if bias is not None:
        shift = shift + bias.to(stats_dtype).view(1, 1, num_groups, -1, 1)
    per_channel_shape = (n // frames, 1, channels, 1)
    out = clips.to(stats_dtype) * scale.reshape(per_channel_shape) + shift.reshape(per_channel_shape)
    return out.to(x.dtype).reshape(x.shape)


class SplitGroupNorm(torch.nn.GroupNorm):
    """``nn.GroupNorm`` through :func:`group_norm` (same math; statistics in two stages, any memory layout)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3:
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        return _norm(self, x)


def _norm(norm: torch.nn.GroupNorm, x: torch.Tensor, frames: int = 1) -> torch.Tensor:
    """:func:`group_norm` with ``norm``'s groups, affine parameters and eps."""
    return group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps, frames)


def _is_temporal_kernel(conv: torch.nn.Conv3d) -> bool:
    k = conv.kernel_size[0]
    return (
        conv.kernel_size[1:] == (1, 1)
        and k % 2 == 1
        and conv.padding == (k // 2, 0, 0)
        and conv.stride == (1, 1, 1)
        and conv.dilation == (1, 1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


@torch.library.custom_op(f"{_OP_NAMESPACE}::temporal_taps", mutates_args=())
def temporal_taps(x: torch.Tensor, weight: torch.Tensor, frames: int) -> torch.Tensor:
    """The taps of a (k, 1, 1) convolution over time, without bias, on frames-major ``x`` [B·T, C_in, H, W]
    (contiguous or channels-last: cuBLAS reads either in place).

    ``weight`` [C_out, C_in, k, 1, 1] (odd k, zero padding k//2). Returns [B·T, C_out, H, W] in ``x``'s dtype:
    output frame t = Σ_j W_j · x[t + j − k//2], zeros beyond each clip's ends. The centre tap is one batched GEMM
    into the output; every other tap is a GEMM that accumulates into the output frames it reaches (cuBLAS beta = 1),
    so no tap result is ever held on its own. A custom op so that ``torch.compile`` keeps it whole: traced as
    separate ops, Inductor gave each tap its own output-sized buffer (+2 GiB in the VAE decoder, measured).
    """
    n, c_in, height, width = x.shape
    k = weight.shape[2]
    taps = weight[:, :, :, 0, 0].permute(2, 0, 1).contiguous()  # [k, C_out, C_in]
    clips = x.reshape(n // frames, frames, c_in, height * width)  # a view of contiguous and channels-last alike
    out = x.new_empty(n // frames, frames, taps.shape[1], height * width)
    for clip, result in zip(clips, out, strict=True):
        torch.bmm(taps[k // 2].expand(frames, -1, -1), clip, out=result)
        for j in range(k):
            shift = j - k // 2  # output frame t reads input frame t + shift
            if shift == 0 or abs(shift) >= frames:
                continue
            reached = result[max(-shift, 0) : frames - max(shift, 0)]
            reached.baddbmm_(taps[j].expand(frames - abs(shift), -1, -1), clip[max(shift, 0) : frames + min(shift, 0)])
    return out.view(n, -1, height, width)


@temporal_taps.register_fake
def _temporal_taps_shape(x: torch.Tensor, weight: torch.Tensor, frames: int) -> torch.Tensor:
    return x.new_empty(x.shape[0], weight.shape[0], x.shape[2], x.shape[3])


def temporal_conv(x: torch.Tensor, conv: torch.nn.Conv3d, frames: int) -> torch.Tensor:
    """``conv`` (a (k, 1, 1) ``Conv3d`` over [B, C, T, H, W]) applied to frames-major ``x`` [B·T, C_in, H, W].

    Returns [B·T, C_out, H, W] in ``x``'s dtype, frames-major (see :func:`temporal_taps`); the bias is added outside
    the op, where a compiled graph fuses it into the next element-wise pass. Other Conv3d shapes run the module itself.
    """
    n, c_in, height, width = x.shape
    if not _is_temporal_kernel(conv):
        clip = x.reshape(n // frames, frames, c_in, height, width).permute(0, 2, 1, 3, 4)
        out = conv(clip)
        return out.permute(0, 2, 1, 3, 4).reshape(n, -1, height, width)
    out = temporal_taps(x, conv.weight, frames)
    return out if conv.bias is None else out + conv.bias.view(1, -1, 1, 1)


def temporal_resnet_frames_major(
    block: TemporalResnetBlock, x: torch.Tensor, temb: torch.Tensor | None, frames: int
) -> torch.Tensor:
    """``TemporalResnetBlock`` on frames-major ``x`` [B·T, C, H, W] (``temb`` [B·T, D] or None) → [B·T, C_out, H, W]."""
    act = block.nonlinearity
    h = act(_norm(block.norm1, x, frames))
    h = temporal_conv(h, block.conv1, frames)
    if block.time_emb_proj is not None:
        h = h + block.time_emb_proj(act(temb))[:, :, None, None]
    h = act(_norm(block.norm2, h, frames))
    h = temporal_conv(block.dropout(h), block.conv2, frames)
    shortcut = x if block.conv_shortcut is None else temporal_conv(x, block.conv_shortcut, frames)
    return shortcut + h


class FramesMajorSpatioTemporalResBlock(SpatioTemporalResBlock):
    """``SpatioTemporalResBlock`` without the [B, C, T, H, W] round trip: the temporal ResNet and the alpha mixing run
    on the frames-major activations. Same inputs and outputs: [B·T, C, H, W], ``temb`` [B·T, D] or None,
    ``image_only_indicator`` [B, T]."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        temb: torch.Tensor | None = None,
        image_only_indicator: torch.Tensor | None = None,
    ) -> torch.Tensor:
        frames = image_only_indicator.shape[-1]
        spatial = self.spatial_res_block(hidden_states, temb)
        temporal = temporal_resnet_frames_major(self.temporal_res_block, spatial, temb, frames)
        mixer = self.time_mixer
        alpha = mixer.get_alpha(image_only_indicator, 5).to(spatial.dtype)  # [B, 1, T, 1, 1], or one value
        if alpha.dim() == 5:
            alpha = alpha.permute(0, 2, 1, 3, 4).reshape(-1, 1, 1, 1)  # one per frame, frames-major
        if mixer.switch_spatial_to_temporal_mix:
            alpha = 1.0 - alpha
        return alpha * spatial + (1.0 - alpha) * temporal


_SWAPS = {
    SpatioTemporalResBlock: FramesMajorSpatioTemporalResBlock,
    torch.nn.GroupNorm: SplitGroupNorm,
}


def use_frames_major_blocks(model: torch.nn.Module, enable: bool = True) -> int:
    """Swap (``enable``) or restore the classes of ``model``'s ``SpatioTemporalResBlock`` and ``nn.GroupNorm``
    modules in place (same parameters, same math). Call before the first compiled call: a compiled graph keeps the
    code it traced. Returns the number of modules changed."""
    pairs = _SWAPS.items() if enable else [(new, old) for old, new in _SWAPS.items()]
    count = 0
    for module in model.modules():
        for old, new in pairs:
            if type(module) is old:
                module.__class__ = new
                count += 1
                break
    return count
