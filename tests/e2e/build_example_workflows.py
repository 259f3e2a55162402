"""Regenerates example_workflows/*.json and their .jpg thumbnails by building the graphs in the real frontend.

The graphs are made with LiteGraph in ComfyUI's own frontend (served by a throw-away headless server with
this pack loaded) and saved with ``app.graph.serialize()``, so the files have exactly the format the
frontend writes. Run after changing a node's inputs:

    .venv/bin/python tests/e2e/build_example_workflows.py [--url http://127.0.0.1:8188]
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

from browser import comfy_frontend  # noqa: E402
from comfy_harness import REPO_ROOT, ComfyServer  # noqa: E402
from media import make_depth_clip, make_source_clip  # noqa: E402
from PIL import Image  # noqa: E402

EXAMPLES_DIR = REPO_ROOT / "example_workflows"
THUMBNAIL_WIDTH = 512

NOTE = (
    "StereoCrafter3D: 2D video + depth video -> {what}.\n\n"
    "1. Put your video in ComfyUI/input/ as input_video.mp4 (or pick it in the first Load Video; the "
    "upload button works too).\n"
    "2. Put a depth video of it (same frame count; near = bright, e.g. from DepthCrafter or Video Depth "
    "Anything) in input/ as input_depth.mp4. A MASK or a different size works too.\n"
    "3. Run. The result is saved to output/video/. max_disparity sets the depth strength; "
    "convergence sets what sits on the screen plane.\n"
    "Audio and fps are taken from your video."
)


def workflow_spec(compose: str) -> dict[str, Any]:
    """Nodes (key, type, pos, size, widget values, title) and links (from key, slot, to key, input name)."""
    if compose == "SC3D_ComposeSBS":
        compose_widgets = {"layout": "full SBS", "resize_filter": "bicubic"}
        prefix, what = "video/stereo_sbs", "full side-by-side 3D video"
    else:
        compose_widgets = {"method": "dubois"}
        prefix, what = "video/stereo_anaglyph", "red-cyan anaglyph video"
    nodes = [
        ("note", "Note", [40, 40], [660, 200], {"text": NOTE.format(what=what)}, "Read me"),
        ("video", "LoadVideo", [40, 280], [320, 330], {"file": "input_video.mp4"}, "Load Video (your video)"),
        ("depth", "LoadVideo", [40, 650], [320, 330], {"file": "input_depth.mp4"}, "Load Video (its depth)"),
        ("video_parts", "GetVideoComponents", [400, 280], [240, 90], {}, None),
        ("depth_parts", "GetVideoComponents", [400, 650], [240, 90], {}, None),
        (
            "splat",
            "SC3D_ForwardSplat",
            [690, 460],
            [320, 260],
            {
                "max_disparity": 20.0,
                "disparity_unit": "pixels",
                "convergence": 0.5,
                "invert": False,
                "reference_edges": False,
                "preview_scale": 0.5,
                "backend": "auto",
            },
            None,
        ),
        ("compose", compose, [1060, 280], [300, 110], compose_widgets, None),
        ("create", "CreateVideo", [1400, 280], [260, 100], {"fps": 30.0}, None),
        (
            "save",
            "SaveVideo",
            [1700, 280],
            [380, 420],
            {"filename_prefix": prefix, "format": "auto", "codec": "auto"},
            None,
        ),
    ]
    links = [
        ("video", 0, "video_parts", "video"),
        ("depth", 0, "depth_parts", "video"),
        ("video_parts", 0, "splat", "images"),
        ("depth_parts", 0, "splat", "depth"),
        ("video_parts", 0, "compose", "left"),
        ("splat", 0, "compose", "right"),
        ("compose", 0, "create", "images"),
        ("video_parts", 2, "create", "fps"),
        ("video_parts", 1, "create", "audio"),
        ("create", 0, "save", "video"),
    ]
    return {"nodes": nodes, "links": links}


BUILD_JS = """
(spec) => {
  app.graph.clear();
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


def build(url: str, out_dir: Path) -> list[Path]:
    written = []
    with tempfile.TemporaryDirectory() as profile, comfy_frontend(url, Path(profile)) as ui:
        for name, compose in (
            ("sbs_from_your_depth", "SC3D_ComposeSBS"),
            ("anaglyph_from_your_depth", "SC3D_ComposeAnaglyph"),
        ):
            ui.page.evaluate(BUILD_JS, workflow_spec(compose))
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
            ui.queue_and_wait("SaveVideo")
            ui.wait_for_videos("type=input", 2)
            ui.wait_for_videos("type=output", 1)
            shot = Path(profile) / f"{name}.png"
            ui.screenshot(shot, clip=ui.graph_bounds(margin=24))
            img = Image.open(shot).convert("RGB")
            img = img.resize((THUMBNAIL_WIDTH, round(img.height * THUMBNAIL_WIDTH / img.width)), Image.LANCZOS)
            img.save(path.with_suffix(".jpg"), quality=88)
            written += [path, path.with_suffix(".jpg")]
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        help="a running ComfyUI with this pack (else a temporary one is started); "
        "its input folder must hold input_video.mp4 and input_depth.mp4",
    )
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.url:
        written = build(args.url, args.out)
    else:
        with tempfile.TemporaryDirectory() as base:
            with ComfyServer(Path(base)) as server:
                make_source_clip(server.input_dir / "input_video.mp4", tone_hz=440.0)
                make_depth_clip(server.input_dir / "input_depth.mp4", style="ramp")
                written = build(server.url, args.out)
    for path in written:
        print(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)


if __name__ == "__main__":
    main()
