"""Benchmark of forward splatting: the CUDA kernel against the PyTorch fallback, on one GPU.

Run from the repository root on a machine with a CUDA GPU and the CUDA toolkit (the kernel is built
on first use):

    CUDA_HOME=/usr/local/cuda PYTHONUNBUFFERED=1 python3 bench/splat.py

Prints one table per measurement and a markdown summary at the end (also written to $OUT/splat_bench.md
when OUT is set). Not a test: the targets are printed, never asserted.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stereocrafter.warp import splat_cuda  # noqa: E402
from stereocrafter.warp.splatting import EPS, MAX_WEIGHT_EXPONENT, ZBUFFER_BASE, forward_splat, splat_torch  # noqa: E402

SIZES = ((1024, 576), (1920, 1080), (3840, 2160))
#: Forward-Warp's CUDA kernel (the reference implementation), ms/frame on an H100 at SIZES.
REFERENCE_MS = {(1024, 576): 0.172, (1920, 1080): 0.527, (3840, 2160): 2.01}
TARGET_CUDA_1080P_MS = 0.088
TARGET_TORCH_1080P_MS = 1.0
TARGET_EXTRA_MEMORY = 2.0
#: Bytes each pixel must move at least: read rgb + disparity, write rgb + occlusion.
IDEAL_BYTES_PER_PIXEL = {torch.float32: 32, torch.float16: 16}

#: Block sizes timed by the block-size table; 0 = the launcher's choice (about 8 pixels per thread).
BLOCK_SIZES = (0, 128, 256, 512, 1024)

SplatFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Row:
    size: tuple[int, int]
    dtype: torch.dtype
    disparity: str
    cuda_ms: float
    torch_ms: float
    ideal_ms: float


def sharp_disparity(batch: int, height: int, width: int, max_disp: float, seed: int) -> torch.Tensor:
    """A ramp (0 .. max/2) with random near rectangles at max_disp: depth edges, collisions and holes."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    disp = torch.linspace(0.0, 0.5 * max_disp, width, device="cuda").expand(batch, height, width).clone()
    disp += 0.05 * max_disp * torch.rand(batch, height, width, device="cuda", generator=gen)
    cpu_gen = torch.Generator().manual_seed(seed)
    for b in range(batch):
        for _ in range(6):
            w = int(torch.randint(width // 16, width // 4, (1,), generator=cpu_gen))
            h = int(torch.randint(height // 16, height // 3, (1,), generator=cpu_gen))
            x0 = int(torch.randint(0, width - w, (1,), generator=cpu_gen))
            y0 = int(torch.randint(0, height - h, (1,), generator=cpu_gen))
            disp[b, y0 : y0 + h, x0 : x0 + w] = max_disp * (0.9 + 0.1 * float(torch.rand(1, generator=cpu_gen)))
    return disp


def make_inputs(
    batch: int, height: int, width: int, dtype: torch.dtype, max_disp: float, sets: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for i in range(sets):
        gen = torch.Generator(device="cuda").manual_seed(100 + i)
        frames = torch.rand(batch, height, width, 3, device="cuda", generator=gen).to(dtype)
        out.append((frames, sharp_disparity(batch, height, width, max_disp, seed=i).to(dtype)))
    return out


def time_ms(run: Callable[[int], object], repeats: int, warmup: int = 3) -> float:
    """Median device time (CUDA events, ms) of ``run(i)``, the i-th call; callers rotate input sets by i."""
    for i in range(warmup):
        run(i)
    events = []
    for i in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run(i)
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in events)


def time_splat(fn: SplatFn, inputs: list[tuple[torch.Tensor, torch.Tensor]], repeats: int) -> float:
    """Median ms of one call, rotating among the input sets so that L2 (50 MB on an H100) holds none."""
    return time_ms(lambda i: fn(*inputs[i % len(inputs)]), repeats)


def copy_bandwidth(gib: float = 2.0) -> float:
    """Device-to-device copy bandwidth in bytes/s, counting bytes read plus bytes written."""
    n = int(gib * 2**30)
    src = torch.empty(n, dtype=torch.uint8, device="cuda").random_()
    dst = torch.empty_like(src)
    ms = time_ms(lambda i: dst.copy_(src), repeats=20)
    return 2 * n / (ms * 1e-3)


def extra_memory_ratio(fn: SplatFn, frames: torch.Tensor, disparity: torch.Tensor) -> tuple[float, int]:
    """(peak allocation during the call minus its outputs) / outputs, and the outputs' bytes."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    right, occlusion = fn(frames, disparity)
    torch.cuda.synchronize()
    out_bytes = right.numel() * right.element_size() + occlusion.numel() * occlusion.element_size()
    extra = torch.cuda.max_memory_allocated() - base - out_bytes
    return extra / out_bytes, out_bytes


def no_host_sync(fn: SplatFn, frames: torch.Tensor, disparity: torch.Tensor) -> str:
    fn(frames, disparity)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fn(frames, disparity)
        return "ok"
    except RuntimeError as exc:
        return f"SYNC: {exc}".splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode("default")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--sets", type=int, default=3, help="input sets rotated through while timing")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls of the CUDA kernel per case")
    parser.add_argument("--torch-repeats", type=int, default=10, help="timed calls of the fallback per case")
    parser.add_argument("--skip-torch", action="store_true", help="time only the CUDA kernel")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not torch.cuda.is_available():
        print("needs a CUDA GPU")
        return 1
    ext = splat_cuda.load_splat_extension()
    if ext is None:
        print("the CUDA splat kernel did not build (see the warning above)")
        return 1
    props = torch.cuda.get_device_properties(0)
    print(f"device: {props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}")
    bandwidth = copy_bandwidth()
    print(f"device-to-device copy: {bandwidth / 1e12:.2f} TB/s (read + write)")

    def cuda_fn(frames: torch.Tensor, disparity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return forward_splat(frames, disparity, backend="cuda")

    def torch_fn(frames: torch.Tensor, disparity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return splat_torch(frames, disparity)

    rows: list[Row] = []
    notes: list[str] = []
    print(
        f"\n{'size':>10} {'dtype':>8} {'disp':>8} {'cuda ms/f':>10} {'ideal':>8} {'x ideal':>8} {'x ref':>7} "
        f"{'torch ms/f':>11} {'x ref':>7} {'speedup':>8}"
    )
    for width, height in SIZES:
        for dtype in (torch.float32, torch.float16):
            for label, max_disp in (("20px", 20.0), ("3%W", 0.03 * width)):
                inputs = make_inputs(args.batch, height, width, dtype, max_disp, args.sets)
                per_frame = 1.0 / args.batch
                cuda_ms = time_splat(cuda_fn, inputs, args.repeats) * per_frame
                torch_ms = math.nan if args.skip_torch else time_splat(torch_fn, inputs, args.torch_repeats) * per_frame
                ideal_ms = IDEAL_BYTES_PER_PIXEL[dtype] * width * height / bandwidth * 1e3
                ref = REFERENCE_MS[(width, height)]
                row = Row((width, height), dtype, label, cuda_ms, torch_ms, ideal_ms)
                rows.append(row)
                print(
                    f"{width}x{height:<5} {str(dtype)[6:]:>8} {label:>8} {cuda_ms:10.4f} {ideal_ms:8.4f} "
                    f"{cuda_ms / ideal_ms:8.2f} {cuda_ms / ref:7.3f} {torch_ms:11.3f} {torch_ms / ref:7.2f} "
                    f"{torch_ms / cuda_ms:8.1f}"
                )
                del inputs
                torch.cuda.empty_cache()

    # Block sizes, 4K and 1080p fp32, 20 px.
    block_sizes = []
    consts = (math.log2(ZBUFFER_BASE), MAX_WEIGHT_EXPONENT, EPS)
    for width, height in ((3840, 2160), (1920, 1080)):
        print(f"\nblock sizes, {width}x{height} fp32, 20 px:")
        inputs = make_inputs(args.batch, height, width, torch.float32, 20.0, args.sets)
        for threads in BLOCK_SIZES:

            def sized(f: torch.Tensor, d: torch.Tensor, t: int = threads) -> tuple[torch.Tensor, torch.Tensor]:
                return ext.splat(f, d, False, *consts, t)

            ms = time_splat(sized, inputs, args.repeats) / args.batch
            block_sizes.append(((width, height), threads, ms))
            print(f"  threads={threads or 'auto':>4}: {ms:.4f} ms/frame")

    # Memory and synchronisation, 1080p fp32.
    frames, disparity = inputs[0]
    cuda_extra, cuda_out = extra_memory_ratio(cuda_fn, frames, disparity)
    torch_extra, torch_out = extra_memory_ratio(torch_fn, frames, disparity)
    sync_cuda = no_host_sync(cuda_fn, frames, disparity)
    sync_torch = no_host_sync(torch_fn, frames, disparity)
    print(
        f"\npeak extra memory / outputs (1080p fp32, {args.batch} frames): cuda {cuda_extra:.2f}x "
        f"({cuda_out / 2**20:.0f} MiB out), torch {torch_extra:.2f}x ({torch_out / 2**20:.0f} MiB out)"
    )
    print(f"no host sync: cuda {sync_cuda}, torch {sync_torch}")
    del inputs, frames, disparity

    # Summary.
    def at_1080p(dtype: torch.dtype, attr: str) -> float:
        return max(getattr(r, attr) for r in rows if r.size == (1920, 1080) and r.dtype == dtype)

    cuda_1080 = at_1080p(torch.float32, "cuda_ms")
    torch_1080 = at_1080p(torch.float32, "torch_ms")
    verdict = {True: "met", False: "MISSED"}
    notes.append(
        f"CUDA at 1080p fp32 (worst disparity case): {cuda_1080:.4f} ms/frame, target <= {TARGET_CUDA_1080P_MS}: "
        f"{verdict[cuda_1080 <= TARGET_CUDA_1080P_MS]}"
    )
    notes.append(
        f"fallback at 1080p fp32 (worst disparity case): {torch_1080:.3f} ms/frame, target <= "
        f"{TARGET_TORCH_1080P_MS}: {verdict[torch_1080 <= TARGET_TORCH_1080P_MS]}"
    )
    notes.append(
        f"peak extra memory / outputs, target <= {TARGET_EXTRA_MEMORY}x: CUDA {cuda_extra:.2f}x "
        f"({verdict[cuda_extra <= TARGET_EXTRA_MEMORY]}), fallback {torch_extra:.2f}x "
        f"({verdict[torch_extra <= TARGET_EXTRA_MEMORY]})"
    )
    notes.append(f"no host sync (torch.cuda.set_sync_debug_mode('error')): CUDA {sync_cuda}, fallback {sync_torch}")
    for size in ((1920, 1080), (3840, 2160)):
        timed = ", ".join(f"{t or 'auto'}: {ms:.4f}" for s, t, ms in block_sizes if s == size)
        notes.append(f"block size at {size[0]}x{size[1]} fp32 (threads: ms/frame): {timed}")

    lines = [
        f"Device: {props.name} ({props.multi_processor_count} SMs), torch {torch.__version__}, "
        f"copy bandwidth {bandwidth / 1e12:.2f} TB/s (read + write); batches of {args.batch} frames; "
        "ms/frame = median CUDA-event time of a batch / batch size.",
        "",
        "| size | dtype | max disparity | CUDA ms/frame | ideal ms/frame | CUDA / ideal | CUDA / reference "
        "| fallback ms/frame | fallback / reference | fallback / CUDA |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ref = REFERENCE_MS[r.size]
        lines.append(
            f"| {r.size[0]}x{r.size[1]} | {str(r.dtype)[6:]} | {r.disparity} | {r.cuda_ms:.4f} | {r.ideal_ms:.4f} "
            f"| {r.cuda_ms / r.ideal_ms:.2f} | {r.cuda_ms / ref:.3f} | {r.torch_ms:.3f} | {r.torch_ms / ref:.2f} "
            f"| {r.torch_ms / r.cuda_ms:.1f} |"
        )
    lines += ["", *[f"- {n}" for n in notes]]
    table = "\n".join(lines)
    print("\n" + table)
    out_dir = os.environ.get("OUT")
    if out_dir:
        Path(out_dir, "splat_bench.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
