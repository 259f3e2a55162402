"""The FillHoles node inside a real ComfyUI (0.3.75 in .cache/comfyui), run as ComfyUI runs it (the V3 schema's
execute), without a server: listed by the extension, fills the square scene's hole, outputs the filled mask."""

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
sys.path.insert(0, sys.argv[1])
from comfy.cli_args import args
args.cpu = True
import torch
spec = importlib.util.spec_from_file_location("sc3d_fill_pack", sys.argv[2] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[2]])
pack = importlib.util.module_from_spec(spec); sys.modules[spec.name] = pack; spec.loader.exec_module(pack)
nodes = asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())
fill = next(n for n in nodes if n.GET_SCHEMA().node_id == "SC3D_FillHoles")
right = torch.full((2, 8, 40, 3), 0.25)
right[:, :, 10:20] = 0.0
occlusion = torch.zeros(2, 8, 40)
occlusion[:, :, 10:20] = 1.0
occlusion[:, :, 20] = 0.6  # coverage 0.4 < min_coverage: filled too
out = fill.execute(right, occlusion, min_coverage=0.5, blend=4, background_side="right")
filled, mask = out.args
assert torch.allclose(filled[:, :, 10:21], torch.full((2, 8, 11, 3), 0.25)), filled[0, 0, :, 0]
assert torch.equal(mask[:, :, 10:21], torch.ones(2, 8, 11)) and torch.equal(mask[:, :, 21:], occlusion[:, :, 21:])
try:
    fill.execute(right, occlusion[:, :, :30], min_coverage=0.5, blend=4, background_side="right")
except ValueError as exc:
    assert "occlusion" in str(exc), exc
else:
    raise AssertionError("a mismatched mask was accepted")
print("FILL OK")
"""


def test_fill_holes_node_in_comfyui() -> None:
    if not (COMFY_DIR / "main.py").is_file():
        pytest.skip(f"ComfyUI is not installed in {COMFY_DIR}")
    env = {**os.environ, "PYTHONPATH": str(COMFY_DIR / ".sc3d-site-packages"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(COMFY_DIR), str(REPO_ROOT)],
        capture_output=True, text=True, timeout=300, env=env, cwd=COMFY_DIR,
    )  # fmt: skip
    assert done.returncode == 0 and "FILL OK" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
