"""LoadStereoCrafter2 with StereoInpaint inside a real ComfyUI (0.3.75 in .cache/comfyui), run as ComfyUI runs the
nodes (the V3 schema's execute), without a server, on tiny random Wan models in a models/ folder: the loader's
combos, the model through StereoInpaint (size kept, pixels outside the holes kept, v2 settings from the widgets), and
the errors for a v1 folder given as v2, the reverse, a base folder without its text encoder, missing folders, and
memory_mode auto's choice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
COMFY_DIR = REPO_ROOT / ".cache" / "comfyui"

SCRIPT = r"""
import asyncio, importlib.util, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from comfy.cli_args import args
args.cpu = True
import torch
import folder_paths
models = Path(sys.argv[3])
spec = importlib.util.spec_from_file_location("sc3d_v2_pack", sys.argv[2] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[2]])
pack = importlib.util.module_from_spec(spec); sys.modules[spec.name] = pack; spec.loader.exec_module(pack)
nodes = {n.GET_SCHEMA().node_id: n for n in asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())}
for kind in ("stereocrafter", "diffusers"):
    folder_paths.add_model_folder_path(kind, str(models / kind), is_default=True)
load2, load1, inpaint = nodes["SC3D_LoadStereoCrafter2"], nodes["SC3D_LoadStereoCrafter"], nodes["SC3D_StereoInpaint"]
schema = load2.GET_SCHEMA()
combos = {i.id: i.options for i in schema.inputs if hasattr(i, "options")}
# Each loader lists its own model's folders (v1 and v2 share models/stereocrafter, SVD and Wan models/diffusers).
assert combos["transformer"] == ["StereoCrafter2"], combos
assert combos["wan_base"] == ["Wan2.1-VACE-14B-diffusers", "NoTextEncoder"], combos
v1_combos = {i.id: i.options for i in load1.GET_SCHEMA().inputs if hasattr(i, "options")}
assert v1_combos["stereocrafter"] == ["StereoCrafter"], v1_combos
assert v1_combos["svd"] == ["stable-video-diffusion-img2vid-xt-1-1"], v1_combos
assert combos["memory_mode"] == ["auto", "gpu", "offload"], combos
weights_input = next(i for i in schema.inputs if i.id == "weights")
assert combos["weights"] == ["bf16", "fp8", "int8"] and weights_input.default == "bf16" and weights_input.optional
assert schema.inputs[-1].id == "weights"  # appended: saved workflows' widgets_values keep their positions
assert load2.validate_inputs(transformer="not-listed", wan_base="x") is True

def error_of(call):
    try:
        call()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError("no error")

model = load2.execute("StereoCrafter2", "Wan2.1-VACE-14B-diffusers", "auto", "auto", False).args[0]
assert type(model.pipeline).__name__ == "StereoCrafter2Pipeline" and not model.offload, model
g = torch.Generator().manual_seed(0)
right = torch.rand(6, 32, 48, 3, generator=g)
occlusion = torch.zeros(6, 32, 48)
occlusion[:, 8:20, 20:36] = 1.0
kwargs = dict(steps=1, guidance_scale=1.0, frames_chunk=5, overlap=2, tile_num=1, seed=3, composite=True,
              seams="crossfade", fit="pad")
out = inpaint.execute(model, right, occlusion, **kwargs).args[0]
assert out.shape == right.shape and out.dtype == torch.float32, out.shape
far = torch.ones(32, 48, dtype=torch.bool)
far[0:28, 12:44] = False  # beyond the composite's grown (3 px), feathered (3 px) edge
assert torch.equal(out[:, far], right[:, far])
assert (out[:, 10:18, 22:34] - right[:, 10:18, 22:34]).abs().mean() > 0.01  # the hole was generated
again = inpaint.execute(model, right, occlusion, **kwargs).args[0]
assert torch.equal(out, again)  # deterministic for a seed
offloaded = load2.execute("StereoCrafter2", "Wan2.1-VACE-14B-diffusers", "auto", "offload", False).args[0]
assert offloaded.offload and list(offloaded.patcher.model.keys()) == ["vae"]
assert torch.equal(inpaint.execute(offloaded, right, occlusion, **kwargs).args[0], out)  # same frames
fp8 = load2.execute("StereoCrafter2", "Wan2.1-VACE-14B-diffusers", "auto", "auto", False, "fp8").args[0]
assert fp8.pipeline.transformer.blocks[0].ffn.net[2].weight.dtype == torch.float8_e4m3fn
fp8_out = inpaint.execute(fp8, right, occlusion, **kwargs).args[0]
assert 0 < (fp8_out - out).abs().max() < 0.05  # close to bf16, not the same numbers
message = error_of(lambda: load2.execute("StereoCrafter2", "Wan2.1-VACE-14B-diffusers", "auto", "auto", False, "fp4"))
assert "weights must be one of" in message, message

message = error_of(lambda: load2.execute("StereoCrafter", "Wan2.1-VACE-14B-diffusers", "auto", "auto", False))
assert "StereoCrafter v1" in message and "TencentARC/StereoCrafter2" in message, message
message = error_of(lambda: load1.execute("StereoCrafter2", "stable-video-diffusion-img2vid-xt-1-1", "fp32", False))
assert "Wan-VACE transformer (StereoCrafter2)" in message and "LoadStereoCrafter2" in message, message
message = error_of(lambda: load1.execute("StereoCrafter", "Wan2.1-VACE-14B-diffusers", "fp32", False))
assert "Wan2.1-VACE base of StereoCrafter2" in message and "wan_base" in message, message
message = error_of(lambda: load2.execute("StereoCrafter2", "NoTextEncoder", "auto", "auto", False))
assert "lacks text_encoder/, tokenizer/" in message, message
message = error_of(lambda: load2.execute("Missing", "Wan2.1-VACE-14B-diffusers", "auto", "auto", False))
assert "'Missing' was not found" in message and "download_missing" in message, message
message = error_of(lambda: inpaint.execute(model, right, occlusion[:, :, :40], **kwargs))
assert "occlusion" in message, message
# memory_mode auto: offload where the bf16 transformer (~33 GB) + working memory exceed the GPU, else resident.
import comfy.model_management as mm
v2_nodes = sys.modules["sc3d_v2_pack.nodes.inpaint2_nodes"]
real_total, GIB, cuda = mm.get_total_memory, 1024**3, torch.device("cuda")
mm.get_total_memory = lambda *a, **k: 24 * GIB
assert v2_nodes.choose_memory_mode("auto", 33 * GIB, cuda) == "offload"
assert v2_nodes.choose_memory_mode("gpu", 33 * GIB, cuda) == "gpu"
mm.get_total_memory = lambda *a, **k: 141 * GIB
assert v2_nodes.choose_memory_mode("auto", 33 * GIB, cuda) == "gpu"
assert v2_nodes.choose_memory_mode("auto", 33 * GIB, torch.device("cpu")) == "gpu"
mm.get_total_memory = real_total
assert "memory_mode must be one of" in error_of(lambda: v2_nodes.choose_memory_mode("fast", 1, cuda))
print("V2 NODES OK")
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import make_stereocrafter_folder, make_svd_folder
    from tiny_wan_models import make_stereocrafter2_folder, make_wan_base_folder

    root = tmp_path_factory.mktemp("models")
    make_stereocrafter2_folder(root / "stereocrafter" / "StereoCrafter2")
    make_stereocrafter_folder(root / "stereocrafter" / "StereoCrafter")
    make_wan_base_folder(root / "diffusers" / "Wan2.1-VACE-14B-diffusers")
    make_wan_base_folder(root / "diffusers" / "NoTextEncoder", with_text_encoder=False)
    make_svd_folder(root / "diffusers" / "stable-video-diffusion-img2vid-xt-1-1")
    return root


def test_stereocrafter2_nodes_in_comfyui(models: Path) -> None:
    if not (COMFY_DIR / "main.py").is_file():
        pytest.skip(f"ComfyUI is not installed in {COMFY_DIR}")
    env = {**os.environ, "PYTHONPATH": str(COMFY_DIR / ".sc3d-site-packages"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(COMFY_DIR), str(REPO_ROOT), str(models)],
        capture_output=True, text=True, timeout=600, env=env, cwd=COMFY_DIR,
    )  # fmt: skip
    assert done.returncode == 0 and "V2 NODES OK" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
