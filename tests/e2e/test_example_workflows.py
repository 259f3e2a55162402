"""example_workflows/*.json: UI-format files that convert to valid API prompts and run on the real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from comfy_harness import PACK_DIR_NAME, REPO_ROOT
from media import read_video
from PIL import Image
from workflow_convert import ui_to_api

EXAMPLES = sorted((REPO_ROOT / "example_workflows").glob("*.json"))
# Output width per example, in input widths (the height is the input's).
WIDTH_FACTOR = {"sbs_from_your_depth": 2, "anaglyph_from_your_depth": 1, "depth_to_sbs": 2, "inpaint_to_sbs": 2}
# The model examples keep StereoCrafter's settings for real footage (window of 70 frames at up to 1024 px, ...).
# For the tiny random models on the CPU the tests lower the heavy ones, in the converted API prompt only: the
# files are not changed (test_browser.py runs them as saved).
FAST_WIDGETS = {
    "SC3D_VideoDepth": {"steps": 2, "window_size": 6, "overlap": 2, "max_res": 128},
    "SC3D_StereoInpaint": {"steps": 2, "tile_num": 1},
}


def speed_up(prompt: dict) -> dict:
    """Applies FAST_WIDGETS to an API prompt (in place; returns it)."""
    for node in prompt.values():
        node["inputs"].update(FAST_WIDGETS.get(node["class_type"], {}))
    return prompt


def test_examples_exist():
    assert {p.stem for p in EXAMPLES} >= set(WIDTH_FACTOR), f"found {[p.name for p in EXAMPLES]}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_format_and_thumbnail(path: Path):
    wf = json.loads(path.read_text())
    assert wf.get("version") == 0.4 and isinstance(wf["links"], list) and all(isinstance(x, list) for x in wf["links"])
    assert max(n["id"] for n in wf["nodes"]) <= wf["last_node_id"]
    assert max(x[0] for x in wf["links"]) <= wf["last_link_id"]
    for node in wf["nodes"]:
        assert node.get("mode", 0) == 0, f"node {node['id']} ({node['type']}) is muted or bypassed"
    thumb = path.with_suffix(".jpg")
    assert thumb.is_file(), f"{thumb.name} (the template browser's thumbnail) is missing"
    with Image.open(thumb) as img:
        assert img.format == "JPEG" and 256 <= img.width <= 1024


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(comfy, comfy_server, clips, tiny_models, object_info, path: Path):
    workflow = json.loads(path.read_text())
    prompt = ui_to_api(workflow, object_info)  # raises listing every mismatch with /object_info
    assert any(node["class_type"].startswith("SC3D_") for node in prompt.values())
    speed_up(prompt)  # test-only: lighter model settings (see FAST_WIDGETS)
    result = comfy.run(prompt, timeout=240, workflow=workflow)
    videos = [f for f in result.saved_files(comfy_server.output_dir) if f.suffix == ".mp4"]
    assert videos, f"{path.name} saved no video; outputs: {result.outputs}"
    for video_path in videos:
        assert video_path.is_file() and video_path.stat().st_size > 0
        video = read_video(video_path)
        width, height = clips.small_size  # the examples' input_video.mp4 (conftest.py)
        width *= WIDTH_FACTOR.get(path.stem, video.frames.shape[2] // width)
        assert video.frames.shape == (clips.frames, height, width, 3)
        assert video.fps == 24, "CreateVideo did not take the source's fps"
        assert video.audio_streams == 1, "the source's audio did not reach the saved video"


def test_examples_are_served_as_templates(comfy):
    """ComfyUI lists example_workflows/ in its template browser, under the pack's folder name."""
    listed = comfy.get_json("/api/workflow_templates").get(PACK_DIR_NAME, [])
    assert sorted(listed) == sorted(p.stem for p in EXAMPLES)
