"""Fixtures for the end-to-end tests: one real ComfyUI server per session, a client, and test clips.

Every test in this folder is marked ``e2e``. Without ComfyUI in .cache/comfyui (scripts/install_test_deps.sh)
they are skipped, except under CI=true, where a missing dependency is a failure: CI must really run them.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfy_harness import REPO_ROOT, ComfyClient, ComfyServer, comfyui_dir, comfyui_version, require  # noqa: E402
from media import SOURCE_VIDEO, make_depth_clip, make_source_clip  # noqa: E402
from model_dirs import TinyModels, install_tiny_models  # noqa: E402

# One folder per ComfyUI version: .ci/run tests two at the same time.
ARTIFACTS = REPO_ROOT / "tests" / "_artifacts" / f"comfyui-{comfyui_version() or 'unknown'}"
E2E_DIR = Path(__file__).resolve().parent
_state: dict[str, ComfyServer] = {}


def pytest_configure(config: pytest.Config) -> None:
    if not any(line.startswith("e2e:") for line in config.getini("markers")):
        config.addinivalue_line("markers", "e2e: runs the real ComfyUI server (and the browser); slower")


def pytest_report_header(config: pytest.Config) -> str:
    version = comfyui_version() or "not installed"
    return f"e2e: ComfyUI {version} in {comfyui_dir()} (SC3D_COMFYUI_DIR selects another tree)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    server = _state.get("server")
    if server is None or exitstatus == 0:
        return
    terminalreporter.write_sep("=", f"ComfyUI server log (tail; full log: {ARTIFACTS / 'comfyui-server.log'})")
    terminalreporter.write_line(server.log_tail(150))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path):
    require(
        (comfyui_dir() / "main.py").is_file(),
        f"ComfyUI is not installed in {comfyui_dir()}: run scripts/install_test_deps.sh",
    )
    missing = [m for m in ("websocket", "av", "diffusers", "transformers") if importlib.util.find_spec(m) is None]
    require(not missing, f"python packages {missing} are missing: pip install -r requirements-dev.txt")
    server = ComfyServer(tmp_path_factory.mktemp("comfyui-base"))
    _state["server"] = server
    # Before the start: the model loaders list the folders in models/ as their combo options.
    _state["models"] = install_tiny_models(server.base_dir / "models")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if server.log_path.exists():
            shutil.copyfile(server.log_path, artifacts_dir / "comfyui-server.log")


@pytest.fixture(scope="session")
def tiny_models(comfy_server: ComfyServer) -> TinyModels:
    """The tiny random DepthCrafter, StereoCrafter and SVD folders in the server's models/ (model_dirs.py)."""
    return _state["models"]


@pytest.fixture(scope="session")
def comfy(comfy_server: ComfyServer) -> ComfyClient:
    return ComfyClient(comfy_server.url, comfy_server)


@pytest.fixture(scope="session")
def object_info(comfy: ComfyClient, clips: Clips) -> dict:
    """/object_info, fetched after the clips are in the input folder (LoadVideo lists them as its options)."""
    return comfy.object_info()


@dataclass
class Clips:
    """Test videos in the server's input folder, and the frames that were encoded into them."""

    source: np.ndarray  # [N, H, W, 3] what was encoded into `source_name`
    depth: np.ndarray
    source_name: str = "sc3d_source.mp4"  # 8 frames, 480x270, 24 fps, with a 440 Hz tone
    depth_name: str = "sc3d_depth.mp4"  # same frame count, half size (exercises the resize)
    short_depth_name: str = "sc3d_depth_short.mp4"  # 4 frames: a frame-count mismatch
    frames: int = 8
    size: tuple[int, int] = (480, 270)
    # Smaller clips for the model workflows and the examples (the SVD VAE dominates the CPU time: ~6x less than
    # at 480x270).
    small_name: str = "sc3d_small.mp4"  # 8 frames, 256x144, 24 fps, with a tone
    small_depth_name: str = "sc3d_small_depth.mp4"  # same frames and size (moving near disc)
    small_short_depth_name: str = "sc3d_small_depth_short.mp4"  # 4 frames: a frame-count mismatch
    small_size: tuple[int, int] = (256, 144)


@pytest.fixture(scope="session")
def clips(comfy_server: ComfyServer) -> Clips:
    require(SOURCE_VIDEO.is_file(), f"test footage {SOURCE_VIDEO} is missing (shared/data beside the repo)")
    inp = comfy_server.input_dir
    c = Clips(source=np.empty(0), depth=np.empty(0))
    c.source = make_source_clip(inp / c.source_name, frames=c.frames, size=c.size, tone_hz=440.0)
    c.depth = make_depth_clip(inp / c.depth_name, frames=c.frames, size=(c.size[0] // 2, c.size[1] // 2 + 1))  # 240x136
    make_depth_clip(inp / c.short_depth_name, frames=c.frames // 2, size=c.size)
    make_source_clip(inp / c.small_name, frames=c.frames, size=c.small_size, tone_hz=440.0)
    make_depth_clip(inp / c.small_depth_name, frames=c.frames, size=c.small_size)
    make_depth_clip(inp / c.small_short_depth_name, frames=c.frames // 2, size=c.small_size)
    # The names example_workflows/*.json load: the small clips, so the model examples run in seconds as saved.
    shutil.copyfile(inp / c.small_name, inp / "input_video.mp4")
    make_depth_clip(inp / "input_depth.mp4", frames=c.frames, size=c.small_size)
    return c
