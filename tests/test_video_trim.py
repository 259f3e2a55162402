"""Trim windows (a ComfyUI VIDEO's ``Video Slice``): windowed probing, reading, audio and conversion on real clips
made with PyAV, checked against the untrimmed decode's slice."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stereocrafter.convert import ConvertSettings, convert_video
from stereocrafter.video.video_io import TrimWindow, VideoReadError, probe_video, read_frames

FRAMES, FPS = 70, 24


def _clip(path: Path, frames: int = FRAMES, audio: bool = False, keyint: int = 12) -> Path:
    """An H.264 clip at 24 fps with B-frames and a keyframe every ``keyint`` frames (so seeking lands before the
    window), a bar moving right; with ``audio`` a 48 kHz AAC tone as long as the video."""
    height, width = 32, 48
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "4", "x264-params": f"keyint={keyint}:min-keyint={keyint}:bframes=2:scenecut=0"}
        audio_stream = out.add_stream("aac", rate=48000, layout="mono") if audio else None
        for index in range(frames):
            image = np.full((height, width, 3), 40, np.uint8)
            image[:, (2 * index) % width : (2 * index) % width + 3] = 220
            image[0, 0] = index * 3  # a per-frame value
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio_stream is not None:
            samples = 48000 * frames // FPS
            tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 48000)).astype(np.float32)[None]
            for start in range(0, samples, 1024):
                frame = av.AudioFrame.from_ndarray(tone[:, start : start + 1024], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 48000, start
                out.mux(audio_stream.encode(frame))
            out.mux(audio_stream.encode(None))
    return path


def _all(path: Path, window: TrimWindow | None = None, start: int = 0) -> torch.Tensor:
    return torch.cat(list(read_frames(path, 5, start=start, window=window)))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _clip(tmp_path_factory.mktemp("trim") / "clip.mp4")


@pytest.fixture(scope="module")
def full(clip: Path) -> torch.Tensor:
    return _all(clip)


@pytest.mark.parametrize(
    ("start_time", "duration", "first", "count"),
    [
        (1.0, 1.0, 24, 24),  # the case: a 1 s trim of the 70-frame clip is 24 frames
        (0.0, 1.0, 0, 24),
        (0.5, 0.25, 12, 6),  # a window starting on a non-keyframe (keyframes every 12 frames)
        (1.3, 0.0, 32, FRAMES - 32),  # to the end; 1.3 s = frame 31.2: the first frame at or after it is 32
        (0.01, 0.0, 1, FRAMES - 1),
    ],
)
def test_window_frames_equal_the_full_decode_slice(
    clip: Path, full: torch.Tensor, start_time: float, duration: float, first: int, count: int
) -> None:
    window = TrimWindow(start_time, duration)
    info = probe_video(clip, window)
    assert info.frame_count == count
    assert info.start_time == pytest.approx(first / FPS)
    assert info.window == window
    frames = _all(clip, window)
    assert frames.shape[0] == count
    assert torch.equal(frames, full[first : first + count])
    # A resume inside the window: `start` counts from the window's first frame.
    assert torch.equal(_all(clip, window, start=5), full[first + 5 : first + count])


def test_whole_window_is_no_window(clip: Path, full: torch.Tensor) -> None:
    info = probe_video(clip, TrimWindow())
    assert info.window is None and info.frame_count == FRAMES and info.end_time is None
    assert torch.equal(_all(clip, TrimWindow()), full)


def test_window_past_the_end_names_the_fix(clip: Path) -> None:
    with pytest.raises(VideoReadError, match="no frames in the trim window.*start_time"):
        probe_video(clip, TrimWindow(10.0, 1.0))


def test_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match="start_time >= 0"):
        TrimWindow(-1.0, 0.0)


def test_trimmed_conversion_with_audio(tmp_path: Path) -> None:
    """A 1 s trim converts 24 frames (the left eye is the window's frames), the depth video's own window is
    read in step, and the audio is cut to the window."""
    source = _clip(tmp_path / "in.mp4", audio=True)
    depth = _clip(tmp_path / "depth.mp4")
    window = TrimWindow(1.0, 1.0)
    output = convert_video(
        source, tmp_path / "out.mp4", depth, ConvertSettings(chunk_frames=7), trim=window, depth_trim=window
    )
    info = probe_video(output)
    assert info.frame_count == 24 and info.fps == Fraction(FPS)
    left = _all(output)[:, :, :48]
    expected = _all(source)[24:48]
    assert (left - expected).abs().mean() < 0.02
    with av.open(str(output)) as container:
        stream = container.streams.audio[0]
        audio_seconds = float(stream.duration * stream.time_base)
        first_audio = min(float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None)
    assert audio_seconds == pytest.approx(1.0, abs=0.05)
    assert 0.0 <= first_audio < 0.05


def test_other_trim_does_not_resume_the_job(tmp_path: Path) -> None:
    """The job record holds the trim: a rerun with another window starts over instead of reusing segments."""
    source = _clip(tmp_path / "in.mp4", frames=30)
    calls: list[int] = []

    def stop_after_first(index: int, done: int) -> None:
        calls.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert_video(
            source, tmp_path / "out.mp4", source, ConvertSettings(chunk_frames=4),
            trim=TrimWindow(0.0, 0.5), depth_trim=TrimWindow(0.0, 0.5), on_chunk_done=stop_after_first,
        )  # fmt: skip
    output = convert_video(
        source, tmp_path / "out.mp4", source, ConvertSettings(chunk_frames=4),
        trim=TrimWindow(0.5, 0.5), depth_trim=TrimWindow(0.5, 0.5),
    )  # fmt: skip
    left = _all(output)[:, :, :48]
    assert left.shape[0] == 12
    assert (left - _all(source)[12:24]).abs().mean() < 0.02


def test_depth_window_mismatch_is_an_error(tmp_path: Path) -> None:
    source = _clip(tmp_path / "in.mp4", frames=30)
    with pytest.raises(ValueError, match="depth video has 30 frames"):
        convert_video(source, tmp_path / "out.mp4", source, trim=TrimWindow(0.0, 0.5))


@pytest.mark.parametrize(("frames", "chunk"), [(12, 5), (8, 6), (24, 16)])
def test_short_last_segment_keeps_duration_and_rate(tmp_path: Path, frames: int, chunk: int) -> None:
    """A last segment of 1-2 frames is encoded without B-frame delay; the joined file still has one frame's
    duration per frame (a gap in the decode times made MP4 report 144/7 fps for 12 frames at 24 fps)."""
    source = _clip(tmp_path / "in.mp4", frames=frames)
    output = convert_video(source, tmp_path / "out.mp4", source, ConvertSettings(chunk_frames=chunk))
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == FPS
        assert float(stream.duration * stream.time_base) == pytest.approx(frames / FPS, abs=0.5 / FPS)
        dts = [packet.dts for packet in container.demux(stream) if packet.size]
    assert len(set(np.diff(dts))) == 1  # one frame apart throughout
