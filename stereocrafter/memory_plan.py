"""Fit the models to the GPU at hand: choose offloading, chunk and tile sizes from the memory this process may use.

The working-memory figures come from measurements at real model size (bench/README.md); a plan only changes how
the work is cut and where the weights wait, so the output is the same except where a plan says otherwise (a
smaller DepthCrafter decode chunk changes pixels, within the tolerance measured in ``bench/e2e.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .depth.depth_pipeline import DepthSettings, stage_memory_bytes
from .inpaint.inpaint_pipeline import DEFAULT_DECODE_PIXEL_FRAMES, DEFAULT_PIXEL_FRAMES, InpaintSettings

GIB = 1024**3
#: Kept free for the allocator's fragmentation and for cuDNN/cuBLAS workspaces (measured reserved − allocated).
HEADROOM_BYTES = GIB // 2
#: StereoCrafter's working memory at the default tile budget (DEFAULT_PIXEL_FRAMES) and decode budget
#: (DEFAULT_DECODE_PIXEL_FRAMES), fp16, weights excluded (bench/README.md: 8.83 / 8.57 GiB peaks with 4.2 GiB of
#: weights at 1920x1080).
INPAINT_UNET_WORKING_BYTES = int(4.7 * GIB)
INPAINT_DECODE_WORKING_BYTES = int(4.4 * GIB)
#: The whole-frame VAE encode's working memory per pixel of the frame (bench/inpaint.py --levers, H200: 3.02 GiB in
#: fp16, 6.18 in fp32 for one 1920x1088 frame).
INPAINT_ENCODE_BYTES_PER_PIXEL = {False: int(3.02 * GIB / (1920 * 1088)), True: int(6.18 * GIB / (1920 * 1088))}


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def gpu_budget_bytes(device: torch.device) -> int | None:
    """Bytes this process may allocate on ``device``: free memory plus what torch's allocator already holds,
    capped by ``torch.cuda.set_per_process_memory_fraction``; None off CUDA."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(index)
    budget = free + torch.cuda.memory_reserved(index)
    get_fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    if get_fraction is not None:
        budget = min(budget, int(get_fraction(index) * total))
    return budget


@dataclass(frozen=True)
class DepthPlan:
    """How DepthCrafter runs within a budget.

    Attributes:
        offload: modules wait on the CPU and move to the GPU for their stage (CLIP+VAE encode, UNet, VAE decode).
        unet_group_offload: the UNet's blocks stream to the GPU one group at a time (diffusers' group offloading
            with prefetch on a side stream), for budgets below the UNet's weights plus one window's activations.
        settings: the settings to run with (encode and decode chunks may be smaller than asked).
        peak_bytes: the planned peak (weights on the GPU plus the largest stage's working memory).
    """

    offload: bool
    unet_group_offload: bool
    settings: DepthSettings
    peak_bytes: int

    def describe(self, budget: int) -> str:
        """One log line: what was chosen and why."""
        if self.unet_group_offload:
            placement = "UNet blocks streamed from the CPU, VAE and CLIP moved per stage"
        elif self.offload:
            placement = "models moved to the GPU per stage"
        else:
            placement = "all models resident"
        return (
            f"DepthCrafter memory plan for {budget / GIB:.1f} GiB: {placement}, window {self.settings.window_size}, "
            f"encode chunk {self.settings.encode_chunk_size}, decode chunk {self.settings.decode_chunk_size}, "
            f"planned peak {self.peak_bytes / GIB:.1f} GiB"
        )


def plan_depth(
    budget: int | None,
    weights: dict[str, int],
    size: tuple[int, int],
    num_frames: int,
    settings: DepthSettings,
    dtype: torch.dtype = torch.float16,
    resident: bool = False,
) -> DepthPlan:
    """The fastest placement whose planned peak fits ``budget`` (bytes; None = no limit).

    Args:
        weights: bytes of ``"unet"``, ``"vae"`` and ``"clip"``.
        size: processing size (h, w); num_frames: clip length.

    Modules move to the GPU per stage (measured as fast as all resident on an H200, 0.452 vs 0.449 s/frame at
    1080p, with 9.2 instead of 13.3 GiB: the moves take well under a second per window); everything stays resident
    only when ``resident`` is asked for and fits. Then each stage takes the largest work that fits on its own: the
    encode chunk (per-frame encoder: same output), the UNet whole or streamed block by block and, below that, a
    shorter window (more windows: depth changes, like the decode chunk), the decode chunk (the temporal decoder mixes
    frames within a chunk: pixels change). The smallest plan is returned even if it does not fit.
    """
    limit = None if budget is None else budget - HEADROOM_BYTES

    def room(weights_on_gpu: int) -> int | None:
        return None if limit is None else limit - weights_on_gpu

    total = weights["unet"] + weights["vae"] + weights["clip"]
    everything = total + max(stage_memory_bytes(size, num_frames, settings, dtype).values())
    if resident and (limit is None or everything <= limit):
        return DepthPlan(False, False, settings, everything)
    encoders = weights["vae"] + weights["clip"]
    unet_room = room(weights["unet"])
    group = unet_room is not None and stage_memory_bytes(size, num_frames, settings, dtype)["unet"] > unet_room
    unet_weights = weights["unet"] // 8 if group else weights["unet"]  # about one block group on the GPU
    rooms = {"encode": room(encoders), "unet": room(unet_weights), "decode": room(weights["vae"])}
    planned = _fit_stages(settings, size, num_frames, dtype, rooms)
    found = stage_memory_bytes(size, num_frames, planned, dtype)
    peak = max(encoders + found["encode"], unet_weights + found["unet"], weights["vae"] + found["decode"])
    return DepthPlan(True, group, planned, peak)


def fit_resident_depth(
    free: int | None, size: tuple[int, int], num_frames: int, settings: DepthSettings, dtype: torch.dtype
) -> DepthSettings:
    """``settings`` whose every stage fits ``free`` bytes (None = unchanged) beside models already on the GPU (a
    memory manager placed them, as ComfyUI does): smaller encode / decode chunks, then a shorter window."""
    room = None if free is None else free - HEADROOM_BYTES
    return _fit_stages(settings, size, num_frames, dtype, dict.fromkeys(("encode", "unet", "decode"), room))


def _fit_stages(
    settings: DepthSettings,
    size: tuple[int, int],
    num_frames: int,
    dtype: torch.dtype,
    rooms: dict[str, int | None],
) -> DepthSettings:
    """Each stage's own lever lowered until its working memory fits its room (bytes; None = no limit): the encode
    chunk (same output), the decode chunk down to 2 and the window down to ``overlap + 1`` (both change depth)."""

    def fits(candidate: DepthSettings, stage: str) -> bool:
        limit = rooms[stage]
        return limit is None or stage_memory_bytes(size, num_frames, candidate, dtype)[stage] <= limit

    fitted = settings
    while fitted.encode_chunk_size > 1 and not fits(fitted, "encode"):
        fitted = replace(fitted, encode_chunk_size=fitted.encode_chunk_size // 2)
    while fitted.decode_chunk_size > 2 and not fits(fitted, "decode"):
        fitted = replace(fitted, decode_chunk_size=fitted.decode_chunk_size // 2)
    while fitted.window_size > fitted.overlap + 1 and not fits(fitted, "unet"):
        fitted = replace(fitted, window_size=max(fitted.overlap + 1, int(fitted.window_size * 0.8)))
    return fitted


def plan_inpaint(
    budget: int | None, weights: int, frame_size: tuple[int, int], settings: InpaintSettings
) -> InpaintSettings:
    """``settings`` with tile, decode and whole-frame encode budgets scaled down to fit ``budget`` (bytes; None =
    unchanged).

    Only budgets left automatic are changed (``tiles`` / ``decode_tiles`` None); more tiles change pixels near tile
    seams only slightly (linear blending over the tile overlap). ``frame_size``: (h, w) of the frames, whose chunk
    (frames and mask in fp32, plus the padded copies) sits on the GPU beside the tiles."""
    if budget is None:
        return settings
    chunk_bytes = int(1.5 * settings.chunk_frames * frame_size[0] * frame_size[1] * 4 * 4)
    available = max(budget - weights - HEADROOM_BYTES - chunk_bytes, GIB // 4)
    changes: dict[str, int] = {}
    if settings.tiles is None and available < INPAINT_UNET_WORKING_BYTES:
        changes["max_pixel_frames"] = int(DEFAULT_PIXEL_FRAMES * available / INPAINT_UNET_WORKING_BYTES)
    if settings.decode_tiles is None and available < INPAINT_DECODE_WORKING_BYTES:
        changes["max_decode_pixel_frames"] = int(DEFAULT_DECODE_PIXEL_FRAMES * available / INPAINT_DECODE_WORKING_BYTES)
    whole_frame = available // INPAINT_ENCODE_BYTES_PER_PIXEL[settings.encode_fp32]
    if settings.encode_full_frame and whole_frame < settings.max_full_frame_encode_pixels:
        changes["max_full_frame_encode_pixels"] = int(whole_frame)  # larger frames: encoded tile by tile
    return replace(settings, **changes) if changes else settings


# ----------------------------------------------------------------------------------------------------------------------
# StereoCrafter2 (Wan2.1-VACE-14B)
# ----------------------------------------------------------------------------------------------------------------------

#: StereoCrafter2's working memory in bf16, weights excluded: peak live activation bytes of the real-size models
#: (diffusers 0.42.1), traced on the meta device with flash-style attention (no score matrix). Transformer: 201 KiB
#: per token (latent frames × tile/16 × tile/16: 2.80 GiB at 608×1024×21 frames, 9.77 GiB at 81); VAE encode 7.4 KiB
#: per pixel of a tile (4.39 GiB at 608×1024, any length: 4 frames at a time); VAE decode 10.0 KiB per pixel of the
#: decoded area (19.9 GiB for a whole 1088×1920 frame, 0.63 GiB for a 256×256 VAE tile), its feature caches
#: included. The GPU run at 1080p (offload + fp8, 21 frames) peaked at 22.5 GiB allocated: the whole-frame decode.
SC2_TRANSFORMER_BYTES_PER_TOKEN = 201 * 1024
SC2_ENCODE_BYTES_PER_PIXEL = int(7.4 * 1024)
SC2_DECODE_BYTES_PER_PIXEL = int(10.0 * 1024)
#: Kept free beyond HEADROOM_BYTES for the allocator's fragmentation between the stages (their working memory is
#: freed and re-made in other block sizes; under a per-process cap torch frees cached blocks before it fails, so
#: this is smaller than the 10 GiB reserved − allocated gap of the uncapped H200 runs): an estimate.
SC2_MARGIN_BYTES = GIB
#: VAE tile sides the plan tries (px), largest first; the stride is 3/4 of the side (diffusers' 256/192 ratio).
SC2_VAE_TILES = (1024, 768, 512, 384, 256)


def sc2_vae_stride(tile: int) -> int:
    """The VAE tile stride for a tile side: 3/4 of it, a multiple of 8 (the VAE's spatial stride)."""
    return max(8, tile * 3 // 4 // 8 * 8)


@dataclass(frozen=True)
class Inpaint2Plan:
    """How StereoCrafter2 runs within a budget.

    Attributes:
        offload: the transformer's blocks stream from the CPU (diffusers' group offloading): same output, slower.
        vae_tile: VAE tile side in px (diffusers' tiled encode/decode, blended over 1/4 of a tile: pixels change),
            or None for whole frames (the reference).
        tiles: the transformer's spatial tiles (rows, cols); more than asked changes pixels near tile seams.
        peak_bytes: the planned GPU peak (resident weights plus the largest stage's working memory).
        fits: whether ``peak_bytes`` plus headroom and margin fits the budget (the last, smallest plan is returned
            if none does).
    """

    offload: bool
    vae_tile: int | None
    tiles: tuple[int, int]
    peak_bytes: int
    fits: bool = True

    def describe(self, budget: int | None) -> str:
        """One log line: what was chosen and why."""
        placement = "transformer blocks streamed from the CPU" if self.offload else "transformer resident"
        vae = f"VAE tiled {self.vae_tile} px" if self.vae_tile else "VAE on whole frames"
        room = "no limit" if budget is None else f"{budget / GIB:.1f} GiB"
        note = "" if self.fits else " (does NOT fit: out-of-memory retries may add tiles)"
        return (
            f"StereoCrafter2 memory plan for {room}: {placement}, {vae}, {self.tiles[0]}x{self.tiles[1]} tiles, "
            f"planned peak {self.peak_bytes / GIB:.1f} GiB{note}"
        )


def sc2_working_bytes(
    frame_size: tuple[int, int], chunk_frames: int, tiles: tuple[int, int], tile_overlap_px: int,
    vae_tile: int | None, temporal: int = 4, spatial: int = 8, patch: int = 2,
) -> dict[str, int]:  # fmt: skip
    """StereoCrafter2's working bytes per stage for one chunk: ``encode`` (one tile through the VAE encoder),
    ``transformer`` (one tile's forward), ``decode`` (the chunk's blended latents through the VAE decoder, plus its
    output [F, 3, H', W'] in bf16 and our fp32 conversions). ``frame_size`` (h, w) px."""
    from .inpaint.inpaint2_pipeline import plan_tile_axis

    base = spatial * patch
    rows = plan_tile_axis(frame_size[0], tiles[0], tile_overlap_px, base)
    cols = plan_tile_axis(frame_size[1], tiles[1], tile_overlap_px, base)
    latent_frames = (chunk_frames - 1) // temporal + 1
    tokens = latent_frames * (rows.size // base) * (cols.size // base)
    out_bytes = chunk_frames * 3 * rows.padded * cols.padded * 2
    if vae_tile is None:
        encode = SC2_ENCODE_BYTES_PER_PIXEL * rows.size * cols.size
        decode = SC2_DECODE_BYTES_PER_PIXEL * rows.padded * cols.padded
        held = 2 * out_bytes  # diffusers concatenates the decoded frames one latent frame at a time
    else:
        stride = sc2_vae_stride(vae_tile)
        encode = SC2_ENCODE_BYTES_PER_PIXEL * min(vae_tile, rows.size) * min(vae_tile, cols.size)
        decode = SC2_DECODE_BYTES_PER_PIXEL * min(vae_tile, rows.padded) * min(vae_tile, cols.padded)
        held = int(out_bytes * (1 + (vae_tile / stride) ** 2))  # every tile's overlapping output, then the blend
    # Our conversions after the decode: x / 2 + 0.5 and clamp in bf16, then fp32 (3 bf16-sized copies at most).
    return {"encode": encode, "transformer": SC2_TRANSFORMER_BYTES_PER_TOKEN * tokens, "decode": decode + held
            + 3 * out_bytes}  # fmt: skip


def plan_inpaint2(
    budget: int | None,
    resident_bytes: int,
    offloaded_bytes: int,
    frame_size: tuple[int, int],
    chunk_frames: int,
    tiles: tuple[int, int],
    tile_overlap_px: int,
    offload: bool | None = None,
    vae_tiling: str = "auto",
    vae_tile: int = 0,
    grow_tiles: bool = True,
    max_tiles: int = 64,
) -> Inpaint2Plan:
    """The most faithful, then fastest, StereoCrafter2 plan whose planned peak fits ``budget`` (bytes; None = no
    limit: the asked settings, whole-frame VAE).

    Args:
        resident_bytes: GPU bytes with the transformer resident (its weights as stored, the VAE, what else the
            process holds); offloaded_bytes: the same with the transformer group-offloaded (about two blocks and
            the modules outside the blocks on the GPU).
        offload: fixed placement (True/False), or None to choose.
        vae_tiling: ``auto`` (tiles only when whole frames do not fit), ``off`` or ``on``; ``vae_tile`` px (> 0)
            fixes the tile side instead of choosing it from :data:`SC2_VAE_TILES`.
        grow_tiles: whether more transformer tiles than ``tiles`` may be planned (up to ``max_tiles`` in all).

    Order of preference: exact plans first (resident, then offloaded weights: the same output), then the VAE tiled
    (the largest tile first: fewest seams; for each tile resident before offloaded), then more transformer tiles
    with the smallest VAE tile.
    """
    placements = [offload] if offload is not None else [False, True]
    sides = [vae_tile] if vae_tile > 0 else list(SC2_VAE_TILES)
    vae_options: list[int | None] = [None] if vae_tiling == "off" else [] if vae_tiling == "on" else [None]
    if vae_tiling != "off":
        vae_options += sides
    candidates: list[tuple[bool, int | None, tuple[int, int]]] = []
    for v in vae_options:
        candidates += [(o, v, tiles) for o in placements]
    if grow_tiles and budget is not None:
        r, c = tiles
        while (r + 1) * (c + 1) <= max_tiles:
            r, c = r + 1, c + 1
            candidates += [(o, vae_options[-1], (r, c)) for o in placements]
    plan = None
    for o, v, t in candidates:
        stages = sc2_working_bytes(frame_size, chunk_frames, t, tile_overlap_px, v)
        peak = (offloaded_bytes if o else resident_bytes) + max(stages.values())
        fits = budget is None or peak + HEADROOM_BYTES + SC2_MARGIN_BYTES <= budget
        plan = Inpaint2Plan(o, v, t, peak, fits)
        if fits:
            return plan
    assert plan is not None
    return plan
