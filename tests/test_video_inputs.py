"""The node side of a VIDEO input (nodes/video_inputs.py) with stand-ins shaped like ComfyUI's VIDEO classes:
0.33's trimmed ``VideoFromFile`` is read in place with its window, 0.3.75's (no trim method) whole, in-memory
files are written out unchanged, frames videos are encoded."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.pack_import import import_pack_module
from tests.test_video_trim import _clip

video_inputs = import_pack_module("nodes.video_inputs")


class VideoFromFile:
    """ComfyUI 0.33's VideoFromFile as the node sees it (the class name is what marks a file-backed VIDEO)."""

    def __init__(self, file: str | io.BytesIO, start_time: float = 0.0, duration: float = 0.0) -> None:
        self.file, self.start_time, self.duration = file, start_time, duration

    def get_stream_source(self) -> str | io.BytesIO:
        return self.file

    def get_active_trim_window(self) -> tuple[float, float]:
        return self.start_time, self.duration

    def save_to(self, path: str, **kwargs: object) -> None:
        raise AssertionError("a file-backed VIDEO must not be re-encoded")


class OldVideoFromFile:
    """ComfyUI 0.3.75's VideoFromFile: no trim window."""

    def __init__(self, file: str) -> None:
        self.file = file

    def get_stream_source(self) -> str:
        return self.file


OldVideoFromFile.__name__ = "VideoFromFile"


class VideoFromComponents:
    """A frames video: only save_to (0.33's takes bit_depth and crf)."""

    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self.saved: list[dict] = []

    def get_active_trim_window(self) -> tuple[float, float]:
        return 0.0, 0.0

    def save_to(self, path: str, format: str = "auto", codec: str = "auto", metadata: dict | None = None,
                bit_depth: int | None = None, crf: float | None = None) -> None:  # fmt: skip
        self.saved.append({"crf": crf, "bit_depth": bit_depth})
        Path(path).write_bytes(self.clip.read_bytes())


def _source(video: object, tmp_path: Path, video_path: str = "") -> object:
    return video_inputs.video_source(video, video_path, "video", tmp_path / "input", tmp_path / "temp")


def test_trimmed_file_video_is_read_in_place_with_its_window(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "clip.mp4")
    source = _source(VideoFromFile(str(clip), 1.0, 1.0), tmp_path)
    assert source.path == clip
    assert (source.trim.start_time, source.trim.duration) == (1.0, 1.0)
    assert not (tmp_path / "temp").exists()  # no temporary copy


def test_untrimmed_and_old_comfyui_videos_have_no_window(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "clip.mp4", frames=10)
    assert _source(VideoFromFile(str(clip)), tmp_path) == video_inputs.VideoSource(clip, None)
    assert _source(OldVideoFromFile(str(clip)), tmp_path) == video_inputs.VideoSource(clip, None)


def test_in_memory_file_is_written_out_unchanged_and_keeps_its_window(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "clip.mp4", frames=30)
    source = _source(VideoFromFile(io.BytesIO(clip.read_bytes()), 0.5, 0.0), tmp_path)
    assert source.path.parent == tmp_path / "temp"
    assert source.path.read_bytes() == clip.read_bytes()
    assert source.trim.start_time == 0.5


def test_frames_video_is_encoded_near_lossless(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "clip.mp4", frames=10)
    video = VideoFromComponents(clip)
    source = _source(video, tmp_path)
    assert source.path.parent == tmp_path / "temp" and source.trim is None
    assert source.path.name.startswith("video_")  # the output is named after it
    assert video.saved == [{"crf": 0, "bit_depth": None}]  # None: the video's own bit depth


def test_path_string(tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    clip = _clip(tmp_path / "input" / "clip.mp4", frames=10)
    assert _source(None, tmp_path, "clip.mp4").path == clip
    with pytest.raises(ValueError, match="video_path: .* is not a file"):
        _source(None, tmp_path, "missing.mp4")
    with pytest.raises(ValueError, match="connect a video"):
        _source(None, tmp_path)
