"""Run inside a real ComfyUI tree (``python tests/comfy_probe.py COMFY_DIR``, the tree's own packages on the path):
load the pack as ComfyUI does, then print as JSON what tests/test_comfy_versions.py checks — the model folders
after on_load and get_node_list, the schemas' search_aliases, and ComfyUI's own prompt validation of the loaders."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def main(comfy_dir: str) -> None:
    sys.path.insert(0, comfy_dir)
    from comfy.cli_args import args

    args.cpu = True  # no GPU probing
    import execution
    import folder_paths

    import nodes

    spec = importlib.util.spec_from_file_location(
        "sc3d_probe_pack", REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    pack = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = pack
    spec.loader.exec_module(pack)
    registered_at_import = "depthcrafter" in folder_paths.folder_names_and_paths

    async def load() -> list:
        extension = await pack.comfy_entrypoint()
        await extension.on_load()
        await extension.on_load()  # twice: still one entry
        return await extension.get_node_list()

    node_list = asyncio.run(load())
    for node in node_list:
        schema = node.GET_SCHEMA()
        nodes.NODE_CLASS_MAPPINGS[schema.node_id] = node

    def validate(inputs: dict) -> list[str]:
        prompt = {"1": {"class_type": "SC3D_LoadDepthCrafter", "inputs": inputs}}
        ok, errors, _ = asyncio.run(execution.validate_inputs("probe", prompt, "1", {}))
        return [] if ok else [f"{e['type']}: {e.get('details', '')}" for e in errors]

    loader = {"depthcrafter": "NotDownloadedYet", "svd": "AlsoMissing", "precision": "auto",
              "download_missing": False, "compile": False}  # fmt: skip
    models = Path(folder_paths.models_dir)
    report = {
        "registered_at_import": registered_at_import,
        "depthcrafter_paths": [p for p in folder_paths.get_folder_paths("depthcrafter") if Path(p).parent == models],
        "stereocrafter_paths": [p for p in folder_paths.get_folder_paths("stereocrafter") if Path(p).parent == models],
        "search_aliases": {n.GET_SCHEMA().node_id: n.GET_SCHEMA().search_aliases for n in node_list}
        if hasattr(node_list[0].GET_SCHEMA(), "search_aliases")
        else None,
        "missing_folder_errors": validate(loader),
        "bad_precision_errors": validate({**loader, "precision": "fp8-bogus"}),
    }
    print("PROBE " + json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
