"""VR180: the 180° equirectangular projection, Google's spherical metadata written into MP4 and read back by FFmpeg
(PyAV's frame side data) and by our reader, fast-start files, the CLI layout."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stereocrafter.__main__ import main
from stereocrafter.compose.spatial_media import equirect_180, inject_vr180, read_spherical
from stereocrafter.video.video_io import SegmentWriter


def _ffmpeg_side_data(path: Path) -> dict[str, bytes]:
    """Side data FFmpeg's MP4 demuxer attaches to the first decoded frame, by type name."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return {sd.type.name: bytes(sd) for sd in frame.side_data}


def _write(path: Path, frames: torch.Tensor, options: dict[str, str] | None = None) -> None:
    with av.open(str(path), "w", format="mp4", options=options or {}) as out:
        stream = out.add_stream("libx264", rate=24)
        stream.height, stream.width, stream.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
        stream.options = {"crf": "10"}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray((image * 255).round().byte().numpy(), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def test_flat_frame_lands_in_the_middle_of_the_180_degree_canvas():
    """With a 90° field of view the frame's left and right edges sit at longitudes -45° and +45°: columns S/4 and
    3S/4 of the 180° canvas; beyond them is black."""
    frame = torch.zeros(1, 60, 80, 3)
    frame[..., :40, 0] = 1.0  # left half red
    frame[..., 40:, 2] = 1.0  # right half blue
    out = equirect_180(frame, 90.0, size=200)
    assert out.shape == (1, 200, 200, 3)
    row = out[0, 100]
    assert bool((row[55:98, 0] > 0.9).all()) and bool((row[102:145, 2] > 0.9).all())
    assert float(row[:45].abs().max()) == 0 and float(row[155:].abs().max()) == 0
    # Straight up and down are outside any frame.
    assert float(out[0, :5].abs().max()) == 0 and float(out[0, -5:].abs().max()) == 0


@pytest.mark.parametrize("faststart", [False, True])
def test_metadata_is_read_back_by_ffmpeg_and_frames_are_unchanged(tmp_path, faststart):
    frames = torch.rand(3, 32, 64, 3)
    path = tmp_path / "vr.mp4"
    _write(path, frames, {"movflags": "faststart"} if faststart else None)
    with av.open(str(path)) as container:
        before = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert read_spherical(path) is None and "SPHERICAL" not in _ffmpeg_side_data(path)
    inject_vr180(path)
    inject_vr180(path)  # a second call leaves it as it is
    assert read_spherical(path) == {
        "stereo_mode": 2,
        "projection": "equirectangular",
        "bounds": {"top": 0, "bottom": 0, "left": 0x40000000, "right": 0x40000000},
        "degrees": (180, 180),
    }
    side = _ffmpeg_side_data(path)
    # AVSphericalMapping: projection (2 = equirectangular with bounds), yaw, pitch, roll, bounds left/top/right/bottom.
    projection, yaw, pitch, roll, left, top, right, bottom = struct.unpack("<iiiiIIII", side["SPHERICAL"][:32])
    assert (projection, yaw, pitch, roll, left, top, right, bottom) == (2, 0, 0, 0, 0x40000000, 0, 0x40000000, 0)
    assert struct.unpack("<i", side["STEREO3D"][:4])[0] == 1  # AV_STEREO3D_SIDEBYSIDE
    with av.open(str(path)) as container:
        after = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(after) == 3 and all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_cli_vr180_output(tmp_path):
    from test_convert import _encode

    ys, xs = np.mgrid[0:48, 0:64]
    frames = np.stack([np.stack([xs * 4 % 256, ys * 5 % 256, np.full_like(xs, 99)], -1)] * 5).astype(np.uint8)
    _encode(tmp_path / "in.mp4", frames)
    _encode(tmp_path / "depth.mp4", np.repeat((ys * 5)[None, :, :, None], 5, 0).repeat(3, -1).astype(np.uint8))
    args = [str(tmp_path / "in.mp4"), "--depth", str(tmp_path / "depth.mp4"), "--no-inpaint", "--layout", "vr180"]
    assert main([*args, "-o", f"{tmp_path}/out/", "--scenes", "none"]) == 0
    output = tmp_path / "out" / "in_180x180_LR.mp4"
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.frames or 5) == (128, 64, 5)
    assert read_spherical(output)["degrees"] == (180, 180)
    assert "SPHERICAL" in _ffmpeg_side_data(output)
    assert main([*args, "-o", str(tmp_path / "out.mkv"), "--scenes", "none"]) == 1  # mkv: no MP4 boxes


def test_segment_writer_output_takes_the_metadata(tmp_path):
    path = tmp_path / "seg.mp4"
    writer = SegmentWriter(path, 64, 32, Fraction(24), "h265", 20, False)
    writer.write(torch.rand(2, 32, 64, 3))
    writer.close()
    inject_vr180(path)  # an hvc1 sample entry
    assert read_spherical(path)["stereo_mode"] == 2
