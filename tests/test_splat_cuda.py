"""CUDA splat kernel: it builds (CPU machines with the CUDA toolkit), and on a GPU it matches splat_torch."""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from stereocrafter.warp import splat_cuda
from stereocrafter.warp.splatting import EPS, MAX_WEIGHT_EXPONENT, ZBUFFER_BASE, splat_torch


def _cuda_toolkit() -> str | None:
    """Path of nvcc when torch can build CUDA extensions here, else None."""
    if torch.version.cuda is None:
        return None
    from torch.utils.cpp_extension import CUDA_HOME

    if CUDA_HOME is None:
        return None
    nvcc = Path(CUDA_HOME) / "bin" / "nvcc"
    return str(nvcc) if nvcc.exists() else shutil.which("nvcc")


REPO_ROOT = Path(__file__).resolve().parent.parent

needs_toolkit = pytest.mark.skipif(
    _cuda_toolkit() is None, reason="needs the CUDA toolkit (nvcc, CUDA_HOME) and a CUDA build of torch"
)
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def fresh_loader(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Forget the cached load result before and after the test (it may change the environment)."""
    monkeypatch.delenv(splat_cuda.DISABLE_ENV, raising=False)
    splat_cuda.load_splat_extension.cache_clear()
    splat_cuda.max_width.cache_clear()
    yield
    splat_cuda.load_splat_extension.cache_clear()
    splat_cuda.max_width.cache_clear()


# --- loader, on any machine ---------------------------------------------------------------------


def test_auto_never_waits_for_a_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not built yet: the build runs once in a background thread and ``cuda_splat_ready`` is False until it ends;
    built (cached) already: no thread, ready at once."""
    release, loads = threading.Event(), []

    def slow_load() -> object:
        loads.append(threading.current_thread().name)
        release.wait(30)
        return object()

    monkeypatch.setattr(splat_cuda.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(splat_cuda, "load_splat_extension", slow_load)
    monkeypatch.setattr(splat_cuda, "_build_thread", None)
    monkeypatch.setattr(splat_cuda, "_is_built", lambda: False)
    assert not splat_cuda.cuda_splat_ready()
    assert not splat_cuda.cuda_splat_ready()  # still building: the same thread, not a second one
    thread = splat_cuda._build_thread
    assert thread is not None and thread.name == "sc3d-splat-build"
    release.set()
    thread.join(30)
    assert splat_cuda.cuda_splat_ready() and splat_cuda._build_thread is thread
    assert loads[0] == "sc3d-splat-build"

    monkeypatch.setattr(splat_cuda, "_build_thread", None)
    monkeypatch.setattr(splat_cuda, "_is_built", lambda: True)
    assert splat_cuda.cuda_splat_ready() and splat_cuda._build_thread is None


def test_disabled_by_environment(fresh_loader: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(splat_cuda.DISABLE_ENV, "1")
    assert splat_cuda.load_splat_extension() is None
    assert not splat_cuda.cuda_splat_available()


def test_failed_build_logs_one_warning_and_returns_none(
    fresh_loader: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(splat_cuda, "SOURCES", ("does_not_exist.cpp",))
    with caplog.at_level(logging.INFO, logger=splat_cuda.__name__):
        assert splat_cuda.load_splat_extension() is None
        assert splat_cuda.load_splat_extension() is None  # cached: no second attempt, no second warning
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "PyTorch fallback" in warnings[0].getMessage()


def test_short_reason_picks_the_compiler_error() -> None:
    exc = RuntimeError(
        "Error building extension 'sc3d_splat': [1/2] nvcc -c splat_kernel.cu\n"
        'splat_kernel.cu(12): error: identifier "foo" is undefined\n'
        "1 error detected"
    )
    assert splat_cuda._short_reason(exc) == 'RuntimeError: splat_kernel.cu(12): error: identifier "foo" is undefined'
    assert splat_cuda._short_reason(ImportError("no module")) == "ImportError: no module"


@needs_toolkit
def test_extension_builds(
    fresh_loader: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The real torch.utils.cpp_extension.load path; builds into torch's extension cache, not the repo."""
    if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")  # one architecture keeps the build short
    with caplog.at_level(logging.INFO, logger=splat_cuda.__name__):
        module = splat_cuda.load_splat_extension()
    assert module is not None, f"the CUDA splat extension did not build: {caplog.text}"
    assert callable(module.splat) and callable(module.max_width)
    assert "building the CUDA splat kernel" in caplog.text


# --- kernel against the PyTorch fallback, on a GPU ---------------------------------------------------

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# Widths cover both prefetch kernels (K = 8 up to 2048 px, K = 16 up to 8192 px), the stream kernel
# above that, and rows over 48 KB of shared memory.
SHAPES = [(1, 1, 1), (1, 7, 37), (3, 16, 517), (2, 9, 1920), (1, 3, 5003), (1, 2, 9001)]


def _inputs(
    b: int, h: int, w: int, dtype: torch.dtype, disp_dtype: torch.dtype | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random frames and a sharp-edged disparity (near blocks over a ramp: collisions and holes), with NaN/inf."""
    gen = torch.Generator().manual_seed(seed)
    frames = torch.rand(b, h, w, 3, generator=gen)
    ramp = torch.linspace(-0.01 * w - 1.3, 0.02 * w + 2.7, w)
    disparity = ramp.expand(b, h, w).clone() + 0.4 * torch.rand(b, h, w, generator=gen)
    for _ in range(4):
        x0 = int(torch.randint(0, w, (1,), generator=gen))
        y0 = int(torch.randint(0, h, (1,), generator=gen))
        x1 = min(w, x0 + 1 + w // 4)
        y1 = min(h, y0 + 1 + h // 3)
        disparity[:, y0:y1, x0:x1] = 0.03 * w + 6.0 + 3.0 * float(torch.rand(1, generator=gen))
    if w > 2 and h > 1:
        disparity[0, 0, 1] = float("nan")
        disparity[-1, h - 1, w // 2] = float("inf")
        disparity[-1, h // 2, :] = float("nan")  # a row with no finite disparity at all
    frames = frames.to("cuda", dtype)
    disparity = disparity.to("cuda", disp_dtype or dtype)
    return frames, disparity


def _assert_matches_fallback(
    frames: torch.Tensor, disparity: torch.Tensor, right: torch.Tensor, occlusion: torch.Tensor, reference_edges: bool
) -> None:
    expected_right, expected_occlusion = splat_torch(frames.float(), disparity.float(), reference_edges)
    assert right.dtype == frames.dtype and occlusion.dtype == frames.dtype
    assert right.shape == frames.shape and occlusion.shape == disparity.shape
    # fp32: 1e-4; fp16/bf16 outputs also carry their own rounding (half an ulp below 1).
    atol = 1e-4 if frames.dtype == torch.float32 else 1e-4 + torch.finfo(frames.dtype).eps / 2
    torch.testing.assert_close(right.float(), expected_right, atol=atol, rtol=0)
    torch.testing.assert_close(occlusion.float(), expected_occlusion, atol=atol, rtol=0)


@needs_gpu
@pytest.mark.parametrize("reference_edges", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cuda_matches_fallback(shape: tuple[int, int, int], dtype: torch.dtype, reference_edges: bool) -> None:
    frames, disparity = _inputs(*shape, dtype)
    right, occlusion = splat_cuda.splat_cuda(frames, disparity, reference_edges)
    _assert_matches_fallback(frames, disparity, right, occlusion, reference_edges)


@needs_gpu
@pytest.mark.parametrize(("dtype", "disp_dtype"), [(torch.float32, torch.float16), (torch.float16, torch.float32)])
def test_disparity_dtype_may_differ(dtype: torch.dtype, disp_dtype: torch.dtype) -> None:
    frames, disparity = _inputs(2, 8, 301, dtype, disp_dtype, seed=3)
    right, occlusion = splat_cuda.splat_cuda(frames, disparity, False)
    _assert_matches_fallback(frames, disparity, right, occlusion, False)


def _raw_splat(frames: torch.Tensor, disparity: torch.Tensor, threads: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    module = splat_cuda.load_splat_extension()
    assert module is not None
    return module.splat(frames, disparity, False, math.log2(ZBUFFER_BASE), MAX_WEIGHT_EXPONENT, EPS, threads)


@needs_gpu
@pytest.mark.parametrize("threads", [32, 96, 1024])
def test_block_sizes(threads: int) -> None:
    frames, disparity = _inputs(2, 6, 1111, torch.float32, seed=5)
    right, occlusion = _raw_splat(frames, disparity, threads)
    _assert_matches_fallback(frames, disparity, right, occlusion, False)


@needs_gpu
def test_huge_disparity_range_and_non_contiguous_input() -> None:
    w = 1000
    frames = torch.rand(1, 2, 3, w, device="cuda").permute(0, 1, 3, 2)  # not contiguous
    disparity = torch.linspace(-400.0, 400.0, w, device="cuda").expand(1, 2, w)  # stride-0 batch/rows
    right, occlusion = splat_cuda.splat_cuda(frames, disparity, False)
    assert torch.isfinite(right).all() and torch.isfinite(occlusion).all()
    _assert_matches_fallback(frames, disparity.contiguous(), right, occlusion, False)


@needs_gpu
def test_rows_wider_than_shared_memory_use_the_fallback() -> None:
    width = splat_cuda.max_width(torch.cuda.current_device()) + 1
    frames, disparity = _inputs(1, 2, width, torch.float16, seed=5)
    right, occlusion = splat_cuda.splat_cuda(frames, disparity, False)
    _assert_matches_fallback(frames, disparity, right, occlusion, False)


@needs_gpu
def test_empty_batch() -> None:
    frames = torch.zeros(0, 4, 5, 3, device="cuda")
    right, occlusion = splat_cuda.splat_cuda(frames, torch.zeros(0, 4, 5, device="cuda"), False)
    assert right.shape == (0, 4, 5, 3) and occlusion.shape == (0, 4, 5)


@needs_gpu
def test_bad_inputs_are_value_errors() -> None:
    frames = torch.zeros(1, 4, 5, 3, device="cuda")
    with pytest.raises(ValueError, match="disparity must be"):
        splat_cuda.splat_cuda(frames, torch.zeros(1, 4, 6, device="cuda"), False)
    with pytest.raises(ValueError, match="same CUDA device"):
        splat_cuda.splat_cuda(frames.cpu(), torch.zeros(1, 4, 5), False)
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        splat_cuda.splat_cuda(frames.double(), torch.zeros(1, 4, 5, device="cuda"), False)


# Run in a child process: a crash while raising a C++ exception fails this test instead of pytest.
_CHECKS_CHILD = """
import math, torch
from stereocrafter.warp import splat_cuda
module = splat_cuda.load_splat_extension()
assert module is not None
dev = "cuda" if torch.cuda.is_available() else "cpu"
frames = torch.zeros(1, 4, 5, 3, device=dev)
cases = [((frames.cpu(), torch.zeros(1, 4, 5)), "`frames` must be a CUDA tensor")]
if dev == "cuda":
    cases += [
        ((frames, torch.zeros(1, 4, 6, device=dev)), "`disparity` must be [B, H, W]"),
        ((frames.double(), torch.zeros(1, 4, 5, device=dev)), "`frames` must be float32"),
        ((frames, torch.zeros(1, 4, 5, device=dev), 33), "`threads` must be"),
    ]
for args, message in cases:
    tensors, threads = args[:2], (args[2] if len(args) > 2 else 0)
    try:
        module.splat(*tensors, False, math.log2(1.414), 200.0, 1e-6, threads)
    except RuntimeError as exc:
        assert message in str(exc), str(exc)
    else:
        raise AssertionError("no error for " + message)
print("checks ok")
"""


@needs_toolkit
def test_extension_checks_name_the_argument() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if not torch.cuda.is_available() and not env.get("TORCH_CUDA_ARCH_LIST"):
        env["TORCH_CUDA_ARCH_LIST"] = "9.0"
    env.pop(splat_cuda.DISABLE_ENV, None)
    child = subprocess.run(
        [sys.executable, "-c", _CHECKS_CHILD], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert child.returncode == 0 and "checks ok" in child.stdout, (
        f"exit code {child.returncode}\n{child.stdout[-2000:]}\n{child.stderr[-4000:]}"
    )


@needs_gpu
def test_runs_on_the_current_stream_without_host_sync() -> None:
    frames, disparity = _inputs(2, 16, 640, torch.float16, seed=6)
    splat_cuda.splat_cuda(frames, disparity, False)  # build, load and query the device outside the check
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.cuda.stream(stream):
            right, occlusion = splat_cuda.splat_cuda(frames, disparity, True)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.current_stream().wait_stream(stream)
    _assert_matches_fallback(frames, disparity, right, occlusion, True)
