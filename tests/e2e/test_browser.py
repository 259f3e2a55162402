"""The real ComfyUI frontend in headless chromium: the pack's nodes are registered there and every example
workflow loads without a missing-nodes or error dialog, converts like the frontend does, and runs from the UI.
Screenshots go to tests/_artifacts/comfyui-<version>/."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from browser import NOTICE_SELECTOR, browser_available, comfy_frontend
from comfy_harness import require
from test_example_workflows import EXAMPLES
from workflow_convert import ui_to_api, widget_names

PACK_NODES = {
    "SC3D_LoadDepthCrafter": "LoadDepthCrafter",
    "SC3D_VideoDepth": "VideoDepth",
    "SC3D_ForwardSplat": "ForwardSplat",
    "SC3D_FillHoles": "FillHoles",
    "SC3D_LoadStereoCrafter": "LoadStereoCrafter",
    "SC3D_LoadStereoCrafter2": "LoadStereoCrafter2",
    "SC3D_StereoInpaint": "StereoInpaint",
    "SC3D_ComposeSBS": "ComposeSBS",
    "SC3D_ComposeAnaglyph": "ComposeAnaglyph",
    "SC3D_ConvertVideoTo3D": "Convert Video to 3D (streaming)",
}


@pytest.fixture(scope="module")
def ui(comfy_server, clips, tiny_models, tmp_path_factory):
    ok, reason = browser_available()
    require(ok, reason)
    with comfy_frontend(comfy_server.url, tmp_path_factory.mktemp("chromium-profile")) as page:
        yield page
        assert not page.page_errors, f"uncaught errors in the frontend: {page.page_errors}"


def test_frontend_registers_pack_nodes(ui):
    found = ui.page.evaluate(
        """(ids) => Object.fromEntries(ids.map(t => [t, LiteGraph.registered_node_types[t]
                ? [LiteGraph.registered_node_types[t].title, LiteGraph.registered_node_types[t].category] : null]))""",
        list(PACK_NODES),
    )
    for node_id, display in PACK_NODES.items():
        assert found[node_id] is not None, f"{node_id} is not registered in the frontend"
        title, category = found[node_id]
        assert title == display and category.startswith("StereoCrafter3D")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_loads_and_runs_in_frontend(ui, object_info, artifacts_dir, path: Path):
    workflow = json.loads(path.read_text())
    ui.load_workflow(workflow)
    dialogs = ui.visible_dialogs()
    assert not dialogs, f"loading {path.name} opened: {dialogs}"
    nodes = ui.graph_nodes()
    assert len(nodes) == len(workflow["nodes"])
    broken = [n for n in nodes if not n["registered"] or n["has_errors"]]
    assert not broken, f"nodes with unregistered types: {broken}"

    # The frontend keeps every widget value of our nodes as saved (nothing clamped, reset or dropped). Core nodes
    # may differ between versions (a frontend adds a newer ComfyUI's inputs, e.g. CreateVideo's bit_depth, and
    # drops an older one's): those the converter must read as the frontend does, which the prompt check shows.
    saved = {n["id"]: n.get("widgets_values") for n in workflow["nodes"] if n["type"].startswith("SC3D_")}
    resaved = ui.serialize()["nodes"]
    loaded = {n["id"]: n.get("widgets_values") for n in resaved if n["type"].startswith("SC3D_")}
    assert loaded == saved and len(saved) >= 2

    # ... and queues the prompt our converter makes from the file. (Frontend 1.32 also sends the value of
    # LoadVideo's preview widget, "video-preview": "", which is no node input and which the server ignores.)
    def declared(node: dict) -> dict:
        names = widget_names(object_info[node["class_type"]])
        return {"class_type": node["class_type"], "inputs": {k: v for k, v in node["inputs"].items() if k in names}}

    ours = {k: declared(v) for k, v in ui_to_api(workflow, object_info).items()}
    theirs = {k: declared(v) for k, v in ui.graph_to_prompt().items()}
    assert theirs == ours

    ui.fit_view()
    ui.screenshot(artifacts_dir / f"{path.stem}.png")
    outputs = ui.queue_and_wait("SaveVideo")
    assert outputs and all(o["images"][0]["filename"].endswith(".mp4") for o in outputs), outputs
    ui.wait_for_videos("type=output", 1)
    assert not ui.visible_dialogs(), f"running {path.name} from the UI opened: {ui.visible_dialogs()}"
    ui.screenshot(artifacts_dir / f"{path.stem}-ran.png")


LOADERS = ("SC3D_LoadDepthCrafter", "SC3D_LoadStereoCrafter")


def test_workflow_saved_before_compile_input_loads(ui, artifacts_dir):
    """A workflow saved before the loaders had their last widget, ``compile`` (3 shared loader widgets): it loads
    without a dialog, keeps every saved value, gets compile = False, and queues the loaders with it."""
    path = next(p for p in EXAMPLES if p.stem == "full_pipeline")
    old = json.loads(path.read_text())
    for node in old["nodes"]:
        if node["type"] in LOADERS:
            assert node["widgets_values"][-1] is False  # compile, off
            node["widgets_values"] = node["widgets_values"][:-1]
    ui.load_workflow(old)
    assert not ui.visible_dialogs()
    assert not [n for n in ui.graph_nodes() if not n["registered"] or n["has_errors"]]
    loaded = {n["id"]: n["widgets_values"] for n in ui.serialize()["nodes"] if n["type"] in LOADERS}
    saved = {n["id"]: n["widgets_values"] for n in old["nodes"] if n["type"] in LOADERS}
    assert len(loaded) == 2 and loaded == {k: [*v, False] for k, v in saved.items()}
    prompt = ui.graph_to_prompt()
    loaders = [node for node in prompt.values() if node["class_type"] in LOADERS]
    assert len(loaders) == 2 and all(node["inputs"]["compile"] is False for node in loaders)
    ui.screenshot(artifacts_dir / "full_pipeline-before-compile.png")


def test_missing_node_types_are_detected(ui, artifacts_dir):
    """The checks above can fail: a workflow with an unknown node type opens the missing-nodes dialog (frontend
    1.32) or shows a "Missing node" notice (1.49+)."""
    workflow = json.loads(EXAMPLES[0].read_text())
    broken = copy.deepcopy(workflow)
    broken["nodes"][-1]["type"] = "SC3D_NoSuchNode"
    ui.load_workflow(broken)
    # Waits for the notice to render (an event, not a delay): it names the type.
    ui.page.wait_for_function(
        """(selector) => [...document.querySelectorAll(selector)].some(e => e.innerText.includes('SC3D_NoSuchNode'))""",
        arg=NOTICE_SELECTOR,
        timeout=10_000,
    )
    notices = ui.visible_dialogs()
    assert any("missing" in d.lower() and "SC3D_NoSuchNode" in d for d in notices), notices
    assert [n["type"] for n in ui.graph_nodes() if not n["registered"]] == ["SC3D_NoSuchNode"]
    ui.screenshot(artifacts_dir / "missing-node-dialog.png")
    ui.page.keyboard.press("Escape")
