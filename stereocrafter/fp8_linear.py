"""fp8 matrix products for the SVD UNets' transformer layers: an opt-in speed mode that CHANGES the numerics.

Hopper (and Ada) tensor cores multiply fp8 (e4m3) at twice their fp16 rate. :class:`Fp8Linear` keeps a linear layer's
weight in e4m3 with one fp32 scale per output channel (amax / 448, set once) and quantises its input per row at run
time the same way; ``torch._scaled_mm`` multiplies with fp32 accumulation and applies both scales and the bias in its
epilogue. Each element keeps 3 mantissa bits, so outputs move by about 1–3 % of their magnitude; that is why it is
never a default. Only the transformer layers' linears over every token are converted (projections, attention
q/k/v/out, feed-forwards), not the time embedding, convolutions or the cross-attention to the CLIP token (a few rows).

The per-row quantisation is an extra element-wise pass over each activation: compiled (``compile_unet_blocks``) it is
fused with the op that produced the activation; eagerly it may cost more than the faster products save.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max  # 448
TRANSFORMER_CLASSES = ("TransformerSpatioTemporalModel",)
MIN_CAPABILITY = (8, 9)  # Ada, Hopper and newer have fp8 tensor cores


def fp8_supported(device: torch.device) -> bool:
    """Whether ``device`` multiplies fp8 in hardware (CUDA compute capability ≥ 8.9)."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= MIN_CAPABILITY


def _quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[M, K] float → ([M, K] e4m3, [M, 1] fp32 scales) with ``x ≈ q · scale`` row by row."""
    scale = x.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX
    return (x.float() / scale).to(FP8), scale


class Fp8Linear(torch.nn.Module):
    """``nn.Linear`` computed as an fp8 product: weight [N, K] e4m3 + [1, N] scales, input quantised per row.

    Input [..., K] in the layer's dtype → output [..., N] in that dtype (fp16/bf16). K and N must be multiples of 16.
    """

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        if linear.in_features % 16 or linear.out_features % 16:
            raise ValueError(f"fp8 products need in/out features that are multiples of 16, got {linear}")
        weight, scale = _quantize_rows(linear.weight.detach())
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.out_dtype = linear.weight.dtype
        self.register_buffer("weight_fp8", weight)  # [N, K]
        self.register_buffer("weight_scale", scale.reshape(1, -1).contiguous())  # [1, N]
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        q, scale = _quantize_rows(rows)
        out = torch._scaled_mm(
            q,
            self.weight_fp8.t(),  # column-major [K, N], as the fp8 kernels want
            scale_a=scale,
            scale_b=self.weight_scale,
            bias=self.bias,
            out_dtype=self.out_dtype,
        )
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, e4m3, out {self.out_dtype}"


def use_fp8_linear(model: torch.nn.Module) -> int:
    """Replace, in place, the linear layers of ``model``'s transformer blocks by :class:`Fp8Linear` (not their
    cross-attention to the CLIP token, not the frame-position embedding). One way: the fp16 weights are dropped
    (reload the model to undo). Call it before ``compile_unet_blocks``. Returns the number of layers converted."""
    count = 0
    for block in model.modules():
        if type(block).__name__ not in TRANSFORMER_CLASSES:
            continue
        # Cross-attention (a few context rows) and the frame-position embedding (T rows) gain nothing.
        few_rows = [a for a in block.modules() if isinstance(a, Attention) and a.is_cross_attention]
        few_rows += [block.time_pos_embed] if hasattr(block, "time_pos_embed") else []
        skip = {id(m) for owner in few_rows for m in owner.modules()}
        for parent in list(block.modules()):
            if id(parent) in skip:
                continue
            for name, child in list(parent.named_children()):
                if type(child) is torch.nn.Linear:
                    setattr(parent, name, Fp8Linear(child))
                    count += 1
    return count
