"""GPU benchmark of VideoDepthPipeline at real size with random weights (no download).

Builds the real architectures (SVD VAE, CLIP ViT-H/14, DepthCrafter UNet; reference.md §4.2, §5) with random weights in
fp16 and measures seconds per frame, the split (CLIP, VAE encode, UNet, decode) and peak GPU memory at 1024x576 for:

- StereoCrafter's settings (8 steps, guidance 1.2, window 70, overlap 25) on 70 and 160 frames,
- DepthCrafter v1.0.1's settings (5 steps, guidance 1.0, window 110) on 110 frames,

for a faithful, unoptimised path (two CFG passes, fp32 VAE encode, no memory levers) and optimised variants, with
identical noise, so the max abs difference of the output depth between paths is reported too.

Usage (on the GPU machine):
    PYTHONUNBUFFERED=1 python bench/depth.py [--runs faithful=sc70+sc160+v101,optimized=sc70+sc160+v101,opt_cl=sc70]
    python bench/depth.py --tiny   # CPU dry run of the script with tiny models
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from svd_architecture import SCHEDULER_CONFIG, build_vae_and_clip, place, svd_unet_config  # noqa: E402

from stereocrafter.depth_pipeline import DepthSettings, VideoDepthPipeline, processing_size  # noqa: E402
from stereocrafter.depthcrafter_unet import DepthCrafterUNet  # noqa: E402
from stereocrafter.svd_components import SVDComponents  # noqa: E402

GIB = 1024**3

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
    cudnn_benchmark: bool = False
    encode_chunk: int = 8
    decode_chunk: int = 8
    temporal_conv_2d: bool = False
    offload: bool = False


VARIANTS = {
    # The reference's way: CFG as two passes, fp32 VAE encode, nothing else.
    "faithful": Variant(batch_cfg=False, vae_encode_fp32=True),
    "optimized": Variant(batch_cfg=True, ff_chunk_rows=1 << 16, cudnn_benchmark=True),
    "opt_2pass": Variant(batch_cfg=False, ff_chunk_rows=1 << 16, cudnn_benchmark=True),
    "opt_nochunk": Variant(batch_cfg=True, cudnn_benchmark=True),
    "opt_cl": Variant(batch_cfg=True, ff_chunk_rows=1 << 16, cudnn_benchmark=True, channels_last=True),
    "opt_compile": Variant(batch_cfg=True, ff_chunk_rows=1 << 16, cudnn_benchmark=True, compile_unet=True),
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
    torch.backends.cudnn.benchmark = variant.cudnn_benchmark
    return VideoDepthPipeline(
        unet,
        svd,
        device=device,
        dtype=dtype,
        channels_last=variant.channels_last,
        compile_unet=variant.compile_unet,
        ff_chunk_rows=variant.ff_chunk_rows,
        temporal_conv_2d=variant.temporal_conv_2d,
        offload=variant.offload,
    )


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
    from stereocrafter.depthcrafter_unet import _conv3d_as_conv2d

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--runs",
        default="faithful=sc70+sc160+v101,optimized=sc70+sc160+v101",
        help="comma-separated VARIANT=CONFIG+CONFIG; faithful first (the others are diffed against it)",
    )
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--budget-s", type=float, default=540.0, help="skip runs that would start after this")
    parser.add_argument("--tiny", action="store_true", help="CPU dry run with tiny models and small frames")
    parser.add_argument("--probe", action="store_true", help="micro-benchmarks and kernel profiles first (GPU)")
    args = parser.parse_args()
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
    rows: list[tuple[str, str, dict[str, float], float | None]] = []
    outputs: dict[tuple[str, str], torch.Tensor] = {}
    warm = test_frames(8, args.height, args.width)

    plan = [(spec.split("=")[0], spec.split("=")[1].split("+")) for spec in args.runs.split(",")]
    for variant_name, config_names in plan:
        variant = VARIANTS[variant_name]
        pipe = make_pipe(unet, svd, variant, device, dtype)
        # Warm-up: allocator and kernels; a compiled UNet is warmed on the first config's real shapes (1 step) so the
        # timed runs do not include compilation.
        if variant.compile_unet:
            first = CONFIGS[config_names[0]]
            start = time.perf_counter()
            warm_settings = replace(first.settings, num_inference_steps=1, batch_cfg=variant.batch_cfg)
            pipe(test_frames(first.frames, args.height, args.width), warm_settings)
            print(f"{variant_name}: compile + warm-up {time.perf_counter() - start:.0f} s", flush=True)
        else:
            pipe(warm, DepthSettings(window_size=8, overlap=2, num_inference_steps=1))
        for config_name in config_names:
            if time.perf_counter() - t0 > args.budget_s:
                print(f"budget reached: skipping {variant_name}/{config_name}")
                continue
            config = CONFIGS[config_name]
            frames = test_frames(config.frames, args.height, args.width)
            noise = tuple(n.to(dtype) for n in preset_noise(config.frames, size, config.settings.window_size))
            depth, row = run_one(pipe, config, variant, frames, noise)
            diff = None
            faithful = outputs.get(("faithful", config_name))
            if faithful is not None:
                diff = (depth - faithful).abs().max().item()
            if variant_name == "faithful":
                outputs[(variant_name, config_name)] = depth
            nan = int(torch.isnan(depth).sum())
            spf = row["total"] / config.frames
            print(
                f"{variant_name:12} {config.name:20} {spf:.3f} s/frame  total {row['total']:.1f} s  "
                f"peak {row['peak_gb']:.2f} GiB  split "
                + " ".join(f"{k}={row.get(k, 0):.2f}" for k in ("clip", "vae_encode", "unet", "vae_decode"))
                + f"  unet_peak {row['unet_peak_gb']:.2f} dec_peak {row['decode_peak_gb']:.2f}"
                + f" enc_peak {row['encode_peak_gb']:.2f}"
                + (f"  max|d-faithful| {diff:.2e}" if diff is not None else "")
                + (f"  NaN {nan}" if nan else ""),
                flush=True,
            )
            rows.append((variant_name, config_name, row, diff))
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
