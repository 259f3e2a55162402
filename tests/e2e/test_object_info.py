"""The pack registers its nodes with the real server: ids, display names, categories, tooltips."""

from __future__ import annotations

import pytest
from model_dirs import DEPTHCRAFTER_NAME, STEREOCRAFTER_NAME, SVD_NAME, WRONG_DEPTHCRAFTER_NAME

LOADER_INPUTS = ["svd", "precision", "download_missing"]  # required; then the optional "compile" (last widget)
EXPECTED = {
    "SC3D_LoadDepthCrafter": (
        "LoadDepthCrafter",
        "StereoCrafter3D/depth",
        ["depthcrafter", *LOADER_INPUTS],
        ["SC3D_DEPTHCRAFTER"],
    ),
    "SC3D_VideoDepth": (
        "VideoDepth",
        "StereoCrafter3D/depth",
        ["depthcrafter", "images", "steps", "guidance_scale", "window_size", "overlap", "seed", "max_res"],
        ["IMAGE"],
    ),
    "SC3D_LoadDepthAnything": (
        "LoadDepthAnything",
        "StereoCrafter3D/depth",
        ["depth_anything", "precision", "download_missing"],
        ["SC3D_DEPTH_ANYTHING"],
    ),
    "SC3D_LightVideoDepth": (
        "LightVideoDepth",
        "StereoCrafter3D/depth",
        ["depth_anything", "images", "align", "temporal_strength", "motion_tolerance", "batch_size"],
        ["IMAGE"],
    ),
    "SC3D_LoadStereoCrafter": (
        "LoadStereoCrafter",
        "StereoCrafter3D/inpaint",
        ["stereocrafter", *LOADER_INPUTS],
        ["SC3D_STEREOCRAFTER"],
    ),
    "SC3D_LoadStereoCrafter2": (
        "LoadStereoCrafter2",
        "StereoCrafter3D/inpaint",
        ["transformer", "wan_base", "precision", "memory_mode", "download_missing"],
        ["SC3D_STEREOCRAFTER"],
    ),
    "SC3D_StereoInpaint": (
        "StereoInpaint",
        "StereoCrafter3D/inpaint",
        [
            "stereocrafter",
            "right",
            "occlusion",
            "steps",
            "guidance_scale",
            "frames_chunk",
            "overlap",
            "tile_num",
            "seed",
            "composite",
            "seams",
            "fit",
        ],
        ["IMAGE"],
    ),
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
    "SC3D_FillHoles": (
        "FillHoles",
        "StereoCrafter3D/stereo",
        ["right", "occlusion", "min_coverage", "blend", "background_side"],
        ["IMAGE", "MASK"],
    ),
    "SC3D_ComposeSBS": (
        "ComposeSBS",
        "StereoCrafter3D/output",
        ["left", "right", "layout", "resize_filter"],
        ["IMAGE"],
    ),
    "SC3D_ComposeAnaglyph": ("ComposeAnaglyph", "StereoCrafter3D/output", ["left", "right", "method"], ["IMAGE"]),
    "SC3D_ConvertVideoTo3D": (
        "Convert Video to 3D (streaming)",
        "StereoCrafter3D",
        [
            "video_path",
            "depth_video_path",
            "layout",
            "anaglyph_method",
            "max_disparity",
            "disparity_unit",
            "convergence",
            "invert_depth",
            "depth_steps",
            "inpaint_steps",
            "seed",
            "codec",
            "crf",
            "chunk_frames",
            "filename_prefix",
        ],
        ["STRING"],
    ),
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


@pytest.mark.parametrize(
    ("node_id", "model_input", "listed"),
    [
        ("SC3D_LoadDepthCrafter", "depthcrafter", [DEPTHCRAFTER_NAME, WRONG_DEPTHCRAFTER_NAME]),
        ("SC3D_LoadStereoCrafter", "stereocrafter", [STEREOCRAFTER_NAME]),
    ],
)
def test_model_loader_widgets(comfy, tiny_models, node_id, model_input, listed):
    """The loaders' combos list the model folders in the server's models/ (the default, the download target,
    first), as the tiny models were put there before the server started."""
    inp = comfy.object_info(node_id)[node_id]["input"]["required"]
    assert inp[model_input][1]["options"] == listed
    assert inp[model_input][1]["default"] == listed[0]
    assert inp["svd"][1]["options"] == [SVD_NAME] and inp["svd"][1]["default"] == SVD_NAME
    assert inp["precision"][1]["options"] == ["auto", "fp16", "bf16", "fp32"]
    assert inp["precision"][1]["default"] == "auto"
    assert inp["download_missing"][1]["default"] is False
    info = comfy.object_info(node_id)[node_id]
    assert info["input_order"].get("optional") == ["compile"]  # the last widget; optional: older API prompts validate
    compile_input = info["input"]["optional"]["compile"]
    assert compile_input[0] == "BOOLEAN" and compile_input[1]["default"] is False
    assert "NVIDIA" in compile_input[1]["tooltip"] and "CPU" in compile_input[1]["tooltip"]
    assert "non-commercial" in comfy.object_info(node_id)[node_id]["description"]


def test_video_depth_widgets(comfy):
    """DepthCrafter 1.0.1's own sampling settings are the defaults (its authors' fast, accurate ones; the tooltips
    name StereoCrafter's)."""
    inp = comfy.object_info("SC3D_VideoDepth")["SC3D_VideoDepth"]["input"]["required"]
    assert inp["depthcrafter"][0] == "SC3D_DEPTHCRAFTER" and inp["images"][0] == "IMAGE"
    defaults = {name: inp[name][1]["default"] for name in ("steps", "guidance_scale", "window_size", "overlap")}
    assert defaults == {"steps": 5, "guidance_scale": 1.0, "window_size": 110, "overlap": 25}
    assert "StereoCrafter: 8" in inp["steps"][1]["tooltip"] and "70" in inp["window_size"][1]["tooltip"]
    assert inp["seed"][1]["default"] == 42 and inp["max_res"][1]["default"] == 1024


def test_stereo_inpaint_widgets(comfy):
    inp = comfy.object_info("SC3D_StereoInpaint")["SC3D_StereoInpaint"]["input"]["required"]
    assert inp["stereocrafter"][0] == "SC3D_STEREOCRAFTER"
    assert (inp["right"][0], inp["occlusion"][0]) == ("IMAGE", "MASK")
    assert inp["steps"][1]["default"] == 8 and inp["frames_chunk"][1]["default"] == 23
    assert inp["overlap"][1]["default"] == 3 and inp["composite"][1]["default"] is True
    assert inp["seams"][1]["options"] == ["crossfade", "reference"]
    assert inp["fit"][1]["options"] == ["pad", "crop"]


def test_fill_holes_widgets(comfy):
    inp = comfy.object_info("SC3D_FillHoles")["SC3D_FillHoles"]["input"]["required"]
    assert (inp["right"][0], inp["occlusion"][0]) == ("IMAGE", "MASK")
    coverage = inp["min_coverage"][1]
    assert (coverage["default"], coverage["min"], coverage["max"]) == (0.5, 0.0, 1.0)
    assert inp["blend"][0] == "INT" and inp["blend"][1]["default"] == 4 and inp["blend"][1]["min"] == 0
    assert inp["background_side"][1]["options"] == ["right", "left"]
    assert inp["background_side"][1]["default"] == "right"


def test_convert_node_optional_inputs(comfy, clips):
    """The links are optional (a VIDEO or a path; DepthCrafter or a depth video); ``holes`` and ``scenes`` came
    later, after every other widget and optional, so API prompts and workflows saved before them still validate
    and load with the same widget order (holes default to a fill, scenes to detection)."""
    info = comfy.object_info("SC3D_ConvertVideoTo3D")["SC3D_ConvertVideoTo3D"]
    optional = info["input_order"]["optional"]
    assert optional[:6] == ["video", "depthcrafter", "depth_video", "stereocrafter", "holes", "scenes"], optional
    inp = info["input"]["optional"]
    assert inp["holes"][1]["options"] == ["fill", "black"] and inp["holes"][1]["default"] == "fill"
    assert inp["scenes"][0] == "STRING" and inp["scenes"][1]["default"] == ""
    # The input folder's videos, with core Load Video's upload button; last, so older widget orders stay.
    assert optional[6:] == ["video_file", "depth_video_file"], optional
    for name in ("video_file", "depth_video_file"):
        options = inp[name][1]
        assert options["options"][0] == options["default"] == "(none)" and options["video_upload"] is True
        assert options["options"][1:] == sorted(options["options"][1:]) and clips.small_name in options["options"]


def test_search_aliases_where_comfyui_lists_them(object_info):
    """Where the server lists search aliases (ComfyUI 0.33: "export video" finds Save Video), the node search finds
    every node of ours by words a user types: "2d to 3d", "sbs", "anaglyph", ... (0.3.75 has no such field)."""
    if "search_aliases" not in object_info["SaveVideo"]:
        pytest.skip("this ComfyUI lists no search_aliases in /object_info")
    aliases = {node: object_info[node].get("search_aliases") or [] for node in EXPECTED}
    assert all(aliases.values()), f"nodes without search aliases: {[n for n, a in aliases.items() if not a]}"
    words = {a.lower() for values in aliases.values() for a in values}
    assert {"2d to 3d", "stereo", "sbs", "anaglyph", "vr", "depth warp"} <= words, words


def test_light_depth_widgets(comfy, tiny_models):
    """LoadDepthAnything lists models/depth_anything (the tiny model put there before the start, the default name
    first); LightVideoDepth's defaults are the library's stabilisation."""
    loader = comfy.object_info("SC3D_LoadDepthAnything")["SC3D_LoadDepthAnything"]["input"]["required"]
    assert loader["depth_anything"][1]["options"] == ["Depth-Anything-V2-Small-hf"]
    assert loader["depth_anything"][1]["default"] == "Depth-Anything-V2-Small-hf"
    assert loader["precision"][1]["options"] == ["auto", "fp16", "bf16", "fp32"]
    assert loader["download_missing"][1]["default"] is False
    inp = comfy.object_info("SC3D_LightVideoDepth")["SC3D_LightVideoDepth"]["input"]["required"]
    assert inp["depth_anything"][0] == "SC3D_DEPTH_ANYTHING" and inp["images"][0] == "IMAGE"
    assert inp["align"][1]["default"] is True
    assert inp["temporal_strength"][1]["default"] == 0.6 and inp["temporal_strength"][1]["max"] < 1.0
    assert inp["motion_tolerance"][1]["default"] == 0.05 and inp["batch_size"][1]["default"] == 8
