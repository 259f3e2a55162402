"""Real-size SVD-xt architectures with random weights, and the measurement helpers the GPU benchmarks share.

The UNet config is the one DepthCrafter and StereoCrafter ship (reference.md §4.2; StereoCrafter's differs only
in ``in_channels`` 9), the VAE and CLIP configs are SVD-xt-1-1's, the scheduler config is
``tests/tiny_models.SCHEDULER_CONFIG`` (a copy of SVD's scheduler_config.json).
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.tiny_models import SCHEDULER_CONFIG  # noqa: E402,F401  (re-exported for the benchmarks)


def svd_unet_config(in_channels: int) -> dict[str, Any]:
    """The SVD UNet config: ``in_channels`` 8 for DepthCrafter, 9 for StereoCrafter."""
    return {
        "sample_size": 96,
        "in_channels": in_channels,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
        "up_block_types": ("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
        "block_out_channels": (320, 640, 1280, 1280),
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 768,
        "layers_per_block": 2,
        "cross_attention_dim": 1024,
        "transformer_layers_per_block": 1,
        "num_attention_heads": (5, 10, 20, 20),
        "num_frames": 25,
    }


def build_vae_and_clip(device: torch.device, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Module]:
    """SVD's temporal-decoder VAE and CLIP ViT-H/14 image encoder, random weights, eval mode on ``device``."""
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.device(device):
        vae = AutoencoderKLTemporalDecoder(
            down_block_types=("DownEncoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=4,
            sample_size=768,
            scaling_factor=0.18215,
            force_upcast=True,
        )
        config = CLIPVisionConfig(
            hidden_size=1280,
            intermediate_size=5120,
            num_hidden_layers=32,
            num_attention_heads=16,
            patch_size=14,
            image_size=224,
            projection_dim=1024,
            hidden_act="gelu",
        )
        config._attn_implementation = "sdpa"
        clip = CLIPVisionModelWithProjection(config)
    return place(vae, device, dtype), place(clip, device, dtype)


def place(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move to ``device``/``dtype`` in eval mode without gradients.

    Explicitly, even after building under ``torch.device(device)``: a few parameters are created with the legacy
    ``torch.Tensor(...)`` constructor, which ignores the default-device context (the UNet's temporal mix factors).
    """
    return module.to(device=device, dtype=dtype).eval().requires_grad_(False)


# ----------------------------------------------------------------------------------------------------------------------
# Measurement helpers for the lever probes (bench/depth.py --levers, bench/inpaint.py --levers)
# ----------------------------------------------------------------------------------------------------------------------

GIB = 1024**3

# Kernel-name patterns → category, first match wins (cuDNN convs are "implicit_gemm": conv before gemm).
KERNEL_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("attention (flash)", r"flash"),
    ("attention (mem-efficient)", r"fmha|cutlassF|efficient_attention|mem_eff"),
    ("attention (cuDNN)", r"cudnn.*(attn|sdpa|flash)|sm90.*fmha|fprop.*attn"),
    ("softmax (math attention)", r"softmax"),
    ("triton (inductor-fused)", r"^triton_"),
    ("conv", r"conv|fprop|implicit|dgrad|winograd|precomputed|nchwToNhwc|nhwcToNchw|cudnn"),
    ("gemm", r"gemm|nvjet|cutlass|Kernel2|splitK|xmma"),
    ("norm", r"norm|Moments|FusedParams|welford"),
    ("copy/layout", r"copy|cat_|CatArray|transpose|permute|Memcpy|Memset|index"),
    ("elementwise", r"elementwise|vectorized|unrolled|reduce|silu|gelu|sigmoid"),
)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_ms(fn: Callable[[], Any], iters: int = 3, warmup: int = 1) -> float:
    """Median wall milliseconds of ``fn()`` (device synchronised around each call) after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def peak_extra_gib(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(``fn()``, its peak device memory above what was allocated before it, GiB); 0 on the CPU."""
    if not torch.cuda.is_available():
        return fn(), 0.0
    sync()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn()
    sync()
    return out, (torch.cuda.max_memory_allocated() - base) / GIB


def categorize(name: str) -> str:
    for category, pattern in KERNEL_CATEGORIES:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return category
    return "other"


def kernel_profile(fn: Callable[[], Any], top: int = 12, label: str = "") -> dict[str, float]:
    """Profile one ``fn()`` call: print the top device kernels and the time per category; return {category: ms}.

    Uses the kernels' self device time, so nothing is counted twice. On the CPU it profiles CPU ops instead.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    sync()
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        fn()
        sync()
    wall_ms = (time.perf_counter() - start) * 1e3
    rows = []
    for event in prof.key_averages():
        if cuda and getattr(event, "device_type", None) != DeviceType.CUDA:
            continue
        us = event.self_device_time_total if cuda else event.self_cpu_time_total
        if us > 0:
            rows.append((us / 1e3, event.count, event.key))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    categories: dict[str, float] = {}
    for ms, _, name in rows:
        categories[categorize(name)] = categories.get(categorize(name), 0.0) + ms
    print(f"profile {label}: kernels {total:.1f} ms in {sum(r[1] for r in rows)} launches, wall {wall_ms:.1f} ms")
    for category, ms in sorted(categories.items(), key=lambda kv: -kv[1]):
        print(f"  {category:28} {ms:9.1f} ms  {100 * ms / max(total, 1e-9):5.1f} %")
    for ms, count, name in rows[:top]:
        print(f"  {ms:9.1f} ms {count:5d}x  {categorize(name)[:12]:12} {name[:110]}")
    return {"kernel_ms": total, "wall_ms": wall_ms, **categories}


def sdpa_backends(name: str) -> Any:
    """An SDPA backend context by name: "default" (PyTorch's order), or "cudnn" / "flash" / "efficient" / "math"
    tried FIRST (the others stay allowed after it, so shapes it rejects still run)."""
    from contextlib import nullcontext

    from torch.nn.attention import SDPBackend, sdpa_kernel

    if name == "default":
        return nullcontext()
    first = {
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }[name]
    order = [first] + [
        b for b in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH) if b != first
    ]
    return sdpa_kernel(order, set_priority=True)


@contextmanager
def budget_guard(t0: float, budget_s: float, label: str) -> Iterator[bool]:
    """Yield whether there is time left for ``label``; print and swallow any exception of the block (a lever that
    fails is reported, the probe goes on)."""
    left = budget_s - (time.perf_counter() - t0)
    if left <= 0:
        print(f"SKIP {label}: budget reached", flush=True)
        yield False
        return
    try:
        yield True
    except Exception as exc:  # noqa: BLE001 (report every failing lever and go on)
        print(f"FAILED {label}: {type(exc).__name__}: {str(exc)[:400]}", flush=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(max abs difference, max abs of ``b``) in fp32."""
    return float((a.float() - b.float()).abs().max()), float(b.float().abs().max())
