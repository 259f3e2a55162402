"""The library's layout as the README states it: one subpackage per stage, the public names importable from
``stereocrafter`` itself, no ComfyUI import anywhere in the library, and no diffusers until a model is used."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import stereocrafter

LIBRARY = Path(stereocrafter.__file__).resolve().parent
STAGES = ("depth", "warp", "inpaint", "svd", "video", "compose")


def test_every_stage_is_a_regular_package() -> None:
    folders = {p.parent for p in LIBRARY.rglob("*.py") if "__pycache__" not in p.parts}
    assert {f.name for f in folders if f != LIBRARY} == set(STAGES)
    for folder in folders:
        assert (folder / "__init__.py").is_file(), f"{folder} has no __init__.py (a namespace package)"


@pytest.mark.parametrize("name", stereocrafter.__all__)
def test_public_name_resolves(name: str) -> None:
    obj = getattr(stereocrafter, name)
    assert obj.__module__.startswith("stereocrafter."), (name, obj.__module__)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'inpaint_pipeline'"):
        stereocrafter.__getattr__("inpaint_pipeline")


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_library_never_imports_comfyui() -> None:
    comfy = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "nodes", "execution"}
    offenders = {
        str(p.relative_to(LIBRARY)): sorted(_imported_roots(p) & comfy)
        for p in LIBRARY.rglob("*.py")
        if _imported_roots(p) & comfy
    }
    assert not offenders


def test_splatting_and_packing_import_without_diffusers() -> None:
    code = (
        "import sys; import stereocrafter; from stereocrafter import forward_splat, pack_stereo, make_anaglyph; "
        "print(sorted(m for m in ('diffusers', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
