"""The light depth model: a tiny random Depth Anything in the real Hugging Face layout, stabilisation, flicker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stereocrafter.depth.light_depth import (
    MODEL_FILES,
    LightDepthPipeline,
    LightDepthSettings,
    TemporalStabilizer,
    WrongModelFolderError,
    align_scale_shift,
    check_model_folder,
    flicker,
    processing_size,
)
from tests.tiny_depth_anything import make_tiny_depth_anything


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_depth_anything(tmp_path_factory.mktemp("depth_anything") / "Depth-Anything-V2-Small-hf")


def test_folder_has_the_hub_layout(tiny_model):
    assert sorted(p.name for p in tiny_model.iterdir()) == sorted(MODEL_FILES)
    assert json.loads((tiny_model / "config.json").read_text())["model_type"] == "depth_anything"


def test_processing_size_matches_the_dpt_processor(tiny_model):
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(tiny_model)
    for height, width in ((1080, 1920), (576, 1024), (720, 540), (100, 90)):
        image = Image.fromarray(np.zeros((height, width, 3), np.uint8))
        expected = tuple(processor(images=image, return_tensors="pt").pixel_values.shape[-2:])
        assert processing_size(height, width, (518, 518), 14) == expected
    assert processing_size(1080, 1920, (518, 518), 14) == (518, 924)


def test_preprocess_matches_the_dpt_processor(tiny_model):
    from transformers import AutoImageProcessor

    frame = torch.rand(1, 3, 30, 40)
    frame = torch.nn.functional.interpolate(frame, size=(300, 400), mode="bilinear").permute(0, 2, 3, 1)
    image = Image.fromarray((frame[0].numpy() * 255).round().astype(np.uint8))
    expected = AutoImageProcessor.from_pretrained(tiny_model)(images=image, return_tensors="pt").pixel_values
    pipeline = LightDepthPipeline.from_pretrained(tiny_model)
    ours = pipeline.preprocess((frame * 255).round() / 255)
    assert ours.shape == expected.shape
    assert (ours - expected).abs().mean() < 0.02  # PIL's and torch's bicubic differ slightly (normalised units)


def test_stream_yields_stabilised_depth_at_the_frame_size(tiny_model):
    pipeline = LightDepthPipeline.from_pretrained(tiny_model)
    frames = torch.rand(7, 60, 80, 3)
    calls: list[tuple[int, int]] = []
    settings = LightDepthSettings(batch_size=3)
    chunks = list(pipeline.stream([frames[:2], frames[2:7]], 7, settings, progress=lambda *a: calls.append(a)))
    depth = torch.cat(chunks)
    assert depth.shape == (7, 60, 80) and depth.dtype == torch.float32
    assert depth.min() >= 0 and depth.max() <= 1 and depth.std() > 0
    assert len(calls) == LightDepthPipeline.num_progress_steps(7, settings) == 3
    # The first frame's range is anchored at 0.25..0.75 (at the processing size; bilinear upsampling stays inside).
    assert 0.25 - 1e-4 <= float(depth[0].min()) and float(depth[0].max()) <= 0.75 + 1e-4
    with pytest.raises(ValueError, match="num_frames"):
        list(pipeline.stream([frames], 6, settings))


def test_static_clip_is_steady(tiny_model):
    pipeline = LightDepthPipeline.from_pretrained(tiny_model)
    frames = torch.rand(1, 56, 70, 3).expand(5, -1, -1, -1)
    depth = torch.cat(list(pipeline.stream([frames], 5)))
    assert flicker(depth) < 1e-5


def _flickering_clip(frames: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(true depth [h, w], per-frame relative depth [T, h, w]): a ramp and a near disc, each frame with its own
    scale 0.6..1.4, shift -0.3..0.3 and 1 % noise, as a per-frame model on a static camera."""
    generator = torch.Generator().manual_seed(seed)
    rows, cols = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 64), indexing="ij")
    truth = rows + 2.0 * (((rows - 0.5) ** 2 + (cols - 0.5) ** 2) < 0.04)
    scale = 0.6 + 0.8 * torch.rand(frames, 1, 1, generator=generator)
    shift = -0.3 + 0.6 * torch.rand(frames, 1, 1, generator=generator)
    noise = 0.01 * truth.std() * torch.randn(frames, 48, 64, generator=generator)
    return truth, scale * truth + shift + noise


def test_stabilisation_removes_per_frame_scale_and_shift_flicker():
    _, raw = _flickering_clip()
    stabilizer = TemporalStabilizer()
    steady = torch.stack([stabilizer(frame) for frame in raw])
    before, after = flicker(raw), flicker(steady)
    assert before > 0.05  # the per-frame scale/shift flicker is large
    assert after < before / 10
    aligned_only = TemporalStabilizer(LightDepthSettings(temporal_strength=0.0))
    aligned = torch.stack([aligned_only(frame) for frame in raw])
    assert after < flicker(aligned) < before / 5  # alignment does most, the temporal filter the rest


def test_moving_object_is_not_smeared():
    # A near square (depth 1) moves 6 px per frame over a background ramp (0..0.3 down the rows): where it left,
    # the depth is the background's at once, and the square keeps its depth.
    ramp = torch.linspace(0, 0.3, 40)[:, None].expand(40, 80)
    for flat in (False, True):  # a flat background (nothing to fit a scale on) too
        depth = (torch.zeros(6, 40, 80) if flat else ramp.expand(6, 40, 80)).clone()
        for t in range(6):
            depth[t, 10:30, 10 + 6 * t : 22 + 6 * t] = 1.0
        stabilizer = TemporalStabilizer()
        steady = torch.stack([stabilizer(frame) for frame in depth])
        left_behind = (slice(10, 30), slice(10 + 6 * 4, 10 + 6 * 5))  # covered at t = 4, background at t = 5
        assert (steady[5][left_behind] - depth[5][left_behind]).abs().max() < 0.02
        assert (steady[5, 10:30, 40:52] - 1.0).abs().max() < 0.02


def test_align_scale_shift_recovers_the_affine_map():
    reference = torch.rand(20, 30)
    assert torch.allclose(align_scale_shift(3.0 * reference - 2.0, reference), reference, atol=1e-5)
    flat = align_scale_shift(torch.ones(20, 30), reference)
    assert torch.allclose(flat, torch.full((20, 30), float(reference.mean())), atol=1e-6)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="temporal_strength"):
        LightDepthSettings(temporal_strength=1.0).validate()
    with pytest.raises(ValueError, match="batch_size"):
        LightDepthSettings(batch_size=0).validate()


def test_missing_files_are_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        LightDepthPipeline.from_pretrained(tmp_path)


def _write_clip(path: Path, frames: np.ndarray, fps: int = 24) -> None:
    """uint8 [n, H, W, 3] frames as near-lossless H.264 (4:4:4)."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        video.options = {"crf": "4"}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))


def test_cli_depth_anything_without_any_other_model(tiny_model, tmp_path):
    from stereocrafter.__main__ import main
    from stereocrafter.video.video_io import probe_video, read_frames

    models = tmp_path / "models"
    (models / "depth_anything").mkdir(parents=True)
    (models / "depth_anything" / tiny_model.name).symlink_to(tiny_model)
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, (1, 48, 64, 3), dtype=np.uint8), 10, axis=0)
    _write_clip(tmp_path / "in.mp4", frames)
    output, depth = tmp_path / "out.mp4", tmp_path / "depth.mkv"
    argv = [str(tmp_path / "in.mp4"), "-o", str(output), "--depth-model", "depth-anything", "--no-inpaint",
            "--models", str(models), "--save-depth", str(depth), "--chunk-frames", "4"]  # fmt: skip
    assert main(argv) == 0  # no DepthCrafter, SVD or StereoCrafter folder exists
    info = probe_video(output)
    assert (info.frame_count, info.width, info.height) == (10, 128, 48)
    saved = torch.cat(list(read_frames(depth, 16)))[..., 0]
    assert saved.shape == (10, 48, 64) and saved.std() > 0.01
    assert flicker(saved) < 0.01  # a static clip stays steady through the whole command


def test_half_precision_model(tiny_model):
    pipeline = LightDepthPipeline.from_pretrained(tiny_model, dtype=torch.bfloat16)
    assert next(pipeline.model.parameters()).dtype == torch.bfloat16
    frames = torch.rand(2, 42, 56, 3)
    depth = torch.cat(list(pipeline.stream([frames], 2)))
    assert depth.shape == (2, 42, 56) and depth.dtype == torch.float32
    # The raw model output within bf16 rounding of fp32's (the tiny model's output is ~0.5 +- small variations).
    half = pipeline.relative_depth(frames)
    full = LightDepthPipeline.from_pretrained(tiny_model).relative_depth(frames)
    assert half.dtype == torch.float32 and (half - full).abs().mean() < 0.02 * full.abs().mean()


def test_whole_clip_is_normalised_over_the_clip(tiny_model):
    """Calling the pipeline on a clip (the LightVideoDepth node) gives the stream's depth mapped to 0..1 over the
    clip: nearest 1, farthest 0, the same affine map for every frame (nothing clamped)."""
    pipeline = LightDepthPipeline.from_pretrained(tiny_model)
    torch.manual_seed(1)
    frames = torch.rand(6, 42, 56, 3)
    settings = LightDepthSettings(batch_size=4)
    depth = pipeline(frames, settings)
    assert depth.shape == (6, 42, 56) and depth.dtype == torch.float32
    assert float(depth.min()) == 0.0 and float(depth.max()) == 1.0
    streamed = torch.cat(list(pipeline.stream([frames], 6, settings)))
    assert 0.0 < float(streamed.min()) and float(streamed.max()) < 1.0  # not clamped: the maps are affine
    expected = (streamed - streamed.min()) / (streamed.max() - streamed.min())
    assert (depth - expected).abs().max() < 1e-4
    with pytest.raises(ValueError, match="frames"):
        pipeline(torch.rand(0, 42, 56, 3), settings)


def test_another_models_folder_is_named(tmp_path):
    """A DepthCrafter UNet (a diffusers config, no model_type) with Depth Anything's file names, and an unreadable
    config: the message names the folder, what is wrong and the fix."""
    for name in MODEL_FILES:
        (tmp_path / name).write_text("{}")
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNetSpatioTemporalConditionModel"}))
    with pytest.raises(WrongModelFolderError, match="not a depth-estimation model") as error:
        LightDepthPipeline.from_pretrained(tmp_path, fix="pick another folder")
    message = str(error.value)
    assert str(tmp_path) in message and "UNetSpatioTemporalConditionModel" in message
    assert "depth-anything/Depth-Anything-V2-Small-hf" in message and message.endswith("pick another folder.")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(WrongModelFolderError, match="cannot be read"):
        check_model_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(WrongModelFolderError, match="model_type 'bert'"):
        check_model_folder(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "depth_anything", "depth_estimation_type": "metric"})
    )
    with pytest.raises(WrongModelFolderError, match="metric depth model"):
        check_model_folder(tmp_path)
