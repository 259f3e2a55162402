"""Run a snippet of Python inside a real installed ComfyUI tree (0.3.75 in .cache/comfyui, 0.33 in
.cache/comfyui-0.33), with ComfyUI's folders set to a temporary root and this pack loaded as ComfyUI loads it.

The snippet sees ``root`` (the temporary ComfyUI root: input/, output/, temp/), ``pack_name`` (the package the pack
was imported as: ``importlib.import_module(pack_name + ".nodes.convert_node")``), ``argv`` (the extra arguments)
and ``report`` (a dict it fills; printed as JSON and returned by :func:`run_in_comfyui`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACK_NAME = "sc3d_subprocess_pack"

_PREAMBLE = r"""
import importlib, importlib.util, json, os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from comfy.cli_args import args
args.cpu = True
import folder_paths
root = Path(sys.argv[2])
folder_paths.set_input_directory(str(root / "input"))
folder_paths.set_output_directory(str(root / "output"))
folder_paths.set_temp_directory(str(root / "temp"))
pack_name = sys.argv[4]
spec = importlib.util.spec_from_file_location(pack_name, sys.argv[3] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[3]])
pack = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = pack
spec.loader.exec_module(pack)
argv = sys.argv[5:]
report = {}
"""
_EPILOGUE = '\nprint("PROBE " + json.dumps(report))\n'


def run_in_comfyui(tree: str, root: Path, body: str, *argv: str) -> dict:
    """Run ``body`` in ComfyUI tree ``tree`` (a folder name under .cache; skips when it is not installed) with its
    folders under ``root``; returns the snippet's ``report``."""
    comfy_dir = REPO_ROOT / ".cache" / tree
    if not (comfy_dir / "main.py").is_file():
        pytest.skip(f"ComfyUI is not installed in {comfy_dir}")
    env = {**os.environ, "PYTHONPATH": str(comfy_dir / ".sc3d-site-packages"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", _PREAMBLE + body + _EPILOGUE, str(comfy_dir), str(root), str(REPO_ROOT),
               PACK_NAME, *argv]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=comfy_dir)
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1][len("PROBE ") :])
