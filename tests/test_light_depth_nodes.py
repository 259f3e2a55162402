"""LoadDepthAnything and LightVideoDepth inside each installed real ComfyUI (0.3.75 in .cache/comfyui, 0.33 in
.cache/comfyui-0.33), run as ComfyUI runs them (the V3 schema's execute, ComfyUI's own prompt validation and
progress hook), without a server, on a tiny random Depth Anything in the Hugging Face layout (tiny_depth_anything.py):

- models/depth_anything is registered as a model folder, and a folder name that is not in the combo passes ComfyUI's
  validation (the loader then names the folder and download_missing) while the precision combo is still checked;
- the loader hands the model to ComfyUI's memory manager (a ModelPatcher on ComfyUI's devices);
- LightVideoDepth: depth IMAGE [T, H, W, 3], grey, 0..1 over the clip, steady on a static clip, one progress step per
  model batch, Cancel stops it before the next batch, bad images named;
- a missing folder and a folder of another model name the folder, the repository and the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_depth_anything import make_tiny_depth_anything
from tests.tiny_models import make_depthcrafter_folder

REPO_ROOT = Path(__file__).resolve().parent.parent
TREES = {"0.3.75": REPO_ROOT / ".cache" / "comfyui", "0.33": REPO_ROOT / ".cache" / "comfyui-0.33"}

SCRIPT = r"""
import asyncio, importlib.util, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from comfy.cli_args import args
args.cpu = True
import torch
import comfy.model_management as model_management
import comfy.utils
import execution
import folder_paths
import nodes

spec = importlib.util.spec_from_file_location("sc3d_light_pack", sys.argv[2] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[2]])
pack = importlib.util.module_from_spec(spec); sys.modules[spec.name] = pack; spec.loader.exec_module(pack)
node_list = asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())
by_id = {n.GET_SCHEMA().node_id: n for n in node_list}
for node_id, node in by_id.items():
    nodes.NODE_CLASS_MAPPINGS[node_id] = node
load, light = by_id["SC3D_LoadDepthAnything"], by_id["SC3D_LightVideoDepth"]
tiny, wrong = sys.argv[3], sys.argv[4]
report = {"depth_anything_paths": folder_paths.get_folder_paths("depth_anything"),
          "models_dir": folder_paths.models_dir}

def validate(inputs):
    prompt = {"1": {"class_type": "SC3D_LoadDepthAnything", "inputs": inputs}}
    ok, errors, _ = asyncio.run(execution.validate_inputs("probe", prompt, "1", {}))
    return [] if ok else [f"{e['type']}: {e.get('details', '')}" for e in errors]

loader = {"depth_anything": "NotDownloadedYet", "precision": "auto", "download_missing": False}
report["missing_folder_errors"] = validate(loader)
report["bad_precision_errors"] = validate({**loader, "precision": "fp8-bogus"})

def error_of(call):
    try:
        call()
    except BaseException as exc:  # ComfyUI 0.33's InterruptProcessingException is no Exception
        return f"{type(exc).__name__}: {exc}"
    return None

report["missing_message"] = error_of(lambda: load.execute("NotDownloadedYet", "auto", False))
report["wrong_message"] = error_of(lambda: load.execute(wrong, "fp32", False))

managed = load.execute(tiny, "auto", False).args[0]  # an absolute folder is used as is
report["patcher"] = [type(managed.patcher).__name__, str(managed.patcher.load_device),
                     str(managed.patcher.offload_device), str(managed.dtype), type(managed.patcher.model).__name__]

steps = []
if hasattr(comfy.utils, "PROGRESS_THROTTLE_MIN_INTERVAL"):  # 0.33 drops updates within 100 ms of the last one
    comfy.utils.PROGRESS_THROTTLE_MIN_INTERVAL = 0.0
comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: steps.append([value, total]))
torch.manual_seed(0)
static = torch.rand(1, 56, 70, 3).expand(5, -1, -1, -1).contiguous()
depth = light.execute(managed, static, True, 0.6, 0.05, 2).args[0]
report["steps"] = list(steps)
report["shape"] = list(depth.shape)
report["dtype"] = str(depth.dtype)
report["grey"] = bool(torch.equal(depth[..., 0], depth[..., 1]) and torch.equal(depth[..., 0], depth[..., 2]))
report["range"] = [float(depth.min()), float(depth.max())]
report["static_change"] = float((depth[1:] - depth[:-1]).abs().max())
moving = torch.rand(3, 42, 84, 4)  # RGBA: the alpha channel is ignored
report["rgba_shape"] = list(light.execute(managed, moving, False, 0.0, 0.05, 8).args[0].shape)
report["bad_images"] = error_of(lambda: light.execute(managed, torch.rand(0, 8, 8, 3), True, 0.6, 0.05, 2))

steps.clear()
model_management.interrupt_current_processing(True)
report["interrupted"] = error_of(lambda: light.execute(managed, static, True, 0.6, 0.05, 2))
report["steps_after_interrupt"] = len(steps)
model_management.interrupt_current_processing(False)
print("PROBE " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the tiny Depth Anything, a DepthCrafter UNet folder with the three file names a Depth Anything has)."""
    base = tmp_path_factory.mktemp("light_depth_nodes")
    tiny = make_tiny_depth_anything(base / "Depth-Anything-V2-Small-hf")
    wrong = make_depthcrafter_folder(base / "DepthCrafter")
    (wrong / "model.safetensors").write_bytes((wrong / "diffusion_pytorch_model.safetensors").read_bytes())
    (wrong / "preprocessor_config.json").write_text("{}")
    return tiny, wrong


@pytest.fixture(scope="module", params=list(TREES))
def report(request: pytest.FixtureRequest, folders: tuple[Path, Path]) -> dict:
    comfy_dir = TREES[request.param]
    if not (comfy_dir / "main.py").is_file():
        pytest.skip(f"ComfyUI {request.param} is not installed in {comfy_dir}")
    env = {**os.environ, "PYTHONPATH": str(comfy_dir / ".sc3d-site-packages"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(comfy_dir), str(REPO_ROOT), *map(str, folders)],
        capture_output=True, text=True, timeout=300, env=env, cwd=comfy_dir,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1][len("PROBE ") :])
    result["version"] = request.param
    return result


def test_model_folder_is_registered_and_validated(report: dict) -> None:
    registered = [os.path.normpath(p) for p in report["depth_anything_paths"]]
    assert os.path.join(os.path.normpath(report["models_dir"]), "depth_anything") in registered, registered
    assert report["missing_folder_errors"] == []  # our loader names the folder, not ComfyUI's combo check
    if report["version"] != "0.3.75":  # 0.3.75 does not check V3 combos
        assert any("value_not_in_list" in error for error in report["bad_precision_errors"])


def test_loader_hands_the_model_to_comfyui(report: dict) -> None:
    # --cpu: auto is fp32; ComfyUI's log names the model by its class: the pipeline's name, not "ModuleDict"
    assert report["patcher"] == ["ModelPatcher", "cpu", "cpu", "torch.float32", "LightDepthPipeline"]


def test_light_video_depth_output(report: dict) -> None:
    assert report["shape"] == [5, 56, 70, 3] and report["dtype"] == "torch.float32"
    assert report["grey"]
    assert report["range"] == [0.0, 1.0]  # normalised over the clip, as VideoDepth
    assert report["static_change"] < 1e-4  # identical frames, identical depth
    assert report["steps"] == [[1, 3], [2, 3], [3, 3]]  # 5 frames in batches of 2
    assert report["rgba_shape"] == [3, 42, 84, 3]
    assert report["bad_images"].startswith("ValueError") and "images" in report["bad_images"]


def test_cancel_stops_before_the_next_batch(report: dict) -> None:
    assert report["interrupted"] is not None and "Interrupt" in report["interrupted"], report["interrupted"]
    assert report["steps_after_interrupt"] == 0


def test_missing_folder_is_named(report: dict) -> None:
    message = report["missing_message"]
    assert message.startswith("MissingModelsError"), message
    assert f"'NotDownloadedYet' was not found in {Path(report['models_dir']) / 'depth_anything'}" in message
    assert "depth-anything/Depth-Anything-V2-Small-hf" in message and "download_missing" in message


def test_wrong_model_folder_is_named(report: dict, folders: tuple[Path, Path]) -> None:
    message = report["wrong_message"]
    assert message.startswith("WrongModelFolderError"), message
    assert f"{folders[1]}/config.json is not a depth-estimation model" in message, message
    assert "UNetSpatioTemporalConditionModel" in message and "depth-anything/Depth-Anything-V2-Small-hf" in message
