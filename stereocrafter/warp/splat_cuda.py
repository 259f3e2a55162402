"""Loader of the CUDA forward-splatting kernel (``cuda_ext/``), compiled on first use.

The kernel computes exactly what :func:`stereocrafter.warp.splatting.splat_torch` computes (up to fp32
rounding and the order of atomic additions) in one pass: one thread block per image row keeps the
row's accumulators in shared memory. Rows wider than the GPU's shared memory allows (about 11000
pixels on an H100, see :func:`max_width`) are handed to the PyTorch fallback by :func:`splat_cuda`.

When the extension cannot be built (no CUDA toolkit, a compiler error, ``SC3D_DISABLE_CUDA_EXT=1``)
:func:`load_splat_extension` logs one warning and returns ``None``; callers then use the fallback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

logger = logging.getLogger(__name__)

EXTENSION_NAME = "sc3d_splat"
CUDA_EXT_DIR = Path(__file__).resolve().parents[2] / "cuda_ext"
SOURCES = ("splat.cpp", "splat_kernel.cu")
#: Set to 1 to never build or use the CUDA kernel.
DISABLE_ENV = "SC3D_DISABLE_CUDA_EXT"
#: Architecture built for when no GPU is visible and TORCH_CUDA_ARCH_LIST is unset (CI, build checks).
DEFAULT_ARCH_LIST = "9.0"
# No --use_fast_math: its time goes to shared-memory atomics, not arithmetic, and exact exp2f and
# division keep the results within fp32 rounding of the PyTorch fallback.
EXTRA_CUDA_CFLAGS = ("-O3", "-lineinfo")


def _disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _arch_list() -> tuple[str, bool]:
    """Architectures to build for, and whether TORCH_CUDA_ARCH_LIST must be set to them for the build."""
    configured = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if configured:
        return configured, False
    if torch.cuda.is_available():
        # torch's build picks the visible GPUs' architectures itself; these name the build folder.
        caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
        return ";".join(f"{major}.{minor}" for major, minor in caps), False
    return DEFAULT_ARCH_LIST, True


def _build_directory(arch_list: str) -> Path:
    """Per torch version, Python, CUDA and architectures: a stale binary is never loaded after an upgrade."""
    from torch.utils.cpp_extension import get_default_build_root

    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())
    tag = (
        f"{EXTENSION_NAME}_py{sys.version_info.major}{sys.version_info.minor}"
        f"_torch{torch.__version__}_cu{torch.version.cuda}_sm{arch_list}"
    )
    return root / re.sub(r"[^A-Za-z0-9_.-]+", "-", tag)


@contextlib.contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    """Set an environment variable for the duration of the block (``None`` leaves it alone)."""
    if value is None:
        yield
        return
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _short_reason(exc: BaseException) -> str:
    """One line out of a possibly very long build log: the first compiler error, else the first line."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # Compiler diagnostics read "file:line: error: ..." or "fatal error: ..."; torch's own
    # "Error building extension" line comes first but says nothing.
    error_lines = [line for line in lines if re.search(r"\berror\s*:", line, re.IGNORECASE)]
    line = (error_lines or lines or [""])[0]
    reason = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return reason if len(reason) <= 300 else reason[:297] + "..."


#: Where CUDA toolkits usually live, tried when torch's own guess has no toolkit in it.
TOOLKIT_CANDIDATES = ("/usr/local/cuda", "/opt/cuda")


def _is_toolkit(root: str | None) -> bool:
    return bool(root) and (Path(root) / "include" / "cuda_runtime.h").is_file()


def _ensure_cuda_home() -> None:
    """Point torch's extension builder at a real CUDA toolkit.

    Without CUDA_HOME, torch guesses the toolkit from the ``nvcc`` on PATH; a wrapper script such as
    ``/usr/local/bin/nvcc`` makes that guess ``/usr/local``, and linking ``-lcudart`` then fails.
    """
    from torch.utils import cpp_extension

    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or _is_toolkit(cpp_extension.CUDA_HOME):
        return
    for candidate in TOOLKIT_CANDIDATES:
        if _is_toolkit(candidate):
            logger.info("CUDA_HOME is not set; using the CUDA toolkit in %s", candidate)
            os.environ["CUDA_HOME"] = candidate
            cpp_extension.CUDA_HOME = candidate
            return


@functools.cache
def load_splat_extension() -> ModuleType | None:
    """Build (first call, then cached on disk) and import the CUDA splat extension.

    Needs the CUDA toolkit (nvcc, CUDA_HOME) but no GPU. Returns the module (``splat``,
    ``max_width``), or ``None`` after one warning when it is disabled or cannot be built/imported.
    """
    if _disabled():
        logger.info("%s is set: the CUDA splat kernel is not built, the PyTorch fallback is used.", DISABLE_ENV)
        return None
    try:
        from torch.utils.cpp_extension import load

        if torch.version.cuda is None:
            raise RuntimeError(f"this torch ({torch.__version__}) is built without CUDA")
        _ensure_cuda_home()
        arch_list, set_arch = _arch_list()
        build_dir = _build_directory(arch_list)
        build_dir.mkdir(parents=True, exist_ok=True)
        logger.info("building the CUDA splat kernel (first use, cached in %s)", build_dir)
        with _env("TORCH_CUDA_ARCH_LIST", arch_list if set_arch else None):
            module = load(
                name=EXTENSION_NAME,
                sources=[str(CUDA_EXT_DIR / source) for source in SOURCES],
                extra_cflags=["-O3"],
                extra_cuda_cflags=list(EXTRA_CUDA_CFLAGS),
                build_directory=str(build_dir),
                verbose=False,
            )
    except Exception as exc:  # any failure (toolkit, compiler, import) means: use the fallback
        logger.warning("CUDA splat kernel unavailable (%s); the PyTorch fallback is used.", _short_reason(exc))
        logger.debug("CUDA splat kernel build failure", exc_info=True)
        return None
    logger.info("CUDA splat kernel ready (sm %s).", arch_list)
    return module


def cuda_splat_available() -> bool:
    """True when a CUDA GPU is visible and the kernel builds (building it on the first call)."""
    return torch.cuda.is_available() and load_splat_extension() is not None


_build_thread: threading.Thread | None = None
_build_lock = threading.Lock()


def _is_built() -> bool:
    """Whether this torch/Python/CUDA/architecture's binary is already in the extensions cache."""
    try:
        arch_list, _ = _arch_list()
    except Exception:  # no GPU to ask: nothing to load either
        return False
    return (_build_directory(arch_list) / f"{EXTENSION_NAME}.so").is_file()


def start_background_build() -> None:
    """Build the extension in a daemon thread, once, unless it is disabled. The build takes about 30 s of nvcc;
    meanwhile ``auto`` splats run the PyTorch fallback (same result, under 1 ms per 1080p frame on a GPU)."""
    global _build_thread
    with _build_lock:
        if _build_thread is None and not _disabled():
            _build_thread = threading.Thread(target=load_splat_extension, name="sc3d-splat-build", daemon=True)
            _build_thread.start()


def cuda_splat_ready() -> bool:
    """True when a CUDA GPU is visible and the kernel can be used without waiting for a build: it is in the
    extensions cache (loaded now), or a background build finished. Otherwise the build starts in the background
    (:func:`start_background_build`) and this returns False until it is done."""
    if not torch.cuda.is_available():
        return False
    if _build_thread is None and not _is_built():
        start_background_build()
    if _build_thread is not None and _build_thread.is_alive():
        return False
    return load_splat_extension() is not None


@functools.cache
def max_width(device_index: int) -> int:
    """Widest row (pixels) the kernel handles on this GPU (0 if the extension is unavailable)."""
    ext = load_splat_extension()
    return 0 if ext is None else int(ext.max_width(device_index))


def splat_cuda(
    frames: torch.Tensor, disparity: torch.Tensor, reference_edges: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward splat with the CUDA kernel, on the current stream, without host synchronisation.

    Args:
        frames: [B, H, W, 3] CUDA, fp32/fp16/bf16, values 0..1 (made contiguous if needed).
        disparity: [B, H, W] CUDA float of any of those dtypes, in pixels; non-finite splats nothing.
        reference_edges: the reference kernel's border rule (see ``forward_splat``).

    Returns:
        right [B, H, W, 3] and occlusion [B, H, W], both in ``frames``' dtype. Rows wider than
        :func:`max_width` are computed by the PyTorch fallback instead (logged once).

    Raises:
        ValueError: for inputs outside the contract above.
        RuntimeError: if the extension is unavailable (check :func:`cuda_splat_available` first).
    """
    # Imported here: splatting imports this module, and owns the constants both backends share.
    from .splatting import EPS, MAX_WEIGHT_EXPONENT, ZBUFFER_BASE, splat_torch

    _check_inputs(frames, disparity)
    ext = load_splat_extension()
    if ext is None:
        raise RuntimeError("the CUDA splat kernel is unavailable; use the PyTorch fallback (splat_torch).")
    width = frames.shape[2]
    if width > max_width(frames.device.index if frames.device.index is not None else torch.cuda.current_device()):
        _log_too_wide(width)
        right, occlusion = splat_torch(frames, disparity, reference_edges)
        return right.to(frames.dtype), occlusion.to(frames.dtype)
    return ext.splat(
        frames.contiguous(),
        disparity.contiguous(),
        bool(reference_edges),
        math.log2(ZBUFFER_BASE),
        MAX_WEIGHT_EXPONENT,
        EPS,
    )


_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _check_inputs(frames: torch.Tensor, disparity: torch.Tensor) -> None:
    """The extension checks these too; checking here gives Python errors without a C++ round trip."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [B, H, W, 3], got shape {tuple(frames.shape)}.")
    if disparity.shape != frames.shape[:3]:
        raise ValueError(
            f"disparity must be [B, H, W] matching frames {tuple(frames.shape[:3])}, got {tuple(disparity.shape)}."
        )
    if frames.dtype not in _KERNEL_DTYPES or disparity.dtype not in _KERNEL_DTYPES:
        raise ValueError(
            f"frames and disparity must be float32, float16 or bfloat16, got {frames.dtype} and {disparity.dtype}."
        )
    if not frames.is_cuda or disparity.device != frames.device:
        raise ValueError(
            f"frames and disparity must be on the same CUDA device, got {frames.device} and {disparity.device}."
        )


@functools.cache
def _log_too_wide(width: int) -> None:
    logger.info("rows of %d pixels exceed the CUDA splat kernel's shared memory; using the PyTorch fallback.", width)
