"""Cross-attention to ONE context token, without the attention: an exact shortcut for the SVD UNets.

The SVD UNets (DepthCrafter's and StereoCrafter's) cross-attend to a single CLIP image embedding: spatial blocks to
one token per frame ([B·T, 1, 1024]), temporal blocks to one token per sequence. A softmax over one key is exactly 1,
so every query's output is that key's value, and ``attn2(x, context) = to_out(to_v(context))``, the same vector for
every token of a frame whatever ``x`` is. diffusers' default processor still projects every token to a query (a C×C
GEMM over all tokens), runs SDPA with one key (memory-bound) and projects every token out (another C×C GEMM);
:class:`SingleKeyCrossAttnProcessor` projects the context rows only and broadcasts the result. Under
``torch.compile`` the LayerNorm that feeds the unused queries (``norm2``) is dead code and is dropped as well.

Numerics: the same math; only GEMM rounding on fewer rows may differ (fp16). Other attention calls (self-attention,
masks, several context tokens, 4-D inputs, group or spatial norms) go to the default processor unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0


class SingleKeyCrossAttnProcessor:
    """diffusers attention processor: cross-attention to one context token as ``to_out(to_v(context))``.

    ``hidden_states`` [B, N, C], ``encoder_hidden_states`` [B, 1, D] → [B, N, C_out] (a broadcast view: every token of
    a row gets the same vector). Any other call is handed to ``AttnProcessor2_0``.
    """

    def __init__(self) -> None:
        self.default = AttnProcessor2_0()

    @staticmethod
    def applies(attn: Attention, hidden_states: torch.Tensor, context: torch.Tensor | None, mask: Any) -> bool:
        return (
            context is not None
            and context.dim() == 3
            and context.shape[1] == 1
            and hidden_states.dim() == 3
            and mask is None
            and attn.spatial_norm is None
            and attn.group_norm is None
        )

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
        if not self.applies(attn, hidden_states, encoder_hidden_states, attention_mask):
            return self.default(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        context = encoder_hidden_states
        if attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        out = attn.to_out[1](attn.to_out[0](attn.to_v(context)))  # [B, 1, C_out]: softmax over one key is 1
        if attn.residual_connection:
            return (out + hidden_states) / attn.rescale_output_factor
        out = out / attn.rescale_output_factor  # before the broadcast: one row per context token, not per query
        return out.expand(hidden_states.shape[0], hidden_states.shape[1], out.shape[-1])


def use_single_key_cross_attention(model: torch.nn.Module, enable: bool = True) -> int:
    """Give every cross-attention of ``model`` that uses diffusers' default processor ONE shared
    :class:`SingleKeyCrossAttnProcessor` (one object, so blocks compiled in place can share graphs); ``enable=False``
    gives them the default processor back. Returns the number of attention modules changed."""
    shortcut, default = SingleKeyCrossAttnProcessor(), AttnProcessor2_0()
    count = 0
    for module in model.modules():
        if not isinstance(module, Attention) or not module.is_cross_attention:
            continue
        processor = module.processor
        if enable and type(processor) is AttnProcessor2_0:
            module.set_processor(shortcut)
            count += 1
        elif not enable and isinstance(processor, SingleKeyCrossAttnProcessor):
            module.set_processor(default)
            count += 1
    return count
