"""Fit the models to the GPU at hand: choose offloading, chunk and tile sizes from the memory this process may use.

The working-memory figures come from measurements at real model size (bench/README.md); a plan only changes how
the work is cut and where the weights wait, so the output is the same except where a plan says otherwise (a
smaller DepthCrafter decode chunk changes pixels, within the tolerance measured in ``bench/e2e.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .depth_pipeline import DepthSettings, stage_memory_bytes
from .inpaint_pipeline import DEFAULT_DECODE_PIXEL_FRAMES, DEFAULT_PIXEL_FRAMES, InpaintSettings

GIB = 1024**3
#: Kept free for the allocator's fragmentation and for cuDNN/cuBLAS workspaces (measured reserved − allocated).
HEADROOM_BYTES = GIB // 2
#: StereoCrafter's working memory at the default tile budget (DEFAULT_PIXEL_FRAMES) and decode budget
#: (DEFAULT_DECODE_PIXEL_FRAMES), fp16, weights excluded (bench/README.md: 8.83 / 8.57 GiB peaks with 4.2 GiB of
#: weights at 1920x1080).
INPAINT_UNET_WORKING_BYTES = int(4.7 * GIB)
INPAINT_DECODE_WORKING_BYTES = int(4.4 * GIB)


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
    """``settings`` with tile and decode budgets scaled down to fit ``budget`` (bytes; None = unchanged).

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
    return replace(settings, **changes) if changes else settings
