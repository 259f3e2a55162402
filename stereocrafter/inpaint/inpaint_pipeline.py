"""StereoCrafter's stereo video inpainting (stage 2): fill the disocclusion holes of a warped right view.

Reference numerics (reference.md §3.4–3.6), step by step per chunk and tile:

1. mask binarised at 0.5; latent mask = nearest ×1/8 (the top-left pixel of every 8×8 block);
2. CLIP embedding of the chunk's (tile's) first frame (antialiased 224 resize), zeros as the negative;
3. conditioning latents = VAE posterior mean of the warped frames ([-1, 1]), fp32 VAE, UNSCALED; zeros negative;
4. time ids [fps − 1 = 6, motion bucket 127, noise aug 0];
5. Euler v-prediction with Karras sigmas (SVD scheduler config), 8 steps, noise × init_noise_sigma;
6. per step: UNet on [scaled noisy latent (4), warped-frame latent (4), mask (1)] = 9 channels, CFG 1.01 with the
   negative and positive halves BATCHED in one call (guidance 1.0 skips the negative half);
7. tiles blended on the final latents, full-frame temporal decode 2 frames at a time, uint8 rounding;
8. chunks of 23 frames, 3 overlapping, previous outputs fed back as the overlap's conditioning.

Improvements over the reference, each a switch (:meth:`InpaintSettings.reference` turns them all off):
pad to a multiple instead of cropping (``fit``), paste the warped pixels back outside the holes (``composite``),
cross-fade overlapping chunk frames (``seams``), any tile count with exact linear blending (``tile_blend``), a seed,
guidance 1.0 by default, tiles batched, CUDA out-of-memory retried with more tiles, spatially tiled decode.

The chunk loop lives in :class:`~.inpaint_stream.InpaintStream`, which takes a clip of any length in pieces with
bounded memory and can be resumed; :meth:`StereoInpaintPipeline.__call__` pushes the whole clip through one.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from diffusers import EulerDiscreteScheduler

from ..svd.frames_major_blocks import use_frames_major_blocks
from ..svd.single_key_attention import use_single_key_cross_attention
from ..svd.svd_components import CLIP_MEAN, CLIP_STD, SVDComponents, load_svd_components
from ..svd.svd_preprocess import (
    clip_image_embeds,
    iter_vae_decode,
    module_device_dtype,
    module_dtype,
    vae_encode_chunks,
)
from .inpaint_unet import check_inpaint_unet, load_inpaint_unet
from .temporal_chunks import Chunk, SeamMode, plan_chunks
from .tiling import TileMode, auto_tile_counts, blend_tile_stream, blend_tiles, more_tiles, plan_tiles

if TYPE_CHECKING:
    from .inpaint_model import InpaintOptions
    from .inpaint_stream import InpaintStream

logger = logging.getLogger(__name__)

FitMode = Literal["pad", "crop"]
PadMode = Literal["reflect", "replicate"]
LATENT_FACTOR = 8  # SVD VAE: 8 px per latent cell
REFERENCE_DECODE_CHUNK = 2
REFERENCE_ENCODE_CHUNK = 5
# Pixels per VAE-encode call when encode_chunk is automatic: one 1024x576 frame. The encoder works frame by frame, so
# this only bounds memory: the reference's 5 frames of 1024x512 in fp32 peaked at 7.5 GiB above the weights.
MAX_ENCODE_PIXELS = 1024 * 576
#: Largest working frame encoded whole (``encode_full_frame``): one 1920x1088 frame in fp16 needs 3.0 GiB above the
#: weights (fp32: 6.2), 103 ms against 4 x 47 ms for its four 608x1024 tiles in fp32 (bench/inpaint.py --levers,
#: H200). Larger frames are encoded tile by tile.
MAX_FULL_FRAME_ENCODE_PIXELS = 1920 * 1088
# CUDA SDPA kernels put the batch in a grid dimension limited to 65535; the UNet's temporal attention runs with
# batch = UNet batch x latent height x latent width (bench: 4 tiles x CFG x 72 x 128 failed with "invalid argument").
MAX_SDPA_BATCH = 65535
# Default per-UNet-call budget (tile pixels × frames × CFG) for automatic tiling: one 23-frame chunk of a 1024×640
# tile without CFG peaked at 8.8 GiB, weights (4.2 GiB) included, at fp16 (bench/inpaint.py, H100); 1920×1080 then
# runs as 2×2 tiles.
DEFAULT_PIXEL_FRAMES = 1024 * 640 * 23
DEFAULT_DECODE_PIXEL_FRAMES = 2 * 1088 * 1024  # decode_chunk 2 of a 1088x1024 tile: 1920x1080 as 1x2 tiles
#: Working memory of the frames-major temporal decoder over diffusers' at the same tile (bench/README.md, H200:
#: 7.44 vs 4.25 GiB above the weights for 2 frames of a 1088x1024 tile, eager fp16).
FRAMES_MAJOR_DECODE_MEMORY = 7.44 / 4.25
#: Share of a chunk's time in the VAE decode at the defaults (1080p, 2x2 tiles, 8 steps on an H200: ~10 of ~23 s),
#: for progress reports only.
DECODE_PROGRESS_SHARE = 0.4


@dataclass(frozen=True)
class InpaintSettings:
    """Every knob of :class:`StereoInpaintPipeline`; the defaults are ours, :meth:`reference` gives the reference's.

    Attributes:
        steps: Euler steps (reference 8).
        guidance_scale: CFG scale; > 1 runs the negative half in the same UNet call (reference 1.01, which
            fp16 rounds to 1.0098). 1.0 (default) skips it: half the UNet work for a ~1 % change of the prediction.
        fps_id, motion_bucket_id, noise_aug_strength: SVD micro-conditioning (reference 6, 127, 0).
        chunk_frames, chunk_overlap: temporal chunking (reference 23, 3).
        seams: ``crossfade`` (ours) or ``reference`` (overlap outputs of the later chunk are discarded).
        tiles: tiles per axis (rows, cols); None = automatic from ``max_pixel_frames`` (reference: n × n, n = 1/2).
        tile_overlap_px: minimal tile overlap (reference 128).
        tile_blend: ``linear`` (any count, exact) or ``reference`` (k/16 in-place raster blend, n ≤ 2).
        tile_batch: tiles per UNet call (same-size tiles are stacked into one batch).
        max_pixel_frames: budget (tile pixels × chunk frames × CFG factor × tile_batch) for automatic tiles.
        fit: ``pad`` (ours: pad to ``multiple`` and unpad after) or ``crop`` (reference: top-left crop to
            ``multiple``; the cropped-away border keeps the warped input there).
        multiple: size multiple in px (64 = what the UNet needs; the reference crops to 128).
        pad_mode: ``reflect`` or ``replicate`` padding of frames and mask (holes stay holes in the padding).
        composite: keep the warped pixels outside a dilated, feathered hole mask (bit-identical there).
        composite_dilate_px, composite_feather_px: growth of the hole mask, then the width of its soft edge.
        quantize_8bit: round generated frames to k/255 (the reference's PIL round trip; also for feedback).
        encode_fp32: VAE encode in fp32 (the SVD VAE's force_upcast; reference) instead of the VAE dtype (ours:
            1.7x faster; an encode that gives non-finite latents in fp16/bf16 is redone in fp32).
        encode_full_frame: encode the whole frame once per chunk and crop latents per tile (ours: no pixel is
            encoded twice, and a latent does not depend on the tile layout; the reference encodes every tile on its
            own, which differs near tile borders). Frames above ``max_full_frame_encode_pixels`` (working size) and an
            out-of-memory whole-frame encode go tile by tile.
        max_full_frame_encode_pixels: see ``encode_full_frame``; the memory plan lowers it for small GPUs.
        encode_chunk: frames per VAE-encode call (reference 5); None = as many as fit ``MAX_ENCODE_PIXELS``.
        lean_vae_attention: compute the VAE's attention in query chunks (same math, a fraction of the memory);
            ignored by a compiled pipeline (:meth:`StereoInpaintPipeline.compile`).
        decode_chunk: frames per temporal-decoder call (reference 2; it changes pixels).
        decode_tiles: spatial tiles (rows, cols) for the decode, blended linearly over ``tile_overlap_px``; more
            tiles = less memory. None = automatic from ``max_decode_pixel_frames`` (reference: whole frame).
        max_decode_pixel_frames: budget (tile pixels × ``decode_chunk``) for automatic decode tiles; the temporal
            decoder needs about 4 GiB per 2 frames of 1 Mpx at fp16 (bench/inpaint.py), so the default decodes
            1920×1080 as 1×2 tiles.
        oom_retry: on CUDA out-of-memory, free memory and retry the chunk with more tiles (up to ``max_tiles``).
    """

    steps: int = 8
    guidance_scale: float = 1.0
    fps_id: int = 6
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.0
    chunk_frames: int = 23
    chunk_overlap: int = 3
    seams: SeamMode = "crossfade"
    tiles: tuple[int, int] | None = None
    tile_overlap_px: int = 128
    tile_blend: TileMode = "linear"
    tile_batch: int = 1
    max_pixel_frames: int = DEFAULT_PIXEL_FRAMES
    fit: FitMode = "pad"
    multiple: int = 64
    pad_mode: PadMode = "reflect"
    composite: bool = True
    composite_dilate_px: int = 3
    composite_feather_px: int = 3
    quantize_8bit: bool = True
    encode_fp32: bool = False
    encode_full_frame: bool = True
    max_full_frame_encode_pixels: int = MAX_FULL_FRAME_ENCODE_PIXELS
    encode_chunk: int | None = None
    lean_vae_attention: bool = True
    decode_chunk: int = REFERENCE_DECODE_CHUNK
    decode_tiles: tuple[int, int] | None = None
    max_decode_pixel_frames: int = DEFAULT_DECODE_PIXEL_FRAMES
    oom_retry: bool = True
    max_tiles: int = 64

    @classmethod
    def reference(cls, tiles: int = 1, **overrides: Any) -> InpaintSettings:
        """The reference's behaviour: CFG 1.01, crop to 128, no composite, discarded overlaps, k/16 tile blend,
        5-frame fp32 encode, full-frame decode, plain VAE attention (and therefore the reference's memory use)."""
        base = cls(
            guidance_scale=1.01,
            seams="reference",
            tiles=(tiles, tiles),
            tile_blend="reference",
            fit="crop",
            multiple=128,
            composite=False,
            oom_retry=False,
            encode_fp32=True,
            encode_full_frame=False,
            encode_chunk=REFERENCE_ENCODE_CHUNK,
            decode_tiles=(1, 1),
            lean_vae_attention=False,
        )
        return replace(base, **overrides)

    def validate(self) -> None:
        """Raise a ValueError for out-of-range settings."""
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}.")
        if self.guidance_scale < 1.0:
            raise ValueError(f"guidance_scale must be >= 1.0, got {self.guidance_scale}.")
        if self.multiple < LATENT_FACTOR or self.multiple % LATENT_FACTOR:
            raise ValueError(f"multiple must be a positive multiple of {LATENT_FACTOR}, got {self.multiple}.")
        if self.decode_chunk < 1 or self.tile_batch < 1 or (self.encode_chunk is not None and self.encode_chunk < 1):
            raise ValueError("decode_chunk, encode_chunk and tile_batch must be >= 1.")
        if self.tiles is not None and min(self.tiles) < 1:
            raise ValueError(f"tiles must be >= 1 per axis, got {self.tiles}.")
        if self.tiles is not None and self.tiles[0] * self.tiles[1] > self.max_tiles:
            # Each tile repeats its 128 px overlap: past ~8 per side they are mostly overlap (100x100 at 720p would
            # denoise 10,000 tiles per chunk, for days).
            raise ValueError(
                f"tiles {self.tiles[0]}x{self.tiles[1]} is more than {self.max_tiles} tiles in all; use fewer (2 or "
                "2x3 are typical) or automatic tiles."
            )
        if self.decode_tiles is not None and min(self.decode_tiles) < 1:
            raise ValueError(f"decode_tiles must be >= 1 per axis, got {self.decode_tiles}.")
        if self.fit not in ("pad", "crop") or self.pad_mode not in ("reflect", "replicate"):
            raise ValueError(f"Unknown fit/pad mode {self.fit!r}/{self.pad_mode!r}.")
        if self.composite_dilate_px < 0 or self.composite_feather_px < 0:
            raise ValueError("composite_dilate_px and composite_feather_px must be >= 0.")
        plan_chunks(1, self.chunk_frames, self.chunk_overlap)  # validates chunk_frames/overlap

    @property
    def cfg(self) -> bool:
        """Whether the negative half runs (the reference's rule: guidance > 1)."""
        return self.guidance_scale > 1.0


@dataclass(frozen=True)
class InpaintProgress:
    """Where a run is: 0-based chunk/tile/step indices of the step just finished, and their totals. A pipeline that
    reports its decode too gives ``decode_share`` (the decode's share of a chunk's time) and ``decoded`` (the share
    of the chunk's decode done, 0..1, after its last step)."""

    chunk: int
    chunks: int
    tile: int
    tiles: int
    step: int
    steps: int
    decoded: float = 0.0
    decode_share: float = 0.0

    @property
    def fraction(self) -> float:
        """Share of the whole run done, 0..1: each chunk's denoising steps (tiles counted), then its decode, so a
        progress bar moves at a steady rate."""
        steps_done = (self.tile * self.steps + self.step + 1) / max(self.tiles * self.steps, 1)
        within = steps_done * (1 - self.decode_share) + self.decoded * self.decode_share
        return min((self.chunk + within) / max(self.chunks, 1), 1.0)


ProgressFn = Callable[[InpaintProgress], None]
InterruptFn = Callable[[], None]


@dataclass
class RunStats:
    """What the last run did: UNet calls, tiles per axis finally used, OOM retries, seconds per phase."""

    unet_calls: int = 0
    chunks: int = 0
    tiles: tuple[int, int] = (1, 1)
    decode_tiles: tuple[int, int] = (1, 1)
    oom_retries: int = 0
    skipped_chunks: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    peak_gib: dict[str, float] = field(default_factory=dict)  # per phase, only with ``phase_peaks`` on CUDA


# ----------------------------------------------------------------------------------------------------------------------
# Input checks, masks, fitting
# ----------------------------------------------------------------------------------------------------------------------


def check_inputs(frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and normalise the inputs.

    Args:
        frames: warped right view [T, H, W, 3] (a 4th channel is dropped) float 0..1.
        mask: occlusion mask 0..1 (1 = hole): [T, H, W], [H, W] / [1, H, W] (used for every frame), or an image
            [T, H, W, C] (channels averaged, as the reference does with its mask video).

    Returns:
        frames [T, H, W, 3] and mask [T, H, W], both float32 on the frames' device.
    """
    if frames.ndim != 4 or frames.shape[-1] not in (3, 4):
        raise ValueError(f"frames must be [frames, height, width, 3], got shape {tuple(frames.shape)}.")
    if frames.shape[0] == 0:
        raise ValueError("frames is empty: it needs at least one frame.")
    if not frames.is_floating_point():
        raise ValueError(f"frames must be float 0..1, got {frames.dtype}.")
    frames = frames[..., :3].float()
    if mask.ndim == 4:
        mask = mask.float().mean(dim=-1)
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3:
        raise ValueError(f"mask must be [frames, height, width] (or [height, width]), got shape {tuple(mask.shape)}.")
    if tuple(mask.shape[1:]) != tuple(frames.shape[1:3]):
        raise ValueError(
            f"mask is {mask.shape[2]}x{mask.shape[1]} but frames are {frames.shape[2]}x{frames.shape[1]}; use the "
            "occlusion mask produced together with the warped frames."
        )
    if mask.shape[0] == 1 and frames.shape[0] > 1:
        mask = mask.expand(frames.shape[0], -1, -1)
    if mask.shape[0] != frames.shape[0]:
        raise ValueError(f"mask has {mask.shape[0]} frames but frames has {frames.shape[0]}; they must match.")
    mask = mask.to(device=frames.device, dtype=torch.float32)
    if not bool(torch.isfinite(frames).all()):
        raise ValueError("frames contain NaN or infinite values.")
    if not bool(torch.isfinite(mask).all()):
        raise ValueError("mask contains NaN or infinite values.")
    return frames, mask


def binarize_mask(mask: torch.Tensor) -> torch.Tensor:
    """Holes where mask ≥ 0.5 (the reference's VaeImageProcessor binarisation). [T, H, W] → bool [T, H, W]."""
    return mask >= 0.5


def latent_mask(hole: torch.Tensor) -> torch.Tensor:
    """Nearest ×1/8 of a binary mask: the top-left pixel of each 8×8 block (what F.interpolate(scale_factor=1/8)
    picks). [..., H, W] → [..., H/8, W/8], same dtype."""
    return hole[..., ::LATENT_FACTOR, ::LATENT_FACTOR]


def dilate_square(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grow a bool mask [T, H, W] by ``radius`` px in every direction (a (2r+1)² square; what max pooling with -inf
    padding does to a 0/1 mask), as ORs of shifted slices: bool temporaries only, a byte per pixel."""
    out = mask.clone()
    for dim in (1, 2):  # rows, then columns: the square is separable
        src = out.clone() if radius else out
        size = mask.shape[dim]
        for shift in range(1, min(radius, size - 1) + 1):
            out.narrow(dim, shift, size - shift).logical_or_(src.narrow(dim, 0, size - shift))
            out.narrow(dim, 0, size - shift).logical_or_(src.narrow(dim, shift, size - shift))
    return out


def composite_alpha(hole: torch.Tensor, dilate_px: int, feather_px: int) -> torch.Tensor:
    """Weight of the generated frame: 1 on the hole grown by ``dilate_px``, then falling linearly to 0 over
    ``feather_px`` more pixels (square neighbourhoods), exactly 0 farther away. bool [T, H, W] → float32 [T, H, W].

    Built from bool masks (a byte per pixel): at 1080p a float32 [T, H, W] temporary is ~0.2 GB per 23-frame chunk,
    and the float max pooling this replaces kept several, plus int64 indices on the CPU."""
    ring = dilate_square(hole.bool(), dilate_px)
    alpha = ring.to(torch.float32)
    for k in range(1, feather_px + 1):
        ring = dilate_square(ring, 1)
        # the weights fall with k, so the first ring that reaches a pixel sets it (the maximum over the rings)
        alpha.masked_fill_(ring & (alpha == 0), 1.0 - k / (feather_px + 1))
    return alpha


def composite(
    warped: torch.Tensor, generated: torch.Tensor, alpha: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``warped`` where alpha = 0 (bit-identical), ``generated`` where alpha = 1, linear in between.
    [T, H, W, 3] ×2 and alpha [T, H, W] → [T, H, W, 3]; ``out`` (e.g. ``generated`` itself) receives the result
    instead of a new tensor."""
    weight = alpha.unsqueeze(-1).to(warped.dtype)
    return torch.lerp(warped, generated, weight) if out is None else torch.lerp(warped, generated, weight, out=out)


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """round(x · 255) / 255 in float32, in place (returns ``x``), as the reference's PIL uint8 round trip (x already
    clamped to 0..1). In place: at 1080p a chunk's frames are ~0.6 GB, and each temporary would be another."""
    return x.mul_(255).round_().div_(255)


@dataclass(frozen=True)
class Fit:
    """How frames are brought to the working size: pad (bottom/right) or crop (top-left)."""

    mode: FitMode
    height: int  # original
    width: int
    work_height: int
    work_width: int
    pad_mode: PadMode = "reflect"

    @classmethod
    def plan(cls, height: int, width: int, mode: FitMode, multiple: int, pad_mode: PadMode) -> Fit:
        if mode == "crop":
            work_h, work_w = height // multiple * multiple, width // multiple * multiple
            if work_h == 0 or work_w == 0:
                raise ValueError(
                    f"Frames of {width}x{height} are smaller than the crop multiple {multiple} px; use fit='pad'."
                )
        else:
            work_h, work_w = -(-height // multiple) * multiple, -(-width // multiple) * multiple
        return cls(mode, height, width, work_h, work_w, pad_mode)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] → [N, C, work_height, work_width]. Reflect falls back to replicate where the frame is too
        small to reflect."""
        if self.mode == "crop":
            return x[..., : self.work_height, : self.work_width]
        pad_h, pad_w = self.work_height - self.height, self.work_width - self.width
        if pad_h == 0 and pad_w == 0:
            return x
        mode = self.pad_mode
        if mode == "reflect" and (pad_h >= self.height or pad_w >= self.width):
            mode = "replicate"
        return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

    def undo(self, x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Working-size [N, H', W', C] → original size: unpad, or paste the crop into ``base`` [N, H, W, C]."""
        if self.mode == "crop":
            out = base.clone()
            out[:, : self.work_height, : self.work_width] = x
            return out
        return x[:, : self.height, : self.width]


# ----------------------------------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------------------------------


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class StereoInpaintPipeline:
    """Fill the occlusion holes of a warped right-eye clip with StereoCrafter's SVD inpainting UNet.

    Args:
        unet: the 9-channel ``UNetSpatioTemporalConditionModel`` (StereoCrafter).
        vae: SVD's ``AutoencoderKLTemporalDecoder``.
        image_encoder: SVD's ``CLIPVisionModelWithProjection``.
        scheduler_config: SVD's ``scheduler_config.json`` (Euler, v-prediction, Karras).
        clip_mean, clip_std, clip_size: CLIP input normalisation.
        single_key_attention: compute the UNet's cross-attention to its one CLIP token as ``to_out(to_v(context))``
            (same math, see :mod:`stereocrafter.svd.single_key_attention`; installed on ``unet`` in place); False keeps
            diffusers' processor, as the reference runs it.
        frames_major_decoder: run the VAE's temporal decoder with :mod:`stereocrafter.svd.frames_major_blocks`
            (installed on ``vae.decoder`` in place; same math, fp16 rounding differs): 1.42x faster eager on an H200 but
            1.75x the memory per decoded pixel, so the automatic decode tiles are planned for that (more, smaller
            tiles).
            False keeps diffusers' blocks, as the reference runs them.

    The modules may be anywhere; computation runs on the UNet's device (VAE and CLIP are expected there too —
    use :meth:`to`). Weights dtype is the caller's choice (fp16 as in the reference). It is an
    :class:`~.inpaint_model.InpaintModel` (``open_stream``, ``settings_from``), as StereoCrafter2's pipeline.
    """

    model_name = "StereoCrafter"
    settings_type = InpaintSettings

    def __init__(
        self,
        unet: torch.nn.Module,
        vae: torch.nn.Module,
        image_encoder: torch.nn.Module,
        scheduler_config: dict[str, Any],
        clip_mean: tuple[float, ...] = CLIP_MEAN,
        clip_std: tuple[float, ...] = CLIP_STD,
        clip_size: int = 224,
        single_key_attention: bool = True,
        frames_major_decoder: bool = True,
    ) -> None:
        check_inpaint_unet(unet)
        use_single_key_cross_attention(unet, single_key_attention)
        decoder = getattr(vae, "decoder", None)
        self.frames_major_decoder = frames_major_decoder and decoder is not None
        if decoder is not None:
            use_frames_major_blocks(decoder, self.frames_major_decoder)
        self.unet = unet
        self.vae = vae
        self.image_encoder = image_encoder
        self.scheduler_config = dict(scheduler_config)
        self.clip_mean = tuple(clip_mean)
        self.clip_std = tuple(clip_std)
        self.clip_size = clip_size
        self.stats = RunStats()
        self.out_device = torch.device("cpu")  # where decoded frames go (set per chunk: the input frames' device)
        # Benchmarks and the CLI's --stats: synchronise CUDA around phases so stats.seconds are exact; with
        # phase_peaks also record per-phase peak memory (this resets the device's peak-memory counter, so a caller's
        # own peak is lost).
        self.sync_timing = False
        self.phase_peaks = False
        self.compiled = False  # set by compile()
        self._lean_skip_logged = False

    @classmethod
    def from_components(
        cls,
        svd: SVDComponents,
        unet: torch.nn.Module,
        single_key_attention: bool = True,
        frames_major_decoder: bool = True,
    ) -> StereoInpaintPipeline:
        """Build from the shared SVD components (VAE, CLIP, scheduler config) and the StereoCrafter UNet."""
        return cls(
            unet, svd.vae, svd.image_encoder, svd.scheduler_config, svd.clip_mean, svd.clip_std, svd.clip_size,
            single_key_attention=single_key_attention, frames_major_decoder=frames_major_decoder,
        )  # fmt: skip

    @classmethod
    def from_pretrained(
        cls,
        svd_dir: str | Path,
        stereocrafter_dir: str | Path,
        dtype: torch.dtype = torch.float16,
        device: torch.device | str | None = None,
    ) -> StereoInpaintPipeline:
        """Load SVD-xt-1-1 (VAE, CLIP, scheduler) and the StereoCrafter UNet (safetensors only)."""
        pipe = cls.from_components(load_svd_components(svd_dir, dtype), load_inpaint_unet(stereocrafter_dir, dtype))
        return pipe.to(device) if device is not None else pipe

    def to(self, device: torch.device | str) -> StereoInpaintPipeline:
        """Move all three modules; returns self."""
        for module in (self.unet, self.vae, self.image_encoder):
            module.to(device)
        return self

    def compile(self) -> StereoInpaintPipeline:
        """``torch.compile`` the UNet's repeated blocks and the VAE's temporal decoder in place (see
        :mod:`stereocrafter.svd.compiled_svd`); returns self. A speed lever for CUDA: 1920x1024 in 2x2 tiles went from
        1.072 to 0.656 s/frame on an H100, output changed by fp16 rounding only (max 1/255); the first chunk of every
        new shape compiles (about 3.5 minutes there). While compiled, ``lean_vae_attention`` is ignored: swapping the
        VAE's attention processors per chunk would fail the compiled decoder's guards and recompile it every time (on
        CUDA the default processor's memory-efficient attention needs no chunking)."""
        from ..svd.compiled_svd import compile_unet_blocks, compile_vae

        # diffusers' blocks, as measured for this pipeline compiled (frames_major_blocks were measured compiled for
        # video depth only); the eager frames-major decoder is swapped back before tracing.
        use_frames_major_blocks(self.vae.decoder, enable=False)
        self.frames_major_decoder = False
        compile_unet_blocks(self.unet, frames_major=False)
        compile_vae(self.vae, encoder=False, frames_major_decoder=False)  # the encoder is cheap
        self.compiled = True
        return self

    def use_lean_vae_attention(self, settings: InpaintSettings) -> bool:
        """Whether a chunk runs the VAE under :func:`~stereocrafter.svd.lean_attention.lean_attention`:
        ``settings.lean_vae_attention`` unless the pipeline is compiled (see :meth:`compile`)."""
        if not settings.lean_vae_attention:
            return False
        if self.compiled:
            if not self._lean_skip_logged:
                logger.debug("lean_vae_attention is ignored: the VAE decoder is compiled.")
                self._lean_skip_logged = True
            return False
        return True

    @property
    def device(self) -> torch.device:
        return module_device_dtype(self.unet)[0]

    @property
    def dtype(self) -> torch.dtype:
        return module_device_dtype(self.unet)[1]

    def make_scheduler(self) -> EulerDiscreteScheduler:
        """A fresh scheduler (they keep a step index) from the SVD config."""
        return EulerDiscreteScheduler.from_config(self.scheduler_config)

    # -- timing

    @contextlib.contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        if self.sync_timing and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync_timing and self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            if self.phase_peaks and self.device.type == "cuda":
                peak = torch.cuda.max_memory_allocated(self.device) / 2**30
                self.stats.peak_gib[phase] = max(self.stats.peak_gib.get(phase, 0.0), peak)
                torch.cuda.reset_peak_memory_stats(self.device)
            self.stats.seconds[phase] = self.stats.seconds.get(phase, 0.0) + time.perf_counter() - start

    # -- public entry point

    @torch.no_grad()  # not inference_mode: callers may modify the returned frames in place
    def __call__(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor,
        settings: InpaintSettings = InpaintSettings(),
        seed: int = 0,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        interrupt: InterruptFn | None = None,
    ) -> torch.Tensor:
        """Inpaint a warped right view.

        Args:
            frames: warped right frames [T, H, W, 3] float 0..1 (any device; CPU keeps GPU memory low).
            mask: occlusion mask [T, H, W] 0..1, 1 = hole (see :func:`check_inputs` for other accepted shapes).
            settings: see :class:`InpaintSettings`.
            seed: noise seed (ignored when ``generator`` is given); the same seed gives the same output.
            generator: a CPU ``torch.Generator`` for the noise (drawn on the CPU in fp32, so results do not
                depend on the device's RNG).
            progress: called after every denoising step with an :class:`InpaintProgress`.
            interrupt: called before every denoising step; raise from it to stop (e.g. ComfyUI's cancel).

        Returns:
            Right frames [T, H, W, 3] float32 0..1 on the frames' device, same size and count as the input.

        A clip that does not fit in memory at once goes through :class:`~.inpaint_stream.InpaintStream` (same
        numbers); this is that stream with the whole clip pushed at once.
        """
        settings.validate()
        self.stats = RunStats()
        frames, mask = check_inputs(frames, mask)
        if not bool(binarize_mask(mask).any()):
            logger.info("Empty occlusion mask: nothing to inpaint, returning the input.")
            return frames.clone()
        from .inpaint_stream import InpaintStream  # imported here: that module builds on this one

        total, height, width, _ = frames.shape
        stream = InpaintStream(
            self, total, height, width, settings, seed, generator=generator, progress=progress, interrupt=interrupt
        )
        out = stream.push(frames, mask)
        stream.finish()  # nothing is left: the push that completes the clip returns every frame
        return out

    # -- the InpaintModel interface (stereocrafter/inpaint/inpaint_model.py)

    @classmethod
    def settings_from(cls, options: InpaintOptions) -> InpaintSettings:
        """Settings from the knobs both models share: ours (or :meth:`InpaintSettings.reference` with 2 × 2 tiles
        when ``options.faithful``) with every option that is not None applied; ``fit='crop'`` crops to multiples of
        128 as the reference, ``pad`` pads to the UNet's 64."""
        base = InpaintSettings.reference(tiles=2) if options.faithful else InpaintSettings()
        names = ("steps", "chunk_frames", "chunk_overlap", "tiles", "composite", "seams", "guidance_scale")
        changes: dict[str, Any] = {n: getattr(options, n) for n in names if getattr(options, n) is not None}
        if options.fit is not None:
            changes.update(fit=options.fit, multiple=128 if options.fit == "crop" else InpaintSettings.multiple)
        settings = replace(base, **changes)
        settings.validate()
        return settings

    def open_stream(
        self,
        num_frames: int,
        height: int,
        width: int,
        settings: InpaintSettings,
        seed: int = 0,
        *,
        progress: ProgressFn | None = None,
        interrupt: InterruptFn | None = None,
        state: dict[str, Any] | None = None,
        cuts: Sequence[int] = (),
    ) -> InpaintStream:
        """An :class:`~.inpaint_stream.InpaintStream` of this pipeline (see there for the arguments)."""
        from .inpaint_stream import InpaintStream  # imported here: that module builds on this one

        return InpaintStream(
            self, num_frames, height, width, settings, seed, progress=progress, interrupt=interrupt, state=state,
            cuts=cuts,
        )  # fmt: skip

    # -- chunk level

    def _tile_counts(self, fit: Fit, settings: InpaintSettings, frames: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Tiles per axis for the denoiser (chunks of ``frames`` frames) and for the decode, from the settings or
        the memory budgets."""
        counts = settings.tiles or self._auto_tiles(fit, settings, frames)
        counts = self._respect_sdpa_limit(fit, settings, counts)
        decode_pixel_frames = settings.max_decode_pixel_frames
        if self.frames_major_decoder:
            decode_pixel_frames = int(decode_pixel_frames / FRAMES_MAJOR_DECODE_MEMORY)
        decode_counts = settings.decode_tiles or auto_tile_counts(
            fit.work_height,
            fit.work_width,
            max(decode_pixel_frames // settings.decode_chunk, 64 * 64),
            settings.tile_overlap_px,
            settings.max_tiles,
        )
        return counts, decode_counts

    @staticmethod
    def _respect_sdpa_limit(fit: Fit, settings: InpaintSettings, counts: tuple[int, int]) -> tuple[int, int]:
        """More tiles while one tile's temporal-attention batch (latent cells x CFG) exceeds ``MAX_SDPA_BATCH``."""
        factor = 2 if settings.cfg else 1
        while True:
            grid = plan_tiles(fit.work_height, fit.work_width, counts, settings.tile_overlap_px, settings.tile_blend)
            tile_h, tile_w = grid.tile_size
            if tile_h * tile_w * factor <= MAX_SDPA_BATCH:
                return counts
            if settings.tile_blend == "reference":
                logger.warning(
                    "Tiles of %dx%d latents%s exceed the CUDA attention batch limit and may fail; use more tiles.",
                    tile_w,
                    tile_h,
                    " with CFG" if settings.cfg else "",
                )
                return counts
            new = more_tiles(counts, grid)
            if new[0] * new[1] > settings.max_tiles:
                return counts
            logger.warning(
                "Tiles of %dx%d latents are too large for CUDA attention: using %dx%d tiles.", tile_w, tile_h, *new
            )
            counts = new

    def _auto_tiles(self, fit: Fit, settings: InpaintSettings, frames: int) -> tuple[int, int]:
        per_call = frames * (2 if settings.cfg else 1) * settings.tile_batch
        budget = max(settings.max_pixel_frames // per_call, 64 * 64)
        return auto_tile_counts(fit.work_height, fit.work_width, budget, settings.tile_overlap_px, settings.max_tiles)

    def _run_chunk_with_retry(
        self,
        chunk: Chunk,
        num_chunks: int,
        cond: torch.Tensor,
        hole: torch.Tensor,
        fit: Fit,
        counts: tuple[int, int],
        decode_counts: tuple[int, int],
        settings: InpaintSettings,
        generator: torch.Generator,
        progress: ProgressFn | None,
        interrupt: InterruptFn | None,
    ) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        """:meth:`_run_chunk`, retried with more tiles (denoise) or more decode tiles on CUDA out-of-memory.

        The generator state is restored before a retry, so a retried chunk gets the same noise."""

        def on_decoded(share: float) -> None:
            if interrupt is not None:
                interrupt()
            if progress is not None:
                steps = settings.steps
                progress(InpaintProgress(chunk.index, num_chunks, 0, 1, steps - 1, steps, share, DECODE_PROGRESS_SHARE))

        rng_state = generator.get_state()
        tile_batch = settings.tile_batch
        while True:
            try:
                latents = self._denoise_chunk(
                    chunk, num_chunks, cond, hole, fit, counts, settings, tile_batch, generator, progress, interrupt
                )
                break
            except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is a RuntimeError
                if not (_is_oom(exc) and settings.oom_retry):
                    raise
                new_batch, new_counts = 1, counts
                if tile_batch == 1:
                    grid = plan_tiles(
                        fit.work_height, fit.work_width, counts, settings.tile_overlap_px, settings.tile_blend
                    )
                    new_counts = more_tiles(counts, grid)
                    if settings.tile_blend == "reference" or new_counts[0] * new_counts[1] > settings.max_tiles:
                        raise
            # Freed only here, after the except clause: the traceback held the failed attempt's tensors.
            _free_memory()
            generator.set_state(rng_state)
            self.stats.oom_retries += 1
            logger.warning(
                "Out of GPU memory in chunk %d: retrying with %dx%d tiles, %d per UNet call.",
                chunk.index,
                *new_counts,
                new_batch,
            )
            tile_batch, counts = new_batch, new_counts
        while True:
            try:
                decoded = self._decode(latents, decode_counts, settings, on_decoded)
                break
            except RuntimeError as exc:
                if not (_is_oom(exc) and settings.oom_retry):
                    raise
                grid = plan_tiles(fit.work_height, fit.work_width, decode_counts, settings.tile_overlap_px)
                new_counts = more_tiles(decode_counts, grid)
                if new_counts[0] * new_counts[1] > settings.max_tiles:
                    raise
            _free_memory()
            self.stats.oom_retries += 1
            logger.warning("Out of GPU memory in the VAE decode: retrying with %dx%d decode tiles.", *new_counts)
            decode_counts = new_counts
        return decoded, counts, decode_counts

    def _denoise_chunk(
        self,
        chunk: Chunk,
        num_chunks: int,
        cond: torch.Tensor,
        hole: torch.Tensor,
        fit: Fit,
        counts: tuple[int, int],
        settings: InpaintSettings,
        tile_batch: int,
        generator: torch.Generator,
        progress: ProgressFn | None,
        interrupt: InterruptFn | None,
    ) -> torch.Tensor:
        """Denoise one chunk, tile by tile (or tile batches), and blend the tiles' final latents.

        Args:
            cond: conditioning frames [t, H, W, 3] float32 0..1 (warped, with feedback frames), original size.
            hole: bool [t, H, W].

        Returns:
            Blended latents [t, 4, H'/8, W'/8] in the UNet dtype on the UNet's device (working size).
        """
        device, dtype = self.device, self.dtype
        # [t, 3, H', W'] in [0, 1] and [t, 1, H', W'] binary, on the compute device.
        pixels = fit.apply(cond.permute(0, 3, 1, 2).to(device))
        mask = fit.apply(hole.unsqueeze(1).to(device=device, dtype=torch.float32))
        grid = plan_tiles(fit.work_height, fit.work_width, counts, settings.tile_overlap_px, settings.tile_blend)
        pixel_grid = grid.scaled(LATENT_FACTOR)
        self.stats.tiles = grid.counts
        frames_n = pixels.shape[0]
        # Noise for the whole working frame, drawn once on the CPU: tiles crop it, so the noise at a pixel does not
        # depend on the tile layout (and OOM retries with more tiles draw the same noise).
        noise = torch.randn((frames_n, 4, grid.height, grid.width), generator=generator, dtype=torch.float32).to(
            device=device, dtype=dtype
        )
        full_latents = None
        if (
            settings.encode_full_frame
            and len(grid) > 1
            and pixels[0, 0].numel() <= settings.max_full_frame_encode_pixels
        ):
            full_latents = self._encode_full_frame(pixels, settings, generator)
        windows = grid.windows()
        pixel_windows = pixel_grid.windows()
        results: list[torch.Tensor] = []
        cells = grid.tile_size[0] * grid.tile_size[1] * (2 if settings.cfg else 1)
        batch = max(1, min(tile_batch if grid.uniform else 1, MAX_SDPA_BATCH // cells))
        for first in range(0, len(windows), batch):
            idx = list(range(first, min(first + batch, len(windows))))
            tile_pixels = [pixels[:, :, pixel_windows[i][0], pixel_windows[i][1]] for i in idx]
            with self._timed("clip"):
                embeds = torch.cat([self._clip(tp[0:1]) for tp in tile_pixels])  # [B, D]
            with self._timed("vae_encode"):
                if full_latents is not None:
                    cond_latents = [full_latents[:, :, windows[i][0], windows[i][1]] for i in idx]
                else:
                    cond_latents = [self._encode(tp, settings, generator) for tp in tile_pixels]
            masks = [latent_mask(mask[:, :, pixel_windows[i][0], pixel_windows[i][1]]).to(dtype) for i in idx]
            tile_noise = [noise[:, :, windows[i][0], windows[i][1]] for i in idx]
            with self._timed("unet"):
                latents = self._denoise(
                    torch.stack(tile_noise),
                    torch.stack(cond_latents),
                    torch.stack(masks),
                    embeds,
                    settings,
                    lambda step, tile=idx[-1]: self._report(
                        progress, chunk, num_chunks, tile, len(windows), step, settings.steps
                    ),
                    interrupt,
                )
            results.extend(latents.unbind(0))
        with self._timed("blend"):
            if settings.tile_blend == "reference":
                return blend_tiles(results, grid, mode="reference")
            return blend_tiles([r.float() for r in results], grid, mode="linear").to(dtype)

    @staticmethod
    def _report(
        progress: ProgressFn | None, chunk: Chunk, chunks: int, tile: int, tiles: int, step: int, steps: int
    ) -> None:
        if progress is not None:
            progress(InpaintProgress(chunk.index, chunks, tile, tiles, step, steps, 0.0, DECODE_PROGRESS_SHARE))

    # -- conditioning

    def _clip(self, first_frame: torch.Tensor) -> torch.Tensor:
        """CLIP image embedding of one frame [1, 3, h, w] in [0, 1] → [1, D] in the UNet dtype."""
        embeds = clip_image_embeds(
            first_frame.float() * 2.0 - 1.0, self.image_encoder, self.clip_mean, self.clip_std, self.clip_size
        )
        return embeds.to(self.dtype)

    def _encode_full_frame(
        self, pixels: torch.Tensor, settings: InpaintSettings, generator: torch.Generator
    ) -> torch.Tensor | None:
        """:meth:`_encode` of whole working frames, or None when that runs out of GPU memory (with ``oom_retry``):
        the tiles are then encoded one by one."""
        try:
            with self._timed("vae_encode"):
                return self._encode(pixels, settings, generator)
        except RuntimeError as exc:
            if not (_is_oom(exc) and settings.oom_retry):
                raise
        _free_memory()  # after the except clause: its traceback held the failed attempt's tensors
        logger.warning("Out of GPU memory encoding whole frames: encoding tile by tile instead.")
        return None

    def _encode(
        self, pixels: torch.Tensor, settings: InpaintSettings, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Unscaled posterior-mean latents of frames [t, 3, h, w] in [0, 1] → [t, 4, h/8, w/8] in the UNet dtype.

        fp32 VAE when ``encode_fp32`` and the VAE asks for it (``force_upcast``), else the VAE's dtype, redone in
        fp32 if that gives non-finite latents. ``encode_chunk`` frames per call (the encoder works frame by frame,
        so this only bounds memory).
        """
        x = pixels.float() * 2.0 - 1.0
        if settings.noise_aug_strength:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype) if generator is not None else None
            x = x + settings.noise_aug_strength * (noise if noise is not None else torch.randn_like(x)).to(x.device)
        upcast = settings.encode_fp32 and bool(getattr(self.vae.config, "force_upcast", True))
        per_call = settings.encode_chunk or max(
            1, min(REFERENCE_ENCODE_CHUNK, MAX_ENCODE_PIXELS // (x.shape[-2] * x.shape[-1]))
        )
        with module_dtype(self.vae, torch.float32 if upcast else None):
            latents = vae_encode_chunks(self.vae, x, chunk_size=per_call)
        if not upcast and latents.dtype != torch.float32 and not bool(torch.isfinite(latents).all()):
            # fp16's range is what the SVD VAE's force_upcast guards against: redo this encode in fp32
            logger.warning("The VAE encode overflowed in %s: redone in fp32.", latents.dtype)
            with module_dtype(self.vae, torch.float32):
                latents = vae_encode_chunks(self.vae, x, chunk_size=per_call)
        return latents.to(self.dtype)

    # -- denoising

    def _denoise(
        self,
        noise: torch.Tensor,
        cond_latents: torch.Tensor,
        masks: torch.Tensor,
        embeds: torch.Tensor,
        settings: InpaintSettings,
        on_step: Callable[[int], None],
        interrupt: InterruptFn | None,
    ) -> torch.Tensor:
        """The Euler loop for a batch of B tiles.

        Args:
            noise: [B, t, 4, h, w] unit Gaussian noise (UNet dtype).
            cond_latents: [B, t, 4, h, w] unscaled warped-frame latents.
            masks: [B, t, 1, h, w] binary latent masks.
            embeds: [B, D] CLIP embeddings.

        Returns:
            Final latents (x0) [B, t, 4, h, w] in the UNet dtype.
        """
        device, dtype = self.device, self.dtype
        batch = noise.shape[0]
        scheduler = self.make_scheduler()
        scheduler.set_timesteps(settings.steps, device=device)
        latents = noise * scheduler.init_noise_sigma
        time_ids = torch.tensor(
            [[settings.fps_id, settings.motion_bucket_id, settings.noise_aug_strength]], dtype=dtype, device=device
        ).repeat(batch, 1)
        hidden = embeds.unsqueeze(1)  # [B, 1, D]
        if settings.cfg:
            # negative half first, all zeros (embedding, frame latents, mask), in the same UNet call
            hidden = torch.cat([torch.zeros_like(hidden), hidden])
            cond_latents = torch.cat([torch.zeros_like(cond_latents), cond_latents])
            masks = torch.cat([torch.zeros_like(masks), masks])
            time_ids = torch.cat([time_ids, time_ids])
            # the reference keeps the scale as a tensor in the latents' dtype (1.01 → 1.0098 in fp16)
            guidance = torch.tensor(settings.guidance_scale, dtype=torch.float32).to(device=device, dtype=dtype)
        for i, t in enumerate(scheduler.timesteps):
            if interrupt is not None:
                interrupt()
            model_in = torch.cat([latents, latents]) if settings.cfg else latents
            model_in = scheduler.scale_model_input(model_in, t)
            model_in = torch.cat([model_in, cond_latents, masks], dim=2)
            pred = self.unet(model_in, t, encoder_hidden_states=hidden, added_time_ids=time_ids, return_dict=False)[0]
            self.stats.unet_calls += 1
            if settings.cfg:
                uncond, cond = pred.chunk(2)
                pred = uncond + guidance * (cond - uncond)
            latents = scheduler.step(pred, t, latents).prev_sample
            on_step(i)
        return latents

    # -- decoding

    def _decode(
        self,
        latents: torch.Tensor,
        decode_counts: tuple[int, int],
        settings: InpaintSettings,
        on_decoded: Callable[[float], None] | None = None,
    ) -> torch.Tensor:
        """Latents [t, 4, h, w] → frames [t, H, W, 3] float32 0..1 on ``out_device`` (quantised to k/255 if asked).

        Temporal decoder ``decode_chunk`` frames at a time; with ``decode_tiles`` > 1 the latents are cut into
        overlapping spatial tiles whose decoded pixels are blended linearly. ``on_decoded`` gets the share done
        (0..1] after every decoder call.
        """
        with self._timed("decode"):
            grid = plan_tiles(
                latents.shape[-2] * LATENT_FACTOR,
                latents.shape[-1] * LATENT_FACTOR,
                decode_counts,
                settings.tile_overlap_px,
            )
            windows = list(grid.windows())
            calls = len(windows) * -(-latents.shape[0] // settings.decode_chunk)
            done = iter(range(1, calls + 1))

            def decoded() -> None:
                if on_decoded is not None:
                    on_decoded(next(done) / calls)

            # Tiles decoded as the blend takes them: one row of decoded tiles in host memory at a time.
            pieces = (self._decode_window(latents[..., ys, xs], settings, decoded) for ys, xs in windows)
            frames = blend_tile_stream(pieces, grid.scaled(LATENT_FACTOR)).permute(0, 2, 3, 1)
            return quantize_8bit(frames) if settings.quantize_8bit else frames

    def _decode_window(
        self, latents: torch.Tensor, settings: InpaintSettings, decoded: Callable[[], None] | None = None
    ) -> torch.Tensor:
        """Temporal decode of [t, 4, h, w] in chunks → [t, 3, 8h, 8w] float32 0..1 on ``out_device``; ``decoded``
        is called after each chunk."""
        # Filled in place: a list of chunks joined by torch.cat would hold the chunk's frames twice.
        frames = torch.empty(
            (latents.shape[0], 3, latents.shape[-2] * LATENT_FACTOR, latents.shape[-1] * LATENT_FACTOR),
            dtype=torch.float32,
            device=self.out_device,
        )
        for start, chunk in iter_vae_decode(self.vae, latents, settings.decode_chunk):
            frames[start : start + chunk.shape[0]] = (chunk.float() / 2 + 0.5).clamp(0, 1)
            if decoded is not None:
                decoded()
        return frames
