"""A ComfyUI VIDEO input (or a path string) as what the converter reads: a file and the part of it to convert.

No ComfyUI import: the VIDEO object is used through its methods only, so this works with ComfyUI 0.3.75 (no trim)
and 0.33 (``get_active_trim_window``, ``Video Slice``), and unit tests can pass a stand-in object.
"""

from __future__ import annotations

import inspect
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..stereocrafter.video.video_io import TrimWindow
from .safe_paths import resolve_input_file


@dataclass(frozen=True)
class VideoSource:
    """A video file and the part of it to read (``trim`` None: all of it)."""

    path: Path
    trim: TrimWindow | None = None


def trim_window(video: Any) -> TrimWindow | None:
    """The VIDEO's active trim window (ComfyUI 0.33+: ``get_active_trim_window()`` → (start s, duration s), duration
    0 = to the end), or None when it has none or no trim (ComfyUI 0.3.75 videos have no such method)."""
    get_window = getattr(video, "get_active_trim_window", None)
    if get_window is None:
        return None
    start, duration = get_window()
    window = TrimWindow(max(float(start), 0.0), max(float(duration), 0.0))
    return None if window.is_whole else window


def _temp_file(temp_dir: Path, name: str) -> Path:
    """A new ``<name>_XXXXXXXX.mp4`` in ``temp_dir`` (the output file is named after it)."""
    temp_dir.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f"{name}_", suffix=".mp4", dir=temp_dir)
    os.close(handle)
    return Path(tmp)


def _save_encoded(video: Any, temp_dir: Path, name: str) -> Path:
    """Encode a VIDEO that has no file (e.g. made from frames) to a temp file, at its own bit depth (ComfyUI 0.33's
    ``save_to`` keeps it) and near-lossless where ``save_to`` takes a ``crf`` (0.33+)."""
    tmp = _temp_file(temp_dir, name)
    accepts_crf = "crf" in inspect.signature(video.save_to).parameters
    if accepts_crf:
        video.save_to(str(tmp), crf=0)
    else:
        video.save_to(str(tmp))
    return tmp


def video_source(
    video: Any | None, video_path: str, name: str, input_dir: Path, temp_dir: Path, output_dir: Path | None = None
) -> VideoSource:
    """The file and trim window for a VIDEO input or a path string: a file in ``input_dir`` (sub-folders allowed),
    an annotated name (``clip.mp4 [input]``, ``[output]``, ``[temp]``) or an absolute path in a folder the server's
    operator allowed; anything leading out of them is refused (see :func:`.safe_paths.resolve_input_file`).

    A file-backed VIDEO (Load Video, Video Slice) is read in place, only its trim window: no copy, however long
    the file. A VIDEO held in memory as an encoded file is written out as it is (no re-encoding); one made from
    frames is encoded to ``temp_dir`` first (it is in RAM already, so it is not a long clip).
    """
    if video_path.strip():
        folders = {"input": input_dir, "temp": temp_dir} | ({"output": output_dir} if output_dir else {})
        return VideoSource(resolve_input_file(video_path, f"{name}_path", folders))
    if video is None:
        raise ValueError(f"connect a {name} (Load Video) or give {name}_path.")
    trim = trim_window(video)
    # Only file-backed videos have a cheap stream source; VideoInput's default encodes the whole clip into memory.
    if type(video).__name__ == "VideoFromFile" and hasattr(video, "get_stream_source"):
        source = video.get_stream_source()
        if isinstance(source, str) and Path(source).is_file():
            return VideoSource(Path(source), trim)
        if isinstance(source, io.IOBase):
            tmp = _temp_file(temp_dir, name)
            source.seek(0)
            with tmp.open("wb") as out:
                shutil.copyfileobj(source, out)
            return VideoSource(tmp, trim)
    return VideoSource(_save_encoded(video, temp_dir, name), None)  # save_to writes any trim of its own
