"""ConvertVideoTo3D through the real server: a video file in, a stereo video file (with the source's audio) out,
with DepthCrafter + StereoCrafter (tiny models) or your own depth video; progress, cancel and resume."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from comfy_harness import PromptError, PromptInterrupted
from media import read_video
from test_model_workflows import load_depthcrafter, load_stereocrafter

PROMPT_TIMEOUT = 300


def convert(video_file: str, prefix: str, **inputs: object) -> dict:
    """A prompt: LoadVideo → ConvertVideoTo3D (small, fast settings; ``inputs`` override or add links)."""
    settings = {
        "video": ["src", 0],
        "video_path": "",
        "depth_video_path": "",
        "layout": "full SBS",
        "anaglyph_method": "dubois",
        "max_disparity": 12.0,
        "disparity_unit": "pixels",
        "convergence": 0.5,
        "invert_depth": False,
        "depth_steps": 1,
        "inpaint_steps": 1,
        "seed": 42,
        "codec": "h264",
        "crf": 18,
        "chunk_frames": 3,
        "filename_prefix": prefix,
    }
    settings.update(inputs)
    return {
        "src": {"class_type": "LoadVideo", "inputs": {"file": video_file}},
        "convert": {"class_type": "SC3D_ConvertVideoTo3D", "inputs": settings},
    }


def written_file(result, output_dir: Path) -> Path:
    files = [f for f in result.saved_files(output_dir) if f.suffix == ".mp4"]
    assert len(files) == 1 and files[0].is_file(), f"outputs: {result.outputs}"
    return files[0]


def test_full_conversion_with_models_keeps_audio(comfy, comfy_server, clips, tiny_models):
    models = {"depthcrafter": ["load_dc", 0], "stereocrafter": ["load_sc", 0]}
    prompt = convert(clips.small_name, "sc3d_convert/full", depth_steps=2, inpaint_steps=2, **models)
    prompt["load_dc"], prompt["load_sc"] = load_depthcrafter(), load_stereocrafter()
    result = comfy.run(prompt, timeout=PROMPT_TIMEOUT)
    path = written_file(result, comfy_server.output_dir)
    assert path.name.startswith("full_sc3d_small_SBS_LR")
    video = read_video(path)
    width, height = clips.small_size
    assert video.frames.shape[0] == clips.frames and video.frames.shape[1:3] == (height, 2 * width)
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 1, "the source's tone track is missing"
    progress = [m["data"] for m in result.messages if m["type"] == "progress"]
    assert progress and progress[-1]["value"] == progress[-1]["max"], progress[-3:]
    # In frames over both passes (8 depth + 8 stereo); DepthCrafter's and StereoCrafter's steps (2 each) move it
    # between the frames the passes finish.
    assert progress[-1]["max"] == 2 * clips.frames, progress[-1]
    values = {p["value"] for p in progress}
    frames = clips.frames
    assert any(0 < v < frames for v in values) and any(frames < v < 2 * frames for v in values), values


def test_own_depth_video_anaglyph_without_inpainting(comfy, comfy_server, clips):
    prompt = convert(clips.small_name, "sc3d_convert/own", depth_video_path=clips.small_depth_name, layout="anaglyph")
    path = written_file(comfy.run(prompt, timeout=PROMPT_TIMEOUT), comfy_server.output_dir)
    assert path.name.endswith("_anaglyph.mp4")
    video = read_video(path)
    width, height = clips.small_size
    assert video.frames.shape[:3] == (clips.frames, height, width)


def test_cancel_then_queue_again_resumes(comfy, comfy_server, clips, tiny_models):
    prompt = convert(clips.small_name, "sc3d_convert/resume", depthcrafter=["load_dc", 0], chunk_frames=2)
    prompt["load_dc"] = load_depthcrafter()
    cancelled: list[str] = []

    def cancel_in_stereo_pass(message: dict, prompt_id: str) -> None:
        data = message.get("data") or {}
        # The depth pass is the first half of the bar: cancel once the stereo pass has written a segment.
        if message["type"] == "progress" and data.get("value", 0) > 0.6 * data.get("max", 1) and not cancelled:
            cancelled.append(prompt_id)
            comfy.interrupt(prompt_id)

    with pytest.raises(PromptInterrupted):
        comfy.run(prompt, timeout=PROMPT_TIMEOUT, on_message=cancel_in_stereo_pass)
    work_dirs = list((comfy_server.output_dir / "sc3d_convert").glob("resume_*.partial.d"))
    assert len(work_dirs) == 1 and (work_dirs[0] / "progress.json").is_file()
    result = comfy.run(prompt, timeout=PROMPT_TIMEOUT)
    path = written_file(result, comfy_server.output_dir)
    assert path.with_name(path.name + ".partial.d") == work_dirs[0] and not work_dirs[0].exists()
    assert read_video(path).frames.shape[0] == clips.frames


def test_missing_depth_source_is_a_clear_error(comfy, clips):
    with pytest.raises(PromptError, match="connect depthcrafter .*or a depth video"):
        comfy.run(convert(clips.small_name, "sc3d_convert/none"), timeout=PROMPT_TIMEOUT)
