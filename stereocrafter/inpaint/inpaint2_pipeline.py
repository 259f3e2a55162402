"""StereoCrafter2's stereo video inpainting (stage 2 of v2): a fine-tuned Wan2.1-VACE-14B transformer fills the
disocclusion holes of a warped right view.

Reference numerics (StereoCrafter2's ``inpainting_inference.py``), step by step:

1. holes filled with grey: ``frames · (1 − mask) + 0.5 · mask`` (soft mask, fp32), then the clip padded bottom/right
   (frames replicate, mask zeros) to the size the spatial tiles cover exactly (tile sides multiples of 16 px);
2. temporal chunks of 81 frames, 10 overlapping, the last one pulled back to end at the clip's end, each cut to
   ``1 + 4k`` frames (the VAE's temporal stride); the overlap's input frames are replaced by the outputs already made;
3. per chunk, ``tile_num × tile_num`` tiles (128 px overlap), each denoised on its own:
   video → [-1, 1], mask round-tripped through [-1, 1]; binary mask (> 0.5) splits the video into ``inactive`` =
   video · (1 − m) and ``reactive`` = video · m; both VAE-encoded (posterior mode) and normalised
   ``(z − latents_mean) / latents_std``; the soft mask packed 8×8 → 64 channels on the latent grid, latent frames
   picked by nearest-exact; control = [inactive 16, reactive 16, mask 64] = 96 channels;
4. flow matching, 10 Euler steps, sigmas ``linspace(1, 0, steps + 1)[:-1]`` shifted by 5 (``5σ / (1 + 4σ)``),
   timestep = 1000σ (cast to bf16), ``x ← x + v · (σ_next − σ)`` in bf16, noise ``randn`` in bf16 per tile;
   the empty prompt through UMT5 (226 tokens, zeros after the first), no guidance (one transformer call per step);
5. tiles blended on the final latents (linear ramps over the overlap, raster order, in place), the chunk decoded at
   once (latents de-normalised), ``x / 2 + 0.5`` clamped; everything bf16.

Improvements, each a switch (:meth:`Inpaint2Settings.reference` turns them off): the warped pixels kept outside the
holes (``composite``, also fed back as the next chunk's overlap); chunk overlaps cross-faded from the earlier chunk's
frames to the later one's (``seams``; the reference discards the later chunk's); short clips padded to ``1 + 4k``
frames by repeating the last frame (``temporal_fit='pad'``) instead of dropping their last frames (the reference
returns fewer frames than it was given when a clip shorter than a chunk is not ``1 + 4k`` long; ``crop`` keeps the
warped input there). The empty-prompt embedding is computed once at load (optionally cached on disk); the text
encoder is freed before the transformer is loaded. ``load_stereocrafter2(offload='group')`` streams the
transformer's blocks from the CPU (diffusers' group offloading); ``offload='auto'`` (the default) does so when the
resident weights plus a 1080p chunk's working memory do not fit the GPU.

Memory plan (:func:`~.memory_plan.plan_inpaint2`, one log line per stream): on CUDA every stream plans from the GPU
budget (:func:`~.memory_plan.gpu_budget_bytes`) whether the VAE encodes/decodes whole frames (the reference) or
tiles (diffusers' tiled VAE, ``vae_tiling``), and, unless ``oom_retry`` is off, whether more transformer tiles are
needed. The whole-frame VAE decode of a 1080p chunk needs ~20 GiB (its causal feature caches at full resolution):
it is what keeps a 24 GB card from running the faithful path even with offloaded weights.

:class:`Inpaint2Stream` takes a clip of known length in pushes of any size, resumably (``state_dict``);
:meth:`StereoCrafter2Pipeline.__call__` pushes the whole clip through one. The VAE input is laid out as the
reference's (:func:`channels_last_video`): bf16 convolutions depend on it; with it the outputs on the CPU are identical
to the reference's on the same tiny weights and noise (bench/compare_stereocrafter2_reference.py; GPU not checked).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from .inpaint_pipeline import (
    InpaintProgress,
    _free_memory,
    _is_oom,
    binarize_mask,
    check_inputs,
    composite,
    composite_alpha,
)
from .inpaint_stream import check_saved_state

if TYPE_CHECKING:
    from ..memory_plan import Inpaint2Plan
    from .inpaint_model import InpaintOptions

logger = logging.getLogger(__name__)

TemporalFit = Literal["pad", "crop"]
SeamMode = Literal["crossfade", "reference"]
BASE_REPO = "Wan-AI/Wan2.1-VACE-14B-diffusers"
TRANSFORMER_REPO = "TencentARC/StereoCrafter2"
PROMPT_MAX_TOKENS = 226  # the reference's max_sequence_length
TIMESTEP_SCALE = 1000.0  # num_train_timesteps: timestep = 1000 σ
GREY = 0.5  # what the reference paints into the holes before encoding
#: GPU memory a chunk needs beyond the resident weights at the defaults (81 frames, 1080p as 2 × 2 tiles): an
#: estimate, not measured yet (bench/inpaint2.py measures it); ``offload='auto'`` streams the transformer's blocks
#: when the weights plus this do not fit.
WORKING_BYTES = 12 * 1024**3
OffloadMode = Literal["none", "group", "auto"]
#: Storage of the transformer's weights: ``bf16`` (as loaded, faithful), ``fp8`` (float8_e4m3fn, cast up per layer
#: as it runs) or ``int8`` (torchao weight-only int8): about half the bytes, see :func:`apply_transformer_weights`.
WeightsMode = Literal["bf16", "fp8", "int8"]
WEIGHTS_MODES: tuple[str, ...] = ("bf16", "fp8", "int8")
#: ``auto``: VAE tiles only when the memory plan says whole frames do not fit; ``off``: whole frames always (the
#: reference); ``on``: always tiled.
VaeTiling = Literal["auto", "off", "on"]
#: The frame the load-time ``offload='auto'`` decision plans for (h, w, chunk frames): the reference's 1080p chunk.
PLAN_FRAME = (1080, 1920, 81)


@dataclass(frozen=True)
class Inpaint2Settings:
    """Every knob of :class:`StereoCrafter2Pipeline`; the defaults are ours, :meth:`reference` gives the reference's.

    Attributes:
        steps: Euler steps (reference 10).
        shift: flow-matching sigma shift (reference 5).
        chunk_frames: frames per temporal chunk, ``1 + 4k`` (reference 81).
        chunk_overlap: frames of a chunk taken from the previous chunk's output (reference 10).
        tiles: spatial tiles per axis (rows, cols) (reference n × n, ``tile_num`` 2); an axis too small for its
            count at ``tile_overlap_px`` gets fewer tiles.
        tile_overlap_px: tile overlap in px, a multiple of 8 (reference 128).
        temporal_fit: ``pad`` (ours: a chunk shorter than ``1 + 4k`` is padded by repeating its last frame) or
            ``crop`` (reference: cut to ``1 + 4k``; frames no chunk covers keep the warped input).
        seams: ``crossfade`` (ours: a chunk's overlap frames blend linearly from the earlier chunk's outputs to its
            own, so chunk changes do not jump; frames wait for the next chunk) or ``reference`` (the later chunk's
            overlap outputs are discarded).
        composite: keep the warped pixels outside a dilated, feathered hole mask (bit-identical there), and feed the
            composited frames back as the next chunk's overlap.
        composite_dilate_px, composite_feather_px: growth of the hole mask, then the width of its soft edge.
        oom_retry: on CUDA out-of-memory in a chunk, free memory and run the chunk again with one more tile per axis
            (kept for the chunks after it), up to ``max_tiles`` tiles in all; off in :meth:`reference`.
        max_tiles: the most tiles (rows × cols) an out-of-memory retry goes to (``tiles`` above it are kept).
        vae_tiling: ``auto`` (default, also in :meth:`reference`): the VAE encodes and decodes whole frames (the
            reference) unless the memory plan finds they do not fit the GPU budget, then in tiles; ``off``: whole
            frames always; ``on``: tiles always. Tiles are diffusers' ``AutoencoderKLWan.enable_tiling``: each tile
            coded on its own (the convolutions and the decoder's attention see only the tile), blended linearly
            over 1/4 of a tile: NOT exact, pixels change everywhere a little and most near tile edges (tiny random
            models, 32 px tiles: max 0.35 / mean 0.013 on 0..1 pixels, 48 px: 0.24 / 0.007; a random VAE without
            an image prior and tiles of a few latent cells, so an upper bound; not measured on the real weights).
            On the GPU, where it tiles, a 1080p chunk's decode drops from ~20 GiB to under 1 GiB + its output.
        vae_tile_px: VAE tile side in px (a multiple of 8), stride 3/4 of it; 0 = the plan's choice (the largest
            of 1024, 768, 512, 384, 256 px that fits; 1024 where nothing limits).
    """

    steps: int = 10
    shift: float = 5.0
    chunk_frames: int = 81
    chunk_overlap: int = 10
    tiles: tuple[int, int] = (2, 2)
    tile_overlap_px: int = 128
    temporal_fit: TemporalFit = "pad"
    seams: SeamMode = "crossfade"
    composite: bool = True
    composite_dilate_px: int = 3
    composite_feather_px: int = 3
    oom_retry: bool = True
    max_tiles: int = 64
    vae_tiling: VaeTiling = "auto"
    vae_tile_px: int = 0

    @classmethod
    def reference(cls, tile_num: int = 2, **overrides: Any) -> Inpaint2Settings:
        """The reference's behaviour (``--tile_num tile_num``): no composite, chunks cut to ``1 + 4k``, the later
        chunk's overlap outputs discarded."""
        return replace(
            cls(tiles=(tile_num, tile_num), temporal_fit="crop", seams="reference", composite=False, oom_retry=False),
            **overrides,
        )

    def validate(self, temporal_stride: int = 4) -> None:
        """Raise a ValueError for out-of-range settings."""
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}.")
        if self.shift <= 0:
            raise ValueError(f"shift must be > 0, got {self.shift}.")
        if self.chunk_frames < 1 or (self.chunk_frames - 1) % temporal_stride:
            raise ValueError(
                f"chunk_frames must be 1 + {temporal_stride}k (the VAE's temporal stride), got {self.chunk_frames}; "
                f"for example {(self.chunk_frames - 1) // temporal_stride * temporal_stride + 1}."
            )
        if not 0 <= self.chunk_overlap < self.chunk_frames:
            raise ValueError(f"chunk_overlap must be in [0, chunk_frames), got {self.chunk_overlap}.")
        if len(self.tiles) != 2 or min(self.tiles) < 1:
            raise ValueError(f"tiles must be (rows, cols) >= 1, got {self.tiles}.")
        if self.tile_overlap_px < 0 or self.tile_overlap_px % 8:
            raise ValueError(f"tile_overlap_px must be a multiple of 8 >= 0, got {self.tile_overlap_px}.")
        if self.seams not in ("crossfade", "reference"):
            raise ValueError(f"seams must be 'crossfade' or 'reference', got {self.seams!r}.")
        if self.temporal_fit not in ("pad", "crop"):
            raise ValueError(f"temporal_fit must be 'pad' or 'crop', got {self.temporal_fit!r}.")
        if self.composite_dilate_px < 0 or self.composite_feather_px < 0:
            raise ValueError("composite_dilate_px and composite_feather_px must be >= 0.")
        if self.max_tiles < 1:
            raise ValueError(f"max_tiles must be >= 1, got {self.max_tiles}.")
        if self.vae_tiling not in ("auto", "off", "on"):
            raise ValueError(f"vae_tiling must be 'auto', 'off' or 'on', got {self.vae_tiling!r}.")
        if self.vae_tile_px < 0 or self.vae_tile_px % 8 or 0 < self.vae_tile_px < 16:
            raise ValueError(f"vae_tile_px must be 0 (planned) or a multiple of 8 >= 16, got {self.vae_tile_px}.")


# ----------------------------------------------------------------------------------------------------------------------
# Planning: temporal chunks and spatial tiles
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk2:
    """One temporal chunk: input frames [start, end) (+ ``pad`` repeats of the last one, so the chunk is
    ``1 + 4k`` long), outputs kept for [new_from, end); frames [start, new_from) come from earlier outputs."""

    start: int
    end: int
    new_from: int
    pad: int = 0

    @property
    def length(self) -> int:
        """Frames the transformer sees (a multiple of the stride plus one)."""
        return self.end - self.start + self.pad


def plan_chunks2(
    num_frames: int, chunk_frames: int, overlap: int, stride: int = 4, fit: TemporalFit = "pad"
) -> list[Chunk2]:
    """The reference's chunk walk: the first chunk at 0, each next one ``overlap`` frames before the covered end,
    pulled back so it ends at the clip's end when it would run past it; lengths ``1 + stride·k``.

    ``fit='pad'`` pads a short chunk up to ``1 + stride·k``: every frame is produced exactly once. ``fit='crop'``
    cuts it down, as the reference: with a clip shorter than ``chunk_frames`` and not ``1 + stride·k`` long the
    last frames are then covered by no chunk (the plan ends before ``num_frames``)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}.")

    def cut(start: int, covered: int) -> Chunk2 | None:
        size = min(chunk_frames, num_frames - start)
        if fit == "pad":
            end, pad = start + size, (-(size - 1)) % stride
        else:
            end, pad = start + (size - 1) // stride * stride + 1, 0
        return Chunk2(start, end, covered, pad) if end > covered else None

    chunks = [cut(0, 0)]
    while chunks[-1] is not None and chunks[-1].end < num_frames:
        start = chunks[-1].end - overlap
        if start + chunk_frames > num_frames:
            start = max(0, num_frames - chunk_frames)
        chunks.append(cut(start, chunks[-1].end))
    return [c for c in chunks if c is not None]


def plan_chunks2_in_shots(
    num_frames: int, chunk_frames: int, overlap: int, cuts: Sequence[int] = (), stride: int = 4,
    fit: TemporalFit = "pad",
) -> list[Chunk2]:  # fmt: skip
    """:func:`plan_chunks2` within each shot (``cuts`` = first frames of new shots): no chunk spans a cut, so
    nothing of one shot conditions or blends into the next. With ``fit='crop'`` only the last shot is cut as the
    reference; earlier shots are padded (a cropped shot's tail would keep the warped input in mid-clip)."""
    bounds = [0, *sorted({int(c) for c in cuts if 0 < int(c) < num_frames}), num_frames]
    chunks: list[Chunk2] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        shot_fit: TemporalFit = fit if b == num_frames else "pad"
        for c in plan_chunks2(b - a, chunk_frames, overlap, stride, shot_fit):
            chunks.append(Chunk2(c.start + a, c.end + a, c.new_from + a, c.pad))
    return chunks


@dataclass(frozen=True)
class TileAxis:
    """Tiles along one axis: ``count`` tiles of ``size`` px, ``stride`` apart, covering ``padded`` px exactly."""

    count: int
    size: int
    stride: int

    @property
    def padded(self) -> int:
        return self.stride * (self.count - 1) + self.size

    @property
    def starts(self) -> list[int]:
        return [i * self.stride for i in range(self.count)]


def plan_tile_axis(length: int, count: int, overlap: int, base: int = 16) -> TileAxis:
    """The reference's tile size: ``ceil((length + overlap·(count−1)) / count)`` rounded up to ``base`` px; the frame
    is padded to what the tiles then cover. Fewer tiles where the tile would not exceed the overlap."""
    while True:
        size = -(-(length + overlap * (count - 1)) // count)
        size = -(-size // base) * base
        if count == 1 or size > overlap:
            return TileAxis(count, size, size - overlap)
        logger.info(
            "A %d px axis is too short for %d tiles overlapping %d px: using %d.", length, count, overlap, count - 1
        )
        count -= 1


# ----------------------------------------------------------------------------------------------------------------------
# Numerics
# ----------------------------------------------------------------------------------------------------------------------


def flow_sigmas(steps: int, shift: float) -> torch.Tensor:
    """Shifted flow-matching sigmas, fp32 [steps]: ``shift·σ / (1 + (shift−1)·σ)``, σ = ``linspace(1, 0, n+1)[:-1]``."""
    sigmas = torch.linspace(1.0, 0.0, steps + 1)[:-1]
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def pack_mask(mask: torch.Tensor, latent_frames: int, spatial: int = 8) -> torch.Tensor:
    """VACE's mask on the latent grid: every ``spatial × spatial`` pixel block becomes 64 channels (row offset major),
    latent frames picked by nearest-exact. [B, F, H, W] → [B, spatial², latent_frames, H/spatial, W/spatial]."""
    b, f, h, w = mask.shape
    blocks = mask.reshape(b, f, h // spatial, spatial, w // spatial, spatial).permute(0, 3, 5, 1, 2, 4)
    blocks = blocks.reshape(b, spatial * spatial, f, h // spatial, w // spatial)
    return F.interpolate(blocks, size=(latent_frames, h // spatial, w // spatial), mode="nearest-exact")


def blend_tile_latents(
    tiles: list[list[torch.Tensor]], rows: TileAxis, cols: TileAxis, spatial: int = 8
) -> torch.Tensor:
    """Tiles' latents [B, C, f, th, tw] (rows × cols, raster) → one latent frame. Each tile's leading overlap is
    ramped linearly (weights k / overlap) from its upper, then its left neighbour (both already blended), in place;
    every tile then keeps its first ``stride`` cells but the last, which keeps all."""
    ov_h, ov_w = (rows.size - rows.stride) // spatial, (cols.size - cols.stride) // spatial
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            if i > 0 and ov_h:
                w = (torch.arange(ov_h) / ov_h).to(tile.device, tile.dtype).view(-1, 1)
                tile[..., :ov_h, :] = (1 - w) * tiles[i - 1][j][..., -ov_h:, :] + w * tile[..., :ov_h, :]
            if j > 0 and ov_w:
                w = (torch.arange(ov_w) / ov_w).to(tile.device, tile.dtype)
                tile[..., :ov_w] = (1 - w) * row[j - 1][..., -ov_w:] + w * tile[..., :ov_w]
    keep_h, keep_w = rows.stride // spatial, cols.stride // spatial
    out_rows = []
    for i, row in enumerate(tiles):
        kept = [
            t[..., : keep_h if i < len(tiles) - 1 else None, : keep_w if j < len(row) - 1 else None]
            for j, t in enumerate(row)
        ]
        out_rows.append(torch.cat(kept, dim=-1))
    return torch.cat(out_rows, dim=-2)


def channels_last_video(x: torch.Tensor) -> torch.Tensor:
    """The same video [B, C, F, H, W] laid out frames, rows, columns, channels in memory, batch outermost: the
    layout the reference's VAE input has (decoded [T, H, W, C] frames, permuted). Convolution kernels depend on the
    layout (bf16 results differed by a step on some tile sizes with a contiguous input), so ours matches it."""
    b, c, f, h, w = x.shape
    out = torch.empty((b, f, h, w, c), dtype=x.dtype, device=x.device).permute(0, 4, 1, 2, 3)
    return out.copy_(x)


@contextlib.contextmanager
def vae_tiles(vae: torch.nn.Module, tile: int | None) -> Iterator[None]:
    """Within the context the Wan VAE codes in ``tile`` px tiles (diffusers' ``enable_tiling``, stride 3/4 of the
    tile), or whole frames for None; the VAE's own tiling settings come back after (it may be shared)."""
    from ..memory_plan import sc2_vae_stride

    names = ("use_tiling", "tile_sample_min_height", "tile_sample_min_width", "tile_sample_stride_height",
             "tile_sample_stride_width")  # fmt: skip
    saved = {n: getattr(vae, n) for n in names if hasattr(vae, n)}
    if tile is None:
        vae.use_tiling = False
    else:
        stride = sc2_vae_stride(tile)
        vae.enable_tiling(tile_sample_min_height=tile, tile_sample_min_width=tile,
                          tile_sample_stride_height=stride, tile_sample_stride_width=stride)  # fmt: skip
    try:
        yield
    finally:
        for n, v in saved.items():
            setattr(vae, n, v)


def encode_empty_prompt(
    tokenizer: Any, text_encoder: torch.nn.Module, max_tokens: int = PROMPT_MAX_TOKENS
) -> torch.Tensor:
    """The empty prompt's UMT5 embedding as the reference makes it: ``max_tokens`` tokens, hidden states of the real
    tokens, zeros after. Runs where the encoder is, returns its dtype [1, max_tokens, d_model] on the CPU."""
    device = next(text_encoder.parameters()).device
    dtype = next(text_encoder.parameters()).dtype
    tokens = tokenizer(
        [""], padding="max_length", max_length=max_tokens, truncation=True, add_special_tokens=True,
        return_attention_mask=True, return_tensors="pt",
    )  # fmt: skip
    with torch.no_grad():
        hidden = text_encoder(tokens.input_ids.to(device), tokens.attention_mask.to(device)).last_hidden_state
    hidden = hidden.to(dtype)
    real = int(tokens.attention_mask.gt(0).sum())
    out = torch.zeros_like(hidden)
    out[:, :real] = hidden[:, :real]
    return out.cpu()


# ----------------------------------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------------------------------


#: The same record as v1's (chunk/tile/step of the step just finished, their totals, ``fraction``).
Inpaint2Progress = InpaintProgress
ProgressFn = Callable[[InpaintProgress], None]


def check_wan_vace_transformer(transformer: torch.nn.Module) -> None:
    """Raise a TypeError unless ``transformer`` is a WanVACETransformer3DModel (not StereoCrafter v1's UNet)."""
    name = type(transformer).__name__
    if name == "UNetSpatioTemporalConditionModel":
        raise TypeError(
            "StereoCrafter2Pipeline got StereoCrafter v1's SVD inpainting UNet; give the StereoCrafter2 transformer "
            f"({TRANSFORMER_REPO}), or use StereoInpaintPipeline for v1."
        )
    if not hasattr(transformer, "vace_blocks") or not hasattr(transformer, "config"):
        raise TypeError(f"StereoCrafter2Pipeline needs a WanVACETransformer3DModel, got {name}.")


class StereoCrafter2Pipeline:
    """Fill the occlusion holes of a warped right-eye clip with StereoCrafter2's Wan-VACE transformer.

    Args:
        transformer: the ``WanVACETransformer3DModel`` (StereoCrafter2's fine-tune).
        vae: Wan2.1's ``AutoencoderKLWan``.
        prompt_embeds: the empty prompt's UMT5 embedding [1, tokens, text_dim] (:func:`encode_empty_prompt`); the
            text encoder itself is not needed.
        device: where computation runs; None = the transformer's device (give it when the transformer is
            group-offloaded, its weights then live on the CPU).
        gpu_budget: bytes the memory plan may use on the GPU (None = :func:`~.memory_plan.gpu_budget_bytes` when
            a stream opens: free memory plus what torch holds, capped by the per-process memory fraction).

    Computation runs in the transformer's dtype (bf16 as the reference); the VAE is expected on ``device``. It is an
    :class:`~.inpaint_model.InpaintModel` (``open_stream``, ``settings_from``), as StereoCrafter v1's pipeline.
    """

    model_name = "StereoCrafter2"
    settings_type = Inpaint2Settings

    def __init__(
        self,
        transformer: torch.nn.Module,
        vae: torch.nn.Module,
        prompt_embeds: torch.Tensor,
        device: torch.device | str | None = None,
        gpu_budget: int | None = None,
    ) -> None:
        check_wan_vace_transformer(transformer)
        text_dim = transformer.config.text_dim
        if prompt_embeds.ndim != 3 or prompt_embeds.shape[-1] != text_dim:
            raise ValueError(
                f"prompt_embeds must be [1, tokens, {text_dim}] (the transformer's text_dim), got "
                f"{tuple(prompt_embeds.shape)}: compute it with this model's UMT5 text encoder."
            )
        z_dim = vae.config.z_dim
        self.spatial = 2 ** len(vae.temperal_downsample)
        self.temporal = 2 ** sum(vae.temperal_downsample)
        self.patch = transformer.config.patch_size[1]
        expected = 2 * z_dim + self.spatial**2
        if transformer.config.vace_in_channels != expected or transformer.config.in_channels != z_dim:
            raise ValueError(
                f"The transformer (in_channels {transformer.config.in_channels}, vace_in_channels "
                f"{transformer.config.vace_in_channels}) does not fit this VAE (z_dim {z_dim}: needs {z_dim} and "
                f"{expected}); use the VAE of {BASE_REPO}."
            )
        self.transformer = transformer
        self.vae = vae
        self._device = torch.device(device) if device is not None else None
        self.gpu_budget = gpu_budget
        self.prompt_embeds = prompt_embeds
        self.latents_mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32).view(1, z_dim, 1, 1, 1)
        self.latents_std = torch.tensor(vae.config.latents_std, dtype=torch.float32).view(1, z_dim, 1, 1, 1)

    @property
    def device(self) -> torch.device:
        return self._device or self.transformer.patch_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype: the patch embedding's (diffusers keeps norms and the time embedding in fp32)."""
        return self.transformer.patch_embedding.weight.dtype

    @property
    def offloaded(self) -> bool:
        """Whether the transformer is group-offloaded (diffusers' hooks move its blocks per forward)."""
        return transformer_offloaded(self.transformer)

    def plan_memory(self, height: int, width: int, settings: Inpaint2Settings, chunk_frames: int) -> Inpaint2Plan:
        """The memory plan for a stream of ``height × width`` frames (:func:`~.memory_plan.plan_inpaint2`): VAE
        tiling and tile counts for the GPU budget, with the transformer's placement as it is. Off CUDA there is no
        budget: the settings as asked (VAE tiled only for ``vae_tiling='on'``)."""
        from ..memory_plan import gpu_budget_bytes, module_bytes, plan_inpaint2

        device = self.device
        budget = self.gpu_budget if self.gpu_budget is not None else gpu_budget_bytes(device)
        weights, vae = parameter_bytes(self.transformer), module_bytes(self.vae)
        if budget is not None and device.type == "cuda":
            # What the process holds on the GPU besides our models (other models, ComfyUI's cache, …).
            ours = [t for m in (self.transformer, self.vae) for t in (*m.parameters(), *m.buffers())]
            index = device.index if device.index is not None else torch.cuda.current_device()
            here = sum(t.numel() * t.element_size() for t in ours if t.is_cuda and t.device.index == index)
            other = max(torch.cuda.memory_allocated(device) - here, 0)
        else:
            other = 0
        return plan_inpaint2(
            budget, other + weights + vae, other + offload_window_bytes(self.transformer) + vae, (height, width),
            chunk_frames, settings.tiles, settings.tile_overlap_px, offload=self.offloaded,
            vae_tiling=settings.vae_tiling if budget is not None else ("on" if settings.vae_tiling == "on" else "off"),
            vae_tile=settings.vae_tile_px, grow_tiles=settings.oom_retry, max_tiles=settings.max_tiles,
        )  # fmt: skip

    def to(self, device: torch.device | str) -> StereoCrafter2Pipeline:
        self.transformer.to(device)
        self.vae.to(device)
        self._device = None
        return self

    def __call__(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor,
        settings: Inpaint2Settings = Inpaint2Settings(),  # noqa: B008 (frozen)
        seed: int = 0,
        *,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        interrupt: Callable[[], None] | None = None,
    ) -> torch.Tensor:
        """Inpaint a whole clip.

        Args:
            frames: warped right view [T, H, W, 3] float 0..1.
            mask: occlusion mask [T, H, W] 0..1 (1 = hole).
            settings: see :class:`Inpaint2Settings`.
            seed: noise seed (a generator on the transformer's device, as the reference seeds its device).
            generator: a generator on the transformer's device instead of ``seed``.
            progress: called after every denoising step with an :class:`InpaintProgress`.
            interrupt: called before every denoising step; raise from it to stop (e.g. ComfyUI's cancel).

        Returns:
            [T, H, W, 3] float32 0..1 on the frames' device.
        """
        frames, mask = check_inputs(frames, mask)
        stream = Inpaint2Stream(
            self, *frames.shape[:3], settings, seed, generator=generator, progress=progress, interrupt=interrupt
        )
        return torch.cat([stream.push(frames, mask), stream.finish()])

    # -- the InpaintModel interface (stereocrafter/inpaint/inpaint_model.py)

    @classmethod
    def settings_from(cls, options: InpaintOptions) -> Inpaint2Settings:
        """Settings from the knobs both models share: ours (or :meth:`Inpaint2Settings.reference` when
        ``options.faithful``) with every option that is not None applied. ``chunk_frames`` is rounded down to
        ``1 + 4k`` (the VAE's temporal stride), ``fit`` sets ``temporal_fit``; ``guidance_scale`` is ignored (the
        reference runs no guidance)."""
        base = Inpaint2Settings.reference() if options.faithful else Inpaint2Settings()
        names = ("steps", "chunk_overlap", "tiles", "composite", "seams")
        changes: dict[str, Any] = {n: getattr(options, n) for n in names if getattr(options, n) is not None}
        if options.chunk_frames is not None:
            frames = max(options.chunk_frames - 1, 0) // 4 * 4 + 1
            if frames != options.chunk_frames:
                logger.info("StereoCrafter2: chunks of %d frames (1 + 4k) instead of %d.", frames, options.chunk_frames)
            changes["chunk_frames"] = frames
        if options.fit is not None:
            changes["temporal_fit"] = options.fit
        if options.guidance_scale is not None and options.guidance_scale != 1.0:
            logger.warning("StereoCrafter2 runs no guidance: guidance_scale %g is ignored.", options.guidance_scale)
        settings = replace(base, **changes)
        settings.validate()
        return settings

    def open_stream(
        self,
        num_frames: int,
        height: int,
        width: int,
        settings: Inpaint2Settings,
        seed: int = 0,
        *,
        progress: ProgressFn | None = None,
        interrupt: Callable[[], None] | None = None,
        state: dict[str, Any] | None = None,
        cuts: Sequence[int] = (),
    ) -> Inpaint2Stream:
        """An :class:`Inpaint2Stream` of this pipeline (see there for the arguments)."""
        return Inpaint2Stream(
            self, num_frames, height, width, settings, seed, progress=progress, interrupt=interrupt, state=state,
            cuts=cuts,
        )  # fmt: skip

    # -- one chunk

    def _encode(self, video: torch.Tensor, vae_tile: int | None = None) -> torch.Tensor:
        """[B, 3, F, H, W] in the VAE dtype, [-1, 1] → normalised posterior mode [B, z, f, h, w] in that dtype;
        ``vae_tile`` px tiles (:func:`vae_tiles`) or whole frames (None)."""
        with vae_tiles(self.vae, vae_tile):
            z = self.vae.encode(channels_last_video(video)).latent_dist.mode()
        mean, inv_std = self.latents_mean.to(z.device), 1.0 / self.latents_std.to(z.device)
        return ((z.float() - mean) * inv_std).to(video.dtype)

    def _denoise_tile(
        self, cond: torch.Tensor, soft: torch.Tensor, generator: torch.Generator, settings: Inpaint2Settings,
        report: Callable[[int], None], interrupt: Callable[[], None] | None = None, vae_tile: int | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """One tile of one chunk. cond [1, 3, F, h, w] fp32 0..1 (holes grey), soft mask [1, F, h, w] fp32 0..1 →
        final latents [1, z, f, h/8, w/8] in the model dtype. ``vae_tile``: see :meth:`_encode`."""
        device, dtype = self.device, self.dtype
        video = (2.0 * cond - 1.0).to(device, dtype)
        # The reference's mask goes through the image processor's [0,1] → [-1,1] normalisation and back.
        soft = torch.clamp((2.0 * soft - 1.0 + 1) / 2, min=0, max=1).to(device, dtype)
        hard = torch.where(soft > 0.5, 1.0, 0.0).to(dtype).unsqueeze(1)
        vae_dtype = next(self.vae.parameters()).dtype
        inactive = self._encode((video * (1 - hard)).to(vae_dtype), vae_tile)
        reactive = self._encode((video * hard).to(vae_dtype), vae_tile)
        latent_frames = (cond.shape[2] - 1) // self.temporal + 1
        packed = pack_mask(soft, latent_frames, self.spatial).to(device, dtype)
        control = torch.cat([inactive, reactive, packed], dim=1).to(dtype)
        shape = (1, self.transformer.config.in_channels, latent_frames, *inactive.shape[-2:])
        latents = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        embeds = self.prompt_embeds.to(device, dtype)
        sigmas = flow_sigmas(settings.steps, settings.shift)
        for i, sigma in enumerate(sigmas):
            if interrupt is not None:
                interrupt()
            timestep = (sigma * TIMESTEP_SCALE).unsqueeze(0).to(device, dtype)
            with torch.no_grad():
                velocity = self.transformer(
                    hidden_states=latents, timestep=timestep, encoder_hidden_states=embeds,
                    control_hidden_states=control, return_dict=False,
                )[0]  # fmt: skip
            sigma_next = sigmas[i + 1] if i + 1 < len(sigmas) else 0
            latents = latents + velocity * (sigma_next - sigma)  # bf16 as the reference (CPU 0-dim step size)
            report(i)
        return latents

    def _decode(self, latents: torch.Tensor, vae_tile: int | None = None) -> torch.Tensor:
        """Normalised latents [1, z, f, H/8, W/8] → frames [1, 3, F, H, W] fp32 0..1 (values of the model dtype);
        ``vae_tile`` px tiles (:func:`vae_tiles`) or whole frames (None)."""
        vae_dtype = next(self.vae.parameters()).dtype
        z = latents.float() * self.latents_std.to(latents.device) + self.latents_mean.to(latents.device)
        with torch.no_grad(), vae_tiles(self.vae, vae_tile):
            video = self.vae.decode(z.to(vae_dtype), return_dict=False)[0]
        return (video / 2 + 0.5).clamp(0, 1).float()


def _budget(device: torch.device) -> int | None:
    from ..memory_plan import gpu_budget_bytes

    return gpu_budget_bytes(device)


class Inpaint2Stream:
    """Feeds a clip of known length through a :class:`StereoCrafter2Pipeline` in pushes of any size; holds the
    inputs of the pending chunk and the outputs its overlap needs, never the clip.

    Args:
        pipe: the pipeline.
        num_frames, height, width: the clip's length and frame size (every push must match).
        settings: see :class:`Inpaint2Settings`.
        seed: noise seed for a generator on the pipeline's device (ignored when ``generator`` is given).
        progress: called after every denoising step.
        interrupt: called before every denoising step; raise from it to stop. A push that raises leaves the stream
            unusable: continue from the last :meth:`state_dict` instead.
        state: a :meth:`state_dict` of a stream built with the same clip length, size and settings; this stream
            continues after its :attr:`frames_out` frames (push the input again from frame ``frames_out``).
        cuts: first frames of new shots: temporal chunks restart there (:func:`plan_chunks2_in_shots`).
    """

    def __init__(
        self,
        pipe: StereoCrafter2Pipeline,
        num_frames: int,
        height: int,
        width: int,
        settings: Inpaint2Settings = Inpaint2Settings(),  # noqa: B008 (frozen)
        seed: int = 0,
        *,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        interrupt: Callable[[], None] | None = None,
        state: dict[str, Any] | None = None,
        cuts: Sequence[int] = (),
    ) -> None:
        settings.validate(pipe.temporal)
        if height < 1 or width < 1:
            raise ValueError(f"height and width must be >= 1, got {width}x{height}.")
        self.pipe, self.settings, self.progress, self.interrupt = pipe, settings, progress, interrupt
        self.cuts = sorted({int(c) for c in cuts if 0 < int(c) < num_frames})
        self.num_frames, self.height, self.width = num_frames, height, width
        base = pipe.spatial * pipe.patch
        self.rows = plan_tile_axis(height, settings.tiles[0], settings.tile_overlap_px, base)
        self.cols = plan_tile_axis(width, settings.tiles[1], settings.tile_overlap_px, base)
        self.chunks = plan_chunks2_in_shots(
            num_frames, settings.chunk_frames, settings.chunk_overlap, self.cuts, pipe.temporal, settings.temporal_fit
        )
        self.covered = self.chunks[-1].end  # < num_frames only for temporal_fit='crop' on short clips
        self.plan = pipe.plan_memory(height, width, settings, max(c.length for c in self.chunks))
        self.vae_tile = self.plan.vae_tile
        if self.plan.tiles != (self.rows.count, self.cols.count):
            self.rows = plan_tile_axis(height, self.plan.tiles[0], settings.tile_overlap_px, base)
            self.cols = plan_tile_axis(width, self.plan.tiles[1], settings.tile_overlap_px, base)
        if pipe.device.type == "cuda" or self.vae_tile is not None:
            logger.info("%s", self.plan.describe(pipe.gpu_budget or _budget(pipe.device)))
        if self.covered < num_frames:
            logger.warning(
                "temporal_fit='crop': the last %d of %d frames fit no 1 + %dk chunk and keep the warped input (the "
                "reference drops them). Use temporal_fit='pad' to inpaint every frame.",
                num_frames - self.covered, num_frames, pipe.temporal,
            )  # fmt: skip
        self.generator = generator or torch.Generator(pipe.device).manual_seed(seed)
        self.oom_retries = 0  # chunks run again with more tiles after CUDA out-of-memory
        self._next = 0  # next chunk to run
        self._pushed = 0
        self._emitted = 0
        # Raw inputs [_in_start, _pushed) and fed-back outputs [_fb_start, _fb_start + len) in the padded frame.
        self._in_start = 0
        self._frames = torch.zeros(0, height, width, 3)
        self._mask = torch.zeros(0, height, width)
        self._fb_start = 0
        self._feedback = torch.zeros(0, 3, self.rows.padded, self.cols.padded)
        self._out: list[torch.Tensor] = []
        self._failure: str | None = None  # a push that raised: its frames were taken, the stream cannot go on
        if state is not None:
            self._load_state(state)

    @property
    def frames_out(self) -> int:
        """Frames returned so far; after a restore from state, the frame the caller pushes next."""
        return self._emitted

    def _fingerprint(self) -> dict[str, Any]:
        cuts = {"cuts": self.cuts} if self.cuts else {}  # absent without cuts: states saved before still load
        # The out-of-memory knobs do not change a run's numbers: left out, so states saved before them still load.
        # vae_tiling / vae_tile_px (added later) are left out too: the plan chooses per run from the memory.
        volatile = ("oom_retry", "max_tiles", "vae_tiling", "vae_tile_px")
        settings = {k: v for k, v in asdict(self.settings).items() if k not in volatile}
        return {"num_frames": self.num_frames, "height": self.height, "width": self.width, **cuts,
                **settings}  # fmt: skip

    def _check_usable(self, what: str) -> None:
        if self._failure is not None:
            raise ValueError(
                f"{what} after a push that failed ({self._failure}): its frames are lost; build a new stream with "
                "state= the last state_dict() taken before it, or start over."
            )

    def state_dict(self) -> dict[str, Any]:
        """torch.save-able state to continue later: generator state, the next chunk, the outputs the next chunk's
        overlap takes (padded frames, fp32) and the masks of those frames. A stream built with ``state=`` this
        continues after :attr:`frames_out`; its outputs equal an uninterrupted run's bit for bit."""
        self._check_usable("state_dict()")
        keep = self._emitted - self._in_start
        return {
            "fingerprint": self._fingerprint(),
            "generator": self.generator.get_state(),
            "next_chunk": self._next,
            "frames_out": self._emitted,
            "input_start": self._in_start,
            "masks": self._mask[:keep].cpu().clone(),
            "feedback_start": self._fb_start,
            "feedback": self._feedback.clone(),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        keys = ("fingerprint", "generator", "next_chunk", "frames_out", "input_start", "masks", "feedback")
        check_saved_state(state, keys, self._fingerprint(), "Inpaint2Stream")
        self.generator.set_state(state["generator"])
        self._next = int(state["next_chunk"])
        self._emitted = self._pushed = int(state["frames_out"])
        self._in_start = int(state["input_start"])
        self._mask = state["masks"].float()
        # The overlap frames' inputs are replaced by the fed-back outputs: only their masks are still used.
        self._frames = torch.zeros(len(self._mask), self.height, self.width, 3)
        self._fb_start, self._feedback = int(state["feedback_start"]), state["feedback"].float()
        if self._emitted >= self.covered:
            self.covered = self._emitted

    def push(self, warped: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """warped [n, H, W, 3] float 0..1, mask [n, H, W] 0..1 (1 = hole): the next n frames. Returns the frames
        finished by this push [k, H, W, 3] float32 (k may be 0), in order."""
        self._check_usable("push()")
        warped, mask = check_inputs(warped, mask)
        if tuple(warped.shape[1:3]) != (self.height, self.width):
            raise ValueError(
                f"pushed frames are {warped.shape[2]}x{warped.shape[1]} but the stream was built for "
                f"{self.width}x{self.height}."
            )
        if self._pushed + len(warped) > self.num_frames:
            raise ValueError(f"pushed {self._pushed + len(warped)} frames into a stream of {self.num_frames}.")
        try:
            return self._push(warped, mask)
        except BaseException as exc:  # an interrupt or out of memory mid-chunk: the frames taken are lost
            self._failure = type(exc).__name__
            raise

    def _push(self, warped: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self._out_device = warped.device
        self._frames = torch.cat([self._frames.to(warped.device), warped])
        self._mask = torch.cat([self._mask.to(warped.device), mask])
        self._pushed += len(warped)
        while self._next < len(self.chunks) and self.chunks[self._next].end <= self._pushed:
            self._run(self._next)
            self._next += 1
        if self._next == len(self.chunks) and self._pushed == self.num_frames and self.covered < self.num_frames:
            tail = self._frames[self.covered - self._in_start :]
            self._out.append(tail)  # crop mode: frames no chunk covers keep the warped input
            self._emitted += len(tail)
            self.covered = self.num_frames
        out, self._out = self._out, []
        return torch.cat(out) if out else self._frames[:0].clone()

    def finish(self) -> torch.Tensor:
        """Check that the whole clip was pushed; returns what is left (nothing: chunks emit as they finish)."""
        self._check_usable("finish()")
        if self._pushed != self.num_frames:
            raise ValueError(f"the stream got {self._pushed} of its {self.num_frames} frames; push the rest first.")
        out, self._out = self._out, []
        return torch.cat(out) if out else torch.zeros(0, self.height, self.width, 3)

    def _padded(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw [n, H, W, 3], [n, H, W] → grey-filled frames [n, 3, H', W'] (replicate pad), mask [n, H', W']
        (zero pad), fp32, on the CPU (the reference keeps the clip there too)."""
        m = mask.unsqueeze(-1)
        filled = (frames * (1.0 - m) + GREY * m).permute(0, 3, 1, 2).cpu()
        pad = (0, self.cols.padded - self.width, 0, self.rows.padded - self.height)
        return F.pad(filled, pad, mode="replicate"), F.pad(mask.cpu(), pad, mode="constant", value=0.0)

    def _chunk_inputs(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The chunk's conditioning [1, 3, F, H', W'] and soft mask [1, F, H', W'] (fp32, CPU) in the current
        tiles' padded frame."""
        chunk = self.chunks[index]
        lo, hi = chunk.start - self._in_start, chunk.end - self._in_start
        cond, soft = self._padded(self._frames[lo:hi], self._mask[lo:hi])
        overlap = chunk.new_from - chunk.start
        if overlap:
            if self._feedback.shape[-2:] != cond.shape[-2:]:
                # The tiles changed after an out-of-memory retry: the fed-back frames' padding is re-made from
                # their visible part as _padded makes it.
                pad = (0, self.cols.padded - self.width, 0, self.rows.padded - self.height)
                self._feedback = F.pad(self._feedback[..., : self.height, : self.width], pad, mode="replicate")
            a = chunk.start - self._fb_start
            cond[:overlap] = self._feedback[a : a + overlap]
        if chunk.pad:
            cond = torch.cat([cond, cond[-1:].expand(chunk.pad, -1, -1, -1)])
            soft = torch.cat([soft, soft[-1:].expand(chunk.pad, -1, -1)])
        return cond.permute(1, 0, 2, 3).unsqueeze(0), soft.unsqueeze(0)

    def _denoise_chunk(self, index: int, cond: torch.Tensor, soft: torch.Tensor) -> list[list[torch.Tensor]]:
        """Every tile of one chunk, in raster order (the order the noise is drawn in) → final latents per tile."""
        s = self.settings
        tiles_total = self.rows.count * self.cols.count
        latents: list[list[torch.Tensor]] = []
        for i, y in enumerate(self.rows.starts):
            row = []
            for j, x in enumerate(self.cols.starts):
                tile = i * self.cols.count + j

                def report(step: int, tile: int = tile) -> None:
                    if self.progress is not None:
                        self.progress(Inpaint2Progress(index, len(self.chunks), tile, tiles_total, step, s.steps))

                sl = (..., slice(y, y + self.rows.size), slice(x, x + self.cols.size))
                row.append(
                    self.pipe._denoise_tile(
                        cond[sl], soft[sl], self.generator, s, report, self.interrupt, vae_tile=self.vae_tile
                    )
                )
            latents.append(row)
        return latents

    def _denoise_chunk_retrying(self, index: int) -> list[list[torch.Tensor]]:
        """:meth:`_denoise_chunk`; on CUDA out-of-memory (``oom_retry``) free memory, rewind the generator to the
        chunk's start and run it again with one more tile per axis, so the retry draws the noise an uninterrupted
        run with those tiles would draw from here. The larger tiling is kept for the later chunks."""
        s = self.settings
        start_state = self.generator.get_state()
        while True:
            cond, soft = self._chunk_inputs(index)
            try:
                return self._denoise_chunk(index, cond, soft)
            except Exception as exc:
                if not (_is_oom(exc) and s.oom_retry):
                    raise
                base = self.pipe.spatial * self.pipe.patch
                rows = plan_tile_axis(self.height, self.rows.count + 1, s.tile_overlap_px, base)
                cols = plan_tile_axis(self.width, self.cols.count + 1, s.tile_overlap_px, base)
                grew = (rows.count, cols.count) != (self.rows.count, self.cols.count)
                if not grew or rows.count * cols.count > s.max_tiles:
                    raise RuntimeError(
                        f"StereoCrafter2 ran out of GPU memory on chunk {index + 1}/{len(self.chunks)} with "
                        f"{self.rows.count}x{self.cols.count} tiles, and more tiles are not possible (max_tiles "
                        f"{s.max_tiles}, frame {self.width}x{self.height}). Free GPU memory, or use more tiles "
                        "(raise max_tiles), memory_mode 'offload' (load_stereocrafter2(offload='group')), fp8 "
                        "weights (weights='fp8') or shorter chunks."
                    ) from exc
            del cond, soft  # the failed attempt's tensors went with the exception; free them before retrying
            _free_memory()
            logger.warning(
                "StereoCrafter2: out of GPU memory on chunk %d/%d with %dx%d tiles; retrying with %dx%d tiles.",
                index + 1, len(self.chunks), self.rows.count, self.cols.count, rows.count, cols.count,
            )  # fmt: skip
            self.rows, self.cols = rows, cols
            self.oom_retries += 1
            self.generator.set_state(start_state)

    def _decode_retrying(self, index: int, latents: torch.Tensor) -> torch.Tensor:
        """:meth:`StereoCrafter2Pipeline._decode` with this stream's VAE tiles; on CUDA out-of-memory (``oom_retry``)
        decode again with smaller VAE tiles (the next smaller of :data:`~.memory_plan.SC2_VAE_TILES`), kept for the
        later chunks. The noise is not involved: the retry gives what a run planned with those tiles gives."""
        from ..memory_plan import SC2_VAE_TILES

        while True:
            try:
                return self.pipe._decode(latents, self.vae_tile)
            except Exception as exc:
                smaller = [t for t in SC2_VAE_TILES if self.vae_tile is None or t < self.vae_tile]
                if not (_is_oom(exc) and self.settings.oom_retry and smaller and self.settings.vae_tiling != "off"):
                    raise
            _free_memory()
            logger.warning(
                "StereoCrafter2: out of GPU memory decoding chunk %d/%d with %s; retrying with %d px VAE tiles.",
                index + 1, len(self.chunks), f"{self.vae_tile} px VAE tiles" if self.vae_tile else "whole frames",
                smaller[0],
            )  # fmt: skip
            self.vae_tile = smaller[0]
            self.oom_retries += 1

    def _run(self, index: int) -> None:
        chunk, s = self.chunks[index], self.settings
        lo, hi = chunk.start - self._in_start, chunk.end - self._in_start
        raw, raw_mask = self._frames[lo:hi], self._mask[lo:hi]
        overlap = chunk.new_from - chunk.start
        latents = self._denoise_chunk_retrying(index)
        frames = self._decode_retrying(index, blend_tile_latents(latents, self.rows, self.cols, self.pipe.spatial))
        del latents
        gc.collect()
        frames = frames[0].permute(1, 0, 2, 3).cpu()[: chunk.end - chunk.start]  # [n, 3, H', W'], padding dropped
        h, w = self.height, self.width
        if s.composite:
            alpha = composite_alpha(binarize_mask(raw_mask.cpu()), s.composite_dilate_px, s.composite_feather_px)
            new = frames[overlap:, :, :h, :w].permute(0, 2, 3, 1)
            frames[overlap:, :, :h, :w] = composite(raw[overlap:].cpu(), new, alpha[overlap:]).permute(0, 3, 1, 2)
        if overlap:
            a = chunk.start - self._fb_start
            prev = self._feedback[a : a + overlap]  # the overlap's final frames so far (what conditioned this chunk)
            if s.seams == "crossfade":
                mine = frames[:overlap].clone()
                if s.composite:  # outside the holes the previous frames are the warped pixels already
                    cur = composite(
                        prev[:, :, :h, :w].permute(0, 2, 3, 1), mine[:, :, :h, :w].permute(0, 2, 3, 1), alpha[:overlap]
                    )
                    mine[:, :, :h, :w] = cur.permute(0, 3, 1, 2)
                ramp = (torch.arange(1, overlap + 1) / (overlap + 1)).view(-1, 1, 1, 1)
                frames[:overlap] = torch.lerp(prev, mine, ramp)
            else:
                frames[:overlap] = prev
        # Frames up to the next chunk's start are final (with crossfade; all of this chunk's without), the rest of
        # this chunk is kept for the next one: its overlap's conditioning and blend.
        nxt = self.chunks[index + 1].start if index + 1 < len(self.chunks) else chunk.end
        hold = nxt if s.seams == "crossfade" else chunk.end
        emit = frames[self._emitted - chunk.start : hold - chunk.start, :, :h, :w].permute(0, 2, 3, 1)
        self._out.append(emit.to(self._out_device))
        self._emitted = hold
        self._feedback, self._fb_start = frames[nxt - chunk.start :], nxt
        self._frames, self._mask = self._frames[nxt - self._in_start :], self._mask[nxt - self._in_start :]
        self._in_start = nxt


# ----------------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------------


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable JSON config: {exc}") from exc


def find_stereocrafter2_transformer(path: str | Path) -> Path:
    """The folder holding StereoCrafter2's transformer ``config.json``: ``path`` itself (the layout of
    TencentARC/StereoCrafter2) or its ``transformer/`` sub-folder. Clear errors for v1 folders and base folders."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(
            f"StereoCrafter2 transformer folder {root} does not exist; download {TRANSFORMER_REPO}."
        )
    for folder in (root, root / "transformer"):
        config = folder / "config.json"
        if config.is_file():
            name = _read_config(config).get("_class_name")
            if name == "WanVACETransformer3DModel":
                if folder == root / "transformer" and (root / "model_index.json").is_file():
                    logger.warning(
                        "%s is the base Wan-VACE pipeline's transformer, not StereoCrafter2's fine-tune: the output "
                        "will not be stereo-consistent. Give the %s folder.", folder, TRANSFORMER_REPO,
                    )  # fmt: skip
                return folder
            if name == "UNetSpatioTemporalConditionModel":
                raise ValueError(
                    f"{folder} holds an SVD UNet (StereoCrafter v1's inpainting model), not StereoCrafter2's "
                    f"Wan-VACE transformer; give the {TRANSFORMER_REPO} folder, or load it as StereoCrafter v1."
                )
    if (root / "unet_diffusers" / "config.json").is_file():
        raise ValueError(
            f"{root} is StereoCrafter v1 (unet_diffusers/ holds its SVD inpainting UNet); StereoCrafter2 needs the "
            f"Wan-VACE transformer of {TRANSFORMER_REPO}."
        )
    raise FileNotFoundError(
        f"No WanVACETransformer3DModel config.json in {root} or {root / 'transformer'}; download {TRANSFORMER_REPO}."
    )


def check_wan_base(path: str | Path, need_text_encoder: bool = True) -> Path:
    """Check that ``path`` is a Wan2.1-VACE diffusers folder with the components StereoCrafter2 uses."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"Wan base folder {root} does not exist; download {BASE_REPO}.")
    needed = ["vae/config.json"] + (["text_encoder/config.json", "tokenizer"] if need_text_encoder else [])
    missing = [n for n in needed if not (root / n).exists()]
    if missing:
        what = ", ".join(n.split("/")[0] + "/" for n in missing)
        raise FileNotFoundError(
            f"{root} lacks {what} of {BASE_REPO} (StereoCrafter2 uses its VAE, UMT5 text encoder and tokenizer); "
            "download the missing folders into it."
        )
    vae_class = _read_config(root / "vae" / "config.json").get("_class_name")
    if vae_class != "AutoencoderKLWan":
        raise ValueError(
            f"{root / 'vae'} holds a {vae_class}, not Wan's AutoencoderKLWan; give the {BASE_REPO} folder."
        )
    return root


def prompt_cache_file(cache_dir: str | Path, dtype: torch.dtype) -> Path:
    """Where :func:`empty_prompt_embeds` keeps the embedding: one file per dtype (every StereoCrafter2 uses the same
    UMT5-XXL of the Wan2.1 base, so the embedding depends on nothing else)."""
    return Path(cache_dir) / f"empty_prompt_umt5_{str(dtype).removeprefix('torch.')}.safetensors"


def empty_prompt_embeds(
    base_dir: str | Path,
    dtype: torch.dtype = torch.bfloat16,
    device: torch.device | str = "cpu",
    cache_dir: str | Path | None = None,
) -> torch.Tensor:
    """The empty prompt's embedding for a Wan base folder [1, 226, 4096] (CPU, ``dtype``). Loads tokenizer and UMT5
    on ``device``, runs them once and frees them; with ``cache_dir`` the result is kept there and reused."""
    from safetensors.torch import load_file, save_file

    base = Path(base_dir)
    cache = None
    if cache_dir is not None:
        cache = prompt_cache_file(cache_dir, dtype)
        if cache.is_file():
            return load_file(cache)["prompt_embeds"]
    check_wan_base(base)
    from transformers import AutoTokenizer, UMT5EncoderModel

    tokenizer = AutoTokenizer.from_pretrained(base / "tokenizer")
    encoder = UMT5EncoderModel.from_pretrained(base / "text_encoder", torch_dtype=dtype).to(device).eval()
    embeds = encode_empty_prompt(tokenizer, encoder)
    del encoder
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            save_file({"prompt_embeds": embeds.contiguous()}, str(cache))
        except OSError as exc:  # a read-only models folder: the next load runs the text encoder again
            logger.warning("Could not cache the empty-prompt embedding in %s: %s", cache, exc)
    return embeds


def check_weights_mode(weights: str) -> None:
    """Raise a ValueError naming ``weights`` unless it is one of :data:`WEIGHTS_MODES`."""
    if weights not in WEIGHTS_MODES:
        raise ValueError(f"weights must be one of {list(WEIGHTS_MODES)} (bf16 = as loaded), got {weights!r}.")


def apply_transformer_weights(transformer: torch.nn.Module, weights: WeightsMode) -> None:
    """Store the transformer's weights in lower precision, in place; computation stays in its dtype.

    ``fp8``: diffusers' layerwise casting (float8_e4m3fn storage, each layer cast up to the compute dtype as it
    runs; norms, patch and condition embeddings stay as loaded: diffusers' skip patterns). ``int8``: torchao's
    weight-only int8 (per-channel scales) on the Linear layers of the transformer blocks. Either about halves the
    bf16 weight bytes. Apply before group offloading (diffusers' documented order). ``bf16`` leaves it as is."""
    check_weights_mode(weights)
    if weights == "fp8":
        compute = transformer.patch_embedding.weight.dtype
        transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute)
    elif weights == "int8":
        try:
            from torchao.quantization import Int8WeightOnlyConfig, quantize_
        except ImportError as exc:
            raise ImportError(
                f"weights='int8' needs torchao (pip install torchao), or use weights='fp8': {exc}"
            ) from exc

        def in_blocks(module: torch.nn.Module, name: str) -> bool:
            return isinstance(module, torch.nn.Linear) and name.startswith(("blocks.", "vace_blocks."))

        quantize_(transformer, Int8WeightOnlyConfig(), filter_fn=in_blocks)


def parameter_bytes(module: torch.nn.Module) -> int:
    """Bytes the module's parameters hold, counting torchao's int8 tensors by their int8 data and scales."""
    total = 0
    for p in module.parameters():
        parts = [getattr(p, n) for n in ("qdata", "scale") if isinstance(getattr(p, n, None), torch.Tensor)]
        total += sum(t.numel() * t.element_size() for t in parts) if parts else p.numel() * p.element_size()
    return total


def transformer_offloaded(transformer: torch.nn.Module) -> bool:
    """Whether diffusers' group offloading is enabled on ``transformer``."""
    try:
        from diffusers.hooks.group_offloading import _is_group_offload_enabled
    except ImportError:  # an older diffusers: no group offloading there
        return False
    return bool(_is_group_offload_enabled(transformer))


def offload_window_bytes(transformer: torch.nn.Module) -> int:
    """GPU bytes of a group-offloaded transformer while it runs: the modules outside its blocks (kept on the GPU by
    the hooks' top-level group) plus two of the largest blocks (the one running and the one being prefetched)."""
    blocks = [*getattr(transformer, "blocks", []), *getattr(transformer, "vace_blocks", [])]
    block_bytes = [parameter_bytes(b) for b in blocks]
    return parameter_bytes(transformer) - sum(block_bytes) + 2 * max(block_bytes, default=0)


def enable_transformer_offload(
    transformer: torch.nn.Module, device: torch.device, low_cpu_mem: bool | None = None
) -> bool:
    """Stream the transformer's blocks from the CPU to ``device`` (diffusers' block-level group offloading, one
    block per group, prefetched on a CUDA stream); the transformer must be on the CPU. Returns ``low_cpu_mem``.

    With a stream diffusers keeps a pinned copy of every weight (``low_cpu_mem_usage=False``): fast copies, but the
    loaded weights and the pinned copies coexist until the first forward, and torch's pinned allocator rounds each
    tensor up to a power of two: host RAM up to ~2-3× the weights (measured 53 GiB for the 34.6 GB of bf16).
    ``low_cpu_mem=True`` pins each group as it moves instead (host RAM ≈ the weights once; every move copies once
    more on the CPU). None = True when the host's available memory is under twice the weights."""
    if low_cpu_mem is None:
        low_cpu_mem = False
        try:
            import psutil

            low_cpu_mem = psutil.virtual_memory().available < 2 * parameter_bytes(transformer)
        except ImportError:  # no psutil: the faster pinned copies
            pass
    transformer.enable_group_offload(
        onload_device=device, offload_device=torch.device("cpu"), offload_type="block_level",
        num_blocks_per_group=1, use_stream=device.type == "cuda", low_cpu_mem_usage=low_cpu_mem,
    )  # fmt: skip
    return low_cpu_mem


def plan_offload(
    transformer: torch.nn.Module, vae: torch.nn.Module, device: torch.device, gpu_budget: int | None = None
) -> Inpaint2Plan | None:
    """The load-time memory plan (:func:`~.memory_plan.plan_inpaint2`) for the reference's 1080p chunk
    (:data:`PLAN_FRAME`, 2 × 2 tiles, 128 px overlap) with the transformer's weights as stored: its ``offload``
    says whether to stream the blocks (exact plans first: resident, then offloaded; then the largest VAE tile that
    fits, resident before offloaded). None off CUDA. ``gpu_budget`` bytes; None =
    :func:`~.memory_plan.gpu_budget_bytes`."""
    from ..memory_plan import gpu_budget_bytes, module_bytes, plan_inpaint2

    if device.type != "cuda":
        return None
    budget = gpu_budget if gpu_budget is not None else gpu_budget_bytes(device)
    vae_bytes = module_bytes(vae)
    h, w, frames = PLAN_FRAME
    plan = plan_inpaint2(
        budget, parameter_bytes(transformer) + vae_bytes, offload_window_bytes(transformer) + vae_bytes, (h, w),
        frames, (2, 2), 128, grow_tiles=False,
    )  # fmt: skip
    logger.info("At load, for %dx%d: %s", w, h, plan.describe(budget))
    return plan


def choose_offload(transformer: torch.nn.Module, device: torch.device, gpu_budget: int | None = None) -> OffloadMode:
    """The earlier rule (kept for scripts; ``load_stereocrafter2`` now uses :func:`plan_offload`): ``group`` when
    ``device`` is CUDA and the transformer's weights (as stored: fp8/int8 weights count their smaller bytes) plus
    :data:`WORKING_BYTES` exceed ``gpu_budget`` (bytes; None = free memory on the device now), else ``none``."""
    if device.type != "cuda":
        return "none"
    weights = parameter_bytes(transformer)
    budget = gpu_budget if gpu_budget is not None else torch.cuda.mem_get_info(device)[0]
    mode: OffloadMode = "group" if weights + WORKING_BYTES > budget else "none"
    logger.info(
        "StereoCrafter2: %.1f GiB of transformer weights + %.0f GiB working memory, %.1f GiB available: %s.",
        weights / 1024**3, WORKING_BYTES / 1024**3, budget / 1024**3,
        "group offloading (blocks streamed from the CPU)" if mode == "group" else "resident weights",
    )  # fmt: skip
    return mode


def load_stereocrafter2(
    transformer_dir: str | Path,
    base_dir: str | Path,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    prompt_cache_dir: str | Path | None = None,
    offload: OffloadMode = "auto",
    gpu_budget: int | None = None,
    text_encoder_device: torch.device | str | None = None,
    weights: WeightsMode = "bf16",
    low_cpu_mem: bool | None = None,
) -> StereoCrafter2Pipeline:
    """Load StereoCrafter2 (transformer folder of TencentARC/StereoCrafter2, VAE/UMT5/tokenizer of the Wan2.1-VACE
    base) onto ``device`` in ``dtype`` (bf16 as the reference). The text encoder runs once, before the transformer
    is loaded, and is freed.

    ``offload='group'`` keeps the transformer's weights on the CPU and moves them block by block to ``device`` with
    diffusers' group offloading (prefetched on a CUDA stream): the same numbers for about one block of GPU memory
    instead of ~32 GiB. ``offload='auto'`` (default) keeps the weights resident when they plus a 1080p chunk's
    working memory fit ``gpu_budget`` (bytes; default :func:`~.memory_plan.gpu_budget_bytes`), else offloads
    (:func:`plan_offload`); each stream then plans VAE tiling and tiles for its frame size
    (:meth:`StereoCrafter2Pipeline.plan_memory`). ``low_cpu_mem``: see :func:`enable_transformer_offload`. The text
    encoder runs on ``text_encoder_device`` (default ``device``) when no cached embedding is found.

    ``weights`` stores the transformer's weights as loaded (``bf16``, faithful) or in about half the bytes (``fp8``,
    ``int8``: :func:`apply_transformer_weights`); on tiny random models fp8 changes the output by at most 0.020 and
    int8 by at most 0.022 (0..1 pixels, mean 0.0006; tests/test_inpaint2_weights.py); not measured on the real
    weights yet."""
    check_weights_mode(weights)
    if offload not in ("none", "group", "auto"):
        raise ValueError(f"offload must be 'none', 'group' or 'auto', got {offload!r}.")
    try:
        from diffusers import AutoencoderKLWan, WanVACETransformer3DModel
    except ImportError as exc:
        raise ImportError(f"StereoCrafter2 needs diffusers >= 0.35 (WanVACETransformer3DModel): {exc}") from exc
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        # diffusers keeps the transformer's norms and time embedding in fp32 only on its low-memory path.
        raise ImportError("Loading StereoCrafter2 in bf16 needs the accelerate package: pip install accelerate")
    folder = find_stereocrafter2_transformer(transformer_dir)
    base = Path(base_dir)
    cached = prompt_cache_dir is not None and prompt_cache_file(prompt_cache_dir, dtype).is_file()
    check_wan_base(base, need_text_encoder=not cached)
    encoder_device = text_encoder_device if text_encoder_device is not None else device
    embeds = empty_prompt_embeds(base, dtype, encoder_device, prompt_cache_dir)
    vae = AutoencoderKLWan.from_pretrained(base / "vae", torch_dtype=dtype).to(device).eval()
    transformer = WanVACETransformer3DModel.from_pretrained(folder, torch_dtype=dtype).eval()
    vae.requires_grad_(False)
    transformer.requires_grad_(False)
    apply_transformer_weights(transformer, weights)  # before group offloading, as diffusers documents
    if offload == "auto":
        plan = plan_offload(transformer, vae, torch.device(device), gpu_budget)
        offload = "group" if plan is not None and plan.offload else "none"
    if offload == "group":
        onload = torch.device(device)
        low = enable_transformer_offload(transformer, onload, low_cpu_mem)
        logger.info("StereoCrafter2: transformer blocks streamed to %s (%s).", onload,
                    "pinned as they move" if low else "pinned copies")  # fmt: skip
        return StereoCrafter2Pipeline(transformer, vae, embeds, device=onload, gpu_budget=gpu_budget)
    return StereoCrafter2Pipeline(transformer.to(device), vae, embeds, gpu_budget=gpu_budget)
