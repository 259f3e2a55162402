"""API-format prompts through the real server: video + depth → ForwardSplat → ComposeSBS / ComposeAnaglyph →
core save nodes, and checks on the files written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from comfy_harness import PromptError, PromptTimeout
from media import best_horizontal_shift, read_video
from PIL import Image
from workflow_convert import widget_inputs, widget_names

PROMPT_TIMEOUT = 240


def splat_prompt(source: str, depth: str, depth_as_mask: bool = False, **splat: object) -> dict:
    """LoadVideo ×2 → GetVideoComponents ×2 → SC3D_ForwardSplat (node "5"); depth optionally as a MASK."""
    prompt = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": source}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "LoadVideo", "inputs": {"file": depth}},
        "4": {"class_type": "GetVideoComponents", "inputs": {"video": ["3", 0]}},
        "5": {
            "class_type": "SC3D_ForwardSplat",
            "inputs": {
                "images": ["2", 0],
                "depth": ["4", 0],
                "max_disparity": 20.0,
                "disparity_unit": "pixels",
                "convergence": 0.5,
                "invert": False,
                "reference_edges": False,
                "preview_scale": 0.5,
                "backend": "torch",
                **splat,
            },
        },
    }
    if depth_as_mask:
        prompt["4m"] = {"class_type": "ImageToMask", "inputs": {"image": ["4", 0], "channel": "red"}}
        prompt["5"]["inputs"]["depth"] = ["4m", 0]
    return prompt


def save_video_inputs(object_info: dict, video: list, prefix: str, container: str = "mp4", codec: str = "h264") -> dict:
    """SaveVideo's inputs as the frontend of the server's ComfyUI queues them: ``format`` and ``codec`` (0.3.75)
    or ``format`` and its nested ``format.codec`` (a dynamic combo on 0.33), every other widget at its default."""
    info = object_info["SaveVideo"]
    codec_name = "format.codec" if "format.codec" in widget_names(info) else "codec"
    values = {"filename_prefix": prefix, "format": container, codec_name: codec}
    return {"video": video, **widget_inputs(info, values)}


def saved_pngs(result, output_dir: Path, node: str) -> list[np.ndarray]:
    images = result.outputs[node]["images"]
    files = [output_dir / i["subfolder"] / i["filename"] for i in images]
    for f in files:
        assert f.is_file(), f"{f} was reported but not written"
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


@pytest.fixture(scope="module")
def decoded_source(comfy, comfy_server, clips):
    """The source clip's frames as ComfyUI itself decodes them ([N,H,W,3] uint8, through SaveImage as our outputs
    are): LoadVideo → GetVideoComponents → SaveImage. Not PyAV's rgb24: ComfyUI 0.33 decodes to float RGB, and
    its rounding differs from rgb24's by a level here and there."""
    prompt = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": clips.source_name}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "e2e/decoded_source"}},
    }
    frames = np.stack(saved_pngs(comfy.run(prompt, timeout=PROMPT_TIMEOUT), comfy_server.output_dir, "3"))
    assert frames.shape == (clips.frames, clips.size[1], clips.size[0], 3)
    # ComfyUI's decode is the clip we encoded (H.264 at crf 12: a few levels off at most, on average).
    assert np.abs(frames.astype(int) - clips.source.astype(int)).mean() < 3
    return frames


LAYOUT_SIZES = {  # layout -> (width factor, height factor) on a 480x270 input
    "full SBS": (960, 270),
    "half SBS": (480, 270),
    "full TB": (480, 540),
    "half TB": (480, 270),
    "cross-eyed full SBS": (960, 270),
    "cross-eyed half SBS": (480, 270),
}


@pytest.mark.parametrize("layout", list(LAYOUT_SIZES))
def test_sbs_layouts(comfy, comfy_server, clips, decoded_source, layout):
    prompt = splat_prompt(clips.source_name, clips.depth_name)
    prompt["6"] = {
        "class_type": "SC3D_ComposeSBS",
        "inputs": {"left": ["2", 0], "right": ["5", 0], "layout": layout, "resize_filter": "bicubic"},
    }
    prefix = "e2e/sbs_" + layout.replace(" ", "_")
    prompt["7"] = {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}}
    prompt["8"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": prefix + "_right"}}
    result = comfy.run(prompt, timeout=PROMPT_TIMEOUT)

    frames = saved_pngs(result, comfy_server.output_dir, "7")
    rights = saved_pngs(result, comfy_server.output_dir, "8")
    assert len(frames) == clips.frames == len(rights)
    w, h = LAYOUT_SIZES[layout]
    assert {f.shape for f in frames} == {(h, w, 3)}, f"{layout}: got {frames[0].shape}, want {(h, w, 3)}"
    assert {r.shape for r in rights} == {(270, 480, 3)}
    if layout not in ("full SBS", "cross-eyed full SBS"):
        return
    for i, (frame, right, src) in enumerate(zip(frames, rights, decoded_source, strict=True)):
        first, second = frame[:, :480], frame[:, 480:]
        if layout.startswith("cross-eyed"):
            first, second = second, first
        # The left eye is the input frame as ComfyUI decoded it, untouched (both went through SaveImage).
        diff = np.abs(first.astype(int) - src.astype(int))
        assert diff.max() == 0, f"frame {i}: left eye differs from the decoded input by up to {diff.max()}"
        assert np.array_equal(second, right), f"frame {i}: right half is not ForwardSplat's right output"
        # The right eye is the scene shifted horizontally: the constant far background (rows above and below
        # the near disc) moves by one non-zero disparity, so a shifted left eye matches it closely there.
        bg_rows = np.r_[0:60, 210:270]
        shift, err = best_horizontal_shift(src[bg_rows], second[bg_rows], max_shift=40)
        zero_err = best_horizontal_shift(src[bg_rows], second[bg_rows], max_shift=0)[1]
        assert shift != 0, f"frame {i}: the background of the right eye is not shifted"
        assert err < 5 and err < 0.3 * zero_err, (
            f"frame {i}: right eye background is not the shifted left eye (shift {shift}: error {err:.1f}, "
            f"unshifted {zero_err:.1f})"
        )


def test_anaglyph_video_with_mask_depth_and_audio(comfy, comfy_server, clips, decoded_source, object_info):
    prompt = splat_prompt(clips.source_name, clips.depth_name, depth_as_mask=True)
    prompt["6"] = {
        "class_type": "SC3D_ComposeAnaglyph",
        "inputs": {"left": ["2", 0], "right": ["5", 0], "method": "color"},
    }
    prompt["7"] = {"class_type": "CreateVideo", "inputs": {"images": ["6", 0], "fps": ["2", 2], "audio": ["2", 1]}}
    prompt["8"] = {"class_type": "SaveVideo", "inputs": save_video_inputs(object_info, ["7", 0], "e2e/anaglyph")}
    prompt["9"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "e2e/anaglyph_right"}}
    result = comfy.run(prompt, timeout=PROMPT_TIMEOUT)

    files = [f for f in result.saved_files(comfy_server.output_dir) if f.suffix == ".mp4"]
    assert len(files) == 1 and files[0].is_file(), f"saved: {result.outputs}"
    video = read_video(files[0])
    assert video.frames.shape == (clips.frames, 270, 480, 3)
    assert video.fps == 24
    assert video.audio_streams == 1 and video.audio_samples > 0, "the source's audio was lost"
    rights = np.stack(saved_pngs(result, comfy_server.output_dir, "9")).astype(float)
    out = video.frames.astype(float)
    # color method: red from the left eye, green and blue from the right. H.264 4:2:0 smears the saturated
    # anaglyph colours (mean error ~10 levels), so compare with the other eye as well: must be far closer.
    src = decoded_source.astype(float)
    red_err, red_other = np.abs(out[..., 0] - src[..., 0]).mean(), np.abs(out[..., 0] - rights[..., 0]).mean()
    gb_err, gb_other = np.abs(out[..., 1:] - rights[..., 1:]).mean(), np.abs(out[..., 1:] - src[..., 1:]).mean()
    assert red_err < 14 and red_err < 0.5 * red_other, (
        f"anaglyph red is not the left eye: error {red_err:.1f} vs the left, {red_other:.1f} vs the right"
    )
    assert gb_err < 10 and gb_err < 0.3 * gb_other, (
        f"anaglyph green/blue are not the right eye: error {gb_err:.1f} vs the right, {gb_other:.1f} vs the left"
    )


def test_frame_count_mismatch_is_reported(comfy, clips):
    prompt = splat_prompt(clips.source_name, clips.short_depth_name)
    prompt["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}
    with pytest.raises(PromptError) as err:
        comfy.run(prompt, timeout=PROMPT_TIMEOUT)
    message = str(err.value)
    assert "SC3D_ForwardSplat" in message
    assert "frame" in message.lower(), message


def test_invalid_widget_value_is_reported(comfy, clips):
    # ComfyUI 0.3.75's validate_prompt only checks legacy list-type combos, not V3 "COMBO" inputs, so a bad
    # value may pass validation; the node itself must then fail with a message naming the value.
    prompt = splat_prompt(clips.source_name, clips.depth_name, disparity_unit="inches")
    prompt["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}
    with pytest.raises(PromptError, match="inches"):
        comfy.run(prompt, timeout=60)


def test_timeout_is_reported(comfy, comfy_server, clips):
    """The harness's own failure path: a prompt that outlives its timeout raises, naming the queue, and goes on in
    the server. Timeout 0 is "already past" (checked before any message is read), so this holds however fast or
    loaded the machine is; the prompt is then waited for by its id and its result checked."""
    prompt = splat_prompt(clips.source_name, clips.depth_name, max_disparity=7.0)
    prompt["9"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "e2e/timeout"}}
    with pytest.raises(PromptTimeout, match=r"did not finish within 0 s; queue: \d+ running, \d+ pending") as err:
        comfy.run(prompt, timeout=0)
    assert err.value.prompt_id
    result = comfy.wait(err.value.prompt_id)
    assert len(saved_pngs(result, comfy_server.output_dir, "9")) == clips.frames


def test_fill_holes_fills_only_the_holes(comfy, comfy_server, clips):
    """ForwardSplat → FillHoles at its defaults: the right eye's black holes get colour, every pixel outside the
    filled mask is ForwardSplat's exactly, and the mask it outputs covers at least ForwardSplat's empty pixels."""
    prompt = splat_prompt(clips.source_name, clips.depth_name)
    prompt["6"] = {
        "class_type": "SC3D_FillHoles",
        "inputs": {
            "right": ["5", 0],
            "occlusion": ["5", 1],
            "min_coverage": 0.5,
            "blend": 4,
            "background_side": "right",
        },
    }
    prefix = "e2e/fill"
    prompt["7"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": prefix + "_splat"}}
    prompt["8"] = {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix + "_filled"}}
    for key, mask in (("9", ["5", 1]), ("10", ["6", 1])):
        prompt[key + "i"] = {"class_type": "MaskToImage", "inputs": {"mask": mask}}
        prompt[key] = {"class_type": "SaveImage", "inputs": {"images": [key + "i", 0], "filename_prefix": prefix}}
    result = comfy.run(prompt, timeout=PROMPT_TIMEOUT)
    splat = np.stack(saved_pngs(result, comfy_server.output_dir, "7")).astype(int)
    filled = np.stack(saved_pngs(result, comfy_server.output_dir, "8")).astype(int)
    empty = np.stack(saved_pngs(result, comfy_server.output_dir, "9"))[..., 0] == 255  # nothing landed
    holes = np.stack(saved_pngs(result, comfy_server.output_dir, "10"))[..., 0] == 255  # what FillHoles filled
    assert splat.shape == filled.shape == (clips.frames, 270, 480, 3)
    assert empty.any(axis=(1, 2)).all(), "the moving near disc must leave holes in every frame"
    assert splat[empty].max() == 0, "ForwardSplat's holes should be black (else this test checks nothing)"
    assert not (empty & ~holes).any(), "FillHoles' mask misses pixels where nothing landed"
    # Outside the filled mask FillHoles changes nothing (both went through SaveImage: exactly equal).
    diff = np.abs(filled - splat)[~holes]
    assert diff.max() == 0, f"FillHoles changed {np.count_nonzero(diff)} values outside its mask (by {diff.max()})"
    # Inside, the holes take the scene's colours: all were black, now at most a few are (0.4 % of the DAVIS frames'
    # pixels are that dark; a hole copies the background beside it).
    black = (filled[holes].max(axis=-1) <= 2).mean()
    assert black < 0.1, f"{black:.1%} of the filled hole pixels are still black"
    # ... from the background beside them: each filled row segment is close to the first pixel right of it.
    frame = int(np.argmax(holes.sum(axis=(1, 2))))
    rows, cols = np.nonzero(holes[frame] & ~holes[frame][:, np.r_[1:480, 479]])  # last hole pixel of a run
    inside = cols < 479
    rows, cols = rows[inside], cols[inside]
    border = np.abs(filled[frame, rows, cols] - filled[frame, rows, cols + 1]).mean()
    assert border < 3, f"filled pixels differ from the background pixel beside them by {border:.1f} on average"
