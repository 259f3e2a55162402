"""Regenerates example_workflows/*.json and their .jpg thumbnails by building the graphs in the real frontend.

The graphs are made with LiteGraph in ComfyUI's own frontend (served by a throw-away headless server with
this pack loaded) and saved with ``app.graph.serialize()``, so the files have exactly the format the
frontend writes. The throw-away server has tiny random models (model_dirs.py) in its models/, so the model
examples run too (the thumbnails show their noise). Run after changing a node's inputs:

    .venv/bin/python tests/e2e/build_example_workflows.py [--url http://127.0.0.1:8188] [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser import VIEWPORT, ComfyPage, comfy_frontend  # noqa: E402
from comfy_harness import REPO_ROOT, ComfyServer  # noqa: E402
from media import make_depth_clip, make_source_clip  # noqa: E402
from model_dirs import install_tiny_models  # noqa: E402
from PIL import Image  # noqa: E402

EXAMPLES_DIR = REPO_ROOT / "example_workflows"
THUMBNAIL_WIDTH = 512

NOTE = (
    "StereoCrafter3D: 2D video + depth video -> {what}.\n\n"
    "1. Put your video in ComfyUI/input/ as input_video.mp4 (or pick it in the first Load Video; the "
    "upload button works too).\n"
    "2. Put a depth video of it (same frame count; near = bright, e.g. from depth_only (DepthCrafter) or "
    "Video Depth Anything) in input/ as input_depth.mp4. A MASK or a different size works too.\n"
    "3. Run. The result is saved to output/video/. max_disparity sets the depth strength; "
    "convergence sets what sits on the screen plane.\n"
    "FillHoles fills the right eye's holes (background hidden behind near objects) from the background beside "
    "them, without a model; inpaint_to_sbs fills them with StereoCrafter instead. Audio and fps are taken from "
    "your video."
)

DEPTH_NOTE = (
    "StereoCrafter3D: 2D video -> DepthCrafter depth -> full side-by-side 3D video.\n\n"
    "1. Models (non-commercial licences): tencent/DepthCrafter in models/depthcrafter/DepthCrafter/ and "
    "stabilityai/stable-video-diffusion-img2vid-xt-1-1 (gated: accept its licence) in models/diffusers/"
    "stable-video-diffusion-img2vid-xt-1-1/, or turn on download_missing in LoadDepthCrafter.\n"
    "2. Put your video in ComfyUI/input/ as input_video.mp4 (or pick it in Load Video).\n"
    "3. Run. The result is saved to output/video/. VideoDepth has DepthCrafter 1.0.1's settings (5 steps, "
    "no guidance, window 110, overlap 25, max_res 1024; StereoCrafter's: 8 steps, guidance 1.2, window 70); "
    "lower max_res to 512 for speed.\n"
    "FillHoles fills the right eye's holes from the background beside them (no model): full_pipeline inpaints "
    "them with StereoCrafter instead."
)

LIGHT_NOTE = (
    "StereoCrafter3D: 2D video -> Depth Anything depth -> FillHoles -> full side-by-side 3D video, with no diffusion "
    "model.\n\n"
    "1. Model (Apache-2.0, about 100 MB): depth-anything/Depth-Anything-V2-Small-hf in models/depth_anything/"
    "Depth-Anything-V2-Small-hf/ (config.json, model.safetensors, preprocessor_config.json), or turn on "
    "download_missing in LoadDepthAnything.\n"
    "2. Put your video in ComfyUI/input/ as input_video.mp4 (or pick it in Load Video).\n"
    "3. Run. The result is saved to output/video/. LightVideoDepth runs Depth Anything frame by frame and "
    "stabilises it over time (align, temporal_strength); FillHoles fills the right eye's holes from the background "
    "beside them. max_disparity (ForwardSplat) sets the depth strength.\n"
    "depth_to_sbs uses DepthCrafter's video depth instead (more consistent, far heavier); full_pipeline also "
    "inpaints the holes with StereoCrafter."
)

DEPTH_ONLY_NOTE = (
    "StereoCrafter3D: 2D video -> DepthCrafter -> depth video (grey, near = bright), to make once and reuse.\n\n"
    "1. Models (non-commercial licences): tencent/DepthCrafter in models/depthcrafter/DepthCrafter/ and "
    "stabilityai/stable-video-diffusion-img2vid-xt-1-1 (gated: accept its licence) in models/diffusers/"
    "stable-video-diffusion-img2vid-xt-1-1/, or turn on download_missing in LoadDepthCrafter.\n"
    "2. Put your video in ComfyUI/input/ as input_video.mp4 (or pick it in Load Video).\n"
    "3. Run. The depth is saved as output/video/depth_*.mp4: same frame count, size and fps as your video (and "
    "its audio). Copy it to input/ as input_depth.mp4 for sbs_from_your_depth, anaglyph_from_your_depth or "
    "inpaint_to_sbs, and try other max_disparity / convergence values without computing the depth again.\n"
    "VideoDepth has DepthCrafter 1.0.1's settings (5 steps, no guidance, window 110, overlap 25, max_res "
    "1024; StereoCrafter's: 8 steps, guidance 1.2, window 70); max_res 512 is about 4x faster."
)

FULL_NOTE = (
    "StereoCrafter3D, the whole conversion: 2D video -> DepthCrafter depth -> ForwardSplat right eye -> "
    "StereoCrafter inpainting -> full side-by-side AND red-cyan anaglyph 3D videos.\n\n"
    "1. Models (non-commercial licences): tencent/DepthCrafter in models/depthcrafter/DepthCrafter/, "
    "TencentARC/StereoCrafter in models/stereocrafter/StereoCrafter/ (unet_diffusers/ inside) and "
    "stabilityai/stable-video-diffusion-img2vid-xt-1-1 (gated: accept its licence) in models/diffusers/"
    "stable-video-diffusion-img2vid-xt-1-1/, or turn on download_missing in both loaders.\n"
    "2. Put your video in ComfyUI/input/ as input_video.mp4 (or pick it in Load Video; the upload button "
    "works too). Load Video decodes it all into memory: trim long videos first.\n"
    "3. Run. output/video/ gets stereo_full_sbs_*.mp4 and stereo_full_anaglyph_*.mp4, with your video's "
    "audio and frame rate. Delete the output you do not need (Ctrl+B bypasses a node).\n"
    "Depth is the slow part: depth_only saves it once, then inpaint_to_sbs / sbs_from_your_depth reuse it. "
    "max_disparity (ForwardSplat) sets the depth strength, convergence what sits on the screen plane; "
    "VideoDepth max_res 512 is about 4x faster; layout (ComposeSBS) has half SBS for 3D TVs."
)

INPAINT_NOTE = (
    "StereoCrafter3D: 2D video + depth video -> ForwardSplat -> StereoCrafter inpainting -> full SBS 3D video.\n\n"
    "1. Models (non-commercial licences): TencentARC/StereoCrafter in models/stereocrafter/StereoCrafter/ "
    "(unet_diffusers/ inside) and stabilityai/stable-video-diffusion-img2vid-xt-1-1 (gated: accept its "
    "licence) in models/diffusers/stable-video-diffusion-img2vid-xt-1-1/, or turn on download_missing.\n"
    "2. Put your video in ComfyUI/input/ as input_video.mp4 and its depth video (same frame count, "
    "near = bright; e.g. made by depth_only) as input_depth.mp4. full_pipeline does it all in one run.\n"
    "3. Run. StereoInpaint fills the holes ForwardSplat leaves behind near objects; the result is saved "
    "to output/video/."
)

STEREOCRAFTER2_NOTE = (
    "StereoCrafter3D: 2D video + depth video -> ForwardSplat -> StereoCrafter2 inpainting -> full SBS 3D video.\n\n"
    "1. Models: TencentARC/StereoCrafter2 (the Wan2.1-VACE-14B transformer, about 35 GB) in models/stereocrafter/"
    "StereoCrafter2/ and the vae/, text_encoder/ and tokenizer/ of Wan-AI/Wan2.1-VACE-14B-diffusers (about 12 GB; "
    "its transformer/ is not needed) in models/diffusers/Wan2.1-VACE-14B-diffusers/, or turn on download_missing.\n"
    "2. Put your video in ComfyUI/input/ as input_video.mp4 and its depth video (same frame count, near = bright; "
    "e.g. made by depth_only) as input_depth.mp4.\n"
    "3. Run. StereoInpaint has StereoCrafter2's settings (10 steps, chunks of 81 frames overlapping 10, 2 x 2 "
    "tiles); memory_mode offload (auto picks it on small GPUs) streams the transformer from RAM. The result is "
    "saved to output/video/."
)

SPLAT_WIDGETS = {
    "max_disparity": 20.0,
    "disparity_unit": "pixels",
    "convergence": 0.5,
    "invert": False,
    "reference_edges": False,
    "preview_scale": 0.5,
    "backend": "auto",
}
# StereoCrafter's DepthCrafter settings (the node's defaults), with the seed kept ("fixed") between runs.
VIDEO_DEPTH_WIDGETS = {
    "steps": 5,
    "guidance_scale": 1.0,
    "window_size": 110,
    "overlap": 25,
    "seed": 42,
    "control_after_generate": "fixed",
    "max_res": 1024,
}
STEREO_INPAINT_WIDGETS = {
    "steps": 8,
    "guidance_scale": 1.0,
    "frames_chunk": 23,
    "overlap": 3,
    "tile_num": 0,
    "seed": 0,
    "control_after_generate": "fixed",
    "composite": True,
    "seams": "crossfade",
    "fit": "pad",
}
# StereoCrafter2's reference settings (steps 10, 81-frame chunks overlapping 10, tile_num 2) with our composite.
STEREOCRAFTER2_INPAINT_WIDGETS = {
    **STEREO_INPAINT_WIDGETS,
    "steps": 10,
    "frames_chunk": 81,
    "overlap": 10,
    "tile_num": 2,
}
# LightVideoDepth's defaults: the library's stabilisation (alignment, a 3-4 frame average on static parts).
LIGHT_DEPTH_WIDGETS = {"align": True, "temporal_strength": 0.6, "motion_tolerance": 0.05, "batch_size": 8}
LOADER_WIDGETS = {
    "svd": "stable-video-diffusion-img2vid-xt-1-1",
    "precision": "auto",
    "download_missing": False,
    "compile": False,
}


def _output_nodes(
    x: int,
    compose: str,
    compose_widgets: dict[str, Any],
    prefix: str,
    stacked: bool = False,
    y: int = 280,
    key: str = "",
) -> list[tuple]:
    """Compose → Create Video → Save Video from ``x``: in a row, or ``stacked`` in one column (a narrower graph,
    so Fit View stays above the zoom where the frontend stops drawing node text: the thumbnail shows it).
    ``key`` is appended to the node keys (for a second output branch)."""
    create_pos, save_pos = ([x, y + 140], [x, y + 280]) if stacked else ([x + 340, y], [x + 640, y])
    return [
        ("compose" + key, compose, [x, y], [300, 110], compose_widgets, None),
        ("create" + key, "CreateVideo", create_pos, [260, 100], {"fps": 30.0}, None),
        (
            "save" + key,
            "SaveVideo",
            save_pos,
            [380, 420],
            {"filename_prefix": prefix, "format": "auto", "codec": "auto"},
            None,
        ),
    ]


def _output_links(key: str = "", images: tuple[str, int] | None = None) -> list[tuple]:
    """``images`` (default: the compose node's) → Create Video, with the source's fps and audio from Get Video
    Components → Save Video."""
    images = images or ("compose" + key, 0)
    return [
        (*images, "create" + key, "images"),
        ("video_parts", 2, "create" + key, "fps"),
        ("video_parts", 1, "create" + key, "audio"),
        ("create" + key, 0, "save" + key, "video"),
    ]


# FillHoles at its defaults: low-coverage pixels become holes too, a 4-pixel blend, background on the right.
FILL_WIDGETS = {"min_coverage": 0.5, "blend": 4, "background_side": "right"}
SBS_WIDGETS = {"layout": "full SBS", "resize_filter": "bicubic"}
ANAGLYPH_WIDGETS = {"method": "dubois"}


def load_depthcrafter(pos: list[int]) -> tuple:
    """LoadDepthCrafter with the real models' folder names (what model_dirs.py installs for the tests too)."""
    return (
        "load_depthcrafter",
        "SC3D_LoadDepthCrafter",
        pos,
        [320, 160],
        {"depthcrafter": "DepthCrafter", **LOADER_WIDGETS},
        None,
    )


def load_stereocrafter(pos: list[int]) -> tuple:
    return (
        "load_stereocrafter",
        "SC3D_LoadStereoCrafter",
        pos,
        [320, 160],
        {"stereocrafter": "StereoCrafter", **LOADER_WIDGETS},
        None,
    )


def load_stereocrafter2(pos: list[int]) -> tuple:
    widgets = {"transformer": "StereoCrafter2", "wan_base": "Wan2.1-VACE-14B-diffusers", "precision": "auto",
               "memory_mode": "auto", "download_missing": False, "weights": "bf16"}  # fmt: skip
    return ("load_stereocrafter", "SC3D_LoadStereoCrafter2", pos, [340, 180], widgets, None)


def workflow_spec(name: str) -> dict[str, Any]:
    """Nodes (key, type, pos, size, widget values, title) and links (from key, slot, to key, input name)."""
    video = ("video", "LoadVideo", [40, 280], [320, 330], {"file": "input_video.mp4"}, "Load Video (your video)")
    depth = ("depth", "LoadVideo", [40, 650], [320, 330], {"file": "input_depth.mp4"}, "Load Video (its depth)")
    video_parts = ("video_parts", "GetVideoComponents", [400, 280], [240, 90], {}, None)
    depth_parts = ("depth_parts", "GetVideoComponents", [400, 650], [240, 90], {}, None)
    groups: list[tuple] = []  # (title, [x, y, w, h], colour)
    if name in ("sbs_from_your_depth", "anaglyph_from_your_depth"):
        if name == "sbs_from_your_depth":
            compose, compose_widgets = "SC3D_ComposeSBS", SBS_WIDGETS
            prefix, what = "video/stereo_sbs", "full side-by-side 3D video"
        else:
            compose, compose_widgets = "SC3D_ComposeAnaglyph", ANAGLYPH_WIDGETS
            prefix, what = "video/stereo_anaglyph", "red-cyan anaglyph video"
        nodes = [
            ("note", "Note", [40, 40], [660, 200], {"text": NOTE.format(what=what)}, "Read me"),
            video,
            depth,
            video_parts,
            depth_parts,
            ("splat", "SC3D_ForwardSplat", [690, 400], [320, 260], SPLAT_WIDGETS, None),
            ("fill", "SC3D_FillHoles", [690, 750], [320, 150], FILL_WIDGETS, None),
            *_output_nodes(1060, compose, compose_widgets, prefix),
        ]
        links = [
            ("video", 0, "video_parts", "video"),
            ("depth", 0, "depth_parts", "video"),
            ("video_parts", 0, "splat", "images"),
            ("depth_parts", 0, "splat", "depth"),
            ("splat", 0, "fill", "right"),
            ("splat", 1, "fill", "occlusion"),
            ("video_parts", 0, "compose", "left"),
            ("fill", 0, "compose", "right"),
            *_output_links(),
        ]
    elif name == "depth_to_sbs":
        nodes = [
            ("note", "Note", [40, 40], [700, 200], {"text": DEPTH_NOTE}, "Read me"),
            video,
            video_parts,
            load_depthcrafter([400, 430]),
            ("video_depth", "SC3D_VideoDepth", [760, 400], [300, 260], VIDEO_DEPTH_WIDGETS, None),
            ("splat", "SC3D_ForwardSplat", [1100, 280], [320, 260], SPLAT_WIDGETS, None),
            ("fill", "SC3D_FillHoles", [1100, 600], [320, 150], FILL_WIDGETS, None),
            *_output_nodes(1460, "SC3D_ComposeSBS", SBS_WIDGETS, "video/stereo_depthcrafter_sbs", stacked=True),
        ]
        links = [
            ("video", 0, "video_parts", "video"),
            ("load_depthcrafter", 0, "video_depth", "depthcrafter"),
            ("video_parts", 0, "video_depth", "images"),
            ("video_parts", 0, "splat", "images"),
            ("video_depth", 0, "splat", "depth"),
            ("splat", 0, "fill", "right"),
            ("splat", 1, "fill", "occlusion"),
            ("video_parts", 0, "compose", "left"),
            ("fill", 0, "compose", "right"),
            *_output_links(),
        ]
    elif name in ("inpaint_to_sbs", "stereocrafter2_to_sbs"):
        v2 = name == "stereocrafter2_to_sbs"
        nodes = [
            ("note", "Note", [40, 40], [700, 200], {"text": STEREOCRAFTER2_NOTE if v2 else INPAINT_NOTE}, "Read me"),
            video,
            depth,
            video_parts,
            depth_parts,
            ("splat", "SC3D_ForwardSplat", [690, 560], [320, 260], SPLAT_WIDGETS, None),
            load_stereocrafter2([690, 310]) if v2 else load_stereocrafter([690, 330]),
            (
                "inpaint",
                "SC3D_StereoInpaint",
                [1050, 420],
                [300, 330],
                STEREOCRAFTER2_INPAINT_WIDGETS if v2 else STEREO_INPAINT_WIDGETS,
                None,
            ),
            *_output_nodes(
                1390,
                "SC3D_ComposeSBS",
                SBS_WIDGETS,
                "video/stereo_sc2_sbs" if v2 else "video/stereo_inpainted_sbs",
                stacked=True,
            ),
        ]
        links = [
            ("video", 0, "video_parts", "video"),
            ("depth", 0, "depth_parts", "video"),
            ("video_parts", 0, "splat", "images"),
            ("depth_parts", 0, "splat", "depth"),
            ("load_stereocrafter", 0, "inpaint", "stereocrafter"),
            ("splat", 0, "inpaint", "right"),
            ("splat", 1, "inpaint", "occlusion"),
            ("video_parts", 0, "compose", "left"),
            ("inpaint", 0, "compose", "right"),
            *_output_links(),
        ]
    elif name == "sbs_light_depth":
        load_depth_anything = {"depth_anything": "Depth-Anything-V2-Small-hf", "precision": "auto",
                               "download_missing": False}  # fmt: skip
        nodes = [
            ("note", "Note", [40, 40], [700, 200], {"text": LIGHT_NOTE}, "Read me"),
            video,
            video_parts,
            ("load_depth_anything", "SC3D_LoadDepthAnything", [400, 430], [320, 110], load_depth_anything, None),
            ("light_depth", "SC3D_LightVideoDepth", [760, 400], [300, 180], LIGHT_DEPTH_WIDGETS, None),
            ("splat", "SC3D_ForwardSplat", [1100, 280], [320, 260], SPLAT_WIDGETS, None),
            ("fill", "SC3D_FillHoles", [1100, 600], [320, 150], FILL_WIDGETS, None),
            *_output_nodes(1460, "SC3D_ComposeSBS", SBS_WIDGETS, "video/stereo_light_sbs", stacked=True),
        ]
        links = [
            ("video", 0, "video_parts", "video"),
            ("load_depth_anything", 0, "light_depth", "depth_anything"),
            ("video_parts", 0, "light_depth", "images"),
            ("video_parts", 0, "splat", "images"),
            ("light_depth", 0, "splat", "depth"),
            ("splat", 0, "fill", "right"),
            ("splat", 1, "fill", "occlusion"),
            ("video_parts", 0, "compose", "left"),
            ("fill", 0, "compose", "right"),
            *_output_links(),
        ]
    elif name == "depth_only":
        nodes = [
            ("note", "Note", [40, 40], [700, 200], {"text": DEPTH_ONLY_NOTE}, "Read me"),
            video,
            video_parts,
            load_depthcrafter([400, 430]),
            ("video_depth", "SC3D_VideoDepth", [760, 280], [300, 260], VIDEO_DEPTH_WIDGETS, None),
            ("create", "CreateVideo", [1100, 280], [260, 100], {"fps": 30.0}, None),
            (
                "save",
                "SaveVideo",
                [1100, 420],
                [380, 420],
                {"filename_prefix": "video/depth", "format": "auto", "codec": "auto"},
                None,
            ),
        ]
        links = [
            ("video", 0, "video_parts", "video"),
            ("load_depthcrafter", 0, "video_depth", "depthcrafter"),
            ("video_parts", 0, "video_depth", "images"),
            *_output_links(images=("video_depth", 0)),
        ]
    elif name == "full_pipeline":
        # Two rows, so that Fit View stays above the zoom where the frontend stops drawing node text: the read-me
        # and your video | the depth | the right eye on top, the two 3D videos below.
        def output(x: int, key: str, compose: str, widgets: dict[str, Any], prefix: str) -> list[tuple]:
            save = {"filename_prefix": prefix, "format": "auto", "codec": "auto"}
            return [
                ("compose" + key, compose, [x, 720], [300, 110], widgets, None),
                ("create" + key, "CreateVideo", [x, 870], [300, 100], {"fps": 30.0}, None),
                ("save" + key, "SaveVideo", [x + 320, 720], [300, 420], save, None),
            ]

        nodes = [
            ("note", "Note", [40, 50], [600, 230], {"text": FULL_NOTE}, "Read me"),
            (*video[:2], [40, 400], *video[3:]),
            (*video_parts[:2], [400, 400], *video_parts[3:]),
            load_depthcrafter([700, 110]),
            ("video_depth", "SC3D_VideoDepth", [700, 330], [320, 260], VIDEO_DEPTH_WIDGETS, None),
            ("splat", "SC3D_ForwardSplat", [1080, 110], [320, 260], SPLAT_WIDGETS, None),
            load_stereocrafter([1080, 430]),
            ("inpaint", "SC3D_StereoInpaint", [1440, 110], [320, 330], STEREO_INPAINT_WIDGETS, None),
            *output(700, "_sbs", "SC3D_ComposeSBS", SBS_WIDGETS, "video/stereo_full_sbs"),
            *output(1340, "_anaglyph", "SC3D_ComposeAnaglyph", ANAGLYPH_WIDGETS, "video/stereo_full_anaglyph"),
        ]
        links = [
            ("video", 0, "video_parts", "video"),
            ("load_depthcrafter", 0, "video_depth", "depthcrafter"),
            ("video_parts", 0, "video_depth", "images"),
            ("video_parts", 0, "splat", "images"),
            ("video_depth", 0, "splat", "depth"),
            ("load_stereocrafter", 0, "inpaint", "stereocrafter"),
            ("splat", 0, "inpaint", "right"),
            ("splat", 1, "inpaint", "occlusion"),
            ("video_parts", 0, "compose_sbs", "left"),
            ("inpaint", 0, "compose_sbs", "right"),
            ("video_parts", 0, "compose_anaglyph", "left"),
            ("inpaint", 0, "compose_anaglyph", "right"),
            *_output_links("_sbs"),
            *_output_links("_anaglyph"),
        ]
        groups = [  # [x, y, w, h], title bar included
            ("1. Your video (frames, audio, fps)", [20, 330, 640, 440], "#3f789e"),
            ("2. Depth: DepthCrafter", [680, 20, 360, 590], "#8A8"),
            ("3. Right eye: ForwardSplat, StereoCrafter fills the holes", [1060, 20, 720, 590], "#b58b2a"),
            ("4. 3D videos: full side-by-side and red-cyan anaglyph", [680, 640, 1300, 520], "#88A"),
        ]
    else:
        raise ValueError(f"unknown example {name!r}; known: {EXAMPLES}")
    return {"nodes": nodes, "links": links, "groups": groups}


# name -> input videos its Load Video nodes show once run (for the thumbnail's previews)
EXAMPLES = {
    "sbs_from_your_depth": 2,
    "anaglyph_from_your_depth": 2,
    "depth_to_sbs": 1,
    "sbs_light_depth": 1,
    "inpaint_to_sbs": 2,
    "stereocrafter2_to_sbs": 2,
    "depth_only": 1,
    "full_pipeline": 1,
}


BUILD_JS = """
(spec) => {
  app.graph.clear();
  for (const [title, bounding, color] of spec.groups) {
    const group = new window.LGraphGroup(title);
    group.pos = bounding.slice(0, 2);
    group.size = bounding.slice(2);
    group.color = color;
    app.graph.add(group);
  }
  const made = {};
  for (const [key, type, pos, size, widgets, title] of spec.nodes) {
    const node = LiteGraph.createNode(type);
    if (!node) throw new Error('cannot create node ' + type);
    if (title) node.title = title;
    app.graph.add(node);
    node.pos = pos;
    for (const [name, value] of Object.entries(widgets)) {
      const w = (node.widgets || []).find(w => w.name === name);
      if (!w) throw new Error(type + ' has no widget ' + name);
      w.value = value;
      if (w.callback) w.callback(value, app.canvas, node);
    }
    node.setSize([Math.max(size[0], node.size[0]), Math.max(size[1], node.size[1])]);
    made[key] = node;
  }
  for (const [from, slot, to, input] of spec.links) {
    const target = made[to];
    const index = target.findInputSlot(input);
    if (index < 0) throw new Error(target.type + ' has no input ' + input);
    if (!made[from].connect(slot, target, index)) throw new Error('cannot link ' + from + ' -> ' + to + '.' + input);
  }
  app.graph.setDirtyCanvas(true, true);
  return Object.keys(made).length;
}
"""


def thumbnail_bounds(ui: ComfyPage, margin: int) -> dict[str, float]:
    """browser.graph_bounds, grown to take in the groups (their title bars are above the nodes')."""
    box = ui.graph_bounds(margin=margin)
    groups = ui.page.evaluate(
        """() => {
          const ds = app.canvas.ds, rect = app.canvas.canvas.getBoundingClientRect();
          return app.graph._groups.map(g => { const [x, y, w, h] = g._bounding;
            return [rect.left + (x + ds.offset[0]) * ds.scale, rect.top + (y + ds.offset[1]) * ds.scale,
                    rect.left + (x + w + ds.offset[0]) * ds.scale, rect.top + (y + h + ds.offset[1]) * ds.scale]; });
        }"""
    )
    x0, y0, x1, y1 = box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]
    for gx0, gy0, gx1, gy1 in groups:
        x0, y0 = max(0, min(x0, gx0 - margin)), max(0, min(y0, gy0 - margin))
        x1, y1 = min(VIEWPORT["width"], max(x1, gx1 + margin)), min(VIEWPORT["height"], max(y1, gy1 + margin))
    return {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}


def build(url: str, out_dir: Path, names: list[str]) -> list[Path]:
    written = []
    with tempfile.TemporaryDirectory() as profile, comfy_frontend(url, Path(profile)) as ui:
        for name in names:
            ui.page.evaluate(BUILD_JS, workflow_spec(name))
            workflow = ui.serialize()
            # Round trip through the loader, as a user opening the file would, then save what it shows,
            # with a stable id and the fitted view (extra.ds) so it opens showing the whole graph.
            ui.load_workflow(workflow)
            ui.page.evaluate("() => { app.extensionManager.focusMode = true; }")  # hide menus and sidebars
            ui.page.wait_for_function("() => app.canvas.canvas.getBoundingClientRect().top === 0")
            ui.fit_view()
            workflow = ui.serialize()
            workflow["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"stereocrafter3d/example_workflows/{name}"))
            workflow.setdefault("extra", {})["ds"] = ui.page.evaluate(
                "() => ({scale: app.canvas.ds.scale, offset: [...app.canvas.ds.offset]})"
            )
            path = out_dir / f"{name}.json"
            path.write_text(json.dumps(workflow, indent=2) + "\n")
            # Run it from the frontend so the thumbnail shows the result in the Save Video node.
            outputs = ui.queue_and_wait("SaveVideo")
            ui.wait_for_videos("type=input", EXAMPLES[name])
            for output in outputs:  # by file name: the previous example's previews may still be in the page
                ui.wait_for_videos(output["images"][0]["filename"], 1)
            shot = Path(profile) / f"{name}.png"
            ui.screenshot(shot, clip=thumbnail_bounds(ui, margin=24))
            img = Image.open(shot).convert("RGB")
            img = img.resize((THUMBNAIL_WIDTH, round(img.height * THUMBNAIL_WIDTH / img.width)), Image.LANCZOS)
            img.save(path.with_suffix(".jpg"), quality=88)
            written += [path, path.with_suffix(".jpg")]
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        help="a running ComfyUI with this pack (else a temporary one is started, with tiny random models); "
        "its input folder must hold input_video.mp4 and input_depth.mp4, and its models/ the model folders",
    )
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"examples to build (default: all: {list(EXAMPLES)})")
    args = parser.parse_args()
    names = args.names or list(EXAMPLES)
    unknown = sorted(set(names) - set(EXAMPLES))
    if unknown:
        parser.error(f"unknown examples {unknown}; known: {list(EXAMPLES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.url:
        written = build(args.url, args.out, names)
    else:
        with tempfile.TemporaryDirectory() as base:
            server = ComfyServer(Path(base))
            # The model examples run on tiny random models (what the loaders list must exist before the start).
            install_tiny_models(server.base_dir / "models")
            with server:
                make_source_clip(server.input_dir / "input_video.mp4", tone_hz=440.0)
                make_depth_clip(server.input_dir / "input_depth.mp4", style="ramp")
                try:
                    written = build(server.url, args.out, names)
                except Exception:
                    print(f"ComfyUI server log (tail):\n{server.log_tail(80)}", file=sys.stderr)
                    raise
    for path in written:
        print(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)


if __name__ == "__main__":
    main()
