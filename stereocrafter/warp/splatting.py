"""Forward splatting of the left view into the right view, with an occlusion mask.

Every source pixel of the left view moves horizontally by ``-disparity`` and is splatted bilinearly
into the two nearest target columns of its own row. Collisions are resolved with the reference's soft
z-buffer: each contribution is weighted by ``1.414 ** (disparity - row minimum)``, so nearer pixels
(larger disparity) dominate. The right view is ``sum(w * rgb) / sum(w)`` and the occlusion mask is
``1 - clamp(sum(bilinear weights), 0, 1)``: 1 where nothing landed (a hole to inpaint), fractional at
sub-pixel edges, 0 where the target is fully covered.

Two backends compute the same function: the CUDA extension in ``cuda_ext/`` (one fused pass, used
when it builds) and :func:`splat_torch`, a pure-PyTorch version that runs anywhere.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import torch

from . import splat_cuda

logger = logging.getLogger(__name__)

Backend = Literal["auto", "cuda", "torch"]

#: Base of the soft z-buffer weights, as in the reference (weight doubles per +2 px of disparity).
ZBUFFER_BASE = 1.414
#: Weight exponents are clamped so that 1.414**e (<= 2**100) summed over many colliding pixels stays
#: below the fp32 maximum (2**128); only disparity ranges over 200 px reach it.
MAX_WEIGHT_EXPONENT = 200.0
#: Denominator clamp of the normalisation, as in the reference.
EPS = 1e-6


def forward_splat(
    frames: torch.Tensor,
    disparity: torch.Tensor,
    reference_edges: bool = False,
    backend: Backend = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp left-eye frames into the right eye.

    Args:
        frames: [T, H, W, 3] float (fp32, fp16 or bf16), values 0..1, the left view.
        disparity: [T, H, W] float, in pixels; the right view is the left moved by ``-disparity``
            (positive = near, shifted left). Non-finite values splat nothing.
        reference_edges: reproduce the reference kernel's border rule (a pixel counts only if all
            four bilinear corners are inside the frame: the bottom row is always a hole and targets
            in [W-1, W) are dropped). By default every corner inside the frame is splatted.
        backend: ``"cuda"`` (the compiled kernel; an error if it is unavailable), ``"torch"`` (the
            pure-PyTorch implementation) or ``"auto"`` (the kernel for CUDA tensors once it is built; the first
            use starts its build in the background and runs PyTorch meanwhile).

    Returns:
        right: [T, H, W, 3] in the dtype of ``frames``, holes are 0.
        occlusion: [T, H, W] in the dtype of ``frames``, 1 = hole, 0 = covered.
    """
    _check_splat_inputs(frames, disparity)
    if _use_cuda(frames, backend):
        return splat_cuda.splat_cuda(frames, disparity, reference_edges)
    right, occlusion = splat_torch(frames, disparity, reference_edges)
    return right.to(frames.dtype), occlusion.to(frames.dtype)


def _use_cuda(frames: torch.Tensor, backend: Backend) -> bool:
    if backend == "torch":
        return False
    if backend == "cuda":
        if not frames.is_cuda:
            raise ValueError(
                "backend='cuda' needs the frames on a CUDA device; use backend='auto' or 'torch' on the CPU."
            )
        if not splat_cuda.cuda_splat_available():
            raise RuntimeError(
                "backend='cuda' was requested but the CUDA splat kernel could not be built; "
                "see the warning above for why, or use backend='auto' to fall back to PyTorch."
            )
        return True
    if backend != "auto":
        raise ValueError(f"backend must be 'auto', 'cuda' or 'torch', got {backend!r}.")
    # Never wait for a build: the kernel is used once it is cached or built in the background.
    return frames.is_cuda and splat_cuda.cuda_splat_ready()


def _check_splat_inputs(frames: torch.Tensor, disparity: torch.Tensor) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3], got shape {tuple(frames.shape)}.")
    if disparity.shape != frames.shape[:3]:
        raise ValueError(
            f"disparity must be [T, H, W] matching frames {tuple(frames.shape[:3])}, got {tuple(disparity.shape)}."
        )
    if not frames.is_floating_point() or not disparity.is_floating_point():
        raise ValueError(f"frames and disparity must be floating point, got {frames.dtype} and {disparity.dtype}.")
    if frames.device != disparity.device:
        raise ValueError(f"frames are on {frames.device} but disparity is on {disparity.device}.")


def splat_torch(
    frames: torch.Tensor, disparity: torch.Tensor, reference_edges: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-PyTorch forward splat (any device, no host synchronisation).

    Same contract as :func:`forward_splat`, but the outputs are always float32.
    """
    t, h, w = disparity.shape
    device = frames.device
    disp = disparity.float()
    rgb = frames.float().reshape(t * h * w, 3)

    finite = torch.isfinite(disp)
    rowmin = torch.where(finite, disp, torch.inf).amin(dim=-1, keepdim=True)
    exponent = (disp - rowmin).clamp(max=MAX_WEIGHT_EXPONENT)
    zweight = torch.where(finite, torch.exp2(exponent * math.log2(ZBUFFER_BASE)), 0.0)

    target = torch.arange(w, device=device, dtype=torch.float32) - torch.where(finite, disp, 0.0)
    left_col = torch.floor(target)
    frac = target - left_col
    left_col = left_col.long()

    valid = finite
    if reference_edges:
        rows = torch.arange(h, device=device).view(1, h, 1)
        valid = valid & (left_col >= 0) & (left_col + 1 <= w - 1) & (rows + 1 <= h - 1)

    # Each source pixel carries [r*w, g*w, b*w, w, 1]; a corner adds that times its bilinear weight, which
    # accumulates [sum w*b*rgb, sum w*b, sum b] per target pixel with one multiply and one index_add_.
    carried = torch.empty(t * h * w, 5, device=device, dtype=torch.float32)
    carried[:, :3] = rgb * zweight.reshape(-1, 1)
    carried[:, 3] = zweight.reshape(-1)
    carried[:, 4] = 1.0
    contribution = torch.empty_like(carried)
    accum = torch.zeros_like(carried)
    row_base = torch.arange(t * h, device=device).view(t, h, 1) * w
    for col, bilinear in ((left_col, 1.0 - frac), (left_col + 1, frac)):
        inside = valid & (col >= 0) & (col <= w - 1)
        # Out-of-frame corners add zeros at a clamped index instead of being filtered out:
        # boolean indexing would force a host synchronisation.
        bilinear = torch.where(inside, bilinear, 0.0)
        torch.mul(carried, bilinear.reshape(-1, 1), out=contribution)
        accum.index_add_(0, (row_base + col.clamp(0, w - 1)).reshape(-1), contribution)

    right = accum[:, :3] / accum[:, 3:4].clamp(min=EPS)
    occlusion = 1.0 - accum[:, 4].clamp(0.0, 1.0)
    return right.reshape(t, h, w, 3), occlusion.reshape(t, h, w)
