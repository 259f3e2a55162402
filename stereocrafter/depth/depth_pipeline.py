"""Video depth with DepthCrafter, reproducing the reference numerics (reference.md §1.2–1.5, §3.7, §4.3).

Frames [T, H, W, 3] float 0..1 → depth [T, H, W] float 0..1 (near = 1: DepthCrafter's affine-invariant disparity),
at the INPUT size. :meth:`VideoDepthPipeline.stream` does the work window by window on frames that arrive in chunks;
:meth:`VideoDepthPipeline.__call__` streams a whole clip and normalises it. Steps (numbered as in ``_stream``):

1. Check each input chunk; processing size = multiples of 64 under ``max_res`` (banker's rounding, scale from the
   original dims); window plan from the frame count.
2. Encode lazily, only as far as the current window needs, in chunks of ``encode_chunk_size`` aligned to frame 0:
   resize → ``x·2−1`` → per-frame CLIP embedding → noise augmentation (0.02) → VAE posterior mode.
3. Time ids [7, 127, noise_aug], Euler v-prediction Karras schedule from the SVD scheduler config.
4. ONE window of initial noise, rotated so that a frame shared by two windows gets the same noise.
5. Sliding windows: overlap frames re-noised at step 0 from the previous window's result, optional CFG (cond and
   uncond batched in one UNet call), linear latent blending over the overlap.
6. After each window the frames before the next window's start are final: decode them in temporal chunks of
   ``decode_chunk_size`` aligned to frame 0 (the decoder's output depends on the chunking, so these are the chunks of
   a whole-clip decode), channel mean, bilinear resize to the input size, yield. ``__call__`` then min–max normalises
   over the whole clip.

Whatever the clip length, a stream holds about one window of embeddings, conditioning and stitched latents, one
decode chunk and one input chunk: every buffer drops the frames that no later step needs.

Deviations from the reference are listed in :data:`DEVIATIONS`.

RNG: the reference draws from one generator seeded with ``seed``: the augmentation noise of ALL frames first, then one
window of initial latents. A stream cannot draw in that order (it encodes lazily), so it uses two
``torch.Generator(device).manual_seed(seed)``: one draws the augmentation noise frame by frame as frames are encoded,
the other draws (and discards) T per-frame augmentation draws before the window noise, which gives the same numbers.
Drawing frame by frame does not depend on the chunk size. ``reference_rng=True`` draws the augmentation noise as ONE
[T, 3, h, w] tensor as the reference does, which gives bit-identical draws to the reference's ``set_seed(seed)``
global-RNG stream on the same device and dtype, at the cost of T·3·h·w elements at once: only ``__call__`` (which has
the whole clip anyway) offers it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..svd.lean_unet import DEFAULT_CHUNKS, use_lean_blocks
from ..svd.single_key_attention import use_single_key_cross_attention
from ..svd.svd_components import SVDComponents, load_svd_components
from ..svd.svd_preprocess import (
    clip_image_embeds,
    module_dtype,
    move_module,
    vae_decode_chunk,
    vae_encode_mode,
)
from .depthcrafter_unet import (
    DepthCrafterUNet,
    chunk_feed_forward,
    load_depthcrafter_unet,
    set_conv_memory_format,
    temporal_convs_as_2d,
)

logger = logging.getLogger(__name__)

SIZE_MULTIPLE = 64  # VAE ×8 and UNet ×8: the reference's read_video_frames rounds to multiples of 64
MAX_RES_LIMIT = 4096

DEVIATIONS = (
    "Input resize: torch antialiased bicubic (resize_mode) on float frames instead of FFmpeg swscale (decord) on uint8 "
    "frames; pixels differ slightly and the resized frames are not re-quantised to 8 bits.",
    "RNG: a torch.Generator(device) seeded with `seed` instead of set_seed's global RNGs; the augmentation noise is "
    "drawn frame by frame (on CUDA this differs from the reference's single [T,3,h,w] draw; on the CPU it happens to "
    "be identical). reference_rng=True makes the single draw (same order: augmentation noise, then one window).",
    "VAE encode runs in the compute dtype by default (reference: fp32 when the pipeline is fp16, because of "
    "force_upcast); vae_encode_fp32=True restores it.",
    "Cross-attention to the single CLIP token runs as to_out(to_v(context)) (single_key_attention; a softmax over one "
    "key is 1): no query projection, SDPA or per-token output projection. Same math; fp16 GEMM rounding may differ.",
    "CFG: the cond and uncond UNet passes are batched in one call by default (batch_cfg); same math, kernel rounding "
    "may differ. batch_cfg=False runs two passes like the reference.",
    "The clip is never held on the GPU as a whole: resize, CLIP, VAE encode/decode and the final resize run in "
    "chunks; encode_chunk_size is its own knob (the reference encodes in chunks of decode_chunk_size; the encoders "
    "are per-frame, so only rounding can differ).",
    "Processing sizes that round to 0 (sides under 32 px) are raised to 64 px instead of failing.",
    "overlap=0 with clips longer than one window stitches windows back to back (the reference's loop breaks there).",
    "A flat (constant) depth clip normalises to 0.5 instead of NaN; NaN/inf frames, empty clips and bad settings "
    "raise ValueError; RGBA frames lose alpha and 1-channel frames are repeated to RGB.",
    "The UNet forwards upsample sizes for latent sizes not divisible by 8 (never the case at multiples of 64).",
)

ResizeMode = Literal["bicubic", "bilinear", "area"]
DepthPreset = Literal["depthcrafter", "stereocrafter"]
#: Sampling settings by name. ``stereocrafter``: what StereoCrafter's reference runs (reference.md §1.4), the
#: :class:`DepthSettings` defaults. ``depthcrafter``: DepthCrafter v1.0.1's own ``run.py`` defaults, which its
#: authors measured 4.1x faster than their earlier settings (465.84 vs 1913.92 ms/frame at 1024x576, A100) with
#: equal or better accuracy on all four of their benchmarks (README release notes); for us about 3.8x less UNet
#: work than ``stereocrafter`` (5 steps x 1 pass over 110-frame windows instead of 8 x 2 over 70-frame windows).
DEPTH_PRESETS: dict[str, dict[str, Any]] = {
    "depthcrafter": {"num_inference_steps": 5, "guidance_scale": 1.0, "window_size": 110, "overlap": 25},
    "stereocrafter": {"num_inference_steps": 8, "guidance_scale": 1.2, "window_size": 70, "overlap": 25},
}


@dataclass
class DepthSettings:
    """DepthCrafter parameters; defaults are StereoCrafter's (reference.md §1.4), :meth:`preset` gives others."""

    num_inference_steps: int = 8
    guidance_scale: float = 1.2
    window_size: int = 70
    overlap: int = 25
    seed: int = 42
    max_res: int = 1024
    decode_chunk_size: int = 8  # temporal decoder chunk: changes pixels, keep 8 for the reference
    encode_chunk_size: int = 8  # CLIP/VAE-encode chunk: per-frame work, memory only
    noise_aug_strength: float = 0.02
    fps_id: int = 7
    motion_bucket_id: int = 127
    vae_encode_fp32: bool = False
    batch_cfg: bool = True
    reference_rng: bool = False
    resize_mode: ResizeMode = "bicubic"

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DepthSettings:
        """The sampling settings of :data:`DEPTH_PRESETS` ``name``, with ``overrides`` (any other field) on top."""
        if name not in DEPTH_PRESETS:
            raise ValueError(f"Unknown depth preset {name!r}: use one of {', '.join(DEPTH_PRESETS)}.")
        return cls(**{**DEPTH_PRESETS[name], **overrides})

    def validate(self) -> None:
        """Raise ValueError with the fix for impossible settings."""
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {self.num_inference_steps}.")
        if self.window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {self.window_size}.")
        if not 0 <= self.overlap < self.window_size:
            raise ValueError(
                f"overlap must be in [0, window_size) = [0, {self.window_size}), got {self.overlap}: lower the "
                "overlap or raise the window size."
            )
        if not SIZE_MULTIPLE <= self.max_res <= MAX_RES_LIMIT:
            raise ValueError(
                f"max_res must be in [{SIZE_MULTIPLE}, {MAX_RES_LIMIT}], got {self.max_res}. DepthCrafter was trained "
                "at up to 1024 px; use 1024 (or 512 for speed)."
            )
        if self.decode_chunk_size < 1 or self.encode_chunk_size < 1:
            raise ValueError("decode_chunk_size and encode_chunk_size must be >= 1.")
        if not self.guidance_scale >= 0 or not self.noise_aug_strength >= 0:
            raise ValueError("guidance_scale and noise_aug_strength must be >= 0.")
        if self.resize_mode not in ("bicubic", "bilinear", "area"):
            raise ValueError(f"resize_mode must be bicubic, bilinear or area, got {self.resize_mode!r}.")

    @property
    def do_cfg(self) -> bool:
        return self.guidance_scale > 1.0


@dataclass
class DepthStats:
    """What the last run did: sizes, windows and (with ``profile=True``) seconds per stage."""

    num_frames: int = 0
    input_size: tuple[int, int] = (0, 0)
    processing_size: tuple[int, int] = (0, 0)
    windows: list[tuple[int, int]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    peak_bytes: dict[str, int] = field(default_factory=dict)  # CUDA peak allocated per stage (profile=True)
    # Most frames a stream held at once per buffer: "input" (pulled, not encoded yet), "encoded" (CLIP embeddings and
    # conditioning latents), "latents" (stitched, not decoded yet). Bounded by the window and chunk sizes, not by T.
    max_buffered_frames: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------------------
# Pure helpers (unit-tested on their own)
# ----------------------------------------------------------------------------------------------------------------------


def processing_size(height: int, width: int, max_res: int = 1024) -> tuple[int, int]:
    """The reference's processing size: multiples of 64, scaled from the ORIGINAL dims when over ``max_res``.

    Python's ``round`` (banker's rounding) as in the reference; sides that would round to 0 become 64.
    Examples (max_res 1024): 1920×1080 → (576, 1024); 1920×820 → (448, 1024); 37×53 → (64, 64).
    """
    h = round(height / SIZE_MULTIPLE) * SIZE_MULTIPLE
    w = round(width / SIZE_MULTIPLE) * SIZE_MULTIPLE
    if max(h, w) > max_res:
        scale = max_res / max(height, width)
        h = round(height * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE
        w = round(width * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE
    return max(h, SIZE_MULTIPLE), max(w, SIZE_MULTIPLE)


def effective_window(num_frames: int, window_size: int, overlap: int) -> tuple[int, int]:
    """(window, overlap) actually used: a clip no longer than one window is one window without overlap."""
    if num_frames <= window_size:
        return num_frames, 0
    return window_size, overlap


# GPU memory beyond the weights at 1024x576 in fp16 (bench/README.md, H200): VAE encode of 8 frames (+ CLIP), one
# 70-frame UNet pass, temporal decode of 8 frames. The UNet figure is scaled from a 110-frame window with the lean
# blocks and feed-forward row chunks (bench/depth.py opt2k_lean_offload, 2026-12-04: 7.07 GiB; 8.0 with diffusers'
# plain blocks, which the 10 % margin of stage_memory_bytes covers); compiled, each stage needs less.
_MEASURED_GIB = {"encode": 6.9, "unet": 4.7, "decode": 9.1}


def working_memory_bytes(
    size: tuple[int, int], num_frames: int, settings: DepthSettings, dtype: torch.dtype = torch.float16
) -> int:
    """GPU memory one run needs beyond the weights, for a memory manager to free (ComfyUI's ``load_models_gpu``):
    the largest of :func:`stage_memory_bytes`.

    Args:
        size: processing size (h, w), see :func:`processing_size`.
        num_frames: clip length (a window never holds more).
    """
    return max(stage_memory_bytes(size, num_frames, settings, dtype).values())


def stage_memory_bytes(
    size: tuple[int, int], num_frames: int, settings: DepthSettings, dtype: torch.dtype = torch.float16
) -> dict[str, int]:
    """GPU memory beyond the weights of each stage (``encode``, ``unet``, ``decode``), scaled from measurements at
    1024x576 by pixels, frames per call and element size, plus 10 %: the UNet by the window (doubled by batched
    CFG), the encode and decode by their chunk sizes."""
    pixels = size[0] * size[1] / (1024 * 576)
    element = torch.finfo(dtype).bits / 16
    window = effective_window(num_frames, settings.window_size, settings.overlap)[0]
    cfg_batch = 2 if settings.do_cfg and settings.batch_cfg else 1
    encode = _MEASURED_GIB["encode"] * min(settings.encode_chunk_size, num_frames) / 8
    encode *= 2 if settings.vae_encode_fp32 else 1
    unet = _MEASURED_GIB["unet"] * window / 70 * cfg_batch
    decode = _MEASURED_GIB["decode"] * min(settings.decode_chunk_size, num_frames) / 8
    stages = {"encode": encode, "unet": unet, "decode": decode}
    return {name: int(1.1 * gib * pixels * element * 1024**3) for name, gib in stages.items()}


def plan_windows(num_frames: int, window_size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges of the sliding windows, as the reference's loop makes them.

    Windows start every ``window − overlap`` frames while ``start < T − overlap``; the last one ends at T and keeps
    more than ``overlap`` frames.
    """
    window, overlap = effective_window(num_frames, window_size, overlap)
    stride = window - overlap
    windows = []
    start = 0
    while start < num_frames - overlap:
        windows.append((start, min(start + window, num_frames)))
        start += stride
    return windows


def rotate_window_noise(noise: torch.Tensor, overlap: int) -> torch.Tensor:
    """Next window's initial noise: the last ``overlap`` frames move to the front, followed by the first ``stride``.

    A frame at local index ``stride + k`` of window i is local index ``k`` of window i+1, so a frame shared by two
    windows gets the same noise in both. ``noise``: [..., window, C, h, w] with the frame axis at -4.
    """
    window = noise.shape[-4]
    stride = window - overlap
    return torch.cat([noise[..., stride:, :, :, :], noise[..., :stride, :, :, :]], dim=-4)


def blend_weights(overlap: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Weight of the NEW window over the overlap: linspace(0, 1, overlap) (first frame all previous, last all new)."""
    return torch.linspace(0, 1, overlap, device=device)


def stitch_window(
    result: torch.Tensor, latents: torch.Tensor, start: int, end: int, weights: torch.Tensor | None
) -> None:
    """Write a denoised window into the clip's latents, in place.

    ``result``: [1, T, C, h, w]; ``latents``: [1, end − start, C, h, w]. With ``weights`` (the first window has none),
    the first ``len(weights)`` frames are crossfaded with what is there (``new·w + old·(1 − w)``, computed in fp32 as
    the reference and stored in ``result``'s dtype); the rest is written as is.
    """
    if weights is None:
        result[:, start:end] = latents
        return
    overlap = weights.shape[1] if weights.dim() == 5 else weights.numel()
    weights = weights.view(1, overlap, 1, 1, 1)
    prev = result[:, start : start + overlap]
    result[:, start : start + overlap] = latents[:, :overlap] * weights + prev * (1 - weights)
    result[:, start + overlap : end] = latents[:, overlap:]


def karras_schedule(
    components: SVDComponents, steps: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sigmas [steps+1] fp32 ending in 0, timesteps [steps] = 0.25·ln σ, init_noise_sigma 0-dim) from the SVD
    scheduler config, as diffusers' EulerDiscreteScheduler computes them.

    Sigmas and init_noise_sigma stay on the CPU as in the scheduler: the step coefficients are then computed on the
    CPU exactly as the reference computes them and enter device kernels as scalars. Timesteps go to ``device``.
    """
    scheduler = components.make_scheduler()
    scheduler.set_timesteps(steps, device=device)
    init_sigma = torch.as_tensor(scheduler.init_noise_sigma)
    return scheduler.sigmas, scheduler.timesteps.to(device), init_sigma


def scale_model_input(latents: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """EDM input scaling x / √(σ²+1) (σ a 0-dim fp32 tensor, so the result keeps the latents' dtype)."""
    return latents / ((sigma**2 + 1) ** 0.5)


def euler_step(
    v_pred: torch.Tensor, sample: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor
) -> torch.Tensor:
    """One Euler step for v-prediction (s_churn = 0), computed like diffusers' EulerDiscreteScheduler.step: in fp32,
    result cast back to the model output's dtype. σ and σ_next are 0-dim fp32 tensors."""
    x = sample.to(torch.float32)
    denoised = v_pred * (-sigma / (sigma**2 + 1) ** 0.5) + (x / (sigma**2 + 1))
    derivative = (x - denoised) / sigma
    return (x + derivative * (sigma_next - sigma)).to(v_pred.dtype)


def check_frame_layout(frames: torch.Tensor) -> torch.Tensor:
    """Validate the shape and dtype of ComfyUI-style frames (not their values) and return them as float
    [T, H, W, 3] on their device. Accepts 1 channel (repeated), 3, or 4 (alpha dropped). Raises ValueError naming the
    fix for everything else."""
    if not isinstance(frames, torch.Tensor):
        raise ValueError(f"frames must be a torch.Tensor [T, H, W, 3], got {type(frames).__name__}.")
    if frames.dim() == 3:
        raise ValueError(f"frames must be [T, H, W, 3], got {tuple(frames.shape)}: a single image needs a frame axis.")
    if frames.dim() != 4:
        raise ValueError(f"frames must be [T, H, W, 3] (batch of images), got shape {tuple(frames.shape)}.")
    if frames.shape[0] == 0:
        raise ValueError("frames is empty: video depth needs at least 1 frame.")
    if frames.shape[1] < 1 or frames.shape[2] < 1:
        raise ValueError(f"frames have no pixels: shape {tuple(frames.shape)}.")
    channels = frames.shape[-1]
    if channels == 1:
        frames = frames.expand(*frames.shape[:3], 3)
    elif channels == 4:
        logger.info("Dropping the alpha channel of RGBA frames")
        frames = frames[..., :3]
    elif channels != 3:
        raise ValueError(
            f"frames must have 3 (RGB) channels in the last axis, got {channels} (shape {tuple(frames.shape)})."
        )
    if not frames.is_floating_point():
        raise ValueError(f"frames must be float in 0..1, got {frames.dtype}; divide uint8 frames by 255.")
    return frames


def check_frames(frames: torch.Tensor) -> torch.Tensor:
    """:func:`check_frame_layout`, then NaN/inf values: ValueError naming the bad frames."""
    frames = check_frame_layout(frames)
    low, high = torch.aminmax(frames)  # one pass, no temporary; NaN propagates, ±inf shows: 20x faster than isfinite
    if not (torch.isfinite(low) and torch.isfinite(high)):
        # Name the bad frames, in chunks so that a long clip needs no clip-sized boolean temporary.
        bad_frames = [
            start + int(i)
            for start in range(0, frames.shape[0], 16)
            for i in (~torch.isfinite(frames[start : start + 16])).flatten(1).any(1).nonzero().flatten().tolist()
        ]
        raise ValueError(f"frames contain NaN or infinite values (frames {bad_frames[:10]}); fix the source frames.")
    return frames


def iter_checked_chunks(frames: Iterable[torch.Tensor], num_frames: int) -> Iterator[torch.Tensor]:
    """Each chunk of ``frames`` through :func:`check_frames` ([n, H, W, 3] float), lazily.

    Raises ValueError when a chunk is bad, when the chunks differ in size, or when the iterable does not yield exactly
    ``num_frames`` frames (checked by pulling once more after the last frame, so a longer source fails before its
    last chunk is used).
    """
    seen, frame_size = 0, None
    iterator = iter(frames)
    for index, chunk in enumerate(iterator):
        try:
            chunk = check_frames(chunk)
        except ValueError as error:
            raise ValueError(f"Chunk {index} of the frames (clip frames from {seen}): {error}") from error
        if frame_size is None:
            frame_size = tuple(chunk.shape[1:3])
        elif tuple(chunk.shape[1:3]) != frame_size:
            raise ValueError(
                f"Chunk {index} of the frames is {chunk.shape[1]}x{chunk.shape[2]} (HxW) but the chunks before it are "
                f"{frame_size[0]}x{frame_size[1]}: all frames of a clip must have one size."
            )
        seen += chunk.shape[0]
        if seen > num_frames or (seen == num_frames and next(iterator, None) is not None):
            raise ValueError(f"The frames iterable yields more than num_frames = {num_frames} frames.")
        yield chunk
        if seen == num_frames:
            return
    raise ValueError(f"The frames iterable yielded {seen} frames but num_frames is {num_frames}.")


def minmax_normalize(depth: torch.Tensor) -> torch.Tensor:
    """(d − min) / (max − min) over the WHOLE clip, as StereoCrafter does after upsampling; flat clips → 0.5."""
    low, high = depth.min(), depth.max()
    if not bool(high > low):
        logger.warning("Depth is constant over the clip; returning 0.5 everywhere")
        return torch.full_like(depth, 0.5)
    return (depth - low) / (high - low)


# ----------------------------------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------------------------------


class _FrameBuffer:
    """Frames [start, end) of a clip in one tensor (frame axis first) that grows at the end and drops from the front,
    so a stream keeps only the frames a later step still needs. ``peak``: the most frames held at once."""

    def __init__(self) -> None:
        self.start = 0
        self.data: torch.Tensor | None = None
        self.peak = 0

    @property
    def end(self) -> int:
        return self.start + (0 if self.data is None else self.data.shape[0])

    def append(self, frames: torch.Tensor) -> None:
        # The first append keeps the tensor itself (no copy of a whole clip handed over as one chunk).
        self.data = frames if self.data is None else torch.cat([self.data, frames])
        self.peak = max(self.peak, self.data.shape[0])

    def take(self, start: int, end: int) -> torch.Tensor:
        """Clip frames [start, end) (within [self.start, self.end)), as a view."""
        assert self.data is not None and self.start <= start <= end <= self.end
        return self.data[start - self.start : end - self.start]

    def drop_before(self, frame: int) -> None:
        """Forget clip frames before ``frame`` (at most ``end``). The view keeps the old storage until the next
        append copies the rest, which bounds it by the previous size."""
        if frame <= self.start:
            return
        assert self.data is not None and frame <= self.end
        self.data = self.data[frame - self.start :] if frame < self.end else None
        self.start = frame


class VideoDepthPipeline:
    """DepthCrafter video depth, chunked and windowed so GPU memory does not grow with the clip length.

    Args:
        unet: :class:`DepthCrafterUNet` (in_channels 8).
        components: SVD VAE + CLIP (see :func:`load_svd_components`).
        device: compute device (default: CUDA when available).
        dtype: compute dtype (fp16/bf16/fp32); modules are cast to it.
        offload: keep modules on the CPU and move each to the device only for its stage.
        channels_last: UNet 2-D conv weights in channels_last (measured slower on an H100: UNet 18.2 vs 14.1 s).
        compile: ``torch.compile`` the UNet's repeated blocks and the VAE encoder and decoder in place, with
            :mod:`stereocrafter.svd.frames_major_blocks` (speed lever for CUDA; see
            :mod:`stereocrafter.svd.compiled_svd`): on an H200, 70 frames at StereoCrafter's settings 0.314 -> 0.163
            s/frame at 11.04 GiB, depth changed by fp16 rounding only (< 6e-3). The first call of every new shape
            compiles (minutes). Applied after the other levers (``ff_chunk_rows``, ``temporal_conv_2d``).
        ff_chunk_rows: run the UNet's feed-forwards on at most this many tokens at a time (memory lever, same math;
            see :func:`chunk_feed_forward`).
        temporal_conv_2d: run the temporal (3, 1, 1) Conv3d layers of the UNet and VAE as 2-D convolutions (same
            math; see :func:`temporal_convs_as_2d`). Patches the modules in place. Measured SLOWER on an H100
            (2.52 vs 2.13 ms for a [1, 320, 70, 72, 128] fp16 conv), so off by default.
        single_key_attention: compute the UNet's cross-attention to its one CLIP token as ``to_out(to_v(context))``
            (same math, see :mod:`stereocrafter.svd.single_key_attention`); False keeps diffusers' processor (the
            reference's kernels).
        unet_group_offload: keep the UNet's weights on the CPU and stream its blocks to the GPU one group at a time
            with diffusers' group offloading (prefetch on a side stream): for GPUs smaller than the UNet's 3 GB of
            fp16 weights plus a window's activations. Same math. CUDA only; not with ``compile``.
        lean_blocks: run the UNet's spatial ResNets and transformer blocks in this many pieces and its spatial/temporal
            blends in place (same math; see :mod:`stereocrafter.svd.lean_unet`): a 110-frame window's working memory 8.0
            -> 7.07 GiB at 1024x576 on an H200. None: diffusers' forwards. Not applied with ``compile`` (compiled blocks
            share graphs by class; per-instance forwards would stop that).
    """

    def __init__(
        self,
        unet: DepthCrafterUNet,
        components: SVDComponents,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float16,
        offload: bool = False,
        channels_last: bool = False,
        compile: bool = False,
        ff_chunk_rows: int | None = None,
        temporal_conv_2d: bool = False,
        single_key_attention: bool = True,
        unet_group_offload: bool = False,
        lean_blocks: int | None = DEFAULT_CHUNKS,
    ) -> None:
        if unet.config.in_channels != 8:
            raise ValueError(
                f"The depth UNet must have in_channels 8 (DepthCrafter), got {unet.config.in_channels}: this looks "
                "like the StereoCrafter inpainting UNet."
            )
        self.unet = unet
        self.components = components
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = dtype
        self.offload = offload
        self.unet_group_offload = unet_group_offload and self.device.type == "cuda"
        if self.unet_group_offload and compile:
            raise ValueError("unet_group_offload and compile cannot be combined: choose one.")
        home = torch.device("cpu") if offload else self.device
        for module in (unet, components.vae, components.image_encoder):
            streamed = module is unet and self.unet_group_offload
            move_module(module, torch.device("cpu") if streamed else home, dtype)
        set_conv_memory_format(unet, torch.channels_last if channels_last else torch.contiguous_format)
        chunk_feed_forward(unet, ff_chunk_rows)
        temporal_convs_as_2d(unet, temporal_conv_2d)
        temporal_convs_as_2d(components.vae, temporal_conv_2d)
        use_single_key_cross_attention(unet, single_key_attention)
        use_lean_blocks(unet, None if compile else lean_blocks)
        if self.unet_group_offload:
            from diffusers.hooks import apply_group_offloading

            apply_group_offloading(
                unet, self.device, torch.device("cpu"), "block_level", num_blocks_per_group=1, use_stream=True
            )
        self.compiled = compile
        if compile:
            from ..svd.compiled_svd import compile_unet_blocks, compile_vae

            compile_unet_blocks(unet)  # after chunk_feed_forward: it makes the chunking shareable between blocks
            compile_vae(components.vae)  # encoder and decoder, frames-major (see compiled_svd)
        self.last_stats = DepthStats()

    @classmethod
    def from_folders(
        cls,
        depthcrafter_dir: str | Path,
        svd_dir: str | Path,
        dtype: torch.dtype = torch.float16,
        device: torch.device | str | None = None,
        **kwargs: Any,
    ) -> VideoDepthPipeline:
        """Load DepthCrafter (``tencent/DepthCrafter``) and the SVD-xt-1-1 parts, then build the pipeline."""
        unet = load_depthcrafter_unet(depthcrafter_dir, dtype)
        components = load_svd_components(svd_dir, dtype)
        return cls(unet, components, device=device, dtype=dtype, **kwargs)

    @staticmethod
    def num_progress_steps(num_frames: int, settings: DepthSettings | None = None) -> int:
        """Total ``progress`` calls for a clip: windows × denoising steps."""
        settings = settings or DepthSettings()
        return len(plan_windows(num_frames, settings.window_size, settings.overlap)) * settings.num_inference_steps

    # -- device placement ----------------------------------------------------------------------------------------------

    @contextmanager
    def _on_device(self, module: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """Under ``offload``, move a module to the device for one stage and back to the CPU afterwards (a
        group-offloaded UNet moves by itself)."""
        if not self.offload or (module is self.unet and self.unet_group_offload):
            yield module
            return
        move_module(module, self.device)
        try:
            yield module
        finally:
            move_module(module, torch.device("cpu"))
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    @contextmanager
    def _stage(self, name: str, profile: bool) -> Iterator[None]:
        """Time a stage into ``last_stats.seconds``; with ``profile`` on CUDA, synchronise around it and record its
        peak memory in ``last_stats.peak_bytes`` (this resets the CUDA peak-memory counter)."""
        cuda = profile and self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        yield
        if cuda:
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            self.last_stats.peak_bytes[name] = max(self.last_stats.peak_bytes.get(name, 0), peak)
        self.last_stats.seconds[name] = self.last_stats.seconds.get(name, 0.0) + time.perf_counter() - start

    # -- step 2: encode ------------------------------------------------------------------------------------------------

    def _resize_chunk(self, chunk: torch.Tensor, size: tuple[int, int], mode: ResizeMode) -> torch.Tensor:
        """[n, H, W, 3] 0..1 (any device) → [n, 3, h, w] in [-1, 1], compute dtype, on the device."""
        x = chunk.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        if tuple(x.shape[-2:]) != size:
            align = None if mode == "area" else False
            x = F.interpolate(x, size=size, mode=mode, align_corners=align, antialias=mode != "area").clamp(0.0, 1.0)
        # The reference casts to the pipeline dtype BEFORE x*2-1 (fp16 arithmetic).
        return x.to(self.dtype) * 2.0 - 1.0

    def _draw_aug_noise(
        self, shape: tuple[int, ...], generator: torch.Generator, preset: torch.Tensor | None, start: int
    ) -> torch.Tensor:
        """Noise-augmentation noise for frames [start, start+n): preset slice, or per-frame draws."""
        if preset is not None:
            return preset[start : start + shape[0]].to(self.device, self.dtype)
        frames = [
            torch.randn(shape[1:], generator=generator, device=self.device, dtype=self.dtype) for _ in range(shape[0])
        ]
        return torch.stack(frames)

    def _encode_chunk(
        self,
        frames: torch.Tensor,
        start: int,
        size: tuple[int, int],
        settings: DepthSettings,
        generator: torch.Generator,
        aug_noise: torch.Tensor | None,
        profile: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip frames [start, start+n) ([n, H, W, 3] 0..1) → CLIP embeddings [n, D] and conditioning latents
        [n, 4, h/8, w/8] (compute dtype, on the device). CLIP and the VAE must already be on the device."""
        components = self.components
        with self._stage("resize", profile):
            x = self._resize_chunk(frames, size, settings.resize_mode)
        with self._stage("clip", profile):
            embeddings = clip_image_embeds(
                x, components.image_encoder, components.clip_mean, components.clip_std, components.clip_size
            ).to(self.dtype)
        with self._stage("vae_encode", profile):
            if settings.noise_aug_strength > 0 or aug_noise is not None:
                noise = self._draw_aug_noise(tuple(x.shape), generator, aug_noise, start)
                x = x + settings.noise_aug_strength * noise
            frames_in_chunk = x.shape[0]
            if self.compiled and frames_in_chunk < settings.encode_chunk_size:
                # The encoder is per frame: repeat the last frame up to the chunk size, so the compiled encoder sees
                # one shape (no compile for every clip's shorter last chunk); the extra latents are dropped.
                x = torch.cat([x, x[-1:].expand(settings.encode_chunk_size - frames_in_chunk, *x.shape[1:])])
            latents = vae_encode_mode(components.vae, x)[:frames_in_chunk].to(self.dtype)
        return embeddings, latents

    # -- steps 4-5: window noise, denoise ------------------------------------------------------------------------------

    def _window_noise_shape(self, num_frames: int, size: tuple[int, int], settings: DepthSettings) -> tuple[int, ...]:
        """Shape of one window of initial noise: [1, window, latent channels, h/8, w/8]."""
        window, _ = effective_window(num_frames, settings.window_size, settings.overlap)
        config = self.components.vae.config
        scale = 2 ** (len(config.block_out_channels) - 1)
        return (1, window, config.latent_channels, size[0] // scale, size[1] // scale)

    def _unet(
        self,
        latents: torch.Tensor,
        cond_latents: torch.Tensor,
        embeddings: torch.Tensor,
        time_ids: torch.Tensor,
        sigma: torch.Tensor,
        t: torch.Tensor,
        settings: DepthSettings,
    ) -> torch.Tensor:
        """v-prediction for one window (with CFG when guidance > 1). latents [1, n, 4, h, w] → [1, n, 4, h, w]."""
        unet = self.unet
        x = scale_model_input(latents, sigma)
        cond = torch.cat([x, cond_latents], dim=2)
        if not settings.do_cfg:
            return unet(cond, t, encoder_hidden_states=embeddings, added_time_ids=time_ids, return_dict=False)[0]
        uncond = torch.cat([x, torch.zeros_like(x)], dim=2)
        zero_emb = torch.zeros_like(embeddings)
        if settings.batch_cfg:
            out = unet(
                torch.cat([cond, uncond]),
                t,
                encoder_hidden_states=torch.cat([embeddings, zero_emb]),
                added_time_ids=time_ids.expand(2, -1),
                return_dict=False,
            )[0]
            v_cond, v_uncond = out.chunk(2)
        else:
            v_cond = unet(cond, t, encoder_hidden_states=embeddings, added_time_ids=time_ids, return_dict=False)[0]
            v_uncond = unet(uncond, t, encoder_hidden_states=zero_emb, added_time_ids=time_ids, return_dict=False)[0]
        return v_uncond + settings.guidance_scale * (v_cond - v_uncond)

    def _denoise_window(
        self,
        latents: torch.Tensor,
        cond_latents: torch.Tensor,
        embeddings: torch.Tensor,
        time_ids: torch.Tensor,
        sigmas: torch.Tensor,
        timesteps: torch.Tensor,
        settings: DepthSettings,
        window_index: int,
        progress: Callable[[int, int], None] | None,
        interrupt: Callable[[], None] | None,
    ) -> torch.Tensor:
        """Euler steps over one window. ``latents``: the window's starting latents [1, n, 4, h, w] (noise·σ0, overlap
        already re-noised); ``cond_latents`` [1, n, 4, h, w]; ``embeddings`` [1, n, D]. Returns [1, n, 4, h, w]."""
        for i, t in enumerate(timesteps):
            if interrupt is not None:
                interrupt()
            v = self._unet(latents, cond_latents, embeddings, time_ids, sigmas[i], t, settings)
            latents = euler_step(v, latents, sigmas[i], sigmas[i + 1])
            if progress is not None:
                progress(window_index, i)
        return latents

    # -- step 6: decode ------------------------------------------------------------------------------------------------

    def _decode_chunk(self, latents: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """One temporal-decoder chunk [n, 4, h, w] → raw depth [n, H, W] fp32 CPU in 0..1: channel mean of the decoded
        frames, bilinear resize to ``out_size``. The VAE must already be on the device."""
        frames = vae_decode_chunk(self.components.vae, latents)
        rgb = (frames.float() / 2 + 0.5).clamp(0, 1)  # the reference's postprocess_video
        depth = rgb.sum(dim=1, keepdim=True) / 3
        depth = F.interpolate(depth, size=out_size, mode="bilinear", align_corners=False)
        return depth[:, 0].cpu()

    # -- entry points --------------------------------------------------------------------------------------------------

    def stream(
        self,
        frames: Iterable[torch.Tensor],
        num_frames: int,
        settings: DepthSettings | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        interrupt: Callable[[], None] | None = None,
        initial_latents: torch.Tensor | None = None,
        profile: bool = False,
        _aug_noise: torch.Tensor | None = None,
    ) -> Iterator[torch.Tensor]:
        """Depth for a clip that arrives in chunks, window by window, in bounded memory.

        Settings and ``num_frames`` are checked now; the rest happens as the result is iterated: the input is pulled
        only as far as the current window needs (see the module docstring for what is held).

        Args:
            frames: chunks [n, H, W, 3] float in 0..1, any n >= 1 and any chunking, all of one size (CPU is best).
            num_frames: how many frames the chunks hold in total (the window plan needs it up front).
            settings: :class:`DepthSettings` (defaults: StereoCrafter's). ``reference_rng=True`` is refused: its one
                [T, 3, h, w] draw needs memory for the whole clip; use :meth:`__call__`.
            progress: called as ``progress(window_index, step_index)`` after each denoising step.
            interrupt: called before each denoising step; raise from it to stop (e.g. ComfyUI's interrupt check).
            initial_latents: optional preset initial noise [window, 4, h/8, w/8] (unit variance), instead of drawing it.
            profile: synchronise the device around stages so ``last_stats.seconds`` is exact.
            _aug_noise: for :meth:`__call__`: preset noise-augmentation noise [T, 3, h, w] (processing size); the
                window noise is then drawn from a fresh generator, as no augmentation draws precede it.

        Yields:
            RAW depth chunks [m, H, W] float32 on the CPU in 0..1 (near = 1), in frame order, ``num_frames`` in all,
            BEFORE the clip-wide min–max normalisation of :meth:`__call__` (which needs the whole clip). The chunks
            are the decoder's chunks of ``decode_chunk_size`` frames (the last one may be shorter).
        """
        settings = settings or DepthSettings()
        settings.validate()
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}: video depth needs at least 1 frame.")
        if settings.reference_rng and _aug_noise is None:
            raise ValueError(
                "reference_rng=True draws the augmentation noise of the whole clip at once ([T, 3, h, w]), which a "
                "bounded-memory stream cannot hold: call the pipeline with the whole clip (__call__), or use "
                "reference_rng=False (frame-by-frame draws, same numbers on the CPU)."
            )
        return self._stream(frames, num_frames, settings, progress, interrupt, initial_latents, _aug_noise, profile)

    @torch.inference_mode()
    def _stream(
        self,
        frames: Iterable[torch.Tensor],
        num_frames: int,
        settings: DepthSettings,
        progress: Callable[[int, int], None] | None,
        interrupt: Callable[[], None] | None,
        initial_latents: torch.Tensor | None,
        aug_noise: torch.Tensor | None,
        profile: bool,
    ) -> Iterator[torch.Tensor]:
        """The generator behind :meth:`stream` (arguments already validated)."""
        # 1. The first chunk gives the input and processing sizes; the window plan needs only the frame count.
        chunks = iter_checked_chunks(frames, num_frames)
        pending = _FrameBuffer()  # input frames pulled but not encoded yet
        pending.append(next(chunks))
        height, width = pending.take(0, 1).shape[1:3]
        size = processing_size(height, width, settings.max_res)
        windows = plan_windows(num_frames, settings.window_size, settings.overlap)
        self.last_stats = DepthStats(
            num_frames=num_frames, input_size=(height, width), processing_size=size, windows=windows
        )
        logger.info("Video depth: %d frames %dx%d, processing at %dx%d", num_frames, width, height, size[1], size[0])

        # 3. Schedule and time ids.
        sigmas, timesteps, init_sigma = karras_schedule(self.components, settings.num_inference_steps, self.device)
        time_ids = torch.tensor(
            [[settings.fps_id, settings.motion_bucket_id, settings.noise_aug_strength]],
            dtype=self.dtype,
            device=self.device,
        )

        # 4. One window of initial noise. The reference draws it after the augmentation noise of all T frames from
        # the same generator; the augmentation generator draws lazily, so a second one skips those T draws first.
        aug_generator = torch.Generator(self.device).manual_seed(settings.seed)
        shape = self._window_noise_shape(num_frames, size, settings)
        if initial_latents is not None:
            noise = initial_latents.reshape(shape).to(self.device, self.dtype)
        else:
            generator = torch.Generator(self.device).manual_seed(settings.seed)
            if aug_noise is None and settings.noise_aug_strength > 0:
                for _ in range(num_frames):
                    torch.randn((3, *size), generator=generator, device=self.device, dtype=self.dtype)
            noise = torch.randn(shape, generator=generator, device=self.device, dtype=self.dtype)
        noise = noise * init_sigma  # the reference's prepare_latents
        overlap = effective_window(num_frames, settings.window_size, settings.overlap)[1]
        weights = blend_weights(overlap, self.device) if overlap > 0 else None

        embeddings = _FrameBuffer()  # per-frame CLIP embeddings [n, D], device
        cond_latents = _FrameBuffer()  # conditioning latents [n, 4, h/8, w/8], device
        result = _FrameBuffer()  # stitched latents not decoded yet [n, 4, h/8, w/8], device
        vae_dtype = torch.float32 if settings.vae_encode_fp32 else None
        components = self.components
        for w_index, (start, end) in enumerate(windows):
            # 2. Encode through the window's end, in chunks aligned to frame 0 as a whole-clip encode makes them
            # (batched CLIP/VAE kernels may round differently for other chunkings).
            if cond_latents.end < end:
                with self._on_device(components.image_encoder), self._on_device(components.vae):
                    with module_dtype(components.vae, vae_dtype):
                        while cond_latents.end < end:
                            first = cond_latents.end
                            last = min(first + settings.encode_chunk_size, num_frames)
                            while pending.end < last:
                                pending.append(next(chunks))
                            emb, cond = self._encode_chunk(
                                pending.take(first, last), first, size, settings, aug_generator, aug_noise, profile
                            )
                            pending.drop_before(last)
                            embeddings.append(emb)
                            cond_latents.append(cond)

            # 5. Denoise the window; the overlap starts from the previous result re-noised with the same ε.
            latents = noise[:, : end - start].clone()
            noise = rotate_window_noise(noise, overlap)
            if w_index > 0 and overlap > 0:
                prev = result.take(start, start + overlap).unsqueeze(0)
                latents[:, :overlap] = prev + latents[:, :overlap] / init_sigma * sigmas[0]  # x0_prev + σ0·ε
            with self._on_device(self.unet), self._stage("unet", profile):
                latents = self._denoise_window(
                    latents,
                    cond_latents.take(start, end).unsqueeze(0),
                    embeddings.take(start, end).unsqueeze(0),
                    time_ids,
                    sigmas,
                    timesteps,
                    settings,
                    w_index,
                    progress,
                    interrupt,
                )
            result.append(torch.empty((end - result.end, *latents.shape[2:]), dtype=self.dtype, device=self.device))
            held = result.take(result.start, end).unsqueeze(0)  # a view: stitch_window writes into the buffer
            stitch_window(held, latents, start - result.start, end - result.start, weights if w_index else None)

            # 6. Frames before the next window's start are final: drop their conditioning, decode the whole decoder
            # chunks among them (all that is left after the last window), then yield outside the device stages.
            next_start = windows[w_index + 1][0] if w_index + 1 < len(windows) else num_frames
            embeddings.drop_before(next_start)
            cond_latents.drop_before(next_start)
            chunk = settings.decode_chunk_size
            decode_end = num_frames if next_start == num_frames else next_start - next_start % chunk
            depth = []
            if decode_end > result.start:
                with self._on_device(components.vae), self._stage("vae_decode", profile):
                    for first in range(result.start, decode_end, chunk):
                        last = min(first + chunk, decode_end)
                        depth.append(self._decode_chunk(result.take(first, last), (height, width)))
                result.drop_before(decode_end)
            self.last_stats.max_buffered_frames = {
                "input": pending.peak,
                "encoded": cond_latents.peak,
                "latents": result.peak,
            }
            yield from depth

    @torch.inference_mode()
    def __call__(
        self,
        frames: torch.Tensor,
        settings: DepthSettings | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        interrupt: Callable[[], None] | None = None,
        aug_noise: torch.Tensor | None = None,
        initial_latents: torch.Tensor | None = None,
        profile: bool = False,
    ) -> torch.Tensor:
        """Depth for a whole clip: :meth:`stream` over it as one chunk, then min–max over the clip.

        Args:
            frames: [T, H, W, 3] float in 0..1 (CPU is best: only chunks go to the device).
            settings: :class:`DepthSettings` (defaults: StereoCrafter's).
            progress: called as ``progress(window_index, step_index)`` after each denoising step.
            interrupt: called before each denoising step; raise from it to stop (e.g. ComfyUI's interrupt check).
            aug_noise: optional preset noise-augmentation noise [T, 3, h, w] (processing size), instead of drawing it.
            initial_latents: optional preset initial noise [window, 4, h/8, w/8] (unit variance), instead of drawing it.
            profile: synchronise the device around stages so ``last_stats.seconds`` is exact.

        Returns:
            [T, H, W] float32 on the CPU in 0..1, near = 1 (min–max over the whole clip).
        """
        settings = settings or DepthSettings()
        settings.validate()
        frames = check_frame_layout(frames)  # the stream checks the values, as it does for every chunk
        num_frames = frames.shape[0]
        if settings.reference_rng and aug_noise is None:
            # The reference's order from one generator: ONE [T, 3, h, w] augmentation draw, then the window noise.
            size = processing_size(frames.shape[1], frames.shape[2], settings.max_res)
            generator = torch.Generator(self.device).manual_seed(settings.seed)
            aug_noise = torch.randn(
                (num_frames, 3, *size), generator=generator, device=self.device, dtype=self.dtype
            ).cpu()
            if initial_latents is None:
                initial_latents = torch.randn(
                    self._window_noise_shape(num_frames, size, settings),
                    generator=generator,
                    device=self.device,
                    dtype=self.dtype,
                )
        depth = self.stream(
            [frames],
            num_frames,
            settings,
            progress=progress,
            interrupt=interrupt,
            initial_latents=initial_latents,
            profile=profile,
            _aug_noise=aug_noise,
        )
        return minmax_normalize(torch.cat(list(depth)))


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
