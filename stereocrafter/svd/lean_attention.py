"""Memory-lean attention for the SVD VAE: the same math as diffusers' ``AttnProcessor2_0``, queries in chunks.

The VAE's mid-block attention is a single head of 512 channels over every latent cell of the frame. PyTorch's fused
SDPA kernels do not take head dim 512, so it runs the math path, which materialises the full attention matrix: at
1920×1024 (30 720 cells) and 2 frames per temporal-decode call that is 2 × 30 720² fp16 scores, 3.5 GiB, plus as
much again for the softmax (bench/inpaint.py measured a 7.6 GiB decode peak above the weights). Softmax is per query
row, so computing the rows in chunks gives the same values while bounding the matrix to ``max_elements``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

DEFAULT_MAX_ELEMENTS = 2**27  # attention-matrix elements per SDPA call (256 MiB in fp16)


class QueryChunkedAttnProcessor:
    """``AttnProcessor2_0`` with the queries split so no SDPA call sees more than ``max_elements`` scores.

    When everything fits in one call it makes exactly the call ``AttnProcessor2_0`` makes (bit-identical).
    """

    def __init__(self, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
        self.max_elements = max_elements

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        hidden_states = chunked_sdpa(query, key, value, attention_mask, self.max_elements)

        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def chunked_sdpa(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` over [B, H, Nq, D] queries in row chunks of ≤ ``max_elements`` scores."""
    batch, heads, n_q, _ = query.shape
    rows = max(1, max_elements // max(batch * heads * key.shape[-2], 1))
    if rows >= n_q:
        return F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0)
    out = query.new_empty(query.shape[:-1] + (value.shape[-1],))
    for start in range(0, n_q, rows):
        stop = min(start + rows, n_q)
        mask = attention_mask[..., start:stop, :] if attention_mask is not None else None
        out[:, :, start:stop] = F.scaled_dot_product_attention(
            query[:, :, start:stop], key, value, attn_mask=mask, dropout_p=0.0
        )
    return out


@contextmanager
def lean_attention(module: torch.nn.Module, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Iterator[None]:
    """Use :class:`QueryChunkedAttnProcessor` in every diffusers ``Attention`` of ``module`` (e.g. the VAE) for the
    duration of the block, then put the original processors back."""
    saved = [(m, m.processor) for m in module.modules() if isinstance(m, Attention)]
    processor = QueryChunkedAttnProcessor(max_elements)
    for m, _ in saved:
        m.processor = processor  # plain assignment: set_processor() would log and touch other state
    try:
        yield
    finally:
        for m, original in saved:
            m.processor = original
