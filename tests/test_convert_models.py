"""The converter with tiny random DepthCrafter/StereoCrafter models: the CLI end to end, depth windows and inpainting
chunks carried across the converter's chunks, resume, disk full."""

from __future__ import annotations

import errno
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from test_convert import CLIP, _decode, _encode
from tiny_models import make_depthcrafter_folder, make_stereocrafter_folder, make_svd_folder

from stereocrafter import convert as convert_module
from stereocrafter.__main__ import main
from stereocrafter.convert import ConvertSettings, DepthStage, InpaintStage, convert_video, work_paths
from stereocrafter.depth.depth_pipeline import DepthSettings, VideoDepthPipeline
from stereocrafter.inpaint.inpaint_pipeline import InpaintSettings, StereoInpaintPipeline
from stereocrafter.video.depth_file import read_depth_file
from stereocrafter.video.video_io import probe_video, read_frames

FRAMES, HEIGHT, WIDTH, FPS = 20, 64, 96, 24
# Small windows and chunks so that a 20-frame clip has several DepthCrafter windows and inpainting chunks, none of
# them aligned with the converter's 4-frame chunks.
DEPTH = DepthSettings(num_inference_steps=2, window_size=8, overlap=3, decode_chunk_size=3, max_res=128)
INPAINT = InpaintSettings(steps=2, chunk_frames=7, chunk_overlap=2)
SETTINGS = ConvertSettings(chunk_frames=4)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A models folder in ComfyUI's layout with tiny random weights."""
    root = tmp_path_factory.mktemp("models")
    make_depthcrafter_folder(root / "depthcrafter" / "DepthCrafter")
    make_stereocrafter_folder(root / "stereocrafter" / "StereoCrafter")
    make_svd_folder(root / "diffusers" / "stable-video-diffusion-img2vid-xt-1-1")
    return root


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """20 frames of a moving gradient with bright squares (so the depth varies), with a tone track."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = []
    for k in range(FRAMES):
        image = np.stack([(xs * 2 + k * 3) % 256, (ys * 3) % 256, np.full_like(xs, 90)], -1)
        image[10:40, 10 + k : 40 + k] = 230
        frames.append(image)
    path = tmp_path_factory.mktemp("src") / "clip.mp4"
    _encode(path, np.stack(frames).astype(np.uint8), FPS, tone_s=FRAMES / FPS)
    return path


def _stages(models: Path, loads: list[str] | None = None) -> tuple[DepthStage, InpaintStage]:
    svd = models / "diffusers" / "stable-video-diffusion-img2vid-xt-1-1"

    def load_depth() -> VideoDepthPipeline:
        if loads is not None:
            loads.append("depth")
        return VideoDepthPipeline.from_folders(models / "depthcrafter" / "DepthCrafter", svd, torch.float32, "cpu")

    def load_inpaint() -> StereoInpaintPipeline:
        if loads is not None:
            loads.append("inpaint")
        return StereoInpaintPipeline.from_pretrained(svd, models / "stereocrafter" / "StereoCrafter", torch.float32)

    return DepthStage(load_depth, DEPTH), InpaintStage(load_inpaint, INPAINT, seed=3)


def test_cli_full_pipeline_with_tiny_models(models, source, tmp_path, one_torch_thread):
    output, depth_out = tmp_path / "out.mp4", tmp_path / "depth.mkv"
    args = [str(source), "-o", str(output), "--models", str(models), "--depth-steps", "1", "--inpaint-steps", "1",
            "--chunk-frames", "8", "--device", "cpu", "--save-depth", str(depth_out)]  # fmt: skip
    assert main(args) == 0
    info = probe_video(output)
    assert (info.frame_count, info.width, info.height, info.fps) == (FRAMES, 2 * WIDTH, HEIGHT, Fraction(FPS))
    with av.open(str(output)) as container:
        assert len(container.streams.audio) == 1
    depth = torch.cat(list(read_depth_file(depth_out, 64)))
    assert depth.shape == (FRAMES, HEIGHT, WIDTH) and float(depth.max() - depth.min()) > 0
    assert not work_paths(output)[0].exists()
    packed = _decode(output)
    assert (packed[..., :WIDTH, :] - _decode(source)).abs().mean() < 6 / 255  # left eye = the source


def test_depth_windows_carry_across_chunks(models, source, tmp_path, one_torch_thread):
    """The depth written chunk by chunk equals DepthCrafter run over the whole clip at once (up to 16-bit storage)."""
    depth_stage, _ = _stages(models)
    depth_out = tmp_path / "depth.mkv"
    reports: list[tuple[str, int, int]] = []
    convert_video(source, tmp_path / "out.mp4", None, SETTINGS, depth_model=depth_stage, save_depth=depth_out,
                  on_progress=lambda *report: reports.append(report))  # fmt: skip
    for stage in ("depth", "stereo"):
        done = [d for s, d, total in reports if s == stage and total == FRAMES]
        assert done == sorted(done) and done[0] == 0 and done[-1] == FRAMES, (stage, done)
    # The depth pass moves with DepthCrafter's steps, not only when frames come out (4 windows x 2 steps here).
    assert len({d for s, d, _ in reports if s == "depth"}) >= 6, reports
    frames = torch.cat(list(read_frames(source, 64)))
    whole = torch.cat(list(depth_stage.load().stream([frames], FRAMES, DEPTH)))
    stored = torch.cat(list(read_depth_file(depth_out, 64)))
    assert stored.shape == whole.shape == (FRAMES, HEIGHT, WIDTH)
    assert (stored - whole).abs().max() <= 0.5 / 65535 + 1e-6


class Interrupt(Exception):
    pass


def _record_segments(monkeypatch) -> list[torch.Tensor]:
    """Keep a copy of every packed frame the converter encodes, in order (x264 output is not bit-reproducible across
    runs of a process, so resumes are compared on the frames that go into the encoder)."""
    real_compose = convert_module.compose
    packed_frames: list[torch.Tensor] = []

    def compose(*args):
        packed = real_compose(*args)
        packed_frames.append(packed.clone())
        return packed

    monkeypatch.setattr(convert_module, "compose", compose)
    return packed_frames


def test_resume_with_models_continues_after_the_last_segment(models, source, tmp_path, monkeypatch, one_torch_thread):
    loads: list[str] = []
    depth_stage, inpaint_stage = _stages(models, loads)
    output = tmp_path / "out.mp4"
    packed = _record_segments(monkeypatch)

    def kill_after_second(index: int, done: int) -> None:
        if index == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        convert_video(source, output, None, SETTINGS, depth_model=depth_stage, inpaint=inpaint_stage,
                      on_chunk_done=kill_after_second)  # fmt: skip
    progress = json.loads((work_paths(output)[0] / "progress.json").read_text())
    assert len(progress["chunks"]) == 2 and progress["chunks"][-1]["state"]
    assert loads == ["depth", "inpaint"]

    computed: list[int] = []
    convert_video(source, output, None, SETTINGS, depth_model=depth_stage, inpaint=inpaint_stage,
                  on_chunk_done=lambda index, done: computed.append(done))  # fmt: skip
    assert loads == ["depth", "inpaint", "inpaint"]  # the finished depth pass is not run again
    assert computed and computed[-1] == FRAMES and min(computed) > progress["chunks"][-1]["start"]
    assert probe_video(output).frame_count == FRAMES
    resumed = torch.cat(packed)
    packed.clear()
    convert_video(source, tmp_path / "fresh.mp4", None, SETTINGS, depth_model=depth_stage, inpaint=inpaint_stage)
    assert torch.equal(resumed, torch.cat(packed))  # the same frames as one uninterrupted run, bit for bit


def test_disk_full_is_reported_and_resumable(models, source, tmp_path, monkeypatch, one_torch_thread):
    _, inpaint_stage = _stages(models)
    depth = tmp_path / "depth.mp4"
    _encode(depth, np.repeat(np.linspace(0, 255, WIDTH, dtype=np.uint8)[None, None, :, None], FRAMES, 0).repeat(
        HEIGHT, 1).repeat(3, 3))  # fmt: skip
    output = tmp_path / "out.mp4"
    real_write = convert_module._write_segment
    calls = []

    def full_disk(path, *args):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, *args)

    monkeypatch.setattr(convert_module, "_write_segment", full_disk)
    with pytest.raises(OSError, match="disk full while writing .*chunk_00001.mp4.*rerun the same command"):
        convert_video(source, output, depth, SETTINGS, inpaint=inpaint_stage)
    assert not output.exists() and not work_paths(output)[1].exists()
    monkeypatch.setattr(convert_module, "_write_segment", real_write)
    convert_video(source, output, depth, SETTINGS, inpaint=inpaint_stage)
    assert probe_video(output).frame_count == FRAMES


def _cli_stages(models: Path, *options: str) -> tuple[DepthStage, InpaintStage]:
    from stereocrafter.__main__ import _stages as cli_stages
    from stereocrafter.__main__ import build_parser

    return cli_stages(build_parser().parse_args(["in.mp4", "-o", "out.mp4", "--models", str(models), *options]))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((), (5, 1.0, 110, 25, False)),  # DepthCrafter 1.0.1's run.py defaults
        (("--faithful",), (8, 1.2, 70, 25, True)),  # StereoCrafter's reference (reference.md §1.4)
        (("--depth-preset", "stereocrafter", "--depth-steps", "3"), (3, 1.2, 70, 25, False)),
        (("--faithful", "--depth-preset", "depthcrafter"), (5, 1.0, 110, 25, True)),
    ],
)
def test_cli_depth_preset(models, options, expected):
    """The command's DepthCrafter sampling: DepthCrafter 1.0.1's by default, StereoCrafter's with --faithful,
    either by name, --depth-steps on top."""
    depth_stage, _ = _cli_stages(models, "--device", "cpu", *options)
    s = depth_stage.settings
    assert (s.num_inference_steps, s.guidance_scale, s.window_size, s.overlap, s.vae_encode_fp32) == expected


def test_cli_compile_is_ignored_on_the_cpu(models, caplog, one_torch_thread):
    from stereocrafter.svd.compiled_svd import is_compiled

    with caplog.at_level("WARNING", logger="stereocrafter"):
        depth_stage, inpaint_stage = _cli_stages(models, "--compile", "--device", "cpu")
        (depth, _), (inpaint, _) = depth_stage.load(), inpaint_stage.load()  # compiling is decided at the load
    assert caplog.text.count("--compile needs CUDA (the device is cpu): ignored.") == 1
    assert not depth.compiled and not is_compiled(depth.unet) and not is_compiled(depth.components.vae)
    assert not inpaint.compiled and not is_compiled(inpaint.unet) and not is_compiled(inpaint.vae)


def test_cli_compile_reaches_both_models_on_cuda(models, monkeypatch, one_torch_thread):
    """--compile --device cuda: VideoDepthPipeline(compile=True) and StereoInpaintPipeline.compile() (the modules stay
    on the CPU here and no compiled graph runs: compiling takes minutes)."""
    import stereocrafter.depth.depth_pipeline as depth_pipeline
    import stereocrafter.model_files as model_files
    from stereocrafter.svd.compiled_svd import is_compiled

    class CpuDepthPipeline(VideoDepthPipeline):
        def __init__(self, unet, components, device, dtype, **kwargs) -> None:  # noqa: ANN001
            assert torch.device(device).type == "cuda"
            super().__init__(unet, components, "cpu", dtype, **kwargs)

    monkeypatch.setattr(depth_pipeline, "VideoDepthPipeline", CpuDepthPipeline)
    monkeypatch.setattr(StereoInpaintPipeline, "to", lambda self, device: self)
    read_tensors = model_files._read_tensors  # the inpainting weights are read for CUDA: here to the CPU
    monkeypatch.setattr(model_files, "_read_tensors", lambda path, device: read_tensors(path, torch.device("cpu")))
    depth_stage, inpaint_stage = _cli_stages(models, "--compile", "--device", "cuda", "--precision", "fp32")
    (depth, _), (inpaint, _) = depth_stage.load(), inpaint_stage.load()
    assert depth.compiled and is_compiled(depth.unet) and is_compiled(depth.components.vae.decoder)
    assert is_compiled(depth.components.vae.encoder)  # padded to one shape per clip; inpainting's tiles vary
    assert inpaint.compiled and is_compiled(inpaint.unet) and is_compiled(inpaint.vae.decoder)
    assert not is_compiled(inpaint.vae.encoder)


@pytest.mark.skipif(not CLIP.exists(), reason=f"{CLIP} is missing (the shared test clip)")
def test_cli_on_the_davis_clip_with_tiny_models(models, tmp_path, one_torch_thread):
    """The command on real footage: 70 frames of 960x540 at 24 fps, DepthCrafter depth, top-bottom. (Inpainting
    through the command is tested above on a smaller clip: the tiny VAE at 960x576 on a CPU would take minutes.)"""
    output = tmp_path / "rollercoaster_TB.mp4"
    args = [str(CLIP), "-o", str(output), "--models", str(models), "--layout", "tb", "--depth-max-res", "256",
            "--depth-steps", "1", "--no-inpaint", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    source, info = probe_video(CLIP), probe_video(output)
    assert (info.frame_count, info.fps) == (source.frame_count, source.fps) == (70, Fraction(24))
    assert (info.width, info.height) == (source.width, 2 * source.height)
    packed, left = _decode(output), _decode(CLIP)
    top, bottom = packed[:, : source.height], packed[:, source.height :]
    assert (top - left).abs().mean() < 4 / 255  # left eye on top, re-encoded once
    assert (bottom - left).abs().mean() > 4 * (top - left).abs().mean()  # the right eye is another view
