"""GPU benchmark of the stereo inpainting stage with the real-size architecture and RANDOM weights (no download).

Architecture (reference.md §5): SVD VAE (AutoencoderKLTemporalDecoder, block_out_channels [128, 256, 512, 512],
latent 4, scaling 0.18215), CLIP ViT-H/14 vision (1280 hidden, 32 layers, 16 heads, projection 1024), the SVD UNet
config with in_channels 9. All fp16, as the reference runs.

Measured: seconds per frame, the split (CLIP, VAE encode, UNet, decode) and peak GPU memory for one 23-frame chunk at
1024×512 (1 tile) and 1920×1024 (2×2 tiles), with guidance 1.01 (CFG batched) and 1.0, the levers (tile batching,
channels_last, fp16/full-frame encode), a 1920×1080 clip of 100 frames end to end, and the max abs difference of each
optimised variant's output against the faithful (reference-mode) output on the same weights, inputs and seed. With
random weights these differences show how much a lever moves the numbers, not what it does to image quality.

Usage (GPU):   python3 bench/inpaint.py --out results_dir
Levers (GPU):  python3 bench/inpaint.py --levers   # profile + speed levers of one UNet call and one decode call
Smoke (CPU):   .venv/bin/python bench/inpaint.py --tiny --device cpu [--levers]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

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

from stereocrafter.inpaint.inpaint_pipeline import InpaintSettings, StereoInpaintPipeline  # noqa: E402
from stereocrafter.svd.compiled_svd import compile_unet_blocks, compile_vae, decompile  # noqa: E402
from stereocrafter.svd.svd_preprocess import module_dtype  # noqa: E402

REFERENCE = {  # reference figures (brief): seconds per frame, peak GiB
    "1024x512 t1": (0.342, 12.1),
    "1920x1024 t2": (1.46, 13.1),
}
TARGET_S_PER_FRAME_1920 = 0.73
TARGET_PEAK_GB_1080 = 10.0


def build_models(device: torch.device, dtype: torch.dtype, tiny: bool) -> StereoInpaintPipeline:
    """Real-size (or tiny) random models, built directly on ``device``."""
    from diffusers import UNetSpatioTemporalConditionModel

    if tiny:
        from tests.tiny_models import tiny_clip, tiny_unet, tiny_vae

        return StereoInpaintPipeline(
            tiny_unet(9).to(device, dtype),
            tiny_vae().to(device, dtype),
            tiny_clip().to(device, dtype),
            SCHEDULER_CONFIG,
            frames_major_decoder=False,
        )
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNetSpatioTemporalConditionModel(**svd_unet_config(in_channels=9))
    unet = place(unet, device, dtype)
    vae, clip = build_vae_and_clip(device, dtype)
    # diffusers' decoder blocks: this bench's variants and history were measured with them (bench/e2e.py: defaults)
    return StereoInpaintPipeline(unet, vae, clip, SCHEDULER_CONFIG, frames_major_decoder=False)


def set_channels_last(module: torch.nn.Module, on: bool) -> None:
    """channels_last for the 2-D convolutions (the temporal 3-D convolutions keep their layout)."""
    fmt = torch.channels_last if on else torch.contiguous_format
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.to(memory_format=fmt)


def set_ff_chunking(unet: torch.nn.Module, chunk: int | None) -> None:
    """diffusers' feed-forward chunking (1 = one frame / one token column at a time), None = off."""
    for m in unet.modules():
        if hasattr(m, "set_chunk_feed_forward"):
            m.set_chunk_feed_forward(chunk_size=chunk, dim=0)


def make_inputs(frames: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Warped-looking frames and a disocclusion-like mask (thin vertical bands + the right edge), on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, height // 16, width // 16, generator=gen)
    img = torch.nn.functional.interpolate(base, size=(height, width), mode="bilinear", align_corners=False)
    img = img.expand(frames, -1, -1, -1).permute(0, 2, 3, 1).contiguous()
    mask = torch.zeros(frames, height, width)
    for k, x in enumerate(range(width // 10, width, width // 7)):
        mask[:, height // 5 : height - height // 6, x : x + 6 + 4 * (k % 3)] = 1.0
    mask[:, :, -12:] = 1.0
    return img, mask


def peak_gib(device: torch.device) -> tuple[float, float]:
    if device.type != "cuda":
        return 0.0, 0.0
    return torch.cuda.max_memory_allocated(device) / 2**30, torch.cuda.max_memory_reserved(device) / 2**30


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def run_variant(
    pipe: StereoInpaintPipeline, name: str, frames: torch.Tensor, mask: torch.Tensor, settings: InpaintSettings
) -> tuple[dict[str, Any], torch.Tensor]:
    device = pipe.device
    reset_peak(device)
    pipe.sync_timing = pipe.phase_peaks = True
    start = time.perf_counter()
    out = pipe(frames, mask, settings, seed=0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    total = time.perf_counter() - start
    alloc, reserved = peak_gib(device)
    alloc = max([alloc, *pipe.stats.peak_gib.values()])
    n = frames.shape[0]
    row = {
        "name": name,
        "frames": n,
        "size": f"{frames.shape[2]}x{frames.shape[1]}",
        "tiles": "x".join(map(str, pipe.stats.tiles)),
        "guidance": settings.guidance_scale,
        "s_per_frame": total / n,
        "total_s": total,
        "split_s": {k: round(v, 3) for k, v in pipe.stats.seconds.items()},
        "peak_gib_by_phase": {k: round(v, 2) for k, v in pipe.stats.peak_gib.items()},
        "unet_calls": pipe.stats.unet_calls,
        "peak_alloc_gib": alloc,
        "peak_reserved_gib": reserved,
        "nan_frac": float(torch.isnan(out).float().mean()),
    }
    print(json.dumps(row), flush=True)
    return row, out


def diff(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    d = (a - b).abs()
    return {"max": float(d.max()), "mean": float(d.mean())}


def markdown(rows: list[dict[str, Any]], diffs: dict[str, dict[str, float]], device_name: str) -> str:
    lines = [
        f"Device: {device_name}. Random weights, fp16, 8 steps, chunk 23. Peak = torch max_memory_allocated "
        "(reserved in brackets).",
        "",
        "| variant | size | frames | tiles | guidance | s/frame | CLIP | VAE enc | UNet | decode | peak GiB "
        "| vs ref s/frame | vs ref peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        key = f"{r['size'].split('x')[0]}x{r['size'].split('x')[1]} t{r['tiles'][0]}"
        ref = REFERENCE.get(key) if r["frames"] == 23 else None
        sp = r["split_s"]
        vs_t = f"{r['s_per_frame'] / ref[0]:.2f}×" if ref else ""
        vs_m = f"{r['peak_alloc_gib'] / ref[1]:.2f}×" if ref else ""
        lines.append(
            f"| {r['name']} | {r['size']} | {r['frames']} | {r['tiles']} | {r['guidance']} | {r['s_per_frame']:.3f} | "
            f"{sp.get('clip', 0):.2f} | {sp.get('vae_encode', 0):.2f} | {sp.get('unet', 0):.2f} | "
            f"{sp.get('decode', 0):.2f} | {r['peak_alloc_gib']:.2f} ({r['peak_reserved_gib']:.2f}) | {vs_t} | {vs_m} |"
        )
    lines += ["", "Output difference vs the faithful path (frames 0..1, same weights/inputs/seed):", ""]
    lines += ["| comparison | max abs | mean abs |", "|---|---|---|"]
    lines += [f"| {k} | {v['max']:.4g} | {v['mean']:.3g} |" for k, v in diffs.items()]
    return "\n".join(lines)


@torch.no_grad()
def levers(
    pipe: StereoInpaintPipeline, tiny: bool, t0: float, budget_s: float, compile_unet: bool, sections: set[str]
) -> None:
    """Profile and speed levers of one inpainting UNet call (one 23-frame chunk of one 1024x576 tile: 1920x1024 in
    2x2 tiles, guidance 1.0) and one temporal-decode call (2 frames of a 1088x1024 decode tile, as 1920x1080 is
    decoded by default, and of the whole 1920x1024 frame, as the 1920x1024 rows decode), against the eager path
    (PyTorch's SDPA order, cudnn.benchmark off), with max abs output difference and peak memory above the weights."""
    from stereocrafter.svd.lean_attention import lean_attention

    unet, vae = pipe.unet, pipe.vae
    device, dtype = pipe.device, pipe.dtype
    scale = 8 if tiny else 1
    frames = 23 if not tiny else 3
    h, w = 576 // 8 // scale, 1024 // 8 // scale
    cross = unet.config.cross_attention_dim
    gen = torch.Generator(device).manual_seed(0)
    rows: list[tuple[str, float, float, str, int]] = []

    def record(name: str, ms: float, peak: float, out: torch.Tensor | None, ref: torch.Tensor | None, per: int) -> None:
        diff = "-" if out is None or ref is None else "{:.2e} (ref max {:.2f})".format(*max_diff(out, ref))
        rows.append((name, ms, peak, diff, per))
        print(f"LEVER {name:52} {ms:9.1f} ms  {ms / per:7.2f} ms/frame  peak+{peak:6.2f} GiB  diff {diff}", flush=True)

    def unet_inputs(batch: int, lh: int = h, lw: int = w) -> tuple[torch.Tensor, ...]:
        """UNet inputs for ``batch`` tiles of latent size lh x lw (default: a 576x1024 tile)."""
        g = torch.Generator(device).manual_seed(1)
        x = torch.randn(batch, frames, 9, lh, lw, generator=g, device=device).to(dtype)
        e = torch.randn(batch, 1, cross, generator=g, device=device).to(dtype)
        ids = torch.tensor([[6.0, 127.0, 0.0]], device=device, dtype=dtype).repeat(batch, 1)
        return x, e, ids

    t = torch.tensor(0.25 * 3.0, device=device)
    torch.backends.cudnn.benchmark = False
    for batch in (1, 4) if "unet" in sections else ():
        x, e, ids = unet_inputs(batch)

        def call(model: torch.nn.Module = unet, x: torch.Tensor = x, e: torch.Tensor = e, i: torch.Tensor = ids):
            return model(x, t, encoder_hidden_states=e, added_time_ids=i, return_dict=False)[0]

        with budget_guard(t0, budget_s, f"unet batch {batch}") as ok:
            if ok:
                ref, peak = peak_extra_gib(call)
                per = frames * batch
                record(f"unet eager tiles/call {batch}", time_ms(call), peak, None, None, per)
                if batch == 1:
                    kernel_profile(call, top=10, label="inpaint UNet call, 1 tile, eager")
                with sdpa_backends("cudnn"):
                    out, peak = peak_extra_gib(call)
                    record(f"unet eager tiles/call {batch} sdpa cudnn-first", time_ms(call), peak, out, ref, per)
                if compile_unet and batch == 1:
                    # the SDPA backend is fixed while tracing: compile under the faster eager choice
                    best = "cudnn" if rows[-1][1] < rows[-2][1] else "default"
                    compiled = partial(call, torch.compile(unet, dynamic=False))
                    with sdpa_backends(best):
                        start = time.perf_counter()
                        compiled()
                        print(f"inpaint unet compile: first call {time.perf_counter() - start:.1f} s", flush=True)
                        out, peak = peak_extra_gib(compiled)
                        record(f"unet compiled sdpa {best}", time_ms(compiled), peak, out, ref, per)
                    torch._dynamo.reset()

    if "encode" in sections:
        encode_levers(pipe, tiny, t0, budget_s, record)
    if "lean" in sections:
        lean_unet_levers(pipe, tiny, t0, budget_s, record, partial(unet_inputs, 1))

    shapes = {
        "tile 1088x1024": (1088 // 8 // scale, 1024 // 8 // scale),
        "frame 1920x1024": (128 // scale, 240 // scale),
    }
    for label, (lh, lw) in shapes.items() if "decode" in sections else ():
        lat = torch.randn(2, 4, lh, lw, generator=gen, device=device).to(dtype)

        def decode(lat: torch.Tensor = lat) -> torch.Tensor:
            return vae.decode(lat, num_frames=2).sample

        with budget_guard(t0, budget_s, f"decode {label}") as ok:
            if not ok:
                continue
            torch.backends.cudnn.benchmark = False
            with lean_attention(vae):  # the pipeline default (lean_vae_attention=True)
                ref, peak = peak_extra_gib(decode)
                record(f"decode {label} eager lean attention", time_ms(decode), peak, None, None, 2)
                if label.startswith("tile"):
                    kernel_profile(decode, top=12, label=f"decode 2 frames {label}, eager lean")
            out, peak = peak_extra_gib(decode)
            record(f"decode {label} eager plain attention", time_ms(decode), peak, out, ref, 2)
            with sdpa_backends("efficient"):
                out, peak = peak_extra_gib(decode)
                record(f"decode {label} eager sdpa efficient-first", time_ms(decode), peak, out, ref, 2)
            torch.backends.cudnn.benchmark = True
            with lean_attention(vae):
                decode()
                out, peak = peak_extra_gib(decode)
                record(f"decode {label} eager lean + cudnn.benchmark", time_ms(decode), peak, out, ref, 2)
                original = vae.decoder
                vae.decoder = torch.compile(original, dynamic=False)
                try:
                    start = time.perf_counter()
                    decode()
                    print(f"decode {label} compile: first call {time.perf_counter() - start:.1f} s", flush=True)
                    out, peak = peak_extra_gib(decode)
                    record(f"decode {label} compiled + lean + benchmark", time_ms(decode), peak, out, ref, 2)
                    if label.startswith("tile"):
                        kernel_profile(decode, top=8, label=f"decode 2 frames {label}, compiled")
                finally:
                    vae.decoder = original
            torch.backends.cudnn.benchmark = False
    print("\n| lever | ms per call | ms per frame | peak above weights GiB | max abs diff |")
    print("|---|---|---|---|---|")
    for name, ms, peak, diff, per in rows:
        print(f"| {name} | {ms:.1f} | {ms / per:.2f} | {peak:.2f} | {diff} |")


def encode_levers(pipe: StereoInpaintPipeline, tiny: bool, t0: float, budget_s: float, record: Any) -> None:
    """The VAE encode of one frame as the reference runs it at 1080p (a 608x1024 tile of the 2x2 grid, fp32: the SVD
    VAE's force_upcast) against fp16 / bf16, cudnn.benchmark, channels_last and the whole 1088x1920 frame (our
    default since 7bdbec7: the whole frame in the VAE dtype)."""
    scale = 8 if tiny else 1
    gen = torch.Generator().manual_seed(3)
    sizes = {"tile 608x1024": (608 // scale, 1024 // scale), "frame 1088x1920": (1088 // scale, 1920 // scale)}
    for label, (ph, pw) in sizes.items():
        pixels = torch.rand(1, 3, ph, pw, generator=gen).to(pipe.device)
        with budget_guard(t0, budget_s, f"encode {label}") as ok:
            if not ok:
                continue
            fp32 = InpaintSettings(encode_fp32=True)
            half = replace(fp32, encode_fp32=False)

            def encode(settings: InpaintSettings = fp32, x: torch.Tensor = pixels) -> torch.Tensor:
                return pipe._encode(x, settings)

            ref, peak = peak_extra_gib(encode)
            record(f"encode {label} fp32 (the reference)", time_ms(encode), peak, None, None, 1)
            if label.startswith("tile"):
                kernel_profile(encode, top=12, label=f"VAE encode 1 frame {label}, fp32")
            torch.backends.cudnn.benchmark = True
            encode()
            out, peak = peak_extra_gib(encode)
            record(f"encode {label} fp32 + cudnn.benchmark", time_ms(encode), peak, out, ref, 1)
            torch.backends.cudnn.benchmark = False
            out, peak = peak_extra_gib(partial(encode, half))
            record(f"encode {label} {pipe.dtype} (VAE dtype)", time_ms(partial(encode, half)), peak, out, ref, 1)
            if label.startswith("tile"):
                kernel_profile(partial(encode, half), top=8, label=f"VAE encode 1 frame {label}, {pipe.dtype}")
            with module_dtype(pipe.vae, torch.bfloat16):
                out, peak = peak_extra_gib(partial(encode, half))
                record(f"encode {label} bf16", time_ms(partial(encode, half)), peak, out, ref, 1)
            set_channels_last(pipe.vae.encoder, True)
            try:
                out, peak = peak_extra_gib(encode)
                record(f"encode {label} fp32 channels_last", time_ms(encode), peak, out, ref, 1)
            finally:
                set_channels_last(pipe.vae.encoder, False)


def lean_unet_levers(
    pipe: StereoInpaintPipeline, tiny: bool, t0: float, budget_s: float, record: Any, inputs: Any
) -> None:
    """One 23-frame UNet call with diffusers' blocks and with ``use_lean_blocks`` (stereocrafter/svd/lean_unet.py), at
    the 2x2 grid's 608x1024 tile and at the 1x2 grid's 1088x1024 tile of 1920x1080: time and peak memory."""
    from stereocrafter.svd.lean_unet import use_lean_blocks

    scale = 8 if tiny else 1
    frames = 23 if not tiny else 3
    t = torch.tensor(0.75, device=pipe.device)
    for label, (ph, pw) in {"608x1024": (608, 1024), "1088x1024": (1088, 1024)}.items():
        x, e, ids = inputs(ph // 8 // scale, pw // 8 // scale)

        def call(x: torch.Tensor = x, e: torch.Tensor = e, ids: torch.Tensor = ids) -> torch.Tensor:
            return pipe.unet(x, t, encoder_hidden_states=e, added_time_ids=ids, return_dict=False)[0]

        with budget_guard(t0, budget_s, f"lean unet {label}") as ok:
            if not ok:
                continue
            ref, peak = peak_extra_gib(call)
            record(f"unet {label} x{frames} diffusers blocks", time_ms(call), peak, None, None, frames)
            for chunks in (8, 4):
                use_lean_blocks(pipe.unet, chunks)
                try:
                    out, peak = peak_extra_gib(call)
                    record(f"unet {label} x{frames} lean blocks {chunks}", time_ms(call), peak, out, ref, frames)
                finally:
                    use_lean_blocks(pipe.unet, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny models and sizes (smoke test of this script)")
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json / results.md")
    parser.add_argument("--long-frames", type=int, default=100)
    parser.add_argument("--skip", default="", help="comma-separated variant names to skip")
    parser.add_argument("--only", default="", help="comma-separated name prefixes to run (default: all)")
    parser.add_argument("--names", default="", help="comma-separated exact variant names to run (default: all)")
    parser.add_argument("--compile-encoder", action="store_true", help="compiled variants: compile the VAE encoder too")
    parser.add_argument("--budget-s", type=float, default=1e9, help="start no variant after this many seconds")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    parser.add_argument("--levers", action="store_true", help="only the profile + speed levers of one UNet/decode call")
    parser.add_argument("--levers-budget-s", type=float, default=300.0, help="stop starting levers after this")
    parser.add_argument("--compile-unet", action="store_true", help="--levers: also torch.compile the UNet")
    parser.add_argument(
        "--lever-sections", default="unet,encode,lean,decode", help="--levers: which of unet,encode,lean,decode to run"
    )
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        # Off by default: with autotuning every new shape (CFG doubles the batch, the last chunk is shorter, ...)
        # pays a tuning pass and cuDNN's trial workspaces inflate the peak memory (71 GiB seen in the VAE encode).
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    t0 = time.perf_counter()
    pipe = build_models(device, dtype, args.tiny)
    print(f"models built in {time.perf_counter() - t0:.1f} s on {device_name}", flush=True)
    if args.levers:
        levers(pipe, args.tiny, t0, args.levers_budget_s, args.compile_unet, set(args.lever_sections.split(",")))
        return
    skip = set(filter(None, args.skip.split(",")))

    scale = 8 if args.tiny else 1
    small = (512 // scale, 1024 // scale)
    large = (1024 // scale, 1920 // scale)
    full = (1080 // scale, 1920 // scale)
    chunk = 23
    faithful = InpaintSettings.reference(tiles=1)
    faithful2 = InpaintSettings.reference(tiles=2)
    if args.tiny:
        faithful = replace(faithful, multiple=64)
        faithful2 = replace(faithful2, multiple=64, tile_overlap_px=64)

    # warm-up (lazy CUDA init, kernel loading) on a small input
    run_variant(pipe, "warmup", *make_inputs(3, 128, 256), InpaintSettings(steps=2, tiles=(1, 1)))

    rows: list[dict[str, Any]] = []
    diffs: dict[str, dict[str, float]] = {}
    outs: dict[str, torch.Tensor] = {}

    def variant(name: str, size: tuple[int, int], frames_n: int, settings: InpaintSettings) -> None:
        if name in skip:
            return
        frames, mask = make_inputs(frames_n, *size)
        row, out = run_variant(pipe, name, frames, mask, settings)
        rows.append(row)
        outs[name] = out
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "results.json").write_text(json.dumps({"rows": rows, "diffs": diffs}, indent=1))

    g1 = {"guidance_scale": 1.0}
    # name: (size, frames, settings, unet memory format / feed-forward chunking)
    plan: dict[str, tuple[tuple[int, int], int, InpaintSettings, str]] = {
        # one 23-frame chunk, 1024x512, 1 tile; 1920x1024, 2x2 tiles (the reference's figures)
        "faithful 1024 g1.01": (small, chunk, faithful, ""),
        "1024 g1.0": (small, chunk, replace(faithful, **g1), ""),
        "faithful 1920 g1.01": (large, chunk, faithful2, ""),
        "1920 g1.0": (large, chunk, replace(faithful2, **g1), ""),
        # one chunk at 1920x1080 with our defaults (pad to 1088, composite, auto tiles) and fixed tiles
        "1080 chunk defaults g1.0": (full, chunk, InpaintSettings(), ""),
        "1080 chunk g1.01 2x2": (full, chunk, InpaintSettings(guidance_scale=1.01, tiles=(2, 2)), ""),
        # the defaults before the whole-frame encode in the VAE dtype: each tile encoded in fp32
        "1080 chunk fp32 tile encode": (full, chunk, InpaintSettings(encode_fp32=True, encode_full_frame=False), ""),
        # 1920x1080, 100 frames end to end, our defaults
        "1080p clip defaults g1.0": (full, args.long_frames, InpaintSettings(), ""),
        # levers, one 23-frame chunk at 1920x1024
        "1920 g1.01 batch4": (large, chunk, replace(faithful2, tile_batch=4), ""),
        "1920 g1.0 batch4": (large, chunk, replace(faithful2, tile_batch=4, **g1), ""),
        "1920 g1.0 enc-fp16 enc-full": (
            large,
            chunk,
            replace(faithful2, encode_fp32=False, encode_full_frame=True, **g1),
            "",
        ),
        "1920 g1.0 linear-blend": (large, chunk, replace(faithful2, tile_blend="linear", **g1), ""),
        "1920 g1.0 channels_last": (large, chunk, replace(faithful2, **g1), "channels_last"),
        "1920 g1.0 ff-chunked": (large, chunk, replace(faithful2, **g1), "ff_chunk"),
        "1920 g1.0 lean-vae-attn": (large, chunk, replace(faithful2, lean_vae_attention=True, **g1), ""),
        "1920 g1.0 lean-vae-attn decode-1x2": (
            large,
            chunk,
            replace(faithful2, lean_vae_attention=True, decode_tiles=(1, 2), **g1),
            "",
        ),
        "1920 g1.01 ff-chunked": (large, chunk, faithful2, "ff_chunk"),
        "1080 chunk g1.0 2x2 batch4": (full, chunk, InpaintSettings(tiles=(2, 2), tile_batch=4), ""),
        "1080 chunk g1.0 1x2": (full, chunk, InpaintSettings(tiles=(1, 2)), ""),
        "1080p clip defaults g1.01": (full, args.long_frames, InpaintSettings(guidance_scale=1.01), ""),
        # torch.compile (stereocrafter.svd.compiled_svd: UNet blocks + VAE encoder/decoder); each runs twice, the first
        # call ("[compile]") includes compilation. lean_vae_attention off: the pipeline swaps the VAE's attention
        # processors per call under it, which would recompile the decoder every call.
        "1920 g1.0 compiled": (large, chunk, replace(faithful2, **g1), "compiled"),
        "1920 g1.0 compiled enc-fp16-full": (
            large,
            chunk,
            replace(faithful2, encode_fp32=False, encode_full_frame=True, **g1),
            "compiled",
        ),
        "1920 g1.0 compiled batch4": (large, chunk, replace(faithful2, tile_batch=4, **g1), "compiled"),
        "1080 chunk defaults g1.0 compiled": (full, chunk, InpaintSettings(lean_vae_attention=False), "compiled"),
    }
    pairs = [  # (variant, baseline): what one lever changes in the output
        ("1024 g1.0", "faithful 1024 g1.01"),
        ("1920 g1.0", "faithful 1920 g1.01"),
        ("1920 g1.01 batch4", "faithful 1920 g1.01"),
        ("1920 g1.0 batch4", "1920 g1.0"),
        ("1920 g1.0 enc-fp16 enc-full", "1920 g1.0"),
        ("1920 g1.0 linear-blend", "1920 g1.0"),
        ("1920 g1.0 channels_last", "1920 g1.0"),
        ("1920 g1.0 ff-chunked", "1920 g1.0"),
        ("1920 g1.0 lean-vae-attn", "1920 g1.0"),
        ("1920 g1.0 lean-vae-attn decode-1x2", "1920 g1.0"),
        ("1920 g1.01 ff-chunked", "faithful 1920 g1.01"),
        ("1920 g1.0 compiled", "1920 g1.0"),
        ("1920 g1.0 compiled enc-fp16-full", "1920 g1.0"),
        ("1920 g1.0 compiled batch4", "1920 g1.0"),
        ("1080 chunk defaults g1.0 compiled", "1080 chunk defaults g1.0"),
        ("1080 chunk defaults g1.0", "1080 chunk fp32 tile encode"),
    ]
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    names = [p.strip() for p in args.names.split(",") if p.strip()]
    for name, (size, frames_n, settings, unet_mode) in plan.items():
        if name in skip or (only and not any(name.startswith(p) for p in only)) or (names and name not in names):
            continue
        if time.perf_counter() - t0 > args.budget_s:
            print(f"budget reached: skipping {name}", flush=True)
            continue
        set_channels_last(pipe.unet, unet_mode == "channels_last")
        set_ff_chunking(pipe.unet, 1 if unet_mode == "ff_chunk" else None)
        decompile(pipe.unet)
        decompile(pipe.vae)
        if unet_mode == "compiled":
            compile_unet_blocks(pipe.unet)
            compile_vae(pipe.vae, encoder=args.compile_encoder)
            variant(f"{name} [compile]", size, frames_n, settings)
            print(f"dynamo {dict(torch._dynamo.utils.counters['stats'])}", flush=True)
            outs.pop(f"{name} [compile]", None)
        variant(name, size, frames_n, settings)
        if frames_n > chunk:
            outs.pop(name)  # long clips: no comparison, free the memory
        for a, b in pairs:
            if a in outs and b in outs and f"{a} vs {b}" not in diffs:
                diffs[f"{a} vs {b}"] = diff(outs[a], outs[b])
        if args.out:
            (args.out / "results.json").write_text(json.dumps({"rows": rows, "diffs": diffs}, indent=1))
    set_channels_last(pipe.unet, False)
    set_ff_chunking(pipe.unet, None)
    decompile(pipe.unet)
    decompile(pipe.vae)

    table = markdown(rows, diffs, device_name)
    print(table, flush=True)
    if args.out:
        (args.out / "results.json").write_text(json.dumps({"rows": rows, "diffs": diffs}, indent=1))
        (args.out / "results.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
