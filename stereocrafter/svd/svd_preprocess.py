"""Shared SVD-side encoders/decoders for the depth and inpainting pipelines, with the reference's numerics.

- CLIP image embeddings (reference.md §3.6 step 2, §4.3 step 3): ``x`` in [-1, 1] → antialiased resize to 224×224
  (our re-implementation of diffusers' ``_resize_with_antialiasing``) → ``(x + 1) / 2`` → CLIP mean/std → encoder.
- VAE encode: posterior mode (= mean), NO scaling factor (the SVD conditioning latents are unscaled).
- VAE decode: ``latents / scaling_factor`` through the temporal decoder, ``num_frames`` = chunk length (the decoder
  mixes frames inside a chunk, so the chunk size changes pixels).

Everything works chunk by chunk: inputs may live on the CPU, each chunk is moved to the module's device and results are
returned on ``out_device``, so GPU memory depends on the chunk size, not on the clip length.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F


def module_device_dtype(module: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of a module's first parameter."""
    param = next(module.parameters())
    return param.device, param.dtype


def move_module(
    module: torch.nn.Module, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> torch.nn.Module:
    """``module.to(device, dtype)`` through torch's own method (diffusers' override logs a spurious warning)."""
    return torch.nn.Module.to(module, device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------------------
# Antialiased resize (same numerics as diffusers' _resize_with_antialiasing, which follows kornia/skimage)
# ----------------------------------------------------------------------------------------------------------------------


def _blur_sigma(src: int, dst: int) -> float:
    """skimage's anti-aliasing sigma for a ``src → dst`` downscale; a tiny sigma (≈ no blur) when upscaling."""
    return max((src / dst - 1.0) / 2.0, 0.001)


def _blur_kernel_size(sigma: float) -> int:
    """2σ on each side, at least 3 taps, always odd."""
    size = int(max(4.0 * sigma, 3))
    return size + 1 if size % 2 == 0 else size


def _gaussian_taps(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` (odd) taps centred on the middle tap; sigma rounded to ``dtype`` first
    (the reference builds its sigma tensor in the input dtype)."""
    sigma_t = torch.tensor(sigma, dtype=dtype, device=device)
    offsets = torch.arange(size, dtype=dtype, device=device) - size // 2
    taps = torch.exp(-offsets.pow(2.0) / (2 * sigma_t.pow(2.0)))
    return taps / taps.sum()


def _separable_blur(x: torch.Tensor, taps_h: torch.Tensor, taps_w: torch.Tensor) -> torch.Tensor:
    """Depthwise blur along W then H with reflect padding (kernel sizes are odd, so padding is symmetric)."""
    n, c, h, w = x.shape
    kw, kh = taps_w.numel(), taps_h.numel()
    weight_w = taps_w.view(1, 1, 1, kw).expand(c, 1, 1, kw)
    x = F.conv2d(F.pad(x, (kw // 2, kw // 2, 0, 0), mode="reflect"), weight_w, groups=c)
    weight_h = taps_h.view(1, 1, kh, 1).expand(c, 1, kh, 1)
    return F.conv2d(F.pad(x, (0, 0, kh // 2, kh // 2), mode="reflect"), weight_h, groups=c)


def resize_with_antialiasing(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Gaussian blur (σ = max((factor−1)/2, 0.001), kernel max(4σ, 3) made odd, reflect padding) then bicubic
    resize with ``align_corners=True``. Non-square inputs are squashed to ``size`` (as the reference does).

    Args:
        x: [N, C, H, W] float (fp32 in the reference path).
        size: (height, width) of the output.

    Returns:
        [N, C, size[0], size[1]] in ``x.dtype``.
    """
    h, w = x.shape[-2:]
    sigma_h, sigma_w = _blur_sigma(h, size[0]), _blur_sigma(w, size[1])
    taps_h = _gaussian_taps(_blur_kernel_size(sigma_h), sigma_h, x.dtype, x.device)
    taps_w = _gaussian_taps(_blur_kernel_size(sigma_w), sigma_w, x.dtype, x.device)
    blurred = _separable_blur(x, taps_h, taps_w)
    return F.interpolate(blurred, size=size, mode="bicubic", align_corners=True)


# ----------------------------------------------------------------------------------------------------------------------
# CLIP image embeddings
# ----------------------------------------------------------------------------------------------------------------------


def clip_pixels(
    x: torch.Tensor, mean: Sequence[float], std: Sequence[float], size: int = 224, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """CLIP input from frames in [-1, 1]: fp32 antialiased resize → [0, 1] → normalise → ``dtype``.

    Args:
        x: [N, 3, H, W] in [-1, 1], any float dtype (the reference resizes ``x.float()``).

    Returns:
        [N, 3, size, size] normalised pixels in ``dtype`` (default ``x.dtype``).
    """
    small = resize_with_antialiasing(x.float(), (size, size))
    small = (small + 1.0) / 2.0
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return ((small - mean_t) / std_t).to(dtype or x.dtype)


@torch.inference_mode()
def clip_image_embeds(
    x: torch.Tensor, image_encoder: torch.nn.Module, mean: Sequence[float], std: Sequence[float], size: int = 224
) -> torch.Tensor:
    """Projected CLIP embeddings of frames in [-1, 1] (one chunk; moved to the encoder's device).

    Returns:
        [N, projection_dim] in the encoder's dtype, on the encoder's device.
    """
    device, dtype = module_device_dtype(image_encoder)
    pixels = clip_pixels(x.to(device), mean, std, size, dtype)
    return image_encoder(pixel_values=pixels).image_embeds


def encode_clip_chunks(
    frames: torch.Tensor,
    image_encoder: torch.nn.Module,
    mean: Sequence[float],
    std: Sequence[float],
    chunk_size: int = 8,
    size: int = 224,
    out_device: torch.device | str | None = None,
) -> torch.Tensor:
    """:func:`clip_image_embeds` over a clip in chunks. ``frames``: [T, 3, H, W] in [-1, 1] on any device.

    Returns:
        [T, projection_dim] on ``out_device`` (default: the encoder's device).
    """
    chunks = [
        clip_image_embeds(frames[i : i + chunk_size], image_encoder, mean, std, size).to(out_device)
        for i in range(0, frames.shape[0], chunk_size)
    ]
    return torch.cat(chunks)


# ----------------------------------------------------------------------------------------------------------------------
# VAE encode / decode
# ----------------------------------------------------------------------------------------------------------------------


@contextmanager
def module_dtype(module: torch.nn.Module, dtype: torch.dtype | None) -> Iterator[torch.nn.Module]:
    """Temporarily cast a module (e.g. the VAE to fp32 for the reference's ``force_upcast`` encode); fp16/bf16 →
    fp32 → back is exact, so the weights are unchanged afterwards."""
    _, original = module_device_dtype(module)
    if dtype is None or dtype == original:
        yield module
        return
    move_module(module, dtype=dtype)
    try:
        yield module
    finally:
        move_module(module, dtype=original)


@torch.inference_mode()
def vae_encode_mode(vae: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Posterior mode (= mean) of one chunk, unscaled. ``x``: [N, 3, H, W] in [-1, 1] → [N, 4, H/8, W/8] in the VAE's
    dtype on its device."""
    device, dtype = module_device_dtype(vae)
    return vae.encode(x.to(device=device, dtype=dtype)).latent_dist.mode()


def vae_encode_chunks(
    vae: torch.nn.Module, frames: torch.Tensor, chunk_size: int = 8, out_device: torch.device | str | None = None
) -> torch.Tensor:
    """:func:`vae_encode_mode` over a clip in chunks; ``frames`` [T, 3, H, W] in [-1, 1] on any device.

    Returns:
        [T, 4, H/8, W/8] on ``out_device`` (default: the VAE's device).
    """
    chunks = [
        vae_encode_mode(vae, frames[i : i + chunk_size]).to(out_device) for i in range(0, frames.shape[0], chunk_size)
    ]
    return torch.cat(chunks)


@torch.inference_mode()
def vae_decode_chunk(vae: torch.nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """Temporal-decode one chunk. ``latents``: [N, 4, h, w] SCALED (as the UNet produces them) → [N, 3, 8h, 8w] in
    [-1, 1] (roughly), VAE dtype, VAE device. The chunk is one temporal sequence (``num_frames=N``)."""
    device, dtype = module_device_dtype(vae)
    scaled = latents.to(device=device, dtype=dtype) * (1 / vae.config.scaling_factor)
    return vae.decode(scaled, num_frames=scaled.shape[0]).sample


def iter_vae_decode(
    vae: torch.nn.Module, latents: torch.Tensor, chunk_size: int = 8
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, frames)`` for consecutive chunks of ``chunk_size`` latents (last one shorter), decoded on the
    VAE's device, so callers can post-process each chunk there and keep only small results."""
    for start in range(0, latents.shape[0], chunk_size):
        yield start, vae_decode_chunk(vae, latents[start : start + chunk_size])


def vae_decode_chunks(
    vae: torch.nn.Module, latents: torch.Tensor, chunk_size: int = 8, out_device: torch.device | str | None = "cpu"
) -> torch.Tensor:
    """All frames of :func:`iter_vae_decode`, float32 on ``out_device``. [T, 4, h, w] → [T, 3, 8h, 8w]."""
    return torch.cat([frames.float().to(out_device) for _, frames in iter_vae_decode(vae, latents, chunk_size)])


def num_chunks(length: int, chunk_size: int) -> int:
    """How many chunks of ``chunk_size`` cover ``length`` items."""
    return math.ceil(length / chunk_size)
