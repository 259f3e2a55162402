"""The pack inside each installed ComfyUI (0.3.75 in .cache/comfyui, 0.33 in .cache/comfyui-0.33 when installed),
without starting a server: tests/comfy_probe.py loads it as ComfyUI does and runs ComfyUI's own prompt validation.

- the model folders are registered once (on_load on 0.33, get_node_list on 0.3.75), not at import;
- search_aliases reach the schema where ComfyUI has the field;
- a loader's folder name that is not in the list passes validation (the loader then names the folder and
  download_missing), while other combos are still checked where ComfyUI checks them (0.33).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TREES = {"0.3.75": REPO_ROOT / ".cache" / "comfyui", "0.33": REPO_ROOT / ".cache" / "comfyui-0.33"}


def _probe(comfy_dir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(comfy_dir / ".sc3d-site-packages"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "comfy_probe.py"), str(comfy_dir)],
        capture_output=True, text=True, timeout=300, env=env, cwd=comfy_dir,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1][len("PROBE ") :])


@pytest.mark.parametrize("version", list(TREES))
def test_pack_in_comfyui(version: str) -> None:
    comfy_dir = TREES[version]
    if not (comfy_dir / "main.py").is_file():
        pytest.skip(f"ComfyUI {version} is not installed in {comfy_dir}")
    report = _probe(comfy_dir)
    assert not report["registered_at_import"]
    models = comfy_dir.resolve() / "models"  # ComfyUI uses its real path
    assert report["depthcrafter_paths"] == [str(models / "depthcrafter")]
    assert report["stereocrafter_paths"] == [str(models / "stereocrafter")]
    assert report["missing_folder_errors"] == []
    if version == "0.3.75":
        assert report["search_aliases"] is None  # no such schema field
    else:
        aliases = report["search_aliases"]
        assert aliases and all(aliases.values())  # every node has some (the e2e tests list the nodes)
        assert {"depth anything", "video depth"} <= set(aliases["SC3D_LightVideoDepth"])
        assert "fill holes" in aliases["SC3D_FillHoles"]
        assert {"2d to 3d", "sbs", "anaglyph", "vr"} <= set(aliases["SC3D_ConvertVideoTo3D"])
        assert "depth warp" in aliases["SC3D_ForwardSplat"]
        # The combo check is still on for the loader's other inputs: only the model folders are exempt.
        assert any("value_not_in_list" in error for error in report["bad_precision_errors"])
