"""The pack registers its nodes with the real server: ids, display names, categories, tooltips."""

from __future__ import annotations

import pytest

EXPECTED = {
    "SC3D_ForwardSplat": (
        "ForwardSplat",
        "StereoCrafter3D/stereo",
        [
            "images",
            "depth",
            "max_disparity",
            "disparity_unit",
            "convergence",
            "invert",
            "reference_edges",
            "preview_scale",
            "backend",
        ],
        ["IMAGE", "MASK", "IMAGE"],
    ),
    "SC3D_ComposeSBS": (
        "ComposeSBS",
        "StereoCrafter3D/output",
        ["left", "right", "layout", "resize_filter"],
        ["IMAGE"],
    ),
    "SC3D_ComposeAnaglyph": ("ComposeAnaglyph", "StereoCrafter3D/output", ["left", "right", "method"], ["IMAGE"]),
}


def test_pack_loaded_without_import_errors(comfy_server):
    log = comfy_server.log_text()
    assert "ComfyUI-StereoCrafter3D" in log, "the pack was not even tried: check the custom_nodes path"
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line and "StereoCrafter3D" in line]
    assert not failed, "\n".join(failed)


def test_every_pack_node_is_listed(comfy):
    info = comfy.object_info()
    ours = sorted(k for k in info if k.startswith("SC3D_"))
    assert ours == sorted(EXPECTED), f"pack nodes on the server: {ours}"


@pytest.mark.parametrize("node_id", sorted(EXPECTED))
def test_node_definition(comfy, node_id):
    info = comfy.object_info(node_id)[node_id]
    display, category, inputs, outputs = EXPECTED[node_id]
    assert info["display_name"] == display
    assert info["category"] == category and info["category"].startswith("StereoCrafter3D")
    assert info["input_order"]["required"] == inputs
    assert info["output"] == outputs
    assert info.get("description"), "node has no description"
    for section, entries in info["input"].items():
        if section == "hidden":
            continue
        for name, spec in entries.items():
            options = spec[1] if len(spec) > 1 else {}
            assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_forward_splat_widgets(comfy):
    inp = comfy.object_info("SC3D_ForwardSplat")["SC3D_ForwardSplat"]["input"]["required"]
    assert set(inp["depth"][0].split(",")) == {"IMAGE", "MASK"}
    assert inp["max_disparity"][1]["default"] == 20.0
    assert inp["disparity_unit"][1]["options"] == ["pixels", "percent of width"]
    assert inp["convergence"][1]["default"] == 0.5
    assert (inp["convergence"][1]["min"], inp["convergence"][1]["max"]) == (0.0, 1.0)
    assert inp["invert"][1]["default"] is False and inp["reference_edges"][1]["default"] is False
    assert inp["preview_scale"][1]["default"] == 0.5
    assert inp["backend"][1]["options"] == ["auto", "cuda", "torch"] and inp["backend"][1]["default"] == "auto"


def test_compose_widgets(comfy):
    sbs = comfy.object_info("SC3D_ComposeSBS")["SC3D_ComposeSBS"]["input"]["required"]
    assert sbs["layout"][1]["options"] == [
        "full SBS",
        "half SBS",
        "full TB",
        "half TB",
        "cross-eyed full SBS",
        "cross-eyed half SBS",
    ]
    assert sbs["layout"][1]["default"] == "full SBS"
    assert sbs["resize_filter"][1]["options"] == ["bicubic", "bilinear", "area"]
    ana = comfy.object_info("SC3D_ComposeAnaglyph")["SC3D_ComposeAnaglyph"]["input"]["required"]
    assert ana["method"][1]["options"] == ["dubois", "color", "half-color", "gray"]
    assert ana["method"][1]["default"] == "dubois"
