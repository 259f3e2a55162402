"""API-format prompts with the model nodes, on the tiny random models in the server's models/ (model_dirs.py):
LoadDepthCrafter + VideoDepth and LoadStereoCrafter / LoadStereoCrafter2 + StereoInpaint wired to ForwardSplat,
ComposeSBS and the core save nodes, StereoCrafter2 in Convert Video to 3D; error messages for wrong model folders and
inputs; cancelling a running prompt.

The tiny models output noise: these tests check sizes, frame counts, value ranges, the composite and the
messages, not the quality of depth or inpainting (the unit tests and bench/ compare with the reference)."""

from __future__ import annotations

import numpy as np
import pytest
from comfy_harness import PromptError, PromptInterrupted
from media import read_video
from model_dirs import (
    DEPTHCRAFTER_NAME,
    STEREOCRAFTER2_NAME,
    STEREOCRAFTER_NAME,
    SVD_NAME,
    WAN_BASE_NAME,
    WRONG_DEPTHCRAFTER_NAME,
)
from PIL import Image, ImageFilter
from test_stereo_workflows import save_video_inputs, saved_pngs

PROMPT_TIMEOUT = 240
# Small DepthCrafter settings for the CPU: 2 windows of 6 frames (overlap 2) on an 8-frame clip, at 128x64.
FAST_DEPTH = {"steps": 2, "guidance_scale": 1.2, "window_size": 6, "overlap": 2, "seed": 1, "max_res": 128}


def load_video(prompt: dict, key: str, file: str) -> list:
    """LoadVideo + GetVideoComponents as ``key`` / ``key + 'c'``; returns the images output."""
    prompt[key] = {"class_type": "LoadVideo", "inputs": {"file": file}}
    prompt[key + "c"] = {"class_type": "GetVideoComponents", "inputs": {"video": [key, 0]}}
    return [key + "c", 0]


LOADER_DEFAULTS = {"precision": "auto", "download_missing": False, "compile": False}


def load_depthcrafter(depthcrafter: str = DEPTHCRAFTER_NAME, svd: str = SVD_NAME, **inputs: object) -> dict:
    return {
        "class_type": "SC3D_LoadDepthCrafter",
        "inputs": {"depthcrafter": depthcrafter, "svd": svd, **LOADER_DEFAULTS, **inputs},
    }


def load_stereocrafter(stereocrafter: str = STEREOCRAFTER_NAME, svd: str = SVD_NAME, **inputs: object) -> dict:
    return {
        "class_type": "SC3D_LoadStereoCrafter",
        "inputs": {"stereocrafter": stereocrafter, "svd": svd, **LOADER_DEFAULTS, **inputs},
    }


def load_stereocrafter2(
    transformer: str = STEREOCRAFTER2_NAME, wan_base: str = WAN_BASE_NAME, **inputs: object
) -> dict:
    defaults = {"precision": "auto", "memory_mode": "auto", "download_missing": False}
    return {
        "class_type": "SC3D_LoadStereoCrafter2",
        "inputs": {"transformer": transformer, "wan_base": wan_base, **defaults, **inputs},
    }


# StereoCrafter2's chunks are 1 + 4k frames: 5 (overlap 2) gives 2 chunks of the 8 frames, as v1's 6 do.
V2_INPAINT = {"frames_chunk": 5}


def video_depth(images: list, **settings: object) -> dict:
    return {
        "class_type": "SC3D_VideoDepth",
        "inputs": {"depthcrafter": ["load_dc", 0], "images": images, **FAST_DEPTH, **settings},
    }


def forward_splat(images: list, depth: list) -> dict:
    return {
        "class_type": "SC3D_ForwardSplat",
        "inputs": {
            "images": images,
            "depth": depth,
            "max_disparity": 20.0,
            "disparity_unit": "pixels",
            "convergence": 0.5,
            "invert": False,
            "reference_edges": False,
            "preview_scale": 0.5,
            "backend": "torch",
        },
    }


def stereo_inpaint(right: list, occlusion: list, **settings: object) -> dict:
    inputs = {
        "stereocrafter": ["load_sc", 0],
        "right": right,
        "occlusion": occlusion,
        "steps": 2,
        "guidance_scale": 1.0,
        "frames_chunk": 6,  # 2 chunks of the 8 frames, overlap 2: exercises the chunk feedback and crossfade
        "overlap": 2,
        "tile_num": 1,
        "seed": 0,
        "composite": True,
        "seams": "crossfade",
        "fit": "pad",
    }
    return {"class_type": "SC3D_StereoInpaint", "inputs": {**inputs, **settings}}


def save_image(images: list, prefix: str) -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": images, "filename_prefix": prefix}}


def save_video(prompt: dict, images: list, parts: list, prefix: str, object_info: dict) -> None:
    """CreateVideo (fps and audio from GetVideoComponents ``parts``) + SaveVideo mp4 as "cv"/"sv"."""
    prompt["cv"] = {
        "class_type": "CreateVideo",
        "inputs": {"images": images, "fps": [parts[0], 2], "audio": [parts[0], 1]},
    }
    prompt["sv"] = {"class_type": "SaveVideo", "inputs": save_video_inputs(object_info, ["cv", 0], prefix)}


def saved_video(result, output_dir):
    files = [f for f in result.saved_files(output_dir) if f.suffix == ".mp4"]
    assert len(files) == 1 and files[0].is_file(), f"saved: {result.outputs}"
    return read_video(files[0])


def grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of [H, W] bool by a (2r+1)² square (PIL's MaxFilter)."""
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(img.filter(ImageFilter.MaxFilter(2 * radius + 1))) > 0


def test_video_depth_to_sbs(comfy, comfy_server, clips, tiny_models, object_info):
    """video → LoadDepthCrafter + VideoDepth → ForwardSplat → ComposeSBS → CreateVideo + SaveVideo, depth saved."""
    prompt: dict = {}
    frames = load_video(prompt, "src", clips.source_name)
    prompt["load_dc"] = load_depthcrafter()
    prompt["depth"] = video_depth(frames)
    prompt["splat"] = forward_splat(frames, ["depth", 0])
    prompt["sbs"] = {
        "class_type": "SC3D_ComposeSBS",
        "inputs": {"left": frames, "right": ["splat", 0], "layout": "full SBS", "resize_filter": "bicubic"},
    }
    save_video(prompt, ["sbs", 0], frames, "e2e/depth_sbs", object_info)
    prompt["save_depth"] = save_image(["depth", 0], "e2e/depth_sbs_depth")
    # Out-of-range depth would be clipped silently by SaveImage; these masks show it: (d > 1) and (1 - d > 1).
    prompt["dmask"] = {"class_type": "ImageToMask", "inputs": {"image": ["depth", 0], "channel": "red"}}
    prompt["dinv"] = {"class_type": "InvertMask", "inputs": {"mask": ["dmask", 0]}}
    for name, mask in (("above", "dmask"), ("below", "dinv")):
        prompt[name] = {"class_type": "ThresholdMask", "inputs": {"mask": [mask, 0], "value": 1.0}}
        prompt[name + "_img"] = {"class_type": "MaskToImage", "inputs": {"mask": [name, 0]}}
        prompt[name + "_save"] = save_image([name + "_img", 0], f"e2e/depth_sbs_{name}_range")
    result = comfy.run(prompt, timeout=PROMPT_TIMEOUT)

    video = saved_video(result, comfy_server.output_dir)
    assert video.frames.shape == (clips.frames, 270, 960, 3)
    assert video.fps == 24 and video.audio_streams == 1
    depth = np.stack(saved_pngs(result, comfy_server.output_dir, "save_depth"))
    assert depth.shape == (clips.frames, 270, 480, 3), "VideoDepth must keep the input's frame count and size"
    assert (depth == depth[..., :1]).all(), "the depth IMAGE must be grey (R = G = B)"
    # Normalised 0..1 over the whole clip: the darkest pixel is 0 and the brightest 1 (255 once saved) ...
    assert depth.min() == 0 and depth.max() == 255, (depth.min(), depth.max())
    # ... and nothing lies outside 0..1.
    for name in ("above", "below"):
        out_of_range = np.stack(saved_pngs(result, comfy_server.output_dir, name + "_save"))
        assert not out_of_range.any(), f"VideoDepth has {np.count_nonzero(out_of_range[..., 0])} pixels {name} 0..1"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_stereo_inpaint_to_sbs(comfy, comfy_server, clips, tiny_models, object_info, version):
    """frames + depth → ForwardSplat → LoadStereoCrafter (v1) or LoadStereoCrafter2 (v2) + StereoInpaint →
    ComposeSBS → CreateVideo + SaveVideo; with composite on, the pixels away from the holes are ForwardSplat's."""
    prompt: dict = {}
    frames = load_video(prompt, "src", clips.small_name)
    depth = load_video(prompt, "dep", clips.small_depth_name)
    prompt["splat"] = forward_splat(frames, depth)
    prompt["load_sc"] = load_stereocrafter() if version == "v1" else load_stereocrafter2()
    prompt["inpaint"] = stereo_inpaint(["splat", 0], ["splat", 1], **({} if version == "v1" else V2_INPAINT))
    prompt["sbs"] = {
        "class_type": "SC3D_ComposeSBS",
        "inputs": {"left": frames, "right": ["inpaint", 0], "layout": "full SBS", "resize_filter": "bicubic"},
    }
    save_video(prompt, ["sbs", 0], frames, "e2e/inpaint_sbs", object_info)
    # PNG is lossless: the composite can be compared exactly.
    prompt["save_warped"] = save_image(["splat", 0], "e2e/inpaint_sbs_warped")
    prompt["mask_img"] = {"class_type": "MaskToImage", "inputs": {"mask": ["splat", 1]}}
    prompt["save_mask"] = save_image(["mask_img", 0], "e2e/inpaint_sbs_mask")
    prompt["save_inpainted"] = save_image(["inpaint", 0], "e2e/inpaint_sbs_right")
    result = comfy.run(prompt, timeout=PROMPT_TIMEOUT)

    w, h = clips.small_size
    video = saved_video(result, comfy_server.output_dir)
    assert video.frames.shape == (clips.frames, h, 2 * w, 3)
    assert video.fps == 24 and video.audio_streams == 1
    warped = np.stack(saved_pngs(result, comfy_server.output_dir, "save_warped")).astype(int)
    masks = np.stack(saved_pngs(result, comfy_server.output_dir, "save_mask"))[..., 0]
    inpainted = np.stack(saved_pngs(result, comfy_server.output_dir, "save_inpainted")).astype(int)
    assert inpainted.shape == warped.shape == (clips.frames, h, w, 3)
    holes = masks >= 127  # the pipeline's holes are mask >= 0.5; SaveImage truncates 127.5 to 127
    assert holes.any(axis=(1, 2)).all(), "the moving near disc must leave holes in every frame"
    for i in range(clips.frames):
        # StereoInpaint grows the holes by 3 px and feathers 3 px more: beyond that the warped pixels are kept.
        far = ~grow(holes[i], 7)
        diff = np.abs(inpainted[i] - warped[i])[far]
        assert diff.max() <= 1, f"frame {i}: composite changed pixels away from the holes (by up to {diff.max()})"
        filled = np.abs(inpainted[i] - warped[i])[holes[i]].mean()
        assert filled > 1, f"frame {i}: the holes were not filled (mean change {filled:.2f})"


def error_of(comfy, prompt: dict) -> str:
    with pytest.raises(PromptError) as err:
        comfy.run(prompt, timeout=PROMPT_TIMEOUT)
    return str(err.value)


def depth_only_prompt(clips, **loader: object) -> dict:
    prompt: dict = {}
    frames = load_video(prompt, "src", clips.source_name)
    prompt["load_dc"] = load_depthcrafter(**loader)
    prompt["depth"] = video_depth(frames)
    prompt["preview"] = {"class_type": "PreviewImage", "inputs": {"images": ["depth", 0]}}
    return prompt


def inpaint_only_prompt(clips, occlusion_file: str | None = None, **loader: object) -> dict:
    prompt: dict = {}
    frames = load_video(prompt, "src", clips.small_name)
    prompt["splat"] = forward_splat(frames, load_video(prompt, "dep", clips.small_depth_name))
    occlusion = ["splat", 1]
    if occlusion_file:
        prompt["occ_mask"] = {
            "class_type": "ImageToMask",
            "inputs": {"image": load_video(prompt, "occ", occlusion_file), "channel": "red"},
        }
        occlusion = ["occ_mask", 0]
    prompt["load_sc"] = load_stereocrafter(**loader)
    prompt["inpaint"] = stereo_inpaint(["splat", 0], occlusion)
    prompt["preview"] = {"class_type": "PreviewImage", "inputs": {"images": ["inpaint", 0]}}
    return prompt


@pytest.mark.parametrize(
    ("loader", "model_input", "folder", "repo"),
    [
        ("SC3D_LoadDepthCrafter", "depthcrafter", "depthcrafter", "tencent/DepthCrafter"),
        ("SC3D_LoadDepthCrafter", "svd", "diffusers", "stabilityai/stable-video-diffusion-img2vid-xt-1-1"),
        ("SC3D_LoadStereoCrafter", "stereocrafter", "stereocrafter", "TencentARC/StereoCrafter"),
    ],
)
def test_missing_model_folder_is_reported(comfy, comfy_server, clips, tiny_models, loader, model_input, folder, repo):
    """A folder that is not in models/ (e.g. a workflow from another machine), download_missing off."""
    name = "NotDownloadedYet"
    if loader == "SC3D_LoadDepthCrafter":
        prompt = depth_only_prompt(clips, **{model_input: name})
    else:
        prompt = inpaint_only_prompt(clips, **{model_input: name})
    message = error_of(comfy, prompt)
    assert loader in message, message
    assert f"'{name}' was not found in {comfy_server.base_dir / 'models' / folder}" in message, message
    assert repo in message and "download_missing" in message, message


def v2_inpaint_prompt(clips, **loader: object) -> dict:
    prompt = inpaint_only_prompt(clips)
    prompt["load_sc"] = load_stereocrafter2(**loader)
    prompt["inpaint"]["inputs"].update(V2_INPAINT)
    return prompt


@pytest.mark.parametrize(
    ("model_input", "folder", "repo"),
    [
        ("transformer", "stereocrafter", "TencentARC/StereoCrafter2"),
        ("wan_base", "diffusers", "Wan-AI/Wan2.1-VACE-14B-diffusers"),
    ],
)
def test_missing_stereocrafter2_folder_is_reported(comfy, comfy_server, clips, tiny_models, model_input, folder, repo):
    name = "NotDownloadedYet"
    message = error_of(comfy, v2_inpaint_prompt(clips, **{model_input: name}))
    assert "SC3D_LoadStereoCrafter2" in message, message
    assert f"'{name}' was not found in {comfy_server.base_dir / 'models' / folder}" in message, message
    assert repo in message and "download_missing" in message, message


def test_wrong_model_folders_for_stereocrafter2_are_reported(comfy, clips, tiny_models):
    """v1's folder given to LoadStereoCrafter2, v2's to LoadStereoCrafter, SVD as the Wan base: each names the
    model it found and the loader or repository it belongs to."""
    message = error_of(comfy, v2_inpaint_prompt(clips, transformer=STEREOCRAFTER_NAME))
    assert "SC3D_LoadStereoCrafter2" in message and "StereoCrafter v1" in message, message
    message = error_of(comfy, inpaint_only_prompt(clips, stereocrafter=STEREOCRAFTER2_NAME))
    assert "SC3D_LoadStereoCrafter" in message and "LoadStereoCrafter2" in message, message
    message = error_of(comfy, v2_inpaint_prompt(clips, wan_base=SVD_NAME))
    assert "lacks text_encoder/, tokenizer/" in message and "Wan-AI/Wan2.1-VACE-14B-diffusers" in message, message


def test_stereocrafter2_in_convert_video(comfy, comfy_server, clips, tiny_models):
    """Convert Video to 3D (streaming) with StereoCrafter2 and the clip's own depth video: the inpainting stream's
    chunks carry across the converter's 3-frame chunks; every frame is written."""
    from test_convert_node import convert, written_file  # that module imports this one

    prompt = convert(clips.small_name, "sc3d_convert/v2", depth_video_path=clips.small_depth_name,
                     stereocrafter=["load_sc", 0])  # fmt: skip
    prompt["load_sc"] = load_stereocrafter2()
    path = written_file(comfy.run(prompt, timeout=PROMPT_TIMEOUT), comfy_server.output_dir)
    video = read_video(path)
    width, height = clips.small_size
    assert video.frames.shape[:3] == (clips.frames, height, 2 * width)


def test_loaders_ignore_compile_on_the_cpu(comfy, comfy_server, clips, tiny_models):
    """compile=True on the CPU server: both loaders log that it is ignored and the models run eagerly (compiling the
    tiny models would take minutes here); a prompt written before the compile input (without it) still runs."""
    comfy.run(depth_only_prompt(clips, compile=True), timeout=PROMPT_TIMEOUT)
    comfy.run(inpaint_only_prompt(clips, compile=True), timeout=PROMPT_TIMEOUT)
    log = comfy_server.log_text()
    for node in ("LoadDepthCrafter", "LoadStereoCrafter"):
        assert f"{node}: compile needs an NVIDIA GPU (ComfyUI computes on cpu); ignored." in log, node
    old = inpaint_only_prompt(clips)
    del old["load_sc"]["inputs"]["compile"]
    comfy.run(old, timeout=PROMPT_TIMEOUT)


def test_stereocrafter_unet_as_depthcrafter_is_reported(comfy, clips, tiny_models):
    message = error_of(comfy, depth_only_prompt(clips, depthcrafter=WRONG_DEPTHCRAFTER_NAME))
    assert "SC3D_LoadDepthCrafter" in message, message
    assert str(tiny_models.wrong_depthcrafter) in message, message
    assert "looks like the StereoCrafter inpainting UNet" in message, message
    assert "tencent/DepthCrafter" in message, message  # the fix: where DepthCrafter comes from


def test_inpaint_frame_count_mismatch_is_reported(comfy, clips, tiny_models):
    """A 4-frame occlusion mask for 8 right-eye frames."""
    message = error_of(comfy, inpaint_only_prompt(clips, occlusion_file=clips.small_short_depth_name))
    assert "SC3D_StereoInpaint" in message, message
    assert "4" in message and "8" in message and "frames" in message, message


def test_video_depth_can_be_interrupted(comfy, clips, tiny_models):
    """Cancel (POST /interrupt) while VideoDepth runs: ComfyUI reports execution_interrupted for it, promptly."""
    prompt: dict = {}
    frames = load_video(prompt, "src", clips.source_name)
    prompt["load_dc"] = load_depthcrafter()
    # Long: 50 steps with guidance on 2 windows at 512x256, about a minute on 2 CPU cores if not interrupted.
    prompt["depth"] = video_depth(frames, steps=50, window_size=6, overlap=2, max_res=512, seed=7)
    prompt["save"] = save_image(["depth", 0], "e2e/interrupted")
    progress: list[dict] = []

    def on_message(message: dict, prompt_id: str) -> None:
        if message["type"] == "progress" and message["data"].get("node") == "depth":
            progress.append(message["data"])
            if len(progress) == 1:
                comfy.interrupt(prompt_id)

    with pytest.raises(PromptInterrupted) as err:
        comfy.run(prompt, timeout=PROMPT_TIMEOUT, on_message=on_message)
    assert progress, "VideoDepth sent no progress before it was interrupted"
    total = progress[0]["max"]
    assert total == 2 * 50, f"progress counts denoising steps over both windows: max {total}"
    interrupted = [m["data"] for m in err.value.messages if m["type"] == "execution_interrupted"]
    assert len(interrupted) == 1 and interrupted[0]["node_id"] == "depth", interrupted
    assert interrupted[0]["node_type"] == "SC3D_VideoDepth"
    assert max(p["value"] for p in progress) < total / 2, "the interrupt was not honoured promptly"
    executed = {m["data"]["node"] for m in err.value.messages if m["type"] == "executed"}
    assert "save" not in executed

    # The server is not left interrupted: the next prompt runs.
    prompt["depth"]["inputs"].update(FAST_DEPTH, seed=8)
    result = comfy.run(prompt, timeout=PROMPT_TIMEOUT)
    assert len(result.outputs["save"]["images"]) == clips.frames


# The light depth model (no diffusion model): Depth Anything's stabilisation at the node's defaults, 2 batches of 4.
LIGHT_DEPTH = {"align": True, "temporal_strength": 0.6, "motion_tolerance": 0.05, "batch_size": 4}


def load_depth_anything(depth_anything: str, **inputs: object) -> dict:
    return {
        "class_type": "SC3D_LoadDepthAnything",
        "inputs": {"depth_anything": depth_anything, "precision": "auto", "download_missing": False, **inputs},
    }


def test_light_depth_fill_to_sbs(comfy, comfy_server, clips, tiny_models, object_info):
    """video → LoadDepthAnything + LightVideoDepth → ForwardSplat → FillHoles → ComposeSBS → CreateVideo + SaveVideo,
    without any diffusion model: the depth is VideoDepth's kind of IMAGE (grey, 0..1 over the clip, the input's size
    and frame count), the holes get colour and nothing outside FillHoles' mask changes."""
    prompt: dict = {}
    frames = load_video(prompt, "src", clips.source_name)
    prompt["load_da"] = load_depth_anything(tiny_models.depth_anything.name)
    prompt["depth"] = {
        "class_type": "SC3D_LightVideoDepth",
        "inputs": {"depth_anything": ["load_da", 0], "images": frames, **LIGHT_DEPTH},
    }
    prompt["splat"] = forward_splat(frames, ["depth", 0])
    prompt["fill"] = {
        "class_type": "SC3D_FillHoles",
        "inputs": {
            "right": ["splat", 0],
            "occlusion": ["splat", 1],
            "min_coverage": 0.5,
            "blend": 4,
            "background_side": "right",
        },
    }
    prompt["sbs"] = {
        "class_type": "SC3D_ComposeSBS",
        "inputs": {"left": frames, "right": ["fill", 0], "layout": "full SBS", "resize_filter": "bicubic"},
    }
    save_video(prompt, ["sbs", 0], frames, "e2e/light_sbs", object_info)
    prompt["save_depth"] = save_image(["depth", 0], "e2e/light_sbs_depth")
    prompt["save_splat"] = save_image(["splat", 0], "e2e/light_sbs_splat")
    prompt["save_filled"] = save_image(["fill", 0], "e2e/light_sbs_filled")
    for key, mask in (("empty", ["splat", 1]), ("holes", ["fill", 1])):
        prompt[key + "_img"] = {"class_type": "MaskToImage", "inputs": {"mask": mask}}
        prompt[key] = save_image([key + "_img", 0], f"e2e/light_sbs_{key}")
    result = comfy.run(prompt, timeout=PROMPT_TIMEOUT)

    video = saved_video(result, comfy_server.output_dir)
    assert video.frames.shape == (clips.frames, 270, 960, 3)
    assert video.fps == 24 and video.audio_streams == 1
    left_error = np.abs(video.frames[:, :, :480].astype(int) - clips.source.astype(int)).mean()
    assert left_error < 8, f"the left eye is not the input video (mean error {left_error:.1f})"
    depth = np.stack(saved_pngs(result, comfy_server.output_dir, "save_depth"))
    assert depth.shape == (clips.frames, 270, 480, 3), "LightVideoDepth must keep the input's frame count and size"
    assert (depth == depth[..., :1]).all(), "the depth IMAGE must be grey (R = G = B)"
    assert depth.min() == 0 and depth.max() == 255, (depth.min(), depth.max())  # 0..1 over the clip
    assert (depth.reshape(clips.frames, -1).std(axis=1) > 1).all(), "a frame's depth is flat"
    splat = np.stack(saved_pngs(result, comfy_server.output_dir, "save_splat")).astype(int)
    filled = np.stack(saved_pngs(result, comfy_server.output_dir, "save_filled")).astype(int)
    empty = np.stack(saved_pngs(result, comfy_server.output_dir, "empty"))[..., 0] == 255  # nothing landed
    holes = np.stack(saved_pngs(result, comfy_server.output_dir, "holes"))[..., 0] == 255  # what FillHoles filled
    assert empty.any(), "this depth must leave holes (else this test checks nothing)"
    assert not (empty & ~holes).any(), "FillHoles' mask misses pixels where nothing landed"
    diff = np.abs(filled - splat)[~holes]
    assert diff.max() == 0, f"FillHoles changed {np.count_nonzero(diff)} values outside its mask (by {diff.max()})"
    black = (filled[holes].max(axis=-1) <= 2).mean()
    assert black < 0.1, f"{black:.1%} of the filled hole pixels are still black"


def test_light_depth_model_folder_errors(comfy, comfy_server, clips, tiny_models):
    """LoadDepthAnything with a folder that is not in models/depth_anything (download_missing off), and with a
    folder of another model (the DepthCrafter UNet's): each message names the folder, the repository and the fix."""

    def prompt_with(name: str) -> dict:
        prompt: dict = {}
        frames = load_video(prompt, "src", clips.small_name)
        prompt["load_da"] = load_depth_anything(name)
        prompt["depth"] = {
            "class_type": "SC3D_LightVideoDepth",
            "inputs": {"depth_anything": ["load_da", 0], "images": frames, **LIGHT_DEPTH},
        }
        prompt["preview"] = {"class_type": "PreviewImage", "inputs": {"images": ["depth", 0]}}
        return prompt

    message = error_of(comfy, prompt_with("NotDownloadedYet"))
    assert "SC3D_LoadDepthAnything" in message, message
    assert f"'NotDownloadedYet' was not found in {comfy_server.base_dir / 'models' / 'depth_anything'}" in message
    assert "depth-anything/Depth-Anything-V2-Small-hf" in message and "download_missing" in message, message
    message = error_of(comfy, prompt_with(str(tiny_models.depthcrafter)))
    assert "SC3D_LoadDepthAnything" in message, message
    assert f"{tiny_models.depthcrafter} lacks model.safetensors, preprocessor_config.json" in message, message
    assert "depth-anything/Depth-Anything-V2-Small-hf" in message, message
