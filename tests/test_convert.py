"""The command-line converter: video files in, packed stereo video files out, resumable, with audio."""

from __future__ import annotations

import json
import os
import resource
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch

import stereocrafter.convert as convert_module
from stereocrafter.__main__ import main
from stereocrafter.convert import ConvertSettings, convert_video, splat_chunk, work_paths
from stereocrafter.video.video_io import VideoReadError, probe_video, read_frames
from stereocrafter.warp.hole_fill import fill_holes
from stereocrafter.warp.stereo_warp import WarpSettings, warp_to_right_eye

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO.parent / "shared/data/davis_rollercoaster.mp4"
needs_clip = pytest.mark.skipif(not CLIP.exists(), reason=f"{CLIP} is missing (the shared test clip)")


def _encode(path: Path, frames: np.ndarray, fps: int = 24, tone_s: float | None = None, audio_codec: str = "aac"):
    """Write uint8 [n, H, W, 3] frames (near-lossless H.264, CRF 4) and optionally a 440 Hz mono tone track."""
    n, height, width, _ = frames.shape
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv444p" if width % 2 or height % 2 else "yuv420p"
        video.options = {"crf": "4"}
        audio = None
        if tone_s is not None:
            audio = out.add_stream(audio_codec, rate=48000)
            audio.layout = "mono"
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            samples = int(tone_s * 48000)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
            fmt = audio.codec_context.format.name
            step = audio.codec_context.frame_size or 1024
            for start in range(0, samples, step):
                chunk = tone[None, start : start + step]
                if fmt == "s16":
                    chunk = (chunk * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="mono")
                frame.sample_rate, frame.pts = 48000, start
                out.mux(audio.encode(frame))
            out.mux(audio.encode(None))


def _clip_frames(n: int, width: int | None = None, height: int | None = None) -> np.ndarray:
    """The first ``n`` frames of the shared clip as uint8, optionally resized."""
    frames = []
    with av.open(str(CLIP)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == n:
                break
            if width is not None:
                frame = frame.reformat(width=width, height=height)
            frames.append(frame.to_ndarray(format="rgb24"))
    return np.stack(frames)


def _depth_frames(n: int, height: int, width: int) -> np.ndarray:
    """Ground-plane depth (near = bright at the bottom) drifting over time, so chunks have different ranges."""
    rows = np.linspace(0, 200, height)[:, None, None] + np.zeros((1, width, 3))
    return np.stack([np.clip(rows + 3 * k, 0, 255) for k in range(n)]).astype(np.uint8)


def _decode(path: Path) -> torch.Tensor:
    return torch.cat(list(read_frames(path, 64)))


@pytest.fixture(scope="module")
def clip20(tmp_path_factory) -> tuple[Path, Path]:
    """The first 20 frames of the shared clip (960×540) and a 480×270 depth video for them."""
    if not CLIP.exists():
        pytest.skip(f"{CLIP} is missing (the shared test clip)")
    folder = tmp_path_factory.mktemp("clip20")
    _encode(folder / "in.mp4", _clip_frames(20))
    _encode(folder / "depth.mp4", _depth_frames(20, 270, 480))
    return folder / "in.mp4", folder / "depth.mp4"


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    """10 frames at 320×180 with a tone track (AAC, as long as the video), and its depth video."""
    if not CLIP.exists():
        pytest.skip(f"{CLIP} is missing (the shared test clip)")
    folder = tmp_path_factory.mktemp("small")
    _encode(folder / "in.mp4", _clip_frames(10, 320, 180), tone_s=10 / 24)
    _encode(folder / "depth.mp4", _depth_frames(10, 180, 320))
    return folder / "in.mp4", folder / "depth.mp4"


@needs_clip
def test_cli_full_sbs_matches_whole_clip_warp(clip20, tmp_path):
    source, depth = clip20
    output = tmp_path / "out.mp4"
    args = [str(source), "-o", str(output), "--depth", str(depth), "--no-inpaint", "--chunk-frames", "16"]
    assert main([*args, "--depth-range", "clip"]) == 0  # the reference's whole-clip min-max
    info = probe_video(output)
    assert (info.frame_count, info.width, info.height, info.fps) == (20, 1920, 540, Fraction(24))
    assert not work_paths(output)[0].exists() and not work_paths(output)[1].exists()
    packed, left = _decode(output), _decode(source)
    assert packed.shape == (20, 540, 1920, 3)
    assert (packed[..., :960, :] - left).abs().mean() < 2.5 / 255
    # One depth range for the whole clip: chunk 2 continues chunk 1 exactly as a whole-clip warp would.
    warped = warp_to_right_eye(left, _decode(depth), WarpSettings(backend="torch"))
    expected = fill_holes(warped.right, warped.occlusion)  # --no-inpaint fills the holes (default --holes fill)
    assert (packed[..., 960:, :] - expected).abs().mean() < 3.0 / 255
    assert (packed[16:, :, 960:] - expected[16:]).abs().mean() < 3.0 / 255


@needs_clip
@pytest.mark.parametrize(
    ("layout", "size"),
    [("half-sbs", (320, 180)), ("tb", (320, 360)), ("half-tb", (320, 180)), ("anaglyph", (320, 180))],
)
def test_layout_sizes_and_directory_suffix(small, tmp_path, layout, size):
    source, depth = small
    assert main([str(source), "-o", str(tmp_path), "--depth", str(depth), "--no-inpaint", "--layout", layout]) == 0
    suffix = {"half-sbs": "_half_SBS", "tb": "_TB", "half-tb": "_half_TB", "anaglyph": "_anaglyph"}[layout]
    info = probe_video(tmp_path / f"in{suffix}.mp4")
    assert (info.width, info.height, info.frame_count) == (*size, 10)


@needs_clip
def test_output_folder_with_trailing_slash_is_created(small, tmp_path):
    """``-o out/`` (the README's command) on a fresh checkout: the folder is made, the file named after the input."""
    source, depth = small
    folder = tmp_path / "new" / "out"
    assert main([str(source), "-o", f"{folder}/", "--depth", str(depth), "--no-inpaint"]) == 0
    assert probe_video(folder / "in_SBS_LR.mp4").frame_count == 10


@needs_clip
def test_cli_stats_report_each_pass(small, tmp_path):
    """--stats: one JSON record per pass that ran (here only the stereo pass: the depth comes from a video)."""
    source, depth = small
    stats_path = tmp_path / "stats.json"
    args = [str(source), "-o", str(tmp_path / "out.mp4"), "--depth", str(depth), "--no-inpaint", "--device", "cpu"]
    assert main([*args, "--stats", str(stats_path)]) == 0
    stats = json.loads(stats_path.read_text())
    assert [p["name"] for p in stats["passes"]] == ["stereo"]
    stereo = stats["passes"][0]
    assert stereo["frames"] == 10 and 0 < stereo["seconds"] <= stats["seconds"]
    assert stereo["peak_allocated"] == stereo["peak_reserved"] == 0 and stereo["load_seconds"] == 0
    # The host peak is the process's high-water mark at the pass's end: a Python with torch holds > 100 MB.
    assert 100 * 2**20 < stereo["host_peak"] <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    parts = stereo["phase_seconds"]  # no inpainting model: its parts are absent
    assert set(parts) == {"read", "splat", "write"} and 0 < sum(parts.values()) <= stereo["seconds"]


@pytest.mark.parametrize("preset", [None, "backend:native"])
def test_cli_uses_expandable_cuda_segments_unless_configured(monkeypatch, preset):
    """The CLI asks CUDA's allocator for expandable segments (reserved close to allocated) before CUDA starts; a
    PYTORCH_CUDA_ALLOC_CONF of the user's is left alone."""
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", preset or "")  # recorded, so the teardown restores it
    if preset is None:
        monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == (preset or "expandable_segments:True")


def test_cli_keeps_compiled_kernels_in_a_lasting_cache(monkeypatch, tmp_path):
    """Inductor's cache goes to ~/.cache/stereocrafter3d/inductor unless the user set TORCHINDUCTOR_CACHE_DIR."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")  # recorded, so the teardown restores the variable as it was
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / ".cache" / "stereocrafter3d" / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    with pytest.raises(SystemExit):
        main(["--help"])
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")


@pytest.mark.parametrize(("height", "width", "frames_per_call"), [(720, 1280, 4), (1080, 1920, 1), (2160, 3840, 1)])
def test_splat_batch_shrinks_with_the_frame_size(monkeypatch, height, width, frames_per_call):
    """Splat temporaries are ~110 B per pixel: 4 frames of 720p per call, larger frames one at a time."""
    calls = []

    def fake_warp(left, depth, settings, device, batch_size, depth_range):
        calls.append(batch_size)
        return SimpleNamespace(right=left, occlusion=depth)

    monkeypatch.setattr(convert_module, "warp_to_right_eye", fake_warp)
    left = torch.zeros(1, 1, 1, 3).expand(16, height, width, 3)  # shapes only: no 4K chunk in RAM
    depth = torch.zeros(1, 1, 1).expand(16, height, width)
    splat_chunk(left, depth, ConvertSettings(), (0.0, 1.0), torch.device("cpu"))
    assert calls == [frames_per_call]


@needs_clip
def test_audio_is_copied_with_its_timing(small, tmp_path):
    source, depth = small
    output = convert_video(source, tmp_path / "out.mp4", depth, ConvertSettings(chunk_frames=4))
    with av.open(str(source)) as src, av.open(str(output)) as out:
        assert len(out.streams.audio) == 1 and out.streams.audio[0].codec_context.name == "aac"
        durations = []
        for container in (src, out):
            stream = container.streams.audio[0]
            packets = [p for p in container.demux(stream) if p.dts is not None]
            durations.append(float((packets[-1].pts + packets[-1].duration - packets[0].pts) * stream.time_base))
    assert abs(durations[1] - durations[0]) < 1 / 24
    assert abs(durations[1] - 10 / 24) < 1 / 24 + 1024 / 48000  # AAC pads to whole 1024-sample frames


@needs_clip
def test_pcm_audio_is_reencoded_to_aac_for_mp4(tmp_path):
    source, depth = tmp_path / "in.mkv", tmp_path / "depth.mp4"
    _encode(source, _clip_frames(6, 160, 90), tone_s=6 / 24, audio_codec="pcm_s16le")
    _encode(depth, _depth_frames(6, 90, 160))
    output = convert_video(source, tmp_path / "out.mp4", depth)
    with av.open(str(output)) as out:
        stream = out.streams.audio[0]
        assert stream.codec_context.name == "aac"
        samples = sum(frame.samples for frame in out.decode(stream))
    assert abs(samples / 48000 - 6 / 24) < 1 / 24 + 2048 / 48000


class Interrupt(Exception):
    pass


@needs_clip
def test_resume_after_interruption(small, tmp_path):
    source, depth = small
    output = tmp_path / "out.mp4"
    settings = ConvertSettings(chunk_frames=4)

    def kill_after_first(index: int, done: int) -> None:
        raise Interrupt

    with pytest.raises(Interrupt):
        convert_video(source, output, depth, settings, on_chunk_done=kill_after_first)
    work_dir, partial = work_paths(output)
    assert not output.exists()
    progress = json.loads((work_dir / "progress.json").read_text())
    assert [chunk["frames"] for chunk in progress["chunks"]] == [4]
    first = work_dir / "chunk_00000.mp4"
    stamp = first.stat().st_mtime_ns
    os.utime(first, ns=(stamp - 10**9, stamp - 10**9))  # detects a rewrite even on coarse clocks

    computed: list[int] = []
    convert_video(source, output, depth, settings, on_chunk_done=lambda index, done: computed.append(index))
    assert computed == [1, 2]
    assert not work_dir.exists() and not partial.exists()
    info = probe_video(output)
    assert (info.frame_count, info.width, info.height) == (10, 640, 180)
    packed = _decode(output)
    assert (packed[..., :320, :] - _decode(source)).abs().mean() < 5.0 / 255  # CRF 18 on a small clip
    fresh = convert_video(source, tmp_path / "fresh.mp4", depth, settings)
    assert (packed - _decode(fresh)).abs().max() < 1e-6  # x264 is deterministic: same bits as one run


@needs_clip
def test_cancel_keeps_finished_segments(small, tmp_path):
    """A cancel (the ``interrupt`` check, as ComfyUI's) before the second chunk keeps the first segment: the rerun
    continues after it and gives the uninterrupted run's frames."""
    source, depth = small
    output = tmp_path / "out.mp4"
    settings = ConvertSettings(chunk_frames=4)
    checks = []

    def cancel_at_second_chunk() -> None:
        checks.append(1)
        if len(checks) == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        convert_video(source, output, depth, settings, interrupt=cancel_at_second_chunk)
    work_dir, _ = work_paths(output)
    progress = json.loads((work_dir / "progress.json").read_text())
    assert [chunk["frames"] for chunk in progress["chunks"]] == [4]
    assert probe_video(work_dir / "chunk_00000.mp4").frame_count == 4
    computed: list[int] = []
    convert_video(source, output, depth, settings, on_chunk_done=_record(computed))
    assert computed == [1, 2]
    fresh = convert_video(source, tmp_path / "fresh.mp4", depth, settings)
    assert (_decode(output) - _decode(fresh)).abs().max() < 1e-6


@needs_clip
def test_changed_settings_start_over(small, tmp_path):
    source, depth = small
    output = tmp_path / "out.mp4"
    with pytest.raises(Interrupt):
        convert_video(source, output, depth, ConvertSettings(chunk_frames=4), on_chunk_done=_raise)
    computed: list[int] = []
    convert_video(
        source,
        output,
        depth,
        ConvertSettings(WarpSettings(max_disparity=5), chunk_frames=4),
        on_chunk_done=_record(computed),
    )
    assert computed == [0, 1, 2]


def _raise(index: int, done: int) -> None:
    raise Interrupt


def _record(into: list[int]):
    return lambda index, done: into.append(index)


@needs_clip
@pytest.mark.parametrize(("layout", "size"), [("sbs", (322, 92)), ("half-sbs", (160, 92))])
def test_odd_size_is_padded_to_even(tmp_path, layout, size):
    source, depth = tmp_path / "in.mp4", tmp_path / "depth.mp4"
    _encode(source, _clip_frames(3, 161, 91))
    _encode(depth, _depth_frames(3, 91, 161))
    assert (
        main([str(source), "-o", str(tmp_path / "out.mp4"), "--depth", str(depth), "--no-inpaint", "--layout", layout])
        == 0
    )
    info = probe_video(tmp_path / "out.mp4")
    assert (info.width, info.height, info.frame_count) == (*size, 3)
    if layout == "sbs":
        packed = _decode(tmp_path / "out.mp4")
        assert (packed[:, :91, :161] - _decode(source)).abs().mean() < 6.0 / 255  # CRF 18 on a tiny clip


@needs_clip
def test_single_frame_h265(tmp_path):
    source, depth = tmp_path / "in.mp4", tmp_path / "depth.mp4"
    _encode(source, _clip_frames(1, 160, 90))
    _encode(depth, _depth_frames(1, 90, 160))
    output = tmp_path / "out.mkv"
    assert (
        main([str(source), "-o", str(output), "--depth", str(depth), "--no-inpaint", "--codec", "h265", "--crf", "20"])
        == 0
    )
    info = probe_video(output)
    assert (info.width, info.height, info.frame_count) == (320, 90, 1)


def _tiny(tmp_path: Path, frames: int, name: str = "in.mp4") -> Path:
    path = tmp_path / name
    _encode(path, np.zeros((frames, 16, 16, 3), np.uint8))
    return path


def test_errors(tmp_path, caplog):
    source, depth = _tiny(tmp_path, 4), _tiny(tmp_path, 3, "depth.mp4")
    with pytest.raises(ValueError, match="depth video has 3 frames but in.mp4 has 4"):
        convert_video(source, tmp_path / "out.mp4", depth)
    with pytest.raises(VideoReadError, match="no such file"):
        convert_video(tmp_path / "missing.mp4", tmp_path / "out.mp4", depth)
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(VideoReadError, match="not a readable video"):
        probe_video(tmp_path / "text.mp4")
    audio_only = tmp_path / "audio.m4a"
    with av.open(str(audio_only), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(VideoReadError, match="no video stream"):
        probe_video(audio_only)
    with pytest.raises(ValueError, match="output must end in"):
        convert_video(source, tmp_path / "out.avi", _tiny(tmp_path, 4, "depth4.mp4"))
    assert (
        main(
            [
                str(source),
                "-o",
                str(tmp_path / "no/such/dir/out.mp4"),
                "--depth",
                str(tmp_path / "depth4.mp4"),
                "--no-inpaint",
            ]
        )
        == 1
    )
    assert "cannot write next to the output" in caplog.text
    assert (
        main([str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o.mp4"), "--depth", str(depth), "--no-inpaint"]) == 1
    )
    assert "no such file" in caplog.text


def test_cli_names_missing_models_and_the_fix(tmp_path, capsys):
    source = _tiny(tmp_path, 2)
    empty = tmp_path / "models"
    empty.mkdir()
    for extra, folder in (([], "depthcrafter"), (["--depth", str(source)], "stereocrafter")):
        with pytest.raises(SystemExit) as exit_info:
            main([str(source), "-o", str(tmp_path / "out.mp4"), "--models", str(empty), *extra])
        assert exit_info.value.code == 2
        message = capsys.readouterr().err
        assert str(empty / "diffusers") in message or str(empty / folder) in message, message
        assert "--download" in message, message
    with pytest.raises(SystemExit):
        main([str(source), "-o", str(tmp_path / "out.mp4"), "--depth", str(source), "--no-inpaint", "--tiles", "0"])
    assert "tiles must be auto, N or RxC" in capsys.readouterr().err
