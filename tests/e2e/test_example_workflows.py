"""example_workflows/*.json: UI-format files that convert to valid API prompts and run on the real server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from comfy_harness import PACK_DIR_NAME, REPO_ROOT
from media import Video, make_source_clip, read_video
from PIL import Image
from workflow_convert import ui_to_api

EXAMPLES = sorted((REPO_ROOT / "example_workflows").glob("*.json"))
# What each example saves: SaveVideo filename prefix (in output/video/) -> output width in input widths (the
# height, frame count, fps and audio are the input video's).
SAVED = {
    "sbs_from_your_depth": {"stereo_sbs": 2},
    "anaglyph_from_your_depth": {"stereo_anaglyph": 1},
    "depth_to_sbs": {"stereo_depthcrafter_sbs": 2},
    "sbs_light_depth": {"stereo_light_sbs": 2},
    "inpaint_to_sbs": {"stereo_inpainted_sbs": 2},
    "stereocrafter2_to_sbs": {"stereo_sc2_sbs": 2},
    "depth_only": {"depth": 1},
    "full_pipeline": {"stereo_full_sbs": 2, "stereo_full_anaglyph": 1},
}
GREY = {"depth"}  # saved depth videos: R = G = B
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
    assert {p.stem for p in EXAMPLES} == set(SAVED), f"found {[p.name for p in EXAMPLES]}; expected {list(SAVED)}"


@pytest.fixture(scope="module")
def input_video(comfy_server, clips) -> Video:
    """input_video.mp4, the file the examples load (conftest.py: 8 frames, 256x144, 24 fps, a 440 Hz tone)."""
    video = read_video(comfy_server.input_dir / "input_video.mp4")
    assert video.audio_streams == 1 and video.audio_seconds > 0.2, "the examples' input video must have audio"
    return video


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
def test_right_eye_has_no_black_holes(path: Path):
    """Every composed right eye comes from a hole filler (FillHoles, or StereoInpaint with its models), never
    straight from ForwardSplat with its black holes; FillHoles gets both of ForwardSplat's right and occlusion."""
    wf = json.loads(path.read_text())
    types = {n["id"]: n["type"] for n in wf["nodes"]}
    # links: [id, from node, from slot, to node, to slot, type]; the composers' inputs are (left, right)
    into = {(link[3], link[4]): (types[link[1]], link[2]) for link in wf["links"]}
    for node_id, node_type in types.items():
        if node_type in ("SC3D_ComposeSBS", "SC3D_ComposeAnaglyph"):
            assert into[(node_id, 1)][0] in ("SC3D_FillHoles", "SC3D_StereoInpaint"), (node_id, into[(node_id, 1)])
        if node_type == "SC3D_FillHoles":
            assert into[(node_id, 0)] == ("SC3D_ForwardSplat", 0) and into[(node_id, 1)] == ("SC3D_ForwardSplat", 1)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(comfy, comfy_server, tiny_models, object_info, input_video, path: Path):
    """Every SaveVideo output: frame count, height, fps and audio (about as long) of the input video; width by
    SAVED; SBS halves start with the input video (left eye); depth is grey."""
    workflow = json.loads(path.read_text())
    notes: list[str] = []
    prompt = ui_to_api(workflow, object_info, notes)  # raises listing every mismatch with /object_info
    assert any(node["class_type"].startswith("SC3D_") for node in prompt.values())
    # Our nodes' saved values match this server exactly; core nodes may have gained or lost inputs between
    # ComfyUI versions (the file is saved by the newest; CreateVideo's bit_depth is dropped on 0.3.75).
    assert not [n for n in notes if "(SC3D_" in n], notes
    speed_up(prompt)  # test-only: lighter model settings (see FAST_WIDGETS)
    result = comfy.run(prompt, timeout=240, workflow=workflow)
    videos = {
        re.sub(r"_\d+_?$", "", f.stem): f for f in result.saved_files(comfy_server.output_dir) if f.suffix == ".mp4"
    }
    assert sorted(videos) == sorted(SAVED[path.stem]), f"{path.name} saved {videos}; outputs: {result.outputs}"
    n, height, width = input_video.frames.shape[:3]
    for prefix, video_path in videos.items():
        assert video_path.parent == comfy_server.output_dir / "video" and video_path.stat().st_size > 0
        video = read_video(video_path)
        assert video.frames.shape == (n, height, SAVED[path.stem][prefix] * width, 3), prefix
        assert video.fps == input_video.fps == 24, f"{prefix}: CreateVideo did not take the source's fps"
        assert video.audio_streams == 1, f"{prefix}: the source's audio did not reach the saved video"
        # "About as long": AAC works in 1024-sample frames (23 ms at 44.1 kHz); the clip has 0.35 s.
        assert abs(video.audio_seconds - input_video.audio_seconds) < 0.05, (
            f"{prefix}: {video.audio_seconds:.3f} s of audio for a {input_video.audio_seconds:.3f} s source"
        )
        frames = video.frames.astype(np.int16)
        # Side by side: the left half is the input video (H.264 twice: about 4.6 levels off; another picture: 28+).
        if SAVED[path.stem][prefix] == 2:
            left_error = np.abs(frames[:, :, :width] - input_video.frames).mean()
            assert left_error < 8, f"{prefix}: the left eye is not the input video (mean error {left_error:.1f})"
        if prefix in GREY:  # grey in, neutral chroma out: R = G = B once decoded
            spread = (frames.max(axis=3) - frames.min(axis=3)).max()
            assert spread <= 2, f"{prefix}: the depth video is not grey (R, G, B differ by up to {spread})"


def test_full_pipeline_on_another_clip(comfy, comfy_server, object_info):
    """full_pipeline.json on a silent 5-frame 192x108 clip at 15 fps: the outputs follow the clip (no audio
    stream, its fps and frame count), nothing is fixed to the example's input."""
    make_source_clip(comfy_server.input_dir / "sc3d_silent_15fps.mp4", frames=5, size=(192, 108), fps=15)
    workflow = json.loads((REPO_ROOT / "example_workflows" / "full_pipeline.json").read_text())
    prompt = speed_up(ui_to_api(workflow, object_info))
    (load,) = [node for node in prompt.values() if node["class_type"] == "LoadVideo"]
    load["inputs"]["file"] = "sc3d_silent_15fps.mp4"
    result = comfy.run(prompt, timeout=240)
    videos = {
        re.sub(r"_\d+_?$", "", f.stem): read_video(f)
        for f in result.saved_files(comfy_server.output_dir)
        if f.suffix == ".mp4"
    }
    assert sorted(videos) == ["stereo_full_anaglyph", "stereo_full_sbs"], result.outputs
    assert videos["stereo_full_sbs"].frames.shape == (5, 108, 384, 3)
    assert videos["stereo_full_anaglyph"].frames.shape == (5, 108, 192, 3)
    for video in videos.values():
        assert video.fps == 15 and video.audio_streams == 0


def test_examples_are_served_as_templates(comfy):
    """ComfyUI lists example_workflows/ in its template browser, under the pack's folder name."""
    listed = comfy.get_json("/api/workflow_templates").get(PACK_DIR_NAME, [])
    assert sorted(listed) == sorted(p.stem for p in EXAMPLES)
