"""Shots of a film: hard-cut detection (PySceneDetect), the shot list's sidecar file, and per-shot streaming.

A film is many shots; DepthCrafter's windows, StereoCrafter's chunks and the depth range must not blend one shot
into the next. :func:`detect_cuts` finds the hard cuts in one streaming decode pass (frames downscaled by the
decoder to about :data:`DETECT_WIDTH` pixels wide, one frame held at a time, whatever the film's length) with
PySceneDetect's ``ContentDetector`` (HSV content change between consecutive frames; ``threshold`` 27 and
``min_scene_len`` 15 frames are its defaults). A cut is the index of the FIRST frame of a new shot, counted from
the converted part's first frame; shots are ``[start, end)`` frame ranges (:func:`shot_segments`).

The shot list is written next to the output as ``<output>.scenes.json`` (:func:`write_scenes_file`) and read back
with :func:`read_scenes_file`, which also takes a plain list of frame numbers (one per line, or separated by
commas or spaces), so cuts from an editor's EDL or PySceneDetect's CLI can be pasted in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from .video_io import TrimWindow, VideoReadError, _open, _video_stream, _window, decode_window

#: Width frames are scaled to for detection (PySceneDetect's own default effective width is 256).
DETECT_WIDTH = 256
SCENES_VERSION = 1

Segment = tuple[int, int]


def scenes_path(output: Path) -> Path:
    """The sidecar next to ``output``: ``film_LRF_Full_SBS.mp4`` → ``film_LRF_Full_SBS.scenes.json``."""
    return output.with_name(output.stem + ".scenes.json")


def shot_segments(cuts: Sequence[int], num_frames: int) -> list[Segment]:
    """[start, end) of every shot of a clip of ``num_frames`` frames cut at ``cuts`` (first frames of new shots).
    Cuts at 0, at or past the end, and repeats are ignored."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
    starts = [0, *sorted({int(c) for c in cuts if 0 < int(c) < num_frames})]
    return [(start, end) for start, end in zip(starts, [*starts[1:], num_frames], strict=True)]


def check_cuts(cuts: Sequence[int], num_frames: int, source: str = "cuts") -> list[int]:
    """Sorted unique cuts; ValueError naming ``source`` for a cut outside 1..num_frames-1."""
    bad = [c for c in cuts if not 0 < int(c) < num_frames]
    if bad:
        raise ValueError(
            f"{source}: cut(s) {bad[:5]} are outside frames 1..{num_frames - 1} of the {num_frames}-frame clip; a cut "
            "is the first frame of a new shot, counted from the converted part's first frame."
        )
    return sorted({int(c) for c in cuts})


def _small_frames(path: Path, window: TrimWindow | None, width: int) -> Iterator[np.ndarray]:
    """Every frame of ``path`` (its ``window`` only, with read_frames' rule) as uint8 BGR [h, width', 3], scaled by
    the decoder's scaler (cheap: no full-size float frame is ever made)."""
    window = _window(window)
    with _open(path) as container:
        stream = _video_stream(container, path)
        index = 0
        try:
            for frame in decode_window(container, stream, window):
                scale = min(1.0, width / frame.width)
                size = (max(2, round(frame.width * scale)), max(2, round(frame.height * scale)))
                yield frame.to_ndarray(width=size[0], height=size[1], format="bgr24")
                index += 1
        except av.FFmpegError as exc:  # e.g. a truncated file: name it, as read_frames does
            raise VideoReadError(f"{path}: decoding failed at frame {index} while finding the shots ({exc}).") from exc


def detect_cuts_in_frames(
    frames: Iterable[np.ndarray],
    fps: float,
    threshold: float = 27.0,
    min_scene_len: int = 15,
    on_frame: Callable[[int], None] | None = None,
) -> tuple[list[int], int]:
    """(cuts, frames seen) of a stream of uint8 BGR frames [h, w, 3] (all one size), one frame held at a time.

    ``threshold``: ContentDetector's score above which a frame starts a new shot (lower finds more cuts);
    ``min_scene_len``: the shortest shot in frames (flashes shorter than it are merged).
    """
    try:
        from scenedetect import ContentDetector, FrameTimecode
    except ImportError as exc:  # opencv is a dependency of PySceneDetect: either can be missing
        raise ImportError(
            f"shot detection needs PySceneDetect ({exc}): pip install scenedetect-headless (or scenedetect), or "
            "give the cuts with --scenes FILE / turn detection off."
        ) from exc
    detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_len)
    cuts: list[int] = []
    seen = 0
    timecode = None
    for seen, image in enumerate(frames, start=1):
        timecode = FrameTimecode(seen - 1, fps)
        cuts += [cut.frame_num for cut in detector.process_frame(timecode, np.ascontiguousarray(image))]
        if on_frame is not None:
            on_frame(seen)
    if timecode is not None:
        cuts += [cut.frame_num for cut in detector.post_process(timecode)]
    return sorted({c for c in cuts if 0 < c < seen}), seen


def detect_cuts(
    path: Path | str,
    fps: Fraction | float,
    window: TrimWindow | None = None,
    threshold: float = 27.0,
    min_scene_len: int = 15,
    on_frame: Callable[[int], None] | None = None,
) -> tuple[list[int], int]:
    """(hard cuts, frames decoded) of a video file (its ``window`` only): one streaming decode pass, see the module
    docstring. ``on_frame(frames seen)`` is called after every frame (progress, interrupts)."""
    return detect_cuts_in_frames(
        _small_frames(Path(path), window, DETECT_WIDTH), float(fps), threshold, min_scene_len, on_frame
    )


def write_scenes_file(path: Path, cuts: Sequence[int], num_frames: int, fps: Fraction | float, source: str) -> None:
    """The shot list as JSON: cuts, shots as [start, end) frames and their start times in seconds."""
    segments = shot_segments(cuts, num_frames)
    data = {
        "version": SCENES_VERSION,
        "source": source,
        "frames": num_frames,
        "fps": str(Fraction(fps).limit_denominator(1_000_000)),
        "cuts": [start for start, _ in segments[1:]],
        "shots": [{"start": s, "end": e, "start_s": round(s / float(fps), 3)} for s, e in segments],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def read_scenes_file(path: Path | str) -> list[int]:
    """Cuts (first frames of new shots) from :func:`write_scenes_file`'s JSON, a JSON list of frame numbers, or
    plain text with frame numbers separated by newlines, commas or spaces (``#`` starts a comment)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise VideoReadError(f"--scenes {path}: cannot read it ({exc.strerror or exc}).") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("cuts"), list):
        values: list = data["cuts"]
    elif isinstance(data, list):
        values = data
    else:
        values = [token for line in text.splitlines() for token in re.split(r"[,\s]+", line.split("#")[0]) if token]
    try:
        return sorted({int(v) for v in values})
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"--scenes {path}: expected frame numbers (the first frame of each new shot), or the JSON this "
            f"converter writes next to its output; found {exc}."
        ) from exc


def parse_cuts(text: str, source: str = "scenes") -> list[int] | None:
    """Cuts typed as text (a node input): frame numbers separated by commas or spaces → sorted cuts; ``""`` → None
    (detect them); ``"none"`` → [] (one shot)."""
    text = text.strip()
    if not text:
        return None
    if text.lower() == "none":
        return []
    try:
        return sorted({int(token) for token in re.split(r"[,;\s]+", text) if token})
    except ValueError as exc:
        raise ValueError(
            f"{source}: expected frame numbers separated by commas (the first frame of each new shot, e.g. "
            f"'120, 348'), empty to find the cuts automatically or 'none' for one shot; got {text!r}."
        ) from exc


def split_by_segments(chunks: Iterable[torch.Tensor], segments: Sequence[Segment]) -> Iterator[Iterator[torch.Tensor]]:
    """Re-cut a stream of [n, ...] chunks into one sub-stream per segment (consecutive, from frame 0), lazily:
    only the chunk being split is held. Consume each sub-stream before taking the next."""
    source = iter(chunks)
    carry: list[torch.Tensor] = []

    def pieces(length: int) -> Iterator[torch.Tensor]:
        left = length
        while left > 0:
            chunk = carry.pop() if carry else next(source, None)
            if chunk is None:
                return
            if chunk.shape[0] > left:
                carry.append(chunk[left:])
                chunk = chunk[:left]
            left -= chunk.shape[0]
            yield chunk

    for start, end in segments:
        yield pieces(end - start)


def shot_windows(segments: Sequence[Segment], plan: Callable[[int], list[Segment]]) -> list[Segment]:
    """``plan(shot length)`` (e.g. DepthCrafter's window plan) for every shot, as clip frame ranges."""
    return [(start + a, start + b) for start, end in segments for a, b in plan(end - start)]
