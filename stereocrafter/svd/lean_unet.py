"""Memory-lean eager execution of an SVD UNet's blocks: the same math in pieces, so fewer big temporaries live at once.

Why: at 1024x576 a DepthCrafter window of 110 frames holds about 1.1 M latent positions; every 320-channel activation
of the outer blocks is 0.65 GB in fp16, and a block's temporaries (norms, q/k/v, the blend of its spatial and
temporal halves) are several of them at a time. Measured on an H200 (bench/README.md, one 110-frame call): working
memory 8.0 GiB with DepthCrafterUNet's own up pass (which releases each skip connection once it is used; 9.7 before
it), 7.07 GiB with the pieces below.

What runs in pieces (each piece's ops are independent of the others, so outputs are the same up to kernel choice):

- spatial ResNets (``ResnetBlock2D``) and spatial transformer blocks (``BasicTransformerBlock``): per frame, so in
  ``chunks`` groups of frames;
- temporal transformer blocks (``TemporalBasicTransformerBlock``): per latent position (attention across the frames
  of one position), so in ``chunks`` groups of positions;
- the spatial/temporal blend (``AlphaBlender``) writes into its inputs instead of allocating three new tensors
  (bit-identical: the same fp16 products and sum), only without autograd.

The temporal ResNets are left alone: their GroupNorm statistics span all frames and positions.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from diffusers.models.attention import BasicTransformerBlock, TemporalBasicTransformerBlock
from diffusers.models.resnet import AlphaBlender, ResnetBlock2D

#: Pieces per block: enough to make the temporaries small beside the activations that must stay, few enough that each
#: piece still fills a GPU (an eighth of a 110-frame window at 1024x576 is 14 frames / 127 k sequences).
DEFAULT_CHUNKS = 8


def _step(total: int, chunks: int) -> int:
    return max(1, -(-total // chunks))


def _frame_chunked_resnet(
    forward: Callable[..., torch.Tensor], chunks: int, input_tensor: torch.Tensor, temb: torch.Tensor | None
) -> torch.Tensor:
    """``ResnetBlock2D.forward`` over [N, C, H, W] frames (``temb`` [N, C'] or None) in ``chunks`` groups."""
    frames = input_tensor.shape[0]
    step = _step(frames, chunks)
    if step >= frames or (temb is not None and temb.shape[0] != frames):
        return forward(input_tensor, temb)
    out: torch.Tensor | None = None
    for start in range(0, frames, step):
        piece = forward(input_tensor[start : start + step], None if temb is None else temb[start : start + step])
        if out is None:
            out = piece.new_empty((frames, *piece.shape[1:]))
        out[start : start + piece.shape[0]] = piece
    assert out is not None
    return out


def _frame_chunked_transformer(
    forward: Callable[..., torch.Tensor],
    chunks: int,
    hidden_states: torch.Tensor,
    encoder_hidden_states: torch.Tensor | None = None,
    **kwargs: object,
) -> torch.Tensor:
    """``BasicTransformerBlock.forward`` over [N, S, C] tokens of N frames (context [N, L, D] or None) in groups."""
    frames = hidden_states.shape[0]
    step = _step(frames, chunks)
    context_per_frame = encoder_hidden_states is None or encoder_hidden_states.shape[0] == frames
    if step >= frames or kwargs or not context_per_frame:
        return forward(hidden_states, encoder_hidden_states=encoder_hidden_states, **kwargs)
    out: torch.Tensor | None = None
    for start in range(0, frames, step):
        context = None if encoder_hidden_states is None else encoder_hidden_states[start : start + step]
        piece = forward(hidden_states[start : start + step], encoder_hidden_states=context)
        if out is None:
            out = piece.new_empty((frames, *piece.shape[1:]))
        out[start : start + piece.shape[0]] = piece
    assert out is not None
    return out


def _position_chunked_temporal(
    forward: Callable[..., torch.Tensor],
    chunks: int,
    hidden_states: torch.Tensor,
    num_frames: int,
    encoder_hidden_states: torch.Tensor | None = None,
) -> torch.Tensor:
    """``TemporalBasicTransformerBlock.forward`` over [B·T, S, C] tokens in groups of the S positions.

    The block attends across the T frames of each (batch, position) sequence; ``encoder_hidden_states`` is
    [B·S, L, D] (one context per sequence, batch-major, as diffusers' ``TransformerSpatioTemporalModel`` passes it).
    """
    batch_frames, positions, _ = hidden_states.shape
    batch = batch_frames // num_frames
    step = _step(positions, chunks)
    if step >= positions or (encoder_hidden_states is not None and encoder_hidden_states.shape[0] != batch * positions):
        return forward(hidden_states, num_frames, encoder_hidden_states)
    contexts = None
    if encoder_hidden_states is not None:
        contexts = encoder_hidden_states.reshape(batch, positions, *encoder_hidden_states.shape[1:])
    out: torch.Tensor | None = None
    for start in range(0, positions, step):
        stop = min(start + step, positions)
        context = None if contexts is None else contexts[:, start:stop].flatten(0, 1)
        piece = forward(hidden_states[:, start:stop], num_frames, context)
        if out is None:
            out = piece.new_empty((batch_frames, positions, piece.shape[-1]))
        out[:, start:stop] = piece
    assert out is not None
    return out


def _blend_in_place(
    blender: AlphaBlender,
    forward: Callable[..., torch.Tensor],
    x_spatial: torch.Tensor,
    x_temporal: torch.Tensor,
    image_only_indicator: torch.Tensor | None = None,
) -> torch.Tensor:
    """``AlphaBlender.forward`` (alpha·spatial + (1 − alpha)·temporal) computed in the inputs' memory.

    The callers in diffusers' SVD blocks pass two fresh tensors they never read again. Falls back to the plain
    forward with autograd on or when the result's dtype or shape would differ from ``x_spatial``'s."""
    alpha = blender.get_alpha(image_only_indicator, x_spatial.ndim).to(x_spatial.dtype)
    if blender.switch_spatial_to_temporal_mix:
        alpha = 1.0 - alpha
    in_place = (
        not torch.is_grad_enabled()
        and x_spatial.dtype == x_temporal.dtype
        and x_spatial.shape == x_temporal.shape
        and torch.broadcast_shapes(alpha.shape, x_spatial.shape) == x_spatial.shape
    )
    if not in_place:
        return forward(x_spatial, x_temporal, image_only_indicator)
    return x_spatial.mul_(alpha).add_(x_temporal.mul_(1.0 - alpha))


def use_lean_blocks(model: torch.nn.Module, chunks: int | None = DEFAULT_CHUNKS) -> int:
    """Run ``model``'s spatial ResNets and transformer blocks in ``chunks`` pieces and its blends in place (see the
    module docstring); ``None`` restores the plain forwards. Patches instances in place (not for compiled blocks:
    a per-instance forward would stop blocks of equal shapes from sharing a graph). Returns the number changed."""
    count = 0
    for module in model.modules():
        wrapper: Callable[..., torch.Tensor] | None = None
        if isinstance(module, TemporalBasicTransformerBlock):
            wrapper = _position_chunked_temporal
        elif isinstance(module, BasicTransformerBlock):
            wrapper = _frame_chunked_transformer
        elif isinstance(module, ResnetBlock2D):
            wrapper = _frame_chunked_resnet
        elif not isinstance(module, AlphaBlender):
            continue
        module.__dict__.pop("forward", None)  # back to the class's forward
        if chunks is not None:
            if wrapper is None:
                module.forward = partial(_blend_in_place, module, module.forward)
            else:
                module.forward = partial(wrapper, module.forward, chunks)
        count += 1
    return count
