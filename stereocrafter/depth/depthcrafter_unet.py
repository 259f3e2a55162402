"""DepthCrafter's UNet: diffusers' ``UNetSpatioTemporalConditionModel`` with per-frame CLIP conditioning.

The only changes from diffusers' forward (reference.md §4.1):

1. ``encoder_hidden_states`` is PER FRAME, [B, T, D] → [B·T, 1, D] (diffusers repeats one [B, 1, D] over frames).
   diffusers' temporal transformer blocks take their cross-attention context from frame 0 of each sequence, so spatial
   blocks see each frame's embedding and temporal blocks see the first frame's.
2. The time embedding and the sample are cast to ``conv_in.weight.dtype`` (not to the sample's dtype), so fp32
   conditioning latents can be fed to an fp16 model.

Weights: ``tencent/DepthCrafter`` (``config.json`` + ``diffusion_pytorch_model.safetensors`` at the root; its
``_class_name`` is DepthCrafter's subclass name ``DiffusersUNetSpatioTemporalConditionModelDepthCrafter``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.models.attention import FeedForward
from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionOutput

from ..model_files import (
    DEPTHCRAFTER_REPO,
    DIFFUSERS_WEIGHTS,
    build_module,
    find_depthcrafter_folder,
    find_weights,
    load_safetensors,
    read_json,
)

logger = logging.getLogger(__name__)

KNOWN_CLASS_NAMES = ("DiffusersUNetSpatioTemporalConditionModelDepthCrafter", "UNetSpatioTemporalConditionModel")


def per_frame_context(encoder_hidden_states: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """[B, T, D] per-frame embeddings (or [B, 1, D], shared by all frames) → [B·T, 1, D]."""
    if encoder_hidden_states.dim() != 3 or encoder_hidden_states.shape[0] != batch:
        raise ValueError(f"encoder_hidden_states must be [B={batch}, T, D], got {tuple(encoder_hidden_states.shape)}")
    if encoder_hidden_states.shape[1] == 1 and frames != 1:
        encoder_hidden_states = encoder_hidden_states.expand(batch, frames, -1)
    if encoder_hidden_states.shape[1] != frames:
        raise ValueError(f"encoder_hidden_states has {encoder_hidden_states.shape[1]} frames, the sample has {frames}")
    return encoder_hidden_states.reshape(batch * frames, 1, encoder_hidden_states.shape[-1])


class DepthCrafterUNet(UNetSpatioTemporalConditionModel):
    """SVD UNet with per-frame image conditioning; same config and weights layout as the SVD UNet."""

    def _embedding(
        self,
        timestep: torch.Tensor | float,
        added_time_ids: torch.Tensor,
        batch: int,
        frames: int,
        device: torch.device,
    ) -> torch.Tensor:
        """Timestep + added-time-id embedding, one row per (batch, frame): [B·T, C] in the weights' dtype."""
        dtype = self.conv_in.weight.dtype
        t = torch.as_tensor(timestep, device=device)
        if not t.is_floating_point():
            t = t.to(torch.int64)
        t = t.reshape(-1).expand(batch)
        emb = self.time_embedding(self.time_proj(t).to(dtype))  # time_proj is weightless and always returns fp32
        time_ids = self.add_time_proj(added_time_ids.flatten()).reshape(batch, -1).to(emb.dtype)
        emb = emb + self.add_embedding(time_ids)
        return emb.repeat_interleave(frames, dim=0)

    def _up_pass(
        self, stack: list[torch.Tensor], emb: torch.Tensor, context: torch.Tensor, indicator: torch.Tensor
    ) -> torch.Tensor:
        """diffusers' up blocks, run layer by layer. ``stack``: the down pass's skips then the mid block's output,
        emptied as it goes. Returns the last up block's output [B·T, C, h, w]."""
        hidden = stack.pop()
        for index, block in enumerate(self.up_blocks):
            attentions = getattr(block, "attentions", None) or [None] * len(block.resnets)
            for resnet, attention in zip(block.resnets, attentions, strict=True):
                hidden = torch.cat([hidden, stack.pop()], dim=1)
                hidden = resnet(hidden, emb, image_only_indicator=indicator)
                if attention is not None:
                    hidden = attention(
                        hidden, encoder_hidden_states=context, image_only_indicator=indicator, return_dict=False
                    )[0]
            if block.upsamplers is not None:
                # Odd latent sizes: upsample to the skip's size instead of x2 (identical result when sizes divide).
                is_last = index == len(self.up_blocks) - 1
                size = None
                if not is_last and stack[-1].shape[-2:] != tuple(2 * s for s in hidden.shape[-2:]):
                    size = stack[-1].shape[-2:]
                for upsampler in block.upsamplers:
                    hidden = upsampler(hidden, size)
        return hidden

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        return_dict: bool = True,
    ) -> tuple[torch.Tensor] | UNetSpatioTemporalConditionOutput:
        """
        Args:
            sample: [B, T, in_channels, h, w] (noisy latents concatenated with conditioning latents); any float dtype.
            timestep: scalar (0-dim tensor or number), the scheduler's continuous timestep.
            encoder_hidden_states: [B, T, D] per-frame CLIP embeddings (or [B, 1, D] shared).
            added_time_ids: [B, 3] (fps, motion bucket, noise augmentation strength).

        Returns:
            [B, T, out_channels, h, w] in the weights' dtype (a tuple when ``return_dict`` is False, else an object
            with ``.sample``, as diffusers).
        """
        batch, frames = sample.shape[:2]
        emb = self._embedding(timestep, added_time_ids, batch, frames, sample.device)
        context = per_frame_context(encoder_hidden_states, batch, frames)
        hidden = self.conv_in(sample.flatten(0, 1).to(self.conv_in.weight.dtype))
        indicator = torch.zeros(batch, frames, dtype=hidden.dtype, device=hidden.device)

        # One list holds the skip connections and, last, the current activation, so that each is released as soon
        # as it is used (diffusers' up blocks keep a block's input and all its skips alive until the block ends).
        stack: list[torch.Tensor] = [hidden]
        del hidden
        for block in self.down_blocks:
            kwargs = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
            hidden, block_skips = block(hidden_states=stack[-1], temb=emb, image_only_indicator=indicator, **kwargs)
            stack.extend(block_skips)
            del hidden, block_skips  # the block's last skip is its output
        # The mid block's input is the last skip, which the first up block still uses.
        stack.append(
            self.mid_block(
                hidden_states=stack[-1], temb=emb, encoder_hidden_states=context, image_only_indicator=indicator
            )
        )
        hidden = self._up_pass(stack, emb, context, indicator)
        out = self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
        out = out.reshape(batch, frames, *out.shape[1:])
        if not return_dict:
            return (out,)
        return UNetSpatioTemporalConditionOutput(sample=out)


def _row_chunked(forward: Callable[[torch.Tensor], torch.Tensor], max_rows: int, hidden: torch.Tensor) -> torch.Tensor:
    """Apply a per-token ``forward`` to at most ``max_rows`` tokens at a time (same math, bounded peak memory)."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    if flat.shape[0] <= max_rows:
        return forward(hidden)
    pieces = flat.split(max_rows)
    first = forward(pieces[0])
    out = first.new_empty((flat.shape[0], first.shape[-1]))
    out[: first.shape[0]] = first
    offset = first.shape[0]
    for piece in pieces[1:]:
        out[offset : offset + piece.shape[0]] = forward(piece)
        offset += piece.shape[0]
    return out.reshape(*hidden.shape[:-1], first.shape[-1])


def chunk_feed_forward(model: torch.nn.Module, max_rows: int | None) -> int:
    """Run every transformer feed-forward (GEGLU, 4x width) of ``model`` on at most ``max_rows`` tokens at a time.

    The GEGLU intermediate is the UNet's largest activation (e.g. 140 frames x 9216 tokens x 2560 channels = 6.6 GB in
    fp16 with batched CFG at 1024x576); chunking bounds it without changing the math (per-token op). Unlike diffusers'
    ``enable_forward_chunking`` it needs no divisibility. ``None`` restores the plain forward. Returns the number of
    feed-forward modules changed.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, FeedForward):
            module.__dict__.pop("forward", None)  # back to the class's forward
            if max_rows is not None:
                module.forward = partial(_row_chunked, module.forward, max_rows)
            count += 1
    return count


def _conv3d_as_conv2d(conv: torch.nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """A (k, 1, 1) Conv3d over [B, C, T, H, W] as a (k, 1) Conv2d over [B, C, T, H·W]: same sums and weights."""
    b, c, t, h, w = x.shape
    weight = conv.weight.reshape(*conv.weight.shape[:3], 1)
    y = torch.nn.functional.conv2d(
        x.reshape(b, c, t, h * w),
        weight,
        conv.bias,
        stride=(conv.stride[0], 1),
        padding=(conv.padding[0], 0),
        dilation=(conv.dilation[0], 1),
        groups=conv.groups,
    )
    return y.reshape(b, y.shape[1], y.shape[2], h, w)


def temporal_convs_as_2d(model: torch.nn.Module, enable: bool = True) -> int:
    """Run the purely temporal Conv3d layers of ``model`` (kernel (k, 1, 1), no spatial stride/padding, as in SVD's
    temporal resnets and the VAE's ``time_conv_out``) through cuDNN's 2-D convolution instead of the 3-D one.

    Same math (only the summation order inside a kernel may differ); a speed lever for GPUs where 3-D convolutions are
    slow. ``enable=False`` restores the plain forward. Returns the number of convolutions changed.
    """
    count = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.Conv3d):
            continue
        module.__dict__.pop("forward", None)
        spatial_identity = (
            tuple(module.kernel_size[1:]) == (1, 1)
            and tuple(module.stride[1:]) == (1, 1)
            and tuple(module.dilation[1:]) == (1, 1)
            and not isinstance(module.padding, str)
            and tuple(module.padding[1:]) == (0, 0)
            and module.padding_mode == "zeros"
        )
        if enable and spatial_identity:
            module.forward = partial(_conv3d_as_conv2d, module)
            count += 1
    return count


def set_conv_memory_format(model: torch.nn.Module, memory_format: torch.memory_format) -> int:
    """Put the 2-D conv weights of ``model`` in ``memory_format`` (e.g. ``torch.channels_last``; 3-D temporal convs
    are left alone: ``Module.to(memory_format=...)`` fails on their rank-5 weights). Returns the number changed."""
    count = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=memory_format)
            count += 1
    return count


def load_depthcrafter_unet(
    folder: str | Path, dtype: torch.dtype = torch.float16, device: torch.device | str | None = None
) -> DepthCrafterUNet:
    """Load DepthCrafter's UNet from the ``tencent/DepthCrafter`` layout in ``dtype``, on the CPU unless ``device``
    (see :func:`~.model_files.load_safetensors`).

    Raises:
        ModelFilesError: missing/corrupt files, an SVD root or StereoCrafter's in_channels-9 UNet given instead.
    """
    root = find_depthcrafter_folder(folder)
    config = read_json(root / "config.json", "DepthCrafter UNet config", DEPTHCRAFTER_REPO)
    class_name = config.get("_class_name")
    if class_name not in KNOWN_CLASS_NAMES:
        logger.warning("DepthCrafter config names class %r; loading it as an SVD-architecture UNet", class_name)
    init_config = {k: v for k, v in config.items() if not k.startswith("_")}
    weights = find_weights(root, DIFFUSERS_WEIGHTS, DEPTHCRAFTER_REPO)
    logger.info("Loading DepthCrafter UNet from %s", weights)
    state = load_safetensors(weights, DEPTHCRAFTER_REPO, device)
    return build_module(lambda: DepthCrafterUNet.from_config(init_config), state, dtype, weights)
