"""Benchmark of the light depth model (stereocrafter/depth/light_depth.py): s/frame and peak GPU memory of Depth
Anything V2 Small's architecture (random weights, the real sizes: DINOv2 ViT-S/14, 24.8 M parameters) on 1080p frames,
model + preprocessing + stabilisation + upsampling, as the converter's depth pass runs it.

    PYTHONUNBUFFERED=1 python3 bench/light_depth.py [--frames 48] [--batch 8] [--dtype fp16] [--model DIR]

``--model DIR`` times a real Depth-Anything-V2-Small-hf folder instead (and prints the flicker before/after on a
static clip made of one frame repeated with 1 % noise). Targets (printed, never asserted): >= 10x faster than
DepthCrafter's compiled path (0.163 s/frame at 1024x576 on an H200, README), <= 4 GiB of GPU memory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stereocrafter.depth.light_depth import LightDepthPipeline, LightDepthSettings, flicker  # noqa: E402

DEPTHCRAFTER_COMPILED_S_PER_FRAME = 0.163
TARGET_SPEEDUP, TARGET_GIB = 10.0, 4.0
PREPROCESSOR = {
    "size": {"height": 518, "width": 518}, "ensure_multiple_of": 14, "keep_aspect_ratio": True,
    "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
}  # fmt: skip


def small_model() -> torch.nn.Module:
    """Depth Anything V2 Small's architecture, random weights (depth-anything/Depth-Anything-V2-Small-hf's config)."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, patch_size=14,
        image_size=518, out_features=["stage3", "stage6", "stage9", "stage12"], reshape_hidden_states=False,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=384, neck_hidden_sizes=[48, 96, 192, 384],
        fusion_hidden_size=64, head_hidden_size=32, depth_estimation_type="relative",
    )  # fmt: skip
    return DepthAnythingForDepthEstimation(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"])
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--model", type=Path, help="a real Depth Anything folder (Hugging Face layout)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    if device.type == "cpu":
        dtype = torch.float32
        print("no CUDA device: timing on the CPU in fp32 (run on the device for the GPU figure)")
    if args.model is not None:
        pipeline = LightDepthPipeline.from_pretrained(args.model, device, dtype)
    else:
        pipeline = LightDepthPipeline(small_model(), PREPROCESSOR, device, dtype)
    params = sum(p.numel() for p in pipeline.model.parameters()) / 1e6
    width, height = (int(v) for v in args.size.split("x"))
    settings = LightDepthSettings(batch_size=args.batch)
    frames = torch.rand(args.batch, height, width, 3)
    dtype_name = str(dtype).removeprefix("torch.")
    print(f"{params:.1f} M parameters, {dtype_name} on {device}, {width}x{height}, batches of {args.batch}")

    def run(count: int) -> torch.Tensor:
        chunks = [frames] * (count // args.batch) + ([frames[: count % args.batch]] if count % args.batch else [])
        return torch.cat(list(pipeline.stream(chunks, count, settings)))

    run(args.batch)  # warm-up (cuDNN autotuning, allocations)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(3):
        started = time.perf_counter()
        run(args.frames)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - started) / args.frames)
    per_frame = statistics.median(times)
    speedup = DEPTHCRAFTER_COMPILED_S_PER_FRAME / per_frame
    print(f"{per_frame * 1000:.1f} ms/frame ({1 / per_frame:.1f} frames/s); {speedup:.1f}x DepthCrafter compiled "
          f"({DEPTHCRAFTER_COMPILED_S_PER_FRAME} s/frame at 1024x576; target >= {TARGET_SPEEDUP}x)")  # fmt: skip
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
        reserved = torch.cuda.max_memory_reserved() / 2**30
        print(f"GPU peak {peak:.2f} GiB allocated / {reserved:.2f} GiB reserved (target <= {TARGET_GIB} GiB)")
    if args.model is not None:  # flicker on a static clip: one frame repeated with 1 % sensor noise
        base = torch.rand(1, height // 4, width // 4, 3)
        base = torch.nn.functional.interpolate(base.permute(0, 3, 1, 2), size=(height, width), mode="bicubic")
        clip = (base.permute(0, 2, 3, 1) + 0.01 * torch.randn(24, height, width, 3)).clamp(0, 1)
        raw = torch.cat([pipeline.relative_depth(clip[i : i + 8]).cpu() for i in range(0, 24, 8)])
        steady = torch.cat(list(pipeline.stream([clip], 24, settings)))
        print(f"flicker on a static clip: {flicker(raw):.4f} per-frame, {flicker(steady):.4f} stabilised")


if __name__ == "__main__":
    main()
