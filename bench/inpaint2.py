"""GPU benchmark of StereoCrafter2's inpainting (issue 13, "Speed and memory"): the real-size Wan2.1-VACE-14B
transformer and Wan VAE with RANDOM weights, built straight on the GPU in bf16 (no download, no files written), the
reference v2 script's ``main`` and our StereoCrafter2Pipeline on the same weights, inputs and noise at 1920×1080.

What runs, in one process:

1. models: WanVACETransformer3DModel with diffusers' defaults (= Wan2.1-VACE-14B: 40 layers, 40 heads × 128,
   ffn 13824, VACE layers 0, 5, …, 35, 96 control channels), AutoencoderKLWan with its defaults (= Wan2.1's VAE).
   Parameters are created on the meta device and materialised on the GPU with a seeded random init, in bf16 except
   the modules diffusers keeps in fp32 (``_keep_in_fp32_modules``), as ``from_pretrained(torch_dtype=bf16)`` leaves
   them. The UMT5-XXL text encoder is skipped unless ``--text-encoder``: the prompt embedding is random
   [1, 226, 4096] with zeros after the first token (what the empty prompt gives);
2. a synthetic clip (moving pattern, moving soft hole plus a hole band at the right edge, as a splat leaves);
3. the reference's ``main`` (a local copy of ``inpainting_inference.py`` of Emanuel-de-Jong/StereoCrafter2-VR, never
   committed) with stand-ins: decord hands it our clip as its 2×2 grid, ``from_pretrained`` hands it the models
   built here, ``export_to_video`` catches its float frames. Its global RNG is seeded where its chunk loop starts;
   ours draws from a generator with the same seed in the same order, so the noise is the same;
4. ours at its defaults (composite, crossfaded seams, padding), the same chunk / tile / step settings;
   ``--faithful`` adds ours in reference mode (``Inpaint2Settings.reference``), ``--offload`` streams the
   transformer's blocks from the CPU (diffusers' group offloading, as ``load_stereocrafter2(offload='group')``
   sets it up; ``--offload auto`` = our default: ``plan_offload`` decides from the capped budget, as
   ``load_stereocrafter2`` does), ``--memory-fraction`` / ``--memory-cap-gib`` cap the GPU for our runs (the
   reference always runs uncapped, first); ``--vae-tiling`` (default auto: the memory plan tiles the VAE only when
   whole frames do not fit the cap) and ``--low-cpu-mem`` (diffusers' ``low_cpu_mem_usage``: pin as they move).

Reported per run: wall time, s/frame measured and extrapolated to the reference's 10 steps (the transformer's time
scales with the steps, encode and decode do not), the split (VAE encode, transformer, VAE decode, rest) from
CUDA-synchronised timers wrapped around the modules' ``encode`` / ``decode`` / ``forward``, peak GPU memory
allocated / reserved (``reset_peak_memory_stats`` per run), peak host RSS (``VmHWM``, reset per run), and the max
|ours − reference| over all pixels and inside the holes (outside them ours keeps the warped pixels by design).

GPU (one H200; ~6-7 min at the defaults: 81 frames, 2 steps):
    python3 bench/inpaint2.py [--frames 81] [--steps 2] [--faithful] [--text-encoder] [--json out.json]
    python3 bench/inpaint2.py --skip-reference --offload auto --memory-cap-gib 24   # our default on a 24 GB card
    python3 bench/inpaint2.py --skip-reference --offload group --weights fp8 --low-cpu-mem on --memory-cap-gib 12
CPU smoke test (seconds): .venv/bin/python bench/inpaint2.py --tiny
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import logging
import sys
import time
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stereocrafter.inpaint.inpaint2_pipeline import (  # noqa: E402
    PROMPT_MAX_TOKENS,
    WEIGHTS_MODES,
    Inpaint2Settings,
    StereoCrafter2Pipeline,
    apply_transformer_weights,
    enable_transformer_offload,
    encode_empty_prompt,
    plan_chunks2,
    plan_offload,
)
from stereocrafter.memory_plan import gpu_budget_bytes  # noqa: E402

REFERENCE_STEPS = 10  # the reference's inference_steps default
GIB = 2**30

# WanVACETransformer3DModel's and AutoencoderKLWan's defaults are Wan2.1-VACE-14B's transformer and Wan2.1's VAE
# (diffusers 0.42); spelled out so a change of defaults cannot shrink the benchmark silently.
REAL_TRANSFORMER: dict[str, Any] = dict(
    patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=16, out_channels=16,
    text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    eps=1e-6, rope_max_seq_len=1024, vace_layers=[0, 5, 10, 15, 20, 25, 30, 35], vace_in_channels=96,
)  # fmt: skip
TINY_TRANSFORMER: dict[str, Any] = dict(
    REAL_TRANSFORMER, num_attention_heads=2, attention_head_dim=12, text_dim=32, freq_dim=16, ffn_dim=32,
    num_layers=2, rope_max_seq_len=32, vace_layers=[0],
)  # fmt: skip
REAL_VAE: dict[str, Any] = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2)
TINY_VAE: dict[str, Any] = dict(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1)
# google/umt5-xxl's encoder (Wan2.1's text_encoder/config.json).
REAL_UMT5: dict[str, Any] = dict(
    vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
    layer_norm_epsilon=1e-6, tie_word_embeddings=False,
)  # fmt: skip
TINY_UMT5: dict[str, Any] = dict(
    REAL_UMT5, vocab_size=16, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
    relative_attention_num_buckets=8, relative_attention_max_distance=16,
)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------------
# Models: meta construction, seeded random init on the device
# ----------------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Create every parameter on the meta device (no memory, no init) while buffers stay real: the rope tables are
    computed in ``__init__`` and are not in any checkpoint, so they must survive (``torch.device('meta')`` would
    lose them)."""
    register = torch.nn.Module.register_parameter

    def on_meta(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None:
            module._parameters[name] = torch.nn.Parameter(param.to("meta"), requires_grad=False)

    torch.nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register


def random_init_(t: torch.Tensor, name: str, generator: torch.Generator) -> None:
    """Biases N(0, 0.02), vector / gamma scales 1 (norms), weights N(0, 1/fan_in): activations keep unit scale
    through the 48 blocks (no NaN in bf16), and nothing is zero (diffusers zero-initialises nothing we rely on, but
    a zero projection would hide an input from the comparison)."""
    if name == "bias":
        t.normal_(0.0, 0.02, generator=generator)
    elif name == "gamma" or t.ndim == 1:
        t.fill_(1.0)
    else:
        t.normal_(0.0, t[0].numel() ** -0.5, generator=generator)


def materialize(model: torch.nn.Module, device: torch.device, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    """Meta parameters → random tensors on ``device`` in ``dtype``, fp32 for the modules the model keeps in fp32
    (``_keep_in_fp32_modules``, matched on a dotted-name component as diffusers' loader does); buffers moved, in
    fp32 under those modules. Tied parameters stay tied."""
    keep = list(getattr(model, "_keep_in_fp32_modules", None) or [])
    generator = torch.Generator(device).manual_seed(seed)
    made: dict[int, torch.nn.Parameter] = {}
    for module_name, module in model.named_modules():
        parts = module_name.split(".") if module_name else []
        in_fp32 = any(k in parts for k in keep)
        for name, p in list(module._parameters.items()):
            if p is None:
                continue
            if id(p) not in made:
                fp32 = in_fp32 or name in keep
                t = torch.empty(p.shape, dtype=torch.float32 if fp32 else dtype, device=device)
                random_init_(t, name, generator)
                made[id(p)] = torch.nn.Parameter(t, requires_grad=False)
            module._parameters[name] = made[id(p)]
        for name, b in list(module._buffers.items()):
            if b is not None:
                to = (torch.float32 if in_fp32 else dtype) if b.is_floating_point() else b.dtype
                module._buffers[name] = b.to(device, to)
    return model.eval().requires_grad_(False)


def build_transformer(tiny: bool, device: torch.device, dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    from diffusers import WanVACETransformer3DModel

    with parameters_on_meta():
        model = WanVACETransformer3DModel(**(TINY_TRANSFORMER if tiny else REAL_TRANSFORMER))
    return materialize(model, device, dtype, seed)


def build_vae(tiny: bool, device: torch.device, dtype: torch.dtype, seed: int = 1) -> torch.nn.Module:
    from diffusers import AutoencoderKLWan

    with parameters_on_meta():
        model = AutoencoderKLWan(**(TINY_VAE if tiny else REAL_VAE))
    return materialize(model, device, dtype, seed)


def build_text_encoder(tiny: bool, device: torch.device, dtype: torch.dtype, seed: int = 2) -> torch.nn.Module:
    from transformers import UMT5Config, UMT5EncoderModel

    with parameters_on_meta():
        model = UMT5EncoderModel(UMT5Config(**(TINY_UMT5 if tiny else REAL_UMT5)))
    # One embedding table, as the checkpoint holds (transformers 5 builds the encoder's and ``shared`` apart).
    model.encoder.embed_tokens.weight = model.shared.weight
    return materialize(model, device, dtype, seed)


def count_params(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e9


class EmptyPromptTokenizer:
    """UMT5's tokenizer on the empty prompt: [</s>, <pad>, …] (ids 1, 0, …), attention mask 1 then 0s (the real
    tokenizer is not needed to time the encoder: only the ids of "" matter)."""

    def __call__(self, prompts: list[str], max_length: int = PROMPT_MAX_TOKENS, **_: Any) -> types.SimpleNamespace:
        if any(p.strip() for p in prompts):
            raise ValueError(f"this stand-in only tokenizes the empty prompt, got {prompts!r}")
        ids = torch.zeros(len(prompts), max_length, dtype=torch.long)
        ids[:, 0] = 1
        return types.SimpleNamespace(input_ids=ids, attention_mask=(ids > 0).long())


class FixedTextEncoder(torch.nn.Module):
    """Stands in for UMT5 in the reference: returns a fixed hidden state [1, 226, text_dim]."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("hidden", hidden)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> types.SimpleNamespace:
        return types.SimpleNamespace(last_hidden_state=self.hidden.expand(len(input_ids), -1, -1))


class Prebuilt:
    """``from_pretrained`` that returns a model built here (the reference loads from folders)."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def from_pretrained(self, *_: Any, **__: Any) -> Any:
        return self.obj


# ----------------------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------------------


def make_clip(frames: int, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Warped frames uint8 [T, H, W, 3] (a moving colour pattern with noise) and a grey-level mask uint8 [T, H, W]
    (a moving soft disc, a soft band, and a hard hole band at the right edge as a splat leaves)."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    yy, xx = yy / height, xx / width
    warped = np.empty((frames, height, width, 3), np.uint8)
    mask = np.empty((frames, height, width), np.uint8)
    for t in range(frames):
        phase = 0.15 * t
        for c in range(3):
            wave = np.sin(2 * np.pi * (3 + c) * (xx + 0.5 * yy) + phase + c)
            warped[t, ..., c] = np.clip(127.5 + 100 * wave + g.normal(0, 12, wave.shape), 0, 255)
        disc = 1.5 - np.hypot((xx - 0.3 - 0.004 * t) * width, (yy - 0.5) * height) / (0.12 * min(height, width))
        band = 1.0 - np.abs(xx - 0.6 - 0.1 * np.sin(8 * yy + phase)) * width / 12.0
        m = np.clip(np.maximum(disc, band), 0, 1)
        m[:, -max(1, width // 16) :] = 1.0
        mask[t] = np.round(m * 255)
    return warped, mask


def reference_grid(warped: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The reference's input video: a 2×2 grid per frame (left view | −, mask | warped right view) [T, 2H, 2W, 3].
    The left view is not used by its inpainting; zeros."""
    t, h, w, _ = warped.shape
    grid = np.zeros((t, 2 * h, 2 * w, 3), np.uint8)
    grid[:, h:, :w] = mask[..., None]
    grid[:, h:, w:] = warped
    return grid


# ----------------------------------------------------------------------------------------------------------------------
# Measurement
# ----------------------------------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PhaseTimer:
    """Seconds spent in wrapped callables, per phase, synchronised with the device before and after each call."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    @contextlib.contextmanager
    def wrap(self, obj: Any, attr: str, phase: str) -> Iterator[None]:
        """Shadow ``obj.attr`` with a timed version while the context lasts (an instance attribute, so hooks that
        diffusers put on the instance run inside the timer; the previous instance attribute comes back after)."""
        had = attr in vars(obj)
        prev = vars(obj).get(attr)
        fn = getattr(obj, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            sync(self.device)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                sync(self.device)
                self.seconds[phase] += time.perf_counter() - t0
                self.calls[phase] += 1

        setattr(obj, attr, timed)
        try:
            yield
        finally:
            if had:
                setattr(obj, attr, prev)
            else:
                delattr(obj, attr)


def _proc_status(key: str) -> float:
    """A /proc/self/status memory field in GiB (0 where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / GIB
    except OSError:
        pass
    return 0.0


def reset_peak_rss() -> None:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux: '5' into clear_refs)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


@dataclass
class RunResult:
    name: str
    frames: int
    steps: int
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    gpu_before_gib: float = 0.0
    peak_alloc_gib: float = 0.0
    peak_reserved_gib: float = 0.0
    peak_rss_gib: float = 0.0
    error: str = ""

    @property
    def transformer_per_step(self) -> float:
        return self.phases.get("transformer", 0.0) / self.steps

    def extrapolated(self, steps: int = REFERENCE_STEPS) -> float:
        """Wall time at ``steps`` steps: the transformer's time scales with the steps, the rest does not."""
        return self.seconds + self.phases.get("transformer", 0.0) * (steps / self.steps - 1)


def measure(
    name: str, fn: Callable[[], Any], device: torch.device, frames: int, steps: int,
    modules: dict[str, tuple[Any, str]],
) -> tuple[RunResult, Any]:  # fmt: skip
    """Run ``fn`` once with the phase timers on ``modules`` ({phase: (object, attribute)}); catch an OOM."""
    result = RunResult(name, frames, steps)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        result.gpu_before_gib = torch.cuda.memory_allocated(device) / GIB
    reset_peak_rss()
    timer = PhaseTimer(device)
    out = None
    print(f"[{time.strftime('%H:%M:%S')}] {name}: running", flush=True)
    with contextlib.ExitStack() as stack:
        for phase, (obj, attr) in modules.items():
            stack.enter_context(timer.wrap(obj, attr, phase))
        sync(device)
        t0 = time.perf_counter()
        try:
            out = fn()
        except torch.OutOfMemoryError as exc:
            result.error = "out of memory: " + str(exc).split("\n")[0][:160]
        sync(device)
        result.seconds = time.perf_counter() - t0
    result.phases, result.calls = dict(timer.seconds), dict(timer.calls)
    if device.type == "cuda":
        result.peak_alloc_gib = torch.cuda.max_memory_allocated(device) / GIB
        result.peak_reserved_gib = torch.cuda.max_memory_reserved(device) / GIB
    result.peak_rss_gib = _proc_status("VmHWM")
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {json.dumps(asdict(result))}", flush=True)
    return result, out


# ----------------------------------------------------------------------------------------------------------------------
# The reference
# ----------------------------------------------------------------------------------------------------------------------


def load_reference(path: Path, grid: np.ndarray, seed: int, captured: list[np.ndarray], device: torch.device,
                   models: dict[str, Any]) -> types.ModuleType:  # fmt: skip
    """Import the reference with stand-ins: decord (hands it ``grid``), fire, ftfy (the empty prompt needs no text
    fixing), ``export_to_video`` (catches its float frames), ``from_pretrained`` (returns ``models``)."""

    from compare_stereocrafter2_reference import reference_stand_ins  # bench/ is on sys.path for a bench script

    for name, stub in reference_stand_ins(grid, seed).items():
        if importlib.util.find_spec(name) is None or name == "decord":
            sys.modules[name] = stub
    if not path.is_file():
        raise FileNotFoundError(
            f"--reference {path} does not exist: put a copy of inpainting_inference.py from "
            "Emanuel-de-Jong/StereoCrafter2-VR there (never commit it), or pass --skip-reference."
        )
    spec = importlib.util.spec_from_file_location("sc2_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.DEVICE = device
    # It exports the side-by-side video, then an anaglyph: keep the frames (views, no copy), stack them later.
    module.export_to_video = lambda frames, *a, **k: captured.append(frames)
    module.AutoTokenizer = Prebuilt(models["tokenizer"])
    module.UMT5EncoderModel = Prebuilt(models["text_encoder"])
    module.AutoencoderKLWan = Prebuilt(models["vae"])
    module.WanVACETransformer3DModel = Prebuilt(models["transformer"])
    return module


# ----------------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------------


def diff_stats(ours: np.ndarray, ref: np.ndarray, holes: np.ndarray) -> dict[str, float]:
    """max |ours − ref| over all pixels and inside the holes (binary mask > 0.5), on the frames both returned."""
    n = min(len(ours), len(ref))
    d = np.abs(ours[:n] - ref[:n]).max(axis=-1)  # [n, H, W]
    inside = d[holes[:n]]
    return {
        "frames_compared": n,
        "max_all": float(d.max()),
        "mean_all": float(d.mean()),
        "max_holes": float(inside.max()) if inside.size else 0.0,
        "nan": int(np.isnan(ours).sum()),
    }


def table(results: list[RunResult], frames: int) -> str:
    head = (
        "| run | steps | wall s | s/frame | s/frame @10 steps (extrap.) | VAE encode s | transformer s (per step) "
        "| VAE decode s | rest s | GPU before GiB | peak alloc GiB | peak reserved GiB | peak RSS GiB |"
    )
    rows = [head, "|" + "---|" * 13]
    for r in results:
        if r.error:
            rows.append(f"| {r.name} | {r.steps} | {r.error} |" + " |" * 10)
            continue
        enc, tr, dec = (r.phases.get(k, 0.0) for k in ("encode", "transformer", "decode"))
        rows.append(
            f"| {r.name} | {r.steps} | {r.seconds:.1f} | {r.seconds / frames:.3f} | "
            f"{r.extrapolated() / frames:.3f} | {enc:.1f} | {tr:.1f} ({r.transformer_per_step:.1f}) | {dec:.1f} | "
            f"{r.seconds - enc - tr - dec:.1f} | {r.gpu_before_gib:.2f} | {r.peak_alloc_gib:.2f} | "
            f"{r.peak_reserved_gib:.2f} | {r.peak_rss_gib:.2f} |"
        )
    return "\n".join(rows)


# ----------------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny configs on the CPU (a smoke test in seconds)")
    p.add_argument("--device", default=None, help="default cuda (cpu with --tiny)")
    p.add_argument("--reference", type=Path, default=ROOT / ".sc2_ref" / "inpainting_inference.py")
    p.add_argument("--skip-reference", action="store_true", help="run only ours")
    p.add_argument("--frames", type=int, default=None, help="clip length (default: one chunk, 81; tiny 5)")
    p.add_argument("--height", type=int, default=None, help="default 1080 (tiny 48)")
    p.add_argument("--width", type=int, default=None, help="default 1920 (tiny 80)")
    p.add_argument("--steps", type=int, default=2, help=f"denoising steps (the reference's own: {REFERENCE_STEPS})")
    p.add_argument("--chunk", type=int, default=None, help="frames per chunk (reference 81; tiny 5)")
    p.add_argument("--overlap", type=int, default=10, help="chunk overlap (reference 10; tiny 2)")
    p.add_argument("--tile-num", type=int, default=2, help="tiles per axis (reference command: 2)")
    p.add_argument("--tile-overlap", type=int, default=None, help="tile overlap px (reference 128; tiny 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--faithful", action="store_true", help="also run ours in reference mode (one more run)")
    p.add_argument("--text-encoder", action="store_true", help="build UMT5-XXL and time the one-off encode")
    p.add_argument("--offload", nargs="?", const="group", default="none", choices=("none", "group", "auto"),
                   help="ours with the transformer group-offloaded to the CPU (bare flag = group); auto = our "
                   "default: offload only when the planned peak does not fit the (capped) GPU")  # fmt: skip
    p.add_argument("--low-cpu-mem", choices=("auto", "on", "off"), default="auto",
                   help="group offloading's low_cpu_mem_usage (on: no pinned copy of the weights; auto: on when "
                   "the host's available RAM is under twice the weights)")  # fmt: skip
    p.add_argument("--vae-tiling", choices=("auto", "off", "on"), default="auto",
                   help="Inpaint2Settings.vae_tiling (auto: tiles only when whole frames do not fit)")  # fmt: skip
    p.add_argument("--vae-tile-px", type=int, default=0, help="VAE tile side px (0: planned)")
    p.add_argument("--memory-cap-gib", type=float, default=None,
                   help="cap our runs' GPU at this many GiB (sets --memory-fraction from the total)")  # fmt: skip
    p.add_argument("--offload-type", choices=("block_level", "leaf_level"), default="block_level")
    p.add_argument("--blocks-per-group", type=int, default=1, help="block_level offloading's num_blocks_per_group")
    p.add_argument("--memory-fraction", type=float, default=None, help="cap the GPU for our runs (0..1)")
    p.add_argument("--weights", choices=WEIGHTS_MODES, default="bf16",
                   help="our runs' transformer weights (bf16 faithful); the reference keeps bf16")  # fmt: skip
    p.add_argument("--json", type=Path, default=None, help="write the results there too")
    args = p.parse_args(argv)
    tiny = args.tiny
    args.device = torch.device(args.device or ("cpu" if tiny else "cuda"))
    args.height = args.height or (48 if tiny else 1080)
    args.width = args.width or (80 if tiny else 1920)
    args.chunk = args.chunk or (5 if tiny else 81)
    args.frames = args.frames or args.chunk
    args.tile_overlap = args.tile_overlap if args.tile_overlap is not None else (16 if tiny else 128)
    if tiny and args.overlap == 10:
        args.overlap = 2
    if args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    if args.memory_cap_gib is not None:
        if args.memory_fraction is not None:
            p.error("give --memory-fraction or --memory-cap-gib, not both")
        if args.device.type == "cuda" and torch.cuda.is_available():
            total = torch.cuda.get_device_properties(args.device).total_memory
            args.memory_fraction = min(1.0, args.memory_cap_gib * GIB / total)
    if args.memory_fraction is not None and not 0 < args.memory_fraction <= 1:
        p.error(f"--memory-fraction must be in (0, 1], got {args.memory_fraction}")
    if args.device.type == "cuda" and not torch.cuda.is_available():
        p.error("no CUDA device here: use --tiny (CPU) or --device cpu")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device, dtype = args.device, torch.bfloat16
    # The pipeline's one-line memory plans and out-of-memory retries go to the log: show them with the results.
    logging.basicConfig(level=logging.WARNING, format="[%(asctime)s] %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("stereocrafter").setLevel(logging.INFO)
    print(f"[{time.strftime('%H:%M:%S')}] {vars(args)}", flush=True)
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}

    t0 = time.perf_counter()
    transformer = build_transformer(args.tiny, device, dtype)
    vae = build_vae(args.tiny, device, dtype)
    sync(device)
    report["build_s"] = time.perf_counter() - t0
    report["params_billion"] = {"transformer": count_params(transformer), "vae": count_params(vae)}
    text_dim = transformer.config.text_dim
    print(f"[{time.strftime('%H:%M:%S')}] built in {report['build_s']:.1f} s: {report['params_billion']}", flush=True)

    tokenizer = EmptyPromptTokenizer()
    if args.text_encoder:
        t0 = time.perf_counter()
        text_encoder = build_text_encoder(args.tiny, device, dtype)
        sync(device)
        report["text_encoder"] = {"build_s": time.perf_counter() - t0, "params_billion": count_params(text_encoder)}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            report["text_encoder"]["gpu_before_gib"] = torch.cuda.memory_allocated(device) / GIB
        t0 = time.perf_counter()
        embeds = encode_empty_prompt(tokenizer, text_encoder)
        sync(device)
        report["text_encoder"]["encode_s"] = time.perf_counter() - t0
        if device.type == "cuda":
            report["text_encoder"]["peak_alloc_gib"] = torch.cuda.max_memory_allocated(device) / GIB
        print(f"[{time.strftime('%H:%M:%S')}] text encoder: {report['text_encoder']}", flush=True)
    else:
        # The empty prompt's embedding: the first token's hidden state, zeros after (as the reference pads it).
        g = torch.Generator(device).manual_seed(3)
        embeds = torch.zeros(1, PROMPT_MAX_TOKENS, text_dim, dtype=dtype, device=device)
        embeds[:, :1] = torch.randn(1, 1, text_dim, generator=g, device=device, dtype=dtype)
        text_encoder = FixedTextEncoder(embeds.clone())
        embeds = embeds.cpu()

    pipe = StereoCrafter2Pipeline(transformer, vae, embeds)
    with torch.no_grad():  # CUDA / cuBLAS / cuDNN start-up outside the timed runs
        pipe._decode(pipe._encode(torch.zeros(1, 3, 5, 64, 64, device=device, dtype=dtype)))
        lat = torch.zeros(1, 16, 2, 8, 8, device=device, dtype=dtype)
        transformer(hidden_states=lat, timestep=torch.ones(1, device=device, dtype=dtype),
                    encoder_hidden_states=embeds.to(device), control_hidden_states=lat.repeat(1, 6, 1, 1, 1),
                    return_dict=False)  # fmt: skip
    sync(device)

    t0 = time.perf_counter()
    warped, mask = make_clip(args.frames, args.height, args.width, args.seed)
    holes = mask > 127
    report["clip_s"] = time.perf_counter() - t0
    modules = {"encode": (vae, "encode"), "decode": (vae, "decode"), "transformer": (transformer, "forward")}
    results: list[RunResult] = []
    outputs: dict[str, np.ndarray] = {}
    w = args.width

    if not args.skip_reference:
        captured: list[np.ndarray] = []
        grid = reference_grid(warped, mask)
        models = {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae, "transformer": transformer}
        ref = load_reference(args.reference, grid, args.seed, captured, device, models)

        def run_ref() -> np.ndarray:
            ref.main(
                "Wan2.1-VACE-14B-diffusers", "StereoCrafter2", "/nonexistent/clip_splatting_results.mp4",
                str(Path("/tmp") / "sc2_bench_out"), frames_chunk=args.chunk, frames_overlap=args.overlap,
                tile_overlap=args.tile_overlap, tile_num=args.tile_num, inference_steps=args.steps, seed=args.seed,
            )  # fmt: skip
            return captured[0]

        r, out = measure("reference", run_ref, device, args.frames, args.steps, modules)
        results.append(r)
        if out is not None:
            outputs["reference"] = np.stack([f[:, w:] for f in out])  # its side-by-side frames: left | right
        del out, captured
        del grid, ref, models
    del text_encoder  # the reference keeps UMT5 on the GPU while it runs; ours never holds it

    # The reference ran first on this same transformer: our weights change only now, before group offloading
    # (diffusers' order: layerwise casting, then offloading).
    apply_transformer_weights(transformer, args.weights)
    report["our_weights"] = args.weights
    budget = None
    if args.memory_fraction is not None and device.type == "cuda":
        budget = int(args.memory_fraction * torch.cuda.get_device_properties(device).total_memory)
    elif device.type == "cuda":
        budget = gpu_budget_bytes(device)
    offload = args.offload
    if offload == "auto":  # as load_stereocrafter2(offload='auto') decides, for the capped budget
        load_plan = plan_offload(transformer, vae, device, budget)
        offload = "group" if load_plan is not None and load_plan.offload else "none"
        report["load_plan"] = load_plan.describe(budget) if load_plan is not None else "no plan (not CUDA)"
        print(f"[{time.strftime('%H:%M:%S')}] offload auto: {report['load_plan']}", flush=True)
    report["offload"] = offload
    low_cpu = {"auto": None, "on": True, "off": False}[args.low_cpu_mem]
    if offload == "group":
        transformer.to("cpu")
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if args.offload_type == "block_level" and args.blocks_per_group == 1:
            report["low_cpu_mem"] = enable_transformer_offload(transformer, device, low_cpu)
        else:
            report["low_cpu_mem"] = bool(low_cpu)
            transformer.enable_group_offload(
                onload_device=device, offload_device=torch.device("cpu"), offload_type=args.offload_type,
                num_blocks_per_group=args.blocks_per_group if args.offload_type == "block_level" else None,
                use_stream=device.type == "cuda", low_cpu_mem_usage=bool(low_cpu),
            )  # fmt: skip
    pipe = StereoCrafter2Pipeline(transformer, vae, embeds, device=device, gpu_budget=budget)
    if args.memory_fraction is not None and device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        # set_per_process_memory_fraction wants an index, not a bare "cuda"
        torch.cuda.set_per_process_memory_fraction(args.memory_fraction, torch.device(device).index or 0)
        report["gpu_cap_gib"] = args.memory_fraction * torch.cuda.get_device_properties(device).total_memory / GIB

    frames_t = torch.from_numpy(warped).float().div_(255.0)
    mask_t = torch.from_numpy(mask).float().div_(255.0)
    common = dict(steps=args.steps, chunk_frames=args.chunk, chunk_overlap=args.overlap,
                  tiles=(args.tile_num, args.tile_num), tile_overlap_px=args.tile_overlap,
                  vae_tiling=args.vae_tiling, vae_tile_px=args.vae_tile_px)  # fmt: skip
    placed = "group offload " + args.offload_type if offload == "group" else "resident"
    mode = f" ({'auto: ' if args.offload == 'auto' else ''}{placed}, {args.weights} weights)"
    runs = [("ours" + mode, Inpaint2Settings(**common))]
    if args.faithful:
        runs.append(("ours faithful" + mode, Inpaint2Settings.reference(**common)))
    report["plans"] = {}
    for name, settings in runs:
        # What the stream will plan (it logs the same line when it opens): VAE tiling and tiles for this cap.
        chunks = plan_chunks2(args.frames, settings.chunk_frames, settings.chunk_overlap, pipe.temporal)
        plan = pipe.plan_memory(args.height, args.width, settings, max(c.length for c in chunks))
        report["plans"][name] = plan.describe(budget)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {report['plans'][name]}", flush=True)
        r, out = measure(
            name, lambda s=settings: pipe(frames_t, mask_t, s, seed=args.seed).numpy(), device, args.frames,
            args.steps, modules,
        )  # fmt: skip
        results.append(r)
        if out is not None:
            outputs[name] = out

    report["runs"] = [asdict(r) | {"extrapolated_s": r.extrapolated()} for r in results]
    report["diff_vs_reference"] = {}
    if "reference" in outputs:
        for name, out in outputs.items():
            if name != "reference":
                report["diff_vs_reference"][name] = diff_stats(out, outputs["reference"], holes)
        report["reference_nan"] = int(np.isnan(outputs["reference"]).sum())

    print(f"\n## StereoCrafter2 inpainting, {args.width}×{args.height}, {args.frames} frames, tile_num "
          f"{args.tile_num}, chunk {args.chunk}/{args.overlap}, {args.steps} steps measured "
          f"(extrapolated to {REFERENCE_STEPS}), {device}\n")  # fmt: skip
    print(f"models built in {report['build_s']:.1f} s ({report['params_billion']} billion parameters); "
          f"clip made in {report['clip_s']:.1f} s")  # fmt: skip
    if "text_encoder" in report:
        print(f"text encoder (UMT5): {report['text_encoder']}")
    if "gpu_cap_gib" in report:
        print(f"our runs capped at {report['gpu_cap_gib']:.1f} GiB (set_per_process_memory_fraction)")
    if "load_plan" in report:
        print(f"offload auto (at load): {report['load_plan']}")
    print(f"offload: {report['offload']}" + (f", low_cpu_mem_usage {report['low_cpu_mem']}"
                                              if "low_cpu_mem" in report else ""))  # fmt: skip
    for name, line in report["plans"].items():
        print(f"{name}: {line}")
    print(f"our runs' transformer weights: {report['our_weights']} (the reference's: bf16)")
    print()
    print(table(results, args.frames))
    print()
    ok = {r.name: r for r in results if not r.error}
    if "reference" in ok:
        base = ok["reference"]
        for r in results:
            if r.name != "reference" and r.name in ok:
                print(
                    f"speed {r.name} vs reference: {base.seconds / r.seconds:.2f}× at {args.steps} steps, "
                    f"{base.extrapolated() / r.extrapolated():.2f}× extrapolated to {REFERENCE_STEPS} steps; "
                    f"transformer per step {base.transformer_per_step / max(r.transformer_per_step, 1e-9):.2f}×"
                )
    for name, d in report["diff_vs_reference"].items():
        print(f"|{name} − reference| on the output frames: {d}")
    if "reference_nan" in report:
        print(f"NaN in the reference's output: {report['reference_nan']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
