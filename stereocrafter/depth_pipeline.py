"""Video depth with DepthCrafter, reproducing the reference numerics (reference.md §1.2–1.5, §3.7, §4.3).

Frames [T, H, W, 3] float 0..1 → depth [T, H, W] float 0..1 (near = 1: DepthCrafter's affine-invariant disparity),
at the INPUT size. Steps (numbered as in :meth:`VideoDepthPipeline.__call__`):

1. Check the input; processing size = multiples of 64 under ``max_res`` (banker's rounding, scale from the original
   dims).
2. Encode in chunks: resize → ``x·2−1`` → per-frame CLIP embedding → noise augmentation (0.02) → VAE posterior mode.
   Only the [T, 1024] embeddings and [T, 4, h/8, w/8] latents stay on the device.
3. Time ids [7, 127, noise_aug], Euler v-prediction Karras schedule from the SVD scheduler config.
4. ONE window of initial noise, rotated so that a frame shared by two windows gets the same noise.
5. Sliding windows: overlap frames re-noised at step 0 from the previous window's result, optional CFG (cond and
   uncond batched in one UNet call), linear latent blending over the overlap.
6. Decode in temporal chunks, channel mean, bilinear resize to the input size, clip-wide min–max normalisation.

Deviations from the reference are listed in :data:`DEVIATIONS`.

RNG: one ``torch.Generator(device).manual_seed(seed)``, drawn in the reference's order: noise augmentation first, then
the window of initial latents. By default the augmentation noise is drawn frame by frame (so it does not depend on the
chunk size and never needs the whole clip on the GPU); ``reference_rng=True`` draws it as ONE [T, 3, h, w] tensor as
the reference does, which gives bit-identical draws to the reference's ``set_seed(seed)`` global-RNG stream on the same
device and dtype, at the cost of T·3·h·w elements on the device for a moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from .depthcrafter_unet import (
    DepthCrafterUNet,
    chunk_feed_forward,
    load_depthcrafter_unet,
    set_conv_memory_format,
    temporal_convs_as_2d,
)
from .svd_components import SVDComponents, load_svd_components
from .svd_preprocess import (
    clip_image_embeds,
    iter_vae_decode,
    module_dtype,
    move_module,
    vae_encode_mode,
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


@dataclass
class DepthSettings:
    """DepthCrafter parameters; defaults are StereoCrafter's (reference.md §1.4)."""

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


def check_frames(frames: torch.Tensor) -> torch.Tensor:
    """Validate ComfyUI-style frames and return them as float [T, H, W, 3] on their device.

    Accepts 1 channel (repeated), 3, or 4 (alpha dropped). Raises ValueError naming the fix for everything else.
    """
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
    # Chunked so that a long high-resolution clip needs no clip-sized boolean temporary.
    bad_frames = [
        start + int(i)
        for start in range(0, frames.shape[0], 16)
        for i in (~torch.isfinite(frames[start : start + 16])).flatten(1).any(1).nonzero().flatten().tolist()
    ]
    if bad_frames:
        raise ValueError(f"frames contain NaN or infinite values (frames {bad_frames[:10]}); fix the source frames.")
    return frames


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


class VideoDepthPipeline:
    """DepthCrafter video depth, chunked and windowed so GPU memory does not grow with the clip length.

    Args:
        unet: :class:`DepthCrafterUNet` (in_channels 8).
        components: SVD VAE + CLIP (see :func:`load_svd_components`).
        device: compute device (default: CUDA when available).
        dtype: compute dtype (fp16/bf16/fp32); modules are cast to it.
        offload: keep modules on the CPU and move each to the device only for its stage.
        channels_last: UNet 2-D conv weights in channels_last (measured slower on an H100: UNet 18.2 vs 14.1 s).
        compile_unet: wrap the UNet in ``torch.compile`` (speed lever; first call compiles).
        ff_chunk_rows: run the UNet's feed-forwards on at most this many tokens at a time (memory lever, same math;
            see :func:`chunk_feed_forward`).
        temporal_conv_2d: run the temporal (3, 1, 1) Conv3d layers of the UNet and VAE as 2-D convolutions (same
            math; see :func:`temporal_convs_as_2d`). Patches the modules in place. Measured SLOWER on an H100
            (2.52 vs 2.13 ms for a [1, 320, 70, 72, 128] fp16 conv), so off by default.
    """

    def __init__(
        self,
        unet: DepthCrafterUNet,
        components: SVDComponents,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float16,
        offload: bool = False,
        channels_last: bool = False,
        compile_unet: bool = False,
        ff_chunk_rows: int | None = None,
        temporal_conv_2d: bool = False,
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
        home = torch.device("cpu") if offload else self.device
        for module in (unet, components.vae, components.image_encoder):
            move_module(module, home, dtype)
        set_conv_memory_format(unet, torch.channels_last if channels_last else torch.contiguous_format)
        chunk_feed_forward(unet, ff_chunk_rows)
        temporal_convs_as_2d(unet, temporal_conv_2d)
        temporal_convs_as_2d(components.vae, temporal_conv_2d)
        self._unet_call: Callable[..., tuple[torch.Tensor]] = torch.compile(unet) if compile_unet else unet
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
        """Under ``offload``, move a module to the device for one stage and back to the CPU afterwards."""
        if not self.offload:
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

    def _encode(
        self,
        frames: torch.Tensor,
        size: tuple[int, int],
        settings: DepthSettings,
        generator: torch.Generator,
        aug_noise: torch.Tensor | None,
        profile: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame CLIP embeddings [T, D] and conditioning latents [T, 4, h/8, w/8] (compute dtype, on device)."""
        num_frames, chunk = frames.shape[0], settings.encode_chunk_size
        if aug_noise is None and settings.reference_rng:
            # One draw for the whole clip, as the reference (bit-identical stream); transient T·3·h·w on the device.
            aug_noise = torch.randn(
                (num_frames, 3, *size), generator=generator, device=self.device, dtype=self.dtype
            ).cpu()
        components = self.components
        embeddings, latents = [], []
        vae_dtype = torch.float32 if settings.vae_encode_fp32 else None
        with self._on_device(components.image_encoder), self._on_device(components.vae):
            with module_dtype(components.vae, vae_dtype):
                for start in range(0, num_frames, chunk):
                    with self._stage("resize", profile):
                        x = self._resize_chunk(frames[start : start + chunk], size, settings.resize_mode)
                    with self._stage("clip", profile):
                        emb = clip_image_embeds(
                            x, components.image_encoder, components.clip_mean, components.clip_std, components.clip_size
                        )
                        embeddings.append(emb.to(self.dtype))
                    with self._stage("vae_encode", profile):
                        if settings.noise_aug_strength > 0 or aug_noise is not None:
                            noise = self._draw_aug_noise(tuple(x.shape), generator, aug_noise, start)
                            x = x + settings.noise_aug_strength * noise
                        latents.append(vae_encode_mode(components.vae, x).to(self.dtype))
        return torch.cat(embeddings), torch.cat(latents)

    # -- step 5: denoise -----------------------------------------------------------------------------------------------

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
        x = scale_model_input(latents, sigma)
        cond = torch.cat([x, cond_latents], dim=2)
        if not settings.do_cfg:
            return self._unet_call(
                cond, t, encoder_hidden_states=embeddings, added_time_ids=time_ids, return_dict=False
            )[0]
        uncond = torch.cat([x, torch.zeros_like(x)], dim=2)
        zero_emb = torch.zeros_like(embeddings)
        if settings.batch_cfg:
            out = self._unet_call(
                torch.cat([cond, uncond]),
                t,
                encoder_hidden_states=torch.cat([embeddings, zero_emb]),
                added_time_ids=time_ids.expand(2, -1),
                return_dict=False,
            )[0]
            v_cond, v_uncond = out.chunk(2)
        else:
            v_cond = self._unet_call(
                cond, t, encoder_hidden_states=embeddings, added_time_ids=time_ids, return_dict=False
            )[0]
            v_uncond = self._unet_call(
                uncond, t, encoder_hidden_states=zero_emb, added_time_ids=time_ids, return_dict=False
            )[0]
        return v_uncond + settings.guidance_scale * (v_cond - v_uncond)

    def _denoise(
        self,
        cond_latents: torch.Tensor,
        embeddings: torch.Tensor,
        settings: DepthSettings,
        generator: torch.Generator,
        initial_latents: torch.Tensor | None,
        progress: Callable[[int, int], None] | None,
        interrupt: Callable[[], None] | None,
    ) -> torch.Tensor:
        """Sliding-window denoising; returns the stitched latents [T, 4, h, w] (compute dtype, device)."""
        num_frames = cond_latents.shape[0]
        window, overlap = effective_window(num_frames, settings.window_size, settings.overlap)
        windows = plan_windows(num_frames, settings.window_size, settings.overlap)
        self.last_stats.windows = windows
        sigmas, timesteps, init_sigma = karras_schedule(self.components, settings.num_inference_steps, self.device)
        time_ids = torch.tensor(
            [[settings.fps_id, settings.motion_bucket_id, settings.noise_aug_strength]],
            dtype=self.dtype,
            device=self.device,
        )
        shape = (1, window, *cond_latents.shape[1:])
        if initial_latents is None:
            noise = torch.randn(shape, generator=generator, device=self.device, dtype=self.dtype)
        else:
            noise = initial_latents.reshape(shape).to(self.device, self.dtype)
        noise = noise * init_sigma  # the reference's prepare_latents
        result = torch.empty((1, *cond_latents.shape), dtype=self.dtype, device=self.device)
        weights = blend_weights(overlap, self.device).view(1, overlap, 1, 1, 1) if overlap > 0 else None
        cond_all, emb_all = cond_latents.unsqueeze(0), embeddings.unsqueeze(0)

        for w_index, (start, end) in enumerate(windows):
            latents = noise[:, : end - start].clone()
            noise = rotate_window_noise(noise, overlap)
            for i, t in enumerate(timesteps):
                if interrupt is not None:
                    interrupt()
                if w_index > 0 and i == 0 and overlap > 0:
                    # Re-noise the overlap from the previous result with the same ε: x0_prev + σ0·ε.
                    prev = result[:, start : start + overlap]
                    latents[:, :overlap] = prev + latents[:, :overlap] / init_sigma * sigmas[0]
                v = self._unet(latents, cond_all[:, start:end], emb_all[:, start:end], time_ids, sigmas[i], t, settings)
                latents = euler_step(v, latents, sigmas[i], sigmas[i + 1])
                if progress is not None:
                    progress(w_index, i)
            stitch_window(result, latents, start, end, weights if w_index > 0 else None)
        return result[0]

    # -- step 6: decode ------------------------------------------------------------------------------------------------

    def _decode(self, latents: torch.Tensor, out_size: tuple[int, int], chunk: int, profile: bool) -> torch.Tensor:
        """Temporal-decode in chunks, mean of the 3 channels, bilinear resize to ``out_size``: [T, H, W] fp32 CPU."""
        out = torch.empty((latents.shape[0], *out_size), dtype=torch.float32)
        with self._on_device(self.components.vae), self._stage("vae_decode", profile):
            for start, frames in iter_vae_decode(self.components.vae, latents, chunk):
                rgb = (frames.float() / 2 + 0.5).clamp(0, 1)  # the reference's postprocess_video
                depth = rgb.sum(dim=1, keepdim=True) / 3
                depth = F.interpolate(depth, size=out_size, mode="bilinear", align_corners=False)
                out[start : start + depth.shape[0]] = depth[:, 0].cpu()
        return out

    # -- entry point ---------------------------------------------------------------------------------------------------

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
        """Depth for a clip.

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
        # 1. Inputs and processing size.
        frames = check_frames(frames)
        num_frames, height, width = frames.shape[:3]
        size = processing_size(height, width, settings.max_res)
        self.last_stats = DepthStats(num_frames=num_frames, input_size=(height, width), processing_size=size)
        logger.info("Video depth: %d frames %dx%d, processing at %dx%d", num_frames, width, height, size[1], size[0])
        generator = torch.Generator(self.device).manual_seed(settings.seed)

        # 2. Chunked encode: CLIP embeddings, conditioning latents (noise-aug draws come first, as in the reference).
        embeddings, cond_latents = self._encode(frames, size, settings, generator, aug_noise, profile)

        # 3-5. Schedule, window noise, sliding-window denoising.
        with self._on_device(self.unet), self._stage("unet", profile):
            latents = self._denoise(cond_latents, embeddings, settings, generator, initial_latents, progress, interrupt)

        # 6. Decode, channel mean, resize to the input size, clip-wide min-max.
        depth = self._decode(latents, (height, width), settings.decode_chunk_size, profile)
        return minmax_normalize(depth)


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
