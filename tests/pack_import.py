"""Import modules of the pack as ComfyUI does (the repository as a package, so ``nodes/`` can import
``..stereocrafter``), without ComfyUI: the package's ``__init__`` then registers nothing."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "sc3d_pack_under_test"


def import_pack_module(name: str) -> ModuleType:
    """``PACKAGE.<name>``, e.g. ``nodes.video_inputs``; the package is imported from the repository once."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACKAGE, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{PACKAGE}.{name}")
