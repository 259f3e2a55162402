"""Lossless 16-bit depth videos (FFV1, gray16le, Matroska): the converter's store for estimated depth.

Depth in 0..1 is stored as round(d · 65535), so a round trip changes a value by at most 1/131070. Depth estimated
for a long clip goes to disk instead of RAM: it is normalised over the whole clip before splatting (as the
reference does), which needs every frame's depth before the first frame can be splatted. The file also plays in
ordinary players as a grey video and can be given back to the converter as a ``--depth`` video.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from .video_io import VideoReadError

DEPTH_CODEC = "ffv1"
DEPTH_PIX_FMT = "gray16le"
DEPTH_LEVELS = 65535


class DepthFileWriter:
    """Append depth frames [n, H, W] float 0..1 to a new FFV1 gray16le Matroska file; tracks their min and max."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction) -> None:
        self.path = path
        self.container = av.open(str(path), "w", format="matroska")
        self.stream = self.container.add_stream(DEPTH_CODEC, rate=fps)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = DEPTH_PIX_FMT
        self.frames_written = 0
        self.low, self.high = float("inf"), float("-inf")

    def write(self, depth: torch.Tensor) -> None:
        """Encode [n, H, W] depth, float 0..1 (clamped)."""
        levels = (depth.detach().float().cpu().clamp(0.0, 1.0) * DEPTH_LEVELS + 0.5).to(torch.int32)
        if levels.numel():
            self.low = min(self.low, int(levels.min()) / DEPTH_LEVELS)
            self.high = max(self.high, int(levels.max()) / DEPTH_LEVELS)
        for image in levels.to(torch.uint16).numpy():
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=DEPTH_PIX_FMT)
            frame.pts = self.frames_written
            self.container.mux(self.stream.encode(frame))
            self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        self.container.mux(self.stream.encode(None))
        self.container.close()


def read_depth_file(path: Path, chunk_frames: int, start: int = 0) -> Iterator[torch.Tensor]:
    """Yield the depth of a file written by :class:`DepthFileWriter` from frame ``start`` on, as float32
    [n, H, W] 0..1 chunks of at most ``chunk_frames`` frames."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise VideoReadError(f"{path}: unreadable depth file ({exc}); delete it to estimate the depth again.") from exc
    with container:
        batch: list[np.ndarray] = []
        for index, frame in enumerate(container.decode(video=0)):
            if index < start:
                continue
            if frame.format.name != DEPTH_PIX_FMT:
                raise VideoReadError(f"{path}: not a {DEPTH_PIX_FMT} depth file (found {frame.format.name}).")
            batch.append(frame.to_ndarray())
            if len(batch) == chunk_frames:
                yield torch.from_numpy(np.stack(batch).astype(np.float32) / DEPTH_LEVELS)
                batch = []
        if batch:
            yield torch.from_numpy(np.stack(batch).astype(np.float32) / DEPTH_LEVELS)
