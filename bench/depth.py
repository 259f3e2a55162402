"""GPU benchmark of VideoDepthPipeline at real size with random weights (no download).

Builds the real architectures (SVD VAE, CLIP ViT-H/14, DepthCrafter UNet; reference.md §4.2, §5) with random weights in
fp16 and measures seconds per frame, the split (CLIP, VAE encode, UNet, decode) and peak GPU memory at 1024x576 for:

- StereoCrafter's settings (8 steps, guidance 1.2, window 70, overlap 25) on 70 and 160 frames,
- DepthCrafter v1.0.1's settings (5 steps, guidance 1.0, window 110) on 110 frames,

for a faithful, unoptimised path (two CFG passes, fp32 VAE encode, no memory levers) and optimised variants, with
identical noise, so the max abs difference of the output depth between paths is reported too.

Usage (on the GPU machine):
    PYTHONUNBUFFERED=1 python bench/depth.py [--runs faithful=sc70+sc160+v101,fast2k=sc70+sc160+v101]
    (fast2k = what compile=True runs; the default --runs is the line above: the targets' comparison)
    python bench/depth.py --tiny   # CPU dry run of the script with tiny models
    PYTHONUNBUFFERED=1 python bench/depth.py --levers --runs ""   # profile + speed levers of one UNet pass / decode
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from svd_architecture import (  # noqa: E402
    SCHEDULER_CONFIG,
    budget_guard,
    build_vae_and_clip,
    kernel_profile,
    max_diff,
    peak_extra_gib,
    place,
    sdpa_backends,
    svd_unet_config,
    time_ms,
)

from stereocrafter.depth.depth_pipeline import DepthSettings, VideoDepthPipeline, processing_size  # noqa: E402
from stereocrafter.depth.depthcrafter_unet import DepthCrafterUNet  # noqa: E402
from stereocrafter.svd.svd_components import SVDComponents  # noqa: E402

GIB = 1024**3
STAGES = ("clip", "vae_encode", "unet", "vae_decode")  # timed by VideoDepthPipeline(profile=True)

SVD_SCHEDULER = SCHEDULER_CONFIG
DEPTHCRAFTER_UNET = svd_unet_config(in_channels=8)

# Reference figures (H100, the reference code with StereoCrafter's / v1.0.1's settings) and targets.
REFERENCE = {"sc70": (0.353, 18.9), "sc160": (0.418, None), "v101": (0.204, 21.4)}
TARGET_S_PER_FRAME, TARGET_PEAK_GB = 0.175, 12.0


@dataclass(frozen=True)
class Config:
    name: str
    frames: int
    settings: DepthSettings


CONFIGS = {
    "sc70": Config("StereoCrafter 70 f", 70, DepthSettings()),
    "sc160": Config("StereoCrafter 160 f", 160, DepthSettings()),
    "v101": Config(
        "v1.0.1 110 f", 110, DepthSettings(num_inference_steps=5, guidance_scale=1.0, window_size=110, overlap=25)
    ),
}


@dataclass(frozen=True)
class Variant:
    """Pipeline construction options + per-run setting overrides + global backend flags."""

    batch_cfg: bool = True
    vae_encode_fp32: bool = False
    ff_chunk_rows: int | None = None
    channels_last: bool = False
    compile_unet: bool = False
    compile_blocks: bool = False  # stereocrafter.svd.compiled_svd.compile_unet_blocks (regional compile of the UNet)
    compile_vae: bool = False  # stereocrafter.svd.compiled_svd.compile_vae (encoder + temporal decoder, dynamic shapes)
    cudnn_benchmark: bool = False
    encode_chunk: int = 8
    decode_chunk: int = 8
    temporal_conv_2d: bool = False
    offload: bool = False
    # stereocrafter.svd.single_key_attention (the pipeline's default; off = diffusers' kernels)
    single_key: bool = False
    vae_channels_last: bool = False  # VAE 2-D conv weights in channels_last (inductor then keeps NHWC activations)
    compile_mode: str | None = None  # torch.compile mode for the compiled variants (None = default)
    compile_whole_unet: bool = False  # torch.compile the whole UNet (one graph) instead of its blocks
    compile_options: tuple[tuple[str, object], ...] = ()  # Inductor options of the compiled variants (not with mode)
    frames_major: bool = True  # compiled: stereocrafter.svd.frames_major_blocks in the UNet and VAE (the default)
    frames_major_decoder: bool = True  # ... in the VAE decoder too (the default since 2026-12-01)
    # stereocrafter.svd.lean_unet pieces (the pipeline's default is 8; None: plain blocks)
    lean_blocks: int | None = None

    @property
    def compiles(self) -> bool:
        """Whether any module is compiled (the first call of every shape then compiles)."""
        return self.compile_unet or self.compile_blocks or self.compile_vae or self.compile_whole_unet


# opt_2pass without cudnn.benchmark + single-key cross-attention + compiled UNet blocks and VAE: the node configuration
# with compile=True.
FAST2K = Variant(batch_cfg=False, ff_chunk_rows=1 << 16, compile_blocks=True, compile_vae=True, single_key=True)

VARIANTS = {
    # The reference's way: CFG as two passes, fp32 VAE encode, nothing else.
    "faithful": Variant(batch_cfg=False, vae_encode_fp32=True),
    "optimized": Variant(batch_cfg=True, ff_chunk_rows=1 << 16, cudnn_benchmark=True),
    "opt_2pass": Variant(batch_cfg=False, ff_chunk_rows=1 << 16, cudnn_benchmark=True),
    "opt_nochunk": Variant(batch_cfg=True, cudnn_benchmark=True),
    "opt_cl": Variant(batch_cfg=True, ff_chunk_rows=1 << 16, cudnn_benchmark=True, channels_last=True),
    "opt_compile": Variant(batch_cfg=True, ff_chunk_rows=1 << 16, cudnn_benchmark=True, compile_unet=True),
    # opt_2pass + regional compile of the UNet + compiled VAE encoder/decoder (node configuration + compile).
    "fast2c": Variant(batch_cfg=False, ff_chunk_rows=1 << 16, compile_blocks=True, compile_vae=True),
    # The node configurations of today (single-key cross-attention), eager and compiled, and levers on top of fast2k.
    "opt2k": Variant(batch_cfg=False, ff_chunk_rows=1 << 16, single_key=True),
    "fast2k": FAST2K,
    # The CLI's eager default since 2026-12-04: + stereocrafter.svd.lean_unet (resident, and moved per stage as the
    # CLI).
    "opt2k_lean": Variant(batch_cfg=False, ff_chunk_rows=1 << 16, single_key=True, lean_blocks=8),
    "opt2k_lean_offload": Variant(batch_cfg=False, ff_chunk_rows=1 << 16, single_key=True, lean_blocks=8, offload=True),
    "fast2k_cl": replace(FAST2K, channels_last=True),
    "fast2k_vcl": replace(FAST2K, vae_channels_last=True),
    "fast2k_ma": replace(FAST2K, compile_mode="max-autotune-no-cudagraphs"),
    "fastbk": replace(FAST2K, batch_cfg=True),
    # Measured 2026-11-30 (bench/README.md), none kept: the whole UNet as one graph (no gain), with CUDA graphs (the
    # second guidance pass overwrites the first's output in the static buffers), coordinate-descent tuning (did not
    # finish compiling in 5 min).
    "fast2k_whole": replace(FAST2K, compile_blocks=False, compile_whole_unet=True),
    "fast2k_whole_ro": replace(FAST2K, compile_blocks=False, compile_whole_unet=True, compile_mode="reduce-overhead"),
    "fast2k_cdt": replace(FAST2K, compile_options=(("coordinate_descent_tuning", True),)),
    # fast2k as before frames_major_blocks: diffusers' blocks and GroupNorm compiled as they are; and with diffusers'
    # decoder (the default from 2026-11-30 until the decoder's frames-major blocks fitted the memory target; bench
    # README's "fast2k_fmdec" of 2026-11-30/12-01 is today's fast2k).
    "fast2k_permute": replace(FAST2K, frames_major=False),
    "fast2k_ddec": replace(FAST2K, frames_major_decoder=False),
    # ... with Inductor's C++ wrapper (launches from C++, not Python; the UNet pass had ~4 % launch gaps). Measured
    # 2026-12-01: UNet 9.12 vs 9.02 s, no gain, and 418 s to compile instead of 274.
    "fast2k_cpp": replace(FAST2K, compile_options=(("cpp_wrapper", True),)),
    "fastbc": Variant(batch_cfg=True, ff_chunk_rows=1 << 16, compile_blocks=True, compile_vae=True),
    "fast2c_offload": Variant(
        batch_cfg=False, ff_chunk_rows=1 << 16, compile_blocks=True, compile_vae=True, offload=True
    ),
    "opt_dec16": Variant(batch_cfg=True, ff_chunk_rows=1 << 16, cudnn_benchmark=True, decode_chunk=16),
    # + temporal Conv3d as Conv2d, + stage offload (UNet on the GPU only while denoising, CLIP only while encoding).
    "fast2": Variant(batch_cfg=False, ff_chunk_rows=1 << 16, temporal_conv_2d=True, offload=True),
    "fastb": Variant(batch_cfg=True, ff_chunk_rows=1 << 16, temporal_conv_2d=True, offload=True),
    "fastb_resident": Variant(batch_cfg=True, ff_chunk_rows=1 << 16, temporal_conv_2d=True),
    "fastb_compile": Variant(
        batch_cfg=True,
        ff_chunk_rows=1 << 16,
        temporal_conv_2d=True,
        compile_unet=True,
    ),
}


def build_models(device: torch.device, dtype: torch.dtype) -> tuple[DepthCrafterUNet, SVDComponents]:
    """Real-size architectures, random weights, built directly on the device."""

    torch.manual_seed(0)
    with torch.device(device):
        unet = DepthCrafterUNet(**DEPTHCRAFTER_UNET)
    unet = place(unet, device, dtype)
    vae, clip = build_vae_and_clip(device, dtype)
    params = sum(p.numel() for p in unet.parameters()) / 1e9
    print(f"built UNet {params:.2f} B params, VAE, CLIP ViT-H/14 on {device} in {dtype}")
    return unet, SVDComponents(vae=vae, image_encoder=clip, scheduler_config=SVD_SCHEDULER)


def build_tiny_models() -> tuple[DepthCrafterUNet, SVDComponents]:
    """Tiny random models (tests/tiny_models.py) for a CPU dry run of this script."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from tiny_models import tiny_clip, tiny_unet_config, tiny_vae

    torch.manual_seed(0)
    unet = DepthCrafterUNet(**tiny_unet_config(8)).eval().requires_grad_(False)
    return unet, SVDComponents(vae=tiny_vae(), image_encoder=tiny_clip(), scheduler_config=SVD_SCHEDULER)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def test_frames(frames: int, height: int, width: int) -> torch.Tensor:
    """A moving gradient with texture, [T, H, W, 3] float32 on the CPU."""
    g = torch.Generator().manual_seed(1)
    ys = torch.linspace(0, 1, height).view(1, height, 1, 1)
    xs = torch.linspace(0, 1, width).view(1, 1, width, 1)
    ts = torch.linspace(0, 1, frames).view(frames, 1, 1, 1)
    base = (0.5 * xs + 0.3 * ys + 0.2 * ts).expand(frames, height, width, 3)
    return (base + 0.1 * torch.rand(frames, height, width, 3, generator=g)).clamp(0, 1)


def preset_noise(frames: int, size: tuple[int, int], window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shared noise for every variant (CPU draws, so paths differ only by their arithmetic)."""
    g = torch.Generator().manual_seed(42)
    aug = torch.randn(frames, 3, *size, generator=g).half()
    latents = torch.randn(min(window, frames), 4, size[0] // 8, size[1] // 8, generator=g).half()
    return aug, latents


def run_one(
    pipe: VideoDepthPipeline, config: Config, variant: Variant, frames: torch.Tensor, noise: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, dict[str, float]]:
    """One timed run with profiling (stage times and per-stage CUDA peak memory)."""
    settings = replace(
        config.settings,
        batch_cfg=variant.batch_cfg,
        vae_encode_fp32=variant.vae_encode_fp32,
        encode_chunk_size=variant.encode_chunk,
        decode_chunk_size=variant.decode_chunk,
    )
    sync(pipe.device)
    start = time.perf_counter()
    depth = pipe(frames, settings, aug_noise=noise[0], initial_latents=noise[1], profile=True)
    sync(pipe.device)
    total = time.perf_counter() - start
    stats = pipe.last_stats
    row = {"total": total, **{k: v for k, v in stats.seconds.items()}}
    row["peak_gb"] = max(stats.peak_bytes.values(), default=0) / GIB
    row["unet_peak_gb"] = stats.peak_bytes.get("unet", 0) / GIB
    row["decode_peak_gb"] = stats.peak_bytes.get("vae_decode", 0) / GIB
    row["encode_peak_gb"] = max(stats.peak_bytes.get("vae_encode", 0), stats.peak_bytes.get("clip", 0)) / GIB
    return depth, row


def make_pipe(
    unet: DepthCrafterUNet, svd: SVDComponents, variant: Variant, device: torch.device, dtype: torch.dtype
) -> VideoDepthPipeline:
    from stereocrafter.depth.depthcrafter_unet import set_conv_memory_format
    from stereocrafter.svd.compiled_svd import compile_unet_blocks, compile_vae, decompile, shareable_ff_chunking
    from stereocrafter.svd.frames_major_blocks import use_frames_major_blocks

    torch.backends.cudnn.benchmark = variant.cudnn_benchmark
    decompile(unet)
    decompile(svd.vae)
    compile_blocks = variant.compile_unet or variant.compile_blocks  # compile_unet: now the same regional compile
    pipe_compiles = compile_blocks and variant.compile_mode is None and not variant.compile_options
    pipe = VideoDepthPipeline(
        unet,
        svd,
        device=device,
        dtype=dtype,
        channels_last=variant.channels_last,
        compile=pipe_compiles,  # UNet blocks + VAE encoder and decoder, default mode
        ff_chunk_rows=variant.ff_chunk_rows,
        temporal_conv_2d=variant.temporal_conv_2d,
        offload=variant.offload,
        single_key_attention=variant.single_key,
        lean_blocks=variant.lean_blocks,
    )
    set_conv_memory_format(svd.vae, torch.channels_last if variant.vae_channels_last else torch.contiguous_format)
    options = dict(variant.compile_options) or None
    if compile_blocks and not pipe_compiles:
        compile_unet_blocks(unet, mode=variant.compile_mode, options=options)
    if variant.compile_whole_unet:
        shareable_ff_chunking(unet)  # a per-module functools.partial would be guarded by identity
        unet.compile(mode=variant.compile_mode, options=options)
    if variant.compile_vae and not pipe_compiles:
        compile_vae(svd.vae, mode=variant.compile_mode, options=options)  # encoder and decoder
    if variant.compiles:  # before the first call: the modules compile lazily
        use_frames_major_blocks(unet, variant.frames_major)
        use_frames_major_blocks(svd.vae.encoder, variant.frames_major)
        use_frames_major_blocks(svd.vae.decoder, variant.frames_major and variant.frames_major_decoder)
    pipe.compiled = pipe.compiled or variant.compiles  # pads the encoder's last chunk to one compiled shape
    return pipe


def one_pass_inputs(
    unet: DepthCrafterUNet, size: tuple[int, int], frames: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator]:
    """Seeded inputs of ONE UNet pass (one window of ``frames``, one CFG half): sample [1, frames, 8, h/8, w/8], the
    timestep, CLIP embeddings [1, frames, D], time ids [1, 3], on the UNet's device and dtype; and the generator, for
    more draws (e.g. decoder latents)."""
    device = next(unet.parameters()).device
    dtype = next(unet.parameters()).dtype
    h, w = size[0] // 8, size[1] // 8
    gen = torch.Generator(device).manual_seed(0)
    sample = torch.randn(1, frames, 8, h, w, generator=gen, device=device).to(dtype)
    emb = torch.randn(1, frames, unet.config.cross_attention_dim, generator=gen, device=device).to(dtype)
    ids = torch.tensor([[7.0, 127.0, 0.02]], device=device, dtype=dtype)
    return sample, torch.tensor(0.75, device=device), emb, ids, gen


@torch.inference_mode()
def profile_stages(unet: DepthCrafterUNet, svd: SVDComponents, size: tuple[int, int], frames: int, top: int) -> None:
    """Kernel profile of ONE UNet pass (one window of ``frames``, one CFG half, as the pipeline calls it) and ONE
    8-frame decode chunk, through the modules as the last variant left them (compiled graphs included)."""
    sample, t, emb, ids, gen = one_pass_inputs(unet, size, frames)
    lat = torch.randn(8, 4, size[0] // 8, size[1] // 8, generator=gen, device=sample.device).to(sample.dtype)

    def unet_pass() -> torch.Tensor:
        return unet(sample, t, encoder_hidden_states=emb, added_time_ids=ids, return_dict=False)[0]

    def decode() -> torch.Tensor:
        return svd.vae.decode(lat, num_frames=8).sample

    for label, fn, per in (("UNet pass", unet_pass, frames), ("decode 8 frames", decode, 8)):
        ms = time_ms(fn)
        print(f"{label}: {ms:.1f} ms ({ms / per:.2f} ms/frame)", flush=True)
        kernel_profile(fn, top=top, label=label)


def cuda_ms(fn: object, iters: int = 5) -> float:
    """Mean milliseconds of ``fn()`` on the GPU after one warm-up call."""
    fn()  # type: ignore[operator]
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()  # type: ignore[operator]
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


@torch.inference_mode()
def probe(unet: DepthCrafterUNet, svd: SVDComponents, size: tuple[int, int], frames: int) -> None:
    """Where the time goes: 3-D vs 2-D temporal conv, then the top CUDA kernels of one UNet pass and one decode."""
    from stereocrafter.depth.depthcrafter_unet import _conv3d_as_conv2d

    torch.backends.cudnn.benchmark = True
    h, w = size[0] // 8, size[1] // 8
    conv = unet.down_blocks[0].resnets[0].temporal_res_block.conv1
    x = torch.randn(1, conv.in_channels, frames, h, w, device="cuda", dtype=torch.float16)
    ms3, ms2 = cuda_ms(lambda: conv(x)), cuda_ms(lambda: _conv3d_as_conv2d(conv, x))
    print(f"probe: temporal conv {tuple(x.shape)}: Conv3d {ms3:.2f} ms, as Conv2d {ms2:.2f} ms")
    sample = torch.randn(1, frames, 8, h, w, device="cuda", dtype=torch.float16)
    emb = torch.randn(1, frames, 1024, device="cuda", dtype=torch.float16)
    ids = torch.tensor([[7.0, 127.0, 0.02]], device="cuda", dtype=torch.float16)
    t = torch.tensor(1.0, device="cuda")
    print(f"probe: one UNet pass, {frames} frames: {cuda_ms(lambda: unet(sample, t, emb, ids), 2):.0f} ms")
    latents = torch.randn(8, 4, h, w, device="cuda", dtype=torch.float16)
    print(f"probe: one decode chunk of 8: {cuda_ms(lambda: svd.vae.decode(latents, num_frames=8), 2):.0f} ms")
    activities = [torch.profiler.ProfilerActivity.CUDA]
    for name, fn in (("UNet pass", lambda: unet(sample, t, emb, ids)), ("decode", lambda: svd.vae.decode(latents, 8))):
        with torch.profiler.profile(activities=activities) as prof:
            fn()
            torch.cuda.synchronize()
        print(f"probe: top kernels of one {name}")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=10, max_name_column_width=70))
    torch.cuda.empty_cache()


def module_gib(module: torch.nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in module.parameters()) / GIB


@torch.inference_mode()
def levers(
    unet: DepthCrafterUNet,
    svd: SVDComponents,
    size: tuple[int, int],
    frames: int,
    t0: float,
    budget_s: float,
    compile_modes: tuple[str, ...],
    groups: frozenset[str] = frozenset({"unet", "decode", "decode_compile", "unet_compile"}),
) -> None:
    """Profile and speed levers of ONE UNet pass (one window, one CFG half: what opt_2pass runs 16x per window) and
    ONE decode chunk (8 frames), each against the eager path of the node configuration (feed-forward chunking 65 536
    rows, PyTorch's SDPA order, cudnn.benchmark off), with max abs output difference and peak memory above the
    resident weights. Every lever is undone before the next one."""
    import copy

    from stereocrafter.depth.depthcrafter_unet import chunk_feed_forward
    from stereocrafter.svd.compiled_svd import compile_unet_blocks, compile_vae, decompile
    from stereocrafter.svd.lean_attention import lean_attention

    device = next(unet.parameters()).device
    dtype = next(unet.parameters()).dtype
    h, w = size[0] // 8, size[1] // 8
    sample, t, emb, ids, gen = one_pass_inputs(unet, size, frames)
    print(
        f"levers: weights UNet {module_gib(unet):.2f} GiB, VAE {module_gib(svd.vae):.2f}, "
        f"CLIP {module_gib(svd.image_encoder):.2f}; UNet input {tuple(sample.shape)}",
        flush=True,
    )
    rows: list[tuple[str, float, float, str, int]] = []

    def record(name: str, ms: float, peak: float, out: torch.Tensor | None, ref: torch.Tensor | None, per: int) -> None:
        diff = "-" if out is None or ref is None else "{:.2e} (ref max {:.2f})".format(*max_diff(out, ref))
        rows.append((name, ms, peak, diff, per))
        print(f"LEVER {name:48} {ms:9.1f} ms  {ms / per:7.2f} ms/frame  peak+{peak:6.2f} GiB  diff {diff}", flush=True)

    chunk_feed_forward(unet, 1 << 16)

    def unet_pass(model: torch.nn.Module = unet, x: torch.Tensor = sample, e: torch.Tensor = emb) -> torch.Tensor:
        return model(x, t, e, ids.to(x.dtype), return_dict=False)[0]

    torch.backends.cudnn.benchmark = False
    ref, peak = peak_extra_gib(unet_pass)
    record("unet eager (node config)", time_ms(unet_pass), peak, None, None, frames)
    with budget_guard(t0, budget_s, "unet profile") as ok:
        if ok and "unet" in groups:
            kernel_profile(unet_pass, top=15, label="UNet pass, eager")
    for backend in ("cudnn", "efficient", "flash") if "unet" in groups else ():
        with budget_guard(t0, budget_s, f"unet sdpa {backend}") as ok:
            if ok:
                with sdpa_backends(backend):
                    out, peak = peak_extra_gib(unet_pass)
                    record(f"unet eager sdpa {backend}-first", time_ms(unet_pass), peak, out, ref, frames)
                    if backend == "cudnn":
                        kernel_profile(unet_pass, top=6, label="UNet pass, cuDNN attention first")
    with budget_guard(t0, budget_s, "unet cudnn.benchmark") as ok:
        if ok and "unet" in groups:
            torch.backends.cudnn.benchmark = True
            unet_pass()  # autotune
            out, peak = peak_extra_gib(unet_pass)
            record("unet eager cudnn.benchmark", time_ms(unet_pass), peak, out, ref, frames)
            torch.backends.cudnn.benchmark = False
    with budget_guard(t0, budget_s, "unet no ff chunk") as ok:
        if ok and "unet" in groups:
            chunk_feed_forward(unet, None)
            out, peak = peak_extra_gib(unet_pass)
            record("unet eager no ff chunk", time_ms(unet_pass), peak, out, ref, frames)
            chunk_feed_forward(unet, 1 << 16)
    with budget_guard(t0, budget_s, "unet bf16") as ok:
        if ok and "unet" in groups:
            chunk_feed_forward(unet, None)
            bf = copy.deepcopy(unet).to(torch.bfloat16)
            chunk_feed_forward(unet, 1 << 16)
            chunk_feed_forward(bf, 1 << 16)
            xb, eb = sample.to(torch.bfloat16), emb.to(torch.bfloat16)
            out, peak = peak_extra_gib(lambda: unet_pass(bf, xb, eb))
            record("unet eager bf16 weights+inputs", time_ms(lambda: unet_pass(bf, xb, eb)), peak, out, ref, frames)
            del bf, xb, eb
            torch.cuda.empty_cache() if device.type == "cuda" else None

    # ---- decode: one 8-frame chunk of the temporal decoder
    vae = svd.vae
    lat = torch.randn(8, 4, h, w, generator=gen, device=device).to(dtype)

    def decode() -> torch.Tensor:
        return vae.decode(lat, num_frames=8).sample

    dref, peak = peak_extra_gib(decode)
    record("decode eager (plain attention)", time_ms(decode), peak, None, None, 8)
    with budget_guard(t0, budget_s, "decode profile") as ok:
        if ok and "decode" in groups:
            kernel_profile(decode, top=15, label="decode 8 frames, eager")
    with budget_guard(t0, budget_s, "decode lean") as ok:
        if ok and "decode" in groups:
            with lean_attention(vae):
                out, peak = peak_extra_gib(decode)
                record("decode eager lean attention", time_ms(decode), peak, out, dref, 8)
    for backend in ("efficient", "cudnn", "math") if "decode" in groups else ():
        with budget_guard(t0, budget_s, f"decode sdpa {backend}") as ok:
            if ok:
                with sdpa_backends(backend):
                    out, peak = peak_extra_gib(decode)
                    record(f"decode eager sdpa {backend}-first", time_ms(decode), peak, out, dref, 8)
    with budget_guard(t0, budget_s, "decode cudnn.benchmark") as ok:
        if ok and "decode" in groups:
            torch.backends.cudnn.benchmark = True
            decode()
            out, peak = peak_extra_gib(decode)
            record("decode eager cudnn.benchmark", time_ms(decode), peak, out, dref, 8)
    with budget_guard(t0, budget_s, "decode channels_last") as ok:
        if ok and "decode" in groups:
            convs = [m for m in vae.decoder.modules() if isinstance(m, torch.nn.Conv2d)]
            for m in convs:
                m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
            lat_nchw = lat
            lat = lat.contiguous(memory_format=torch.channels_last)
            decode()
            out, peak = peak_extra_gib(decode)
            record("decode eager channels_last + benchmark", time_ms(decode), peak, out, dref, 8)
            kernel_profile(decode, top=8, label="decode 8 frames, channels_last")
            for m in convs:
                m.weight.data = m.weight.data.contiguous()
            lat = lat_nchw
    torch.backends.cudnn.benchmark = False
    with budget_guard(t0, budget_s, "decode dynamic compile") as ok:
        if ok and "decode_dynamic" in groups:

            def decode_n(k: int) -> torch.Tensor:
                return vae.decode(lat[:k], num_frames=k).sample

            eager_ms = {k: time_ms(partial(decode_n, k)) for k in (8, 6)}
            compile_vae(vae, encoder=False)
            for n in (8, 6):
                start = time.perf_counter()
                decode_n(n)
                sync(device)
                first_s = time.perf_counter() - start
                print(f"decode dynamic compile, {n} frames: first call {first_s:.1f} s (eager {eager_ms[n]:.1f} ms)")
                out, peak = peak_extra_gib(partial(decode_n, n))
                ref_n = dref if n == 8 else None
                record(f"decode compile_vae (dynamic) {n} frames", time_ms(partial(decode_n, n)), peak, out, ref_n, n)
            print(f"dynamo {dict(torch._dynamo.utils.counters['stats'])}", flush=True)
            decompile(vae)
            torch._dynamo.reset()
    for mode in compile_modes if "decode_compile" in groups else ():
        with budget_guard(t0, budget_s, f"decode compile {mode}") as ok:
            if ok:
                torch.backends.cudnn.benchmark = True
                original = vae.decoder
                vae.decoder = torch.compile(original, mode=None if mode == "default" else mode, dynamic=False)
                try:
                    with lean_attention(vae):
                        start = time.perf_counter()
                        decode()
                        print(f"decode compile {mode}: first call {time.perf_counter() - start:.1f} s", flush=True)
                        out, peak = peak_extra_gib(decode)
                        record(f"decode compiled {mode} + lean + benchmark", time_ms(decode), peak, out, dref, 8)
                        kernel_profile(decode, top=8, label=f"decode 8 frames, compiled {mode}")
                finally:
                    vae.decoder = original
                    torch.backends.cudnn.benchmark = False
    # The SDPA backend is chosen while tracing: compile once, under the fastest eager choice.
    eager = {name: ms for name, ms, _, _, _ in rows if name.startswith("unet eager sdpa")}
    best = min(eager, key=eager.get).split()[-1].removesuffix("-first") if eager else "default"
    for mode in compile_modes if "unet_compile" in groups else ():
        with budget_guard(t0, budget_s, f"unet compile {mode}") as ok:
            if ok:
                if mode == "regional":
                    compile_unet_blocks(unet)
                    compiled = unet
                else:
                    compiled = torch.compile(unet, mode=None if mode == "default" else mode, dynamic=False)
                with sdpa_backends(best):
                    start = time.perf_counter()
                    compiled(sample, t, emb, ids, return_dict=False)
                    elapsed = time.perf_counter() - start
                    print(f"unet compile {mode} sdpa {best}: first call {elapsed:.1f} s", flush=True)
                    run = partial(unet_pass, compiled)
                    out, peak = peak_extra_gib(run)
                    record(f"unet compiled {mode} sdpa {best}-first", time_ms(run), peak, out, ref, frames)
                    kernel_profile(run, top=10, label=f"UNet pass, compiled {mode}")
                print(f"dynamo {dict(torch._dynamo.utils.counters['stats'])}", flush=True)
                decompile(unet)
                torch._dynamo.reset()
    print("\n| lever | ms per call | ms per frame | peak above weights GiB | max abs diff |")
    print("|---|---|---|---|---|")
    for name, ms, peak, diff, per in rows:
        print(f"| {name} | {ms:.1f} | {ms / per:.2f} | {peak:.2f} | {diff} |")
    torch.cuda.empty_cache() if device.type == "cuda" else None


def print_saved_diffs(save_dir: Path) -> int:
    """Max abs difference of every depth saved by ``--save-dir`` against the faithful run of the same config."""
    for path in sorted(save_dir.glob("*.pt")):
        variant, _, config = path.stem.rpartition("_")
        reference = save_dir / f"faithful_{config}.pt"
        if variant != "faithful" and reference.exists():
            diff = (torch.load(path) - torch.load(reference)).abs().max().item()
            print(f"{variant:14} {config:6} max|d-faithful| {diff:.2e}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--runs",
        default="faithful=sc70+sc160+v101,fast2k=sc70+sc160+v101",
        help="comma-separated VARIANT=CONFIG+CONFIG; faithful first (the others are diffed against it)",
    )
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--budget-s", type=float, default=540.0, help="skip runs that would start after this")
    parser.add_argument("--tiny", action="store_true", help="CPU dry run with tiny models and small frames")
    parser.add_argument(
        "--save-dir",
        type=Path,
        help="save each run's depth as VARIANT_CONFIG.pt here and diff against faithful_CONFIG.pt found there "
        "(lets variants run in separate processes, e.g. one per GPU)",
    )
    parser.add_argument("--probe", action="store_true", help="micro-benchmarks and kernel profiles first (GPU)")
    parser.add_argument("--levers", action="store_true", help="profile + speed levers of one UNet pass and decode")
    parser.add_argument("--levers-budget-s", type=float, default=400.0, help="stop starting levers after this")
    parser.add_argument(
        "--compile-modes",
        default="default",
        help="comma-separated torch.compile modes for --levers ('' = none; 'regional' = compile_unet_blocks)",
    )
    parser.add_argument(
        "--lever-groups",
        default="unet,decode,decode_compile,unet_compile",
        help="--levers groups: unet, decode, decode_compile, decode_dynamic, unet_compile",
    )
    parser.add_argument(
        "--profile-kernels",
        type=int,
        default=0,
        help="after each variant, profile one UNet pass and one decode chunk and print this many top kernels",
    )
    parser.add_argument("--diff-only", action="store_true", help="print max|d - faithful| of the runs in --save-dir")
    args = parser.parse_args()
    if args.diff_only:
        return print_saved_diffs(args.save_dir)
    t0 = time.perf_counter()
    if args.tiny:
        device, dtype = torch.device("cpu"), torch.float32
        unet, svd = build_tiny_models()
        args.height, args.width = 70, 120
        for name, config in CONFIGS.items():
            small = replace(config.settings, window_size=max(2, config.settings.window_size // 10), overlap=2)
            CONFIGS[name] = replace(config, frames=max(3, config.frames // 10), settings=small)
    else:
        device, dtype = torch.device("cuda"), torch.float16
        print(torch.cuda.get_device_name(), "torch", torch.__version__)
        unet, svd = build_models(device, dtype)
    size = processing_size(args.height, args.width)
    if args.probe and not args.tiny:
        probe(unet, svd, size, 70)
    if args.levers:
        modes = tuple(m for m in args.compile_modes.split(",") if m)
        groups = frozenset(g for g in args.lever_groups.split(",") if g)
        levers(unet, svd, size, CONFIGS["sc70"].frames, t0, args.levers_budget_s, modes, groups)
    rows: list[tuple[str, str, dict[str, float], float | None]] = []
    outputs: dict[tuple[str, str], torch.Tensor] = {}
    warm = test_frames(8, args.height, args.width)

    plan = [(spec.split("=")[0], spec.split("=")[1].split("+")) for spec in args.runs.split(",") if spec]
    for variant_name, config_names in plan:
        variant = VARIANTS[variant_name]
        pipe = make_pipe(unet, svd, variant, device, dtype)
        if not variant.compiles:
            pipe(warm, DepthSettings(window_size=8, overlap=2, num_inference_steps=1))  # allocator and kernels
        for config_name in config_names:
            if time.perf_counter() - t0 > args.budget_s:
                print(f"budget reached: skipping {variant_name}/{config_name}")
                continue
            config = CONFIGS[config_name]
            frames = test_frames(config.frames, args.height, args.width)
            if variant.compiles:
                # Compile (first config) or recompile (new window/chunk shapes) on this config's shapes, 1 step, so
                # the timed run does not include compilation.
                start = time.perf_counter()
                warm_settings = replace(config.settings, num_inference_steps=1, batch_cfg=variant.batch_cfg)
                pipe(frames, warm_settings)
                stats = dict(torch._dynamo.utils.counters["stats"])
                print(f"{variant_name}/{config_name}: compile + warm-up {time.perf_counter() - start:.0f} s, {stats}")
            noise = tuple(n.to(dtype) for n in preset_noise(config.frames, size, config.settings.window_size))
            depth, row = run_one(pipe, config, variant, frames, noise)
            diff = None
            # Against the faithful run of the clip, or else the clip's first run.
            faithful = outputs.get(("faithful", config_name), outputs.get(("first", config_name)))
            if args.save_dir is not None:
                args.save_dir.mkdir(parents=True, exist_ok=True)
                torch.save(depth.cpu(), args.save_dir / f"{variant_name}_{config_name}.pt")
                saved = args.save_dir / f"faithful_{config_name}.pt"
                if faithful is None and variant_name != "faithful" and saved.exists():
                    faithful = torch.load(saved)
            if faithful is not None:
                diff = (depth.cpu() - faithful.cpu()).abs().max().item()
            if variant_name == "faithful":
                outputs[(variant_name, config_name)] = depth
            elif ("first", config_name) not in outputs:
                outputs[("first", config_name)] = depth.cpu()
            nan = int(torch.isnan(depth).sum())
            spf = row["total"] / config.frames
            print(
                f"{variant_name:12} {config.name:20} {spf:.3f} s/frame  total {row['total']:.1f} s  "
                f"peak {row['peak_gb']:.2f} GiB  split "
                + " ".join(f"{k}={row.get(k, 0):.2f}" for k in STAGES)
                + f" other={row['total'] - sum(row.get(k, 0) for k in STAGES):.2f}"
                + f"  unet_peak {row['unet_peak_gb']:.2f} dec_peak {row['decode_peak_gb']:.2f}"
                + f" enc_peak {row['encode_peak_gb']:.2f}"
                + (f"  max|d - faithful or first| {diff:.2e}" if diff is not None else "")
                + (f"  NaN {nan}" if nan else ""),
                flush=True,
            )
            rows.append((variant_name, config_name, row, diff))
        if args.profile_kernels:
            profile_stages(unet, svd, size, CONFIGS["sc70"].settings.window_size, args.profile_kernels)
        del pipe
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    print()
    header = (
        "| variant | clip | s/frame | vs ref | peak GiB | vs ref | CLIP s | VAE enc s | UNet s | decode s | max diff |"
    )
    print(header)
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for variant_name, config_name, row, diff in rows:
        ref_spf, ref_peak = REFERENCE[config_name]
        spf = row["total"] / CONFIGS[config_name].frames
        peak_ratio = f"{row['peak_gb'] / ref_peak:.2f}x" if ref_peak else "-"
        print(
            f"| {variant_name} | {CONFIGS[config_name].name} | {spf:.3f} | {spf / ref_spf:.2f}x | {row['peak_gb']:.2f} "
            f"| {peak_ratio} | {row.get('clip', 0):.2f} | {row.get('vae_encode', 0):.2f} | {row.get('unet', 0):.2f} "
            f"| {row.get('vae_decode', 0):.2f} | {'-' if diff is None else f'{diff:.2e}'} |"
        )
    print(f"\ntargets: <= {TARGET_S_PER_FRAME} s/frame (StereoCrafter 70 f), <= {TARGET_PEAK_GB} GB peak")
    print(f"wall {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
