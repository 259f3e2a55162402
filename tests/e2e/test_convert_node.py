"""ConvertVideoTo3D through the real server: a video file in, a stereo video file (with the source's audio) out,
with DepthCrafter + StereoCrafter (tiny models) or your own depth video; progress, cancel and resume."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from comfy_harness import PromptError, PromptInterrupted
from media import make_depth_clip, make_source_clip, read_video
from test_model_workflows import load_depthcrafter, load_stereocrafter
from test_stereo_workflows import saved_pngs

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
    # In frames over both passes (8 depth + 8 stereo), never going back.
    assert progress[-1]["max"] == 2 * clips.frames, progress[-1]
    values = [p["value"] for p in progress]
    # DepthCrafter's and StereoCrafter's steps (2 each) move it between the frames the passes finish. ComfyUI 0.33
    # drops updates that come within 100 ms of the last one sent (comfy.utils.ProgressBar), which the tiny models
    # do on a fast machine: only there the updates inside each pass are not all sent, so they are checked only
    # where nothing is dropped.
    utils = (comfy_server.comfy_dir / "comfy" / "utils.py").read_text()
    if "PROGRESS_THROTTLE_MIN_INTERVAL" not in utils:
        frames = clips.frames
        assert any(0 < v < frames for v in values) and any(frames < v < 2 * frames for v in values), values


def test_own_depth_video_anaglyph_without_inpainting(comfy, comfy_server, clips):
    prompt = convert(clips.small_name, "sc3d_convert/own", depth_video_path=clips.small_depth_name, layout="anaglyph")
    path = written_file(comfy.run(prompt, timeout=PROMPT_TIMEOUT), comfy_server.output_dir)
    assert path.name.endswith("_anaglyph.mp4")
    video = read_video(path)
    width, height = clips.small_size
    assert video.frames.shape[:3] == (clips.frames, height, width)


def test_without_stereocrafter_the_holes_are_filled_unless_black(comfy, comfy_server, clips):
    """No inpainting model: by default (``holes`` left out, as in prompts saved before it) the right eye's holes
    are filled from the background; ``holes="black"`` leaves them black. Away from the holes both agree."""
    eyes = {}
    for holes in ("default", "black"):
        extra = {} if holes == "default" else {"holes": holes}
        prompt = convert(clips.small_name, f"sc3d_convert/holes_{holes}", depth_video_path=clips.small_depth_name)
        prompt["convert"]["inputs"].update(extra)
        frames = read_video(written_file(comfy.run(prompt, timeout=PROMPT_TIMEOUT), comfy_server.output_dir)).frames
        eyes[holes] = frames.astype(np.int16)
    width = clips.small_size[0]
    filled, black = eyes["default"][:, :, width:], eyes["black"][:, :, width:]
    # The same left eye (H.264 codes the whole SBS frame: the blocks beside the right half differ a little).
    assert np.abs(eyes["default"][:, :, :width] - eyes["black"][:, :, :width]).mean() < 3
    # The holes beside the moving near disc: near-black in the black output (H.264 blurs their edges a little).
    dark = black.max(axis=-1) <= 24
    changed = np.abs(filled - black).max(axis=-1) > 24
    assert (dark & changed).sum() > 50 * clips.frames, f"only {(dark & changed).sum()} dark pixels were filled"
    # Pure black is rare in the DAVIS frames (0.4 % of pixels) but fills the holes: most of it is gone.
    pure = black.max(axis=-1) <= 8
    still = (filled[pure].max(axis=-1) <= 8).mean()
    assert still < 0.5, f"{still:.0%} of the black output's black pixels are black in the default output too"
    # Elsewhere the two right eyes are the same picture (up to H.264 noise around the holes).
    away = ~dark
    noise = np.median(np.abs(filled - black)[away])
    assert noise <= 2 and (changed & away).mean() < 0.03, (noise, (changed & away).mean())


def progress_values(result) -> list[int]:
    return [m["data"]["value"] for m in result.messages if m["type"] == "progress"]


def test_progress_without_shot_detection_never_goes_back(comfy, comfy_server, clips):
    """scenes="none" (one shot, nothing detected): the bar only moves forward, to its end."""
    prompt = convert(clips.small_name, "sc3d_convert/progress_none", depth_video_path=clips.small_depth_name)
    prompt["convert"]["inputs"]["scenes"] = "none"
    values = progress_values(comfy.run(prompt, timeout=PROMPT_TIMEOUT))
    assert values and values == sorted(values) and values[-1] == clips.frames, values


def test_progress_with_shot_detection_never_goes_back(comfy, comfy_server, clips):
    prompt = convert(clips.small_name, "sc3d_convert/progress_detect", depth_video_path=clips.small_depth_name)
    values = progress_values(comfy.run(prompt, timeout=PROMPT_TIMEOUT))
    assert values and values == sorted(values) and values[-1] == clips.frames, values


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


def test_files_picked_from_the_lists_convert(comfy, comfy_server, clips):
    """video_file / depth_video_file (the input folder's videos, as core Load Video lists them), no link."""
    prompt = convert(clips.small_name, "sc3d_convert/from_list", depth_video_file=clips.small_depth_name)
    prompt["convert"]["inputs"]["video_file"] = clips.small_name
    del prompt["convert"]["inputs"]["video"], prompt["src"]
    path = written_file(comfy.run(prompt, timeout=PROMPT_TIMEOUT), comfy_server.output_dir)
    assert read_video(path).frames.shape[0] == clips.frames


def test_two_sources_or_an_unlisted_file_are_clear_errors(comfy, clips):
    prompt = convert(clips.small_name, "sc3d_convert/both", depth_video_file=clips.small_depth_name)
    prompt["convert"]["inputs"]["video_file"] = clips.small_name
    with pytest.raises(PromptError, match=r"video \(link\) and video_file are both given"):
        comfy.run(prompt, timeout=PROMPT_TIMEOUT)
    prompt = convert(clips.small_name, "sc3d_convert/outside", depth_video_file="../" + clips.small_depth_name)
    with pytest.raises(PromptError, match="depth_video_file: .* is not a video in ComfyUI's input folder"):
        comfy.run(prompt, timeout=PROMPT_TIMEOUT)


# A VIDEO's trim window (core "Video Slice", ComfyUI 0.33; 0.3.75 has no such node): mid-frame times on a 24 fps
# clip, so that no frame sits on a boundary.
TRIM = {"start_time": 0.3, "duration": 0.5, "strict_duration": False}


@pytest.fixture(scope="module")
def trim_clips(comfy_server, object_info):
    if "Video Slice" not in object_info:
        pytest.skip("this ComfyUI has no Video Slice node (trim windows came after 0.3.75)")
    video, depth = "sc3d_trim_source.mp4", "sc3d_trim_depth.mp4"
    make_source_clip(comfy_server.input_dir / video, frames=24, size=(256, 144), tone_hz=440.0)
    make_depth_clip(comfy_server.input_dir / depth, frames=24, size=(256, 144))
    return video, depth


def trimmed(prompt: dict, key: str, file: str) -> list:
    """LoadVideo ``key`` (replacing one there) → Video Slice ``key + "_trim"`` (TRIM); returns the trimmed VIDEO."""
    prompt[key] = {"class_type": "LoadVideo", "inputs": {"file": file}}
    prompt[key + "_trim"] = {"class_type": "Video Slice", "inputs": {"video": [key, 0], **TRIM}}
    return [key + "_trim", 0]


def comfy_decode(prompt: dict, video: list, prefix: str) -> str:
    """Adds GetVideoComponents → SaveImage of ``video`` (ComfyUI's own decode of it); returns the SaveImage key."""
    prompt["decode"] = {"class_type": "GetVideoComponents", "inputs": {"video": video}}
    prompt["decoded"] = {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": prefix}}
    return "decoded"


def check_trimmed_output(result, output_dir: Path, decoded_key: str, width: int) -> None:
    """The stereo video has the frames ComfyUI decodes from the trimmed VIDEO (count, fps, the left eye's
    pictures) and the trimmed audio's length."""
    ours = read_video(written_file(result, output_dir))
    theirs = np.stack(saved_pngs(result, output_dir, decoded_key)).astype(np.int16)
    n = len(theirs)
    assert 0 < n < 24, f"ComfyUI decodes {n} frames of the trimmed 24-frame clip"
    assert ours.frames.shape[0] == n, f"{ours.frames.shape[0]} frames written for a trim ComfyUI decodes as {n}"
    assert ours.fps == 24
    left = ours.frames[:, :, :width].astype(np.int16)
    err = np.abs(left - theirs).mean(axis=(1, 2, 3))
    # Each frame is ComfyUI's frame at the same index (H.264 once more: a few levels), not a neighbour's.
    shifted = np.abs(left[1:] - theirs[:-1]).mean()
    assert err.max() < 6 and err.mean() < 0.5 * shifted, f"left eye vs the trimmed frames: {err}, shifted {shifted}"
    assert abs(ours.audio_seconds - TRIM["duration"]) < 0.06, f"{ours.audio_seconds:.3f} s of audio for the trim"


def test_trimmed_video_with_models(comfy, comfy_server, tiny_models, trim_clips):
    """LoadVideo → Video Slice → ConvertVideoTo3D (DepthCrafter): only the trimmed frames, with their audio."""
    prompt = convert(trim_clips[0], "sc3d_convert/trim_models", depthcrafter=["load_dc", 0], chunk_frames=4)
    prompt["convert"]["inputs"]["video"] = trimmed(prompt, "src", trim_clips[0])
    prompt["load_dc"] = load_depthcrafter()
    decoded = comfy_decode(prompt, ["src_trim", 0], "sc3d_convert/trim_models_decoded")
    result = comfy.run(prompt, timeout=PROMPT_TIMEOUT)
    check_trimmed_output(result, comfy_server.output_dir, decoded, 256)


def test_trimmed_video_and_depth_video(comfy, comfy_server, trim_clips):
    """Both VIDEO inputs trimmed the same way (no models): the trimmed frames of each."""
    prompt = convert(trim_clips[0], "sc3d_convert/trim_depth", chunk_frames=5)
    prompt["convert"]["inputs"]["video"] = trimmed(prompt, "src", trim_clips[0])
    prompt["convert"]["inputs"]["depth_video"] = trimmed(prompt, "dep", trim_clips[1])
    decoded = comfy_decode(prompt, ["src_trim", 0], "sc3d_convert/trim_depth_decoded")
    result = comfy.run(prompt, timeout=PROMPT_TIMEOUT)
    check_trimmed_output(result, comfy_server.output_dir, decoded, 256)


def test_trimmed_video_with_an_untrimmed_depth_video_is_reported(comfy, trim_clips):
    prompt = convert(trim_clips[0], "sc3d_convert/trim_mismatch")
    prompt["convert"]["inputs"]["video"] = trimmed(prompt, "src", trim_clips[0])
    prompt["dep"] = {"class_type": "LoadVideo", "inputs": {"file": trim_clips[1]}}
    prompt["convert"]["inputs"]["depth_video"] = ["dep", 0]
    with pytest.raises(PromptError, match="trim both the same way"):
        comfy.run(prompt, timeout=PROMPT_TIMEOUT)


def test_video_from_images_keeps_its_frame_rate(comfy, comfy_server, clips):
    """A VIDEO made by Create Video at 12 fps (no file behind it; 24 fps frames): the output is at 12 fps, with
    every frame."""
    prompt = convert(clips.small_name, "sc3d_convert/fps12", depth_video_path=clips.small_depth_name)
    prompt["parts"] = {"class_type": "GetVideoComponents", "inputs": {"video": ["src", 0]}}
    prompt["remade"] = {"class_type": "CreateVideo", "inputs": {"images": ["parts", 0], "fps": 12.0}}
    prompt["convert"]["inputs"]["video"] = ["remade", 0]
    video = read_video(written_file(comfy.run(prompt, timeout=PROMPT_TIMEOUT), comfy_server.output_dir))
    width, height = clips.small_size
    assert video.frames.shape[:3] == (clips.frames, height, 2 * width)
    assert video.fps == 12
