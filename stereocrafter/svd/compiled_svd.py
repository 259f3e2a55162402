"""``torch.compile`` for the SVD networks, sized for this pack: compile the repeated blocks, not whole models.

Measured on an H100 (session of 2026-11-25, in the git history of bench/README.md): an eager UNet pass (70 frames,
1024x576) spends about half of its kernel time in unfused element-wise ops, GroupNorm/LayerNorm and layout copies,
the temporal VAE decoder about 80 %. Inductor fuses those: UNet pass 951 -> 663 ms (:func:`compile_unet_blocks`,
147 s to compile on a cold cache; the whole-model compile had not finished after 110 s), decode of 8 frames
751 -> 292 ms (whole decoder, static shapes, 64 s to compile per shape). With dynamic shapes the decoder's compile had
not finished after 140 s, so :func:`compile_vae` compiles static shapes by default: every new (frames, height, width)
compiles once more (the depth pipeline's last, shorter chunk too).

:func:`compile_unet_blocks` compiles each ``SpatioTemporalResBlock`` and ``TransformerSpatioTemporalModel`` in place
("regional compilation"), after turning ``chunk_feed_forward``'s per-module chunking into a class-level one
(:func:`shareable_ff_chunking`): a per-module ``functools.partial`` is guarded by identity and made every transformer
block compile its own graph. :func:`compile_vae` can first give the VAE attention one processor that stays the same
between calls (a processor swapped per call would fail the compiled graph's guards and recompile every time).

:func:`compile_unet_blocks` and :func:`compile_vae` first swap in :mod:`.frames_major_blocks`: diffusers'
``SpatioTemporalResBlock`` permutes its activations to [B, C, T, H, W] and back, and ``nn.GroupNorm`` compiles into one
reduction per (sample, group), too few rows to fill the GPU; the swapped classes do the same math without either.

Numerics: the eager modules' up to fp16 rounding of fused kernels (GroupNorm statistics and element-wise chains stay in
fp32 inside a fused kernel instead of rounding between ops): max abs difference 3.4e-3 on the UNet output (max 1.68),
6.6e-3 on the decoded frames (max 1.24). :func:`decompile` restores the eager modules (the class-level feed-forward
chunking stays: same math). Inductor's on-disk cache shortens compilation in later processes (depth pipeline on an
H200: 167 s on a cold cache, 29 s in a later process).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import torch
from diffusers.models.attention import FeedForward

from ..depth.depthcrafter_unet import _row_chunked
from .frames_major_blocks import use_frames_major_blocks

logger = logging.getLogger(__name__)

UNET_BLOCK_CLASSES = ("SpatioTemporalResBlock", "TransformerSpatioTemporalModel")
RECOMPILE_LIMIT = 256  # all in-place compiled modules share nn.Module._call_impl's code object and its cache entries


def is_unet_block(module: torch.nn.Module) -> bool:
    """Whether :func:`compile_unet_blocks` compiles ``module``: one of ``UNET_BLOCK_CLASSES`` or a subclass (e.g.
    :class:`~.frames_major_blocks.FramesMajorSpatioTemporalResBlock`)."""
    return any(cls.__name__ in UNET_BLOCK_CLASSES for cls in type(module).__mro__)


def _raise_recompile_limit(limit: int = RECOMPILE_LIMIT) -> None:
    """Every module compiled in place shares one code object, so the default limit (8 graphs) would silently send
    blocks past the 8th shape back to eager. Raise the per-code and the accumulated limits."""
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, limit)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, 4 * limit)


class RowChunkedFeedForward(FeedForward):
    """``FeedForward`` that runs at most ``max_rows`` tokens at a time (the math of ``chunk_feed_forward``), with the
    chunking in the CLASS: ``chunk_feed_forward`` stores a ``functools.partial`` per module, which a compiled graph
    guards by identity, so no two transformer blocks could share a graph (measured: 30 graphs for the UNet)."""

    max_rows: int = 1 << 16

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return _row_chunked(partial(FeedForward.forward, self, *args, **kwargs), self.max_rows, hidden_states)


def shareable_ff_chunking(model: torch.nn.Module) -> int:
    """Turn the per-module feed-forward chunking of ``chunk_feed_forward`` into :class:`RowChunkedFeedForward` (same
    rows, same math). Returns the number of modules converted."""
    count = 0
    for module in model.modules():
        forward = module.__dict__.get("forward")
        if isinstance(module, FeedForward) and isinstance(forward, partial) and forward.func is _row_chunked:
            del module.__dict__["forward"]
            module.__class__ = RowChunkedFeedForward
            module.max_rows = int(forward.args[1])
            count += 1
    return count


def compile_unet_blocks(
    unet: torch.nn.Module,
    mode: str | None = None,
    dynamic: bool | None = False,
    options: dict[str, Any] | None = None,
    frames_major: bool = True,
) -> int:
    """Compile every spatio-temporal ResNet block and transformer of an SVD UNet in place (``Module.compile``).

    Feed-forward chunking set by ``chunk_feed_forward`` is first converted by :func:`shareable_ff_chunking`, so
    blocks of equal shapes share one graph (call it again if ``chunk_feed_forward`` is applied afterwards).

    Args:
        unet: ``UNetSpatioTemporalConditionModel`` or a subclass (DepthCrafter's, StereoCrafter's).
        mode: ``torch.compile`` mode (None = default; "max-autotune-no-cudagraphs" autotunes GEMMs: slower to compile).
        dynamic: ``torch.compile``'s ``dynamic`` (False: one graph per shape; the windows/chunks of a run share shapes).
        options: Inductor options for ``torch.compile`` (e.g. ``{"coordinate_descent_tuning": True}``); not with
            ``mode``.
        frames_major: first swap in :mod:`.frames_major_blocks` (no layout permutes in the ResNet blocks, GroupNorm
            statistics in two stages: same math, faster compiled kernels).

    Returns:
        The number of modules compiled.
    """
    _raise_recompile_limit()
    use_frames_major_blocks(unet, frames_major)
    shareable_ff_chunking(unet)
    count = 0
    for module in unet.modules():
        if is_unet_block(module):
            module.compile(mode=mode, dynamic=dynamic, options=options)
            count += 1
    logger.info("Compiling %d UNet blocks on first use", count)
    return count


def compile_vae(
    vae: torch.nn.Module,
    encoder: bool = True,
    decoder: bool = True,
    mode: str | None = None,
    max_attention_elements: int | None = None,
    dynamic: bool | None = False,
    options: dict[str, Any] | None = None,
    frames_major_encoder: bool = True,
    frames_major_decoder: bool = True,
) -> int:
    """Compile the VAE's encoder and/or temporal decoder in place.

    Args:
        vae: ``AutoencoderKLTemporalDecoder``.
        encoder, decoder: which parts to compile.
        mode: ``torch.compile`` mode.
        options: Inductor options for ``torch.compile``; not with ``mode``.
        frames_major_encoder: first swap in :mod:`.frames_major_blocks` in the encoder (its GroupNorms; on an H200
            70 frames at 1024x576 encode in 0.58 instead of 0.73 s, same peak).
        frames_major_decoder: the same in the temporal decoder (depth pipeline on an H200, 70 frames at 1024x576:
            decode 2.37 -> 1.62 s, same 11.04 GiB peak).
        dynamic: ``torch.compile``'s ``dynamic``; False (default) compiles each shape on its own (64 s per decoder
            shape on the H100 machine); True compiled for more than 140 s there without finishing.
        max_attention_elements: when set, install ONE :class:`~.lean_attention.QueryChunkedAttnProcessor`
            with this bound in every attention of the VAE now (same math as the default processor). Callers must then
            not swap processors per call (e.g. the inpainting pipeline's ``lean_vae_attention`` context), which would
            recompile on every call. On CUDA the default processor already runs the head-dim-512 attention through
            the memory-efficient SDPA kernel (O(N) memory), so None (keep it) is the fast choice there.

    Returns:
        The number of modules compiled.
    """
    _raise_recompile_limit()
    if max_attention_elements is not None:
        from diffusers.models.attention_processor import Attention

        from .lean_attention import QueryChunkedAttnProcessor

        processor = QueryChunkedAttnProcessor(max_attention_elements)
        for module in vae.modules():
            if isinstance(module, Attention):
                module.processor = processor
    count = 0
    if encoder and hasattr(vae, "encoder"):
        use_frames_major_blocks(vae.encoder, frames_major_encoder)
        vae.encoder.compile(mode=mode, dynamic=dynamic, options=options)
        count += 1
    if decoder and hasattr(vae, "decoder"):
        use_frames_major_blocks(vae.decoder, frames_major_decoder)
        vae.decoder.compile(mode=mode, dynamic=dynamic, options=options)
        count += 1
    return count


def decompile(model: torch.nn.Module) -> int:
    """Undo :func:`compile_unet_blocks` / :func:`compile_vae` (and any ``Module.compile``) on ``model`` and its
    submodules: they run eagerly again, with diffusers' own block and norm classes. Returns the number of modules
    restored."""
    use_frames_major_blocks(model, enable=False)
    count = 0
    for module in model.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None
            count += 1
    return count


def is_compiled(model: torch.nn.Module) -> bool:
    """Whether ``model`` or any submodule is compiled in place."""
    return any(getattr(m, "_compiled_call_impl", None) is not None for m in model.modules())
