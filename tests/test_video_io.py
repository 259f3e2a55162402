"""Inputs the converter must handle: variable frame rate, 10-bit sources, 16-bit depth videos, unreadable files.

Every clip is made here with PyAV (tiny sizes, a few frames); the conversions go through ``convert_video`` or the
command line's ``main``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stereocrafter.__main__ import main
from stereocrafter.convert import convert_video, depth_range
from stereocrafter.video.video_io import SegmentWriter, VideoReadError, probe_video, read_frames

#: Irregular frame times in milliseconds (a phone or screen recording that dropped and doubled frames).
VFR_MS = [0, 33, 50, 100, 117, 200, 233, 240, 300, 400]


def _write(
    path: Path,
    images: np.ndarray,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    fmt: str = "rgb24",
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode [n, H, W, C] (or [n, H, W] for gray formats) frames given in ``fmt``, at 24 fps unless ``pts`` (in
    ``time_base`` units) says otherwise."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = images.shape[2], images.shape[1], pix_fmt
        if time_base is not None:
            stream.time_base = stream.codec_context.time_base = time_base
        stream.options = options if options is not None else ({"crf": "4"} if codec == "libx264" else {})
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format=fmt)
            frame.pts = index if pts is None else pts[index]
            if time_base is not None:
                frame.time_base = time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _moving(n: int, height: int = 32, width: int = 48) -> np.ndarray:
    """uint8 frames with a bright bar moving right, so frames differ."""
    frames = np.full((n, height, width, 3), 40, np.uint8)
    for k in range(n):
        frames[k, :, (3 * k) % width : (3 * k) % width + 4] = 220
    return frames


def _ramp_depth(n: int, height: int = 32, width: int = 48) -> np.ndarray:
    rows = np.linspace(0, 255, height, dtype=np.float32)[:, None, None] * np.ones((1, width, 3), np.float32)
    return np.repeat(rows[None].astype(np.uint8), n, axis=0)


def test_read_frames_chunks_match_pyav_decode(tmp_path):
    """Chunks (the last one shorter, a start offset) hold exactly PyAV's RGB frames / 255 in float32."""
    source = _write(tmp_path / "clip.mp4", _moving(7))
    with av.open(str(source)) as container:
        expected = np.stack(
            [f.to_ndarray(format="rgb24").astype(np.float32) / 255.0 for f in container.decode(video=0)]
        )
    chunks = list(read_frames(source, 3, start=1))
    assert [c.shape[0] for c in chunks] == [3, 3]
    assert all(c.dtype == torch.float32 and c.shape[1:] == (32, 48, 3) for c in chunks)
    assert torch.equal(torch.cat(chunks), torch.from_numpy(expected[1:]))


def _cli(source: Path, output: Path, depth: Path, *options: str) -> int:
    """``python -m stereocrafter SOURCE -o OUTPUT --depth DEPTH --no-inpaint [options]``: the model-free path."""
    return main([str(source), "-o", str(output), "--depth", str(depth), "--no-inpaint", *options])


def _decoded_count(path: Path) -> int:
    return sum(chunk.shape[0] for chunk in read_frames(path, 64))


def _has_encoder_format(codec: str, pix_fmt: str) -> bool:
    try:
        formats = av.codec.Codec(codec, "w").video_formats or []
    except av.FFmpegError:
        return False
    return pix_fmt in {f.name for f in formats}


# --- variable frame rate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])  # mp4: a frame count in the header; mkv: counted packets
def test_variable_frame_rate_is_flagged_and_every_frame_kept(tmp_path, caplog, suffix):
    source = _write(tmp_path / f"vfr{suffix}", _moving(len(VFR_MS)), pts=VFR_MS, time_base=Fraction(1, 1000))
    depth = _write(tmp_path / "depth.mp4", _ramp_depth(len(VFR_MS)))
    info = probe_video(source)
    assert info.variable_frame_rate and info.frame_count == len(VFR_MS)
    assert not probe_video(depth).variable_frame_rate
    output = convert_video(source, tmp_path / "out.mp4", depth)
    assert "variable frame rate" in caplog.text and source.name in caplog.text
    out_info = probe_video(output)
    assert out_info.frame_count == _decoded_count(output) == len(VFR_MS)
    assert not out_info.variable_frame_rate and out_info.fps == info.fps  # written at the average rate


def test_constant_rate_with_rounded_timestamps_is_not_flagged(tmp_path):
    # 29.97 fps in Matroska's millisecond ticks: steps of 33 and 34 ms are rounding, not a variable rate.
    times = [round(k * 1000 / Fraction(30000, 1001)) for k in range(30)]
    clip = _write(tmp_path / "ntsc.mkv", _moving(30), pts=times, time_base=Fraction(1, 1000))
    assert not probe_video(clip).variable_frame_rate


# --- 10-bit sources --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("encoder", "codec"), [("libx264", "h264"), ("libx265", "h265")])
def test_ten_bit_source_stays_ten_bit(tmp_path, encoder, codec):
    if not _has_encoder_format(encoder, "yuv420p10le"):
        pytest.skip(f"PyAV's FFmpeg has no 10-bit {encoder}")
    width = 512  # a gray ramp of 512 steps: 2 per 10-bit code, 8-bit would merge them into 256
    ramp = np.linspace(0, 65535, width)[None, :, None] * np.ones((16, 1, 3))
    images = np.repeat(ramp[None].astype(np.uint16), 3, axis=0)
    lossless = {"crf": "0"} if encoder == "libx264" else {"x265-params": "lossless=1:log-level=error"}
    source = _write(tmp_path / "ten.mp4", images, encoder, "yuv420p10le", "rgb48le", options=lossless)
    info = probe_video(source)
    assert (info.bit_depth, info.pix_fmt) == (10, "yuv420p10le")
    frames = next(read_frames(source, 8))
    assert frames.dtype == torch.float32
    assert len(np.unique(frames[0, 8, :, 1].numpy())) > 256  # not quantised to 8 bits on the way in

    depth = _write(tmp_path / "depth.mp4", _ramp_depth(3, 16, width))
    output = tmp_path / "out.mkv"
    assert _cli(source, output, depth, "--codec", codec, "--max-disparity", "0") == 0
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    out_info = probe_video(output)
    assert (out_info.bit_depth, out_info.width, out_info.frame_count) == (10, 2 * width, 3)
    left = next(read_frames(output, 8))[0, 8, :width, 1].numpy()
    assert len(np.unique(left)) > 256  # 10-bit all the way through (CRF 18 keeps a smooth ramp's steps)


# --- 16-bit depth videos ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("encoder", "suffix", "pix_fmt"), [("ffv1", ".mkv", "gray16le"), ("png", ".mov", "gray16be")])
def test_sixteen_bit_depth_video(tmp_path, encoder, suffix, pix_fmt):
    n, height, width = 4, 16, 24  # half the source size: resized on the way
    # Depth 1000..1200 of 65535: 8 bits would see two levels (4 and 5 of 255).
    levels = 1000 + 200 * np.linspace(0, 1, width)[None, :] * np.ones((height, 1))
    depth = _write(
        tmp_path / f"depth{suffix}", np.repeat(levels[None].astype(np.uint16), n, axis=0), encoder, pix_fmt, pix_fmt
    )
    info = probe_video(depth)
    assert (info.bit_depth, info.frame_count) == (16, n)
    low, high = depth_range(depth, 3)
    assert low == pytest.approx(1000 / 65535, abs=1e-6) and high == pytest.approx(1200 / 65535, abs=1e-6)

    source = _write(tmp_path / "in.mp4", _moving(n, 2 * height, 2 * width))
    output = tmp_path / "out.mp4"
    assert _cli(source, output, depth) == 0
    out_info = probe_video(output)
    assert (out_info.width, out_info.height, out_info.frame_count, out_info.bit_depth) == (4 * width, 2 * height, n, 8)
    right = next(read_frames(output, 8))[:, :, 2 * width :]
    assert right.std() > 0.01  # the 16-bit depth range gave parallax (a quantised one would be near-flat)


# --- files that are not videos ---------------------------------------------------------------------------------


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _bad_file(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A file the converter must refuse, and the words its error must contain."""
    path = tmp_path / f"bad_{kind}.mp4"
    if kind == "text":
        path.write_text("not a video at all\n" * 20)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":  # the MP4 index (moov) is at the end: half a file has no index
        whole = _write(tmp_path / "whole.mp4", _moving(6))
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    elif kind == "audio-only":
        return _audio_only(tmp_path / "bad_audio-only.m4a"), "no video stream"
    elif kind == "directory":
        path.mkdir()
        return path, "not a file"
    return path, "not a readable video"


BAD_KINDS = ["text", "empty", "truncated", "audio-only", "directory"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_unreadable_input_names_the_file(tmp_path, caplog, kind):
    bad, words = _bad_file(tmp_path, kind)
    with pytest.raises(VideoReadError, match=words) as error:
        probe_video(bad)
    assert str(bad) in str(error.value)
    with pytest.raises(VideoReadError, match=words):
        next(read_frames(bad, 4))
    depth = _write(tmp_path / "depth.mp4", _ramp_depth(2))
    assert _cli(bad, tmp_path / "out.mp4", depth) == 1
    assert str(bad) in caplog.text and words in caplog.text
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("kind", ["text", "audio-only"])
def test_unreadable_depth_names_the_file(tmp_path, caplog, kind):
    bad, words = _bad_file(tmp_path, kind)
    source = _write(tmp_path / "in.mp4", _moving(2))
    with pytest.raises(VideoReadError, match=words) as error:
        convert_video(source, tmp_path / "out.mp4", bad)
    assert str(bad) in str(error.value)
    assert _cli(source, tmp_path / "out.mp4", bad) == 1
    assert str(bad) in caplog.text


class _RecordingContainer:
    """An output container that records the (pts, dts) of every packet it muxes."""

    def __init__(self, container: av.container.OutputContainer) -> None:
        self.container, self.stamps = container, []

    def mux(self, packets: av.Packet | list[av.Packet]) -> None:
        for packet in [packets] if isinstance(packets, av.Packet) else packets:
            if packet.dts is not None:
                self.stamps.append((packet.pts, packet.dts))
            self.container.mux(packet)

    def close(self) -> None:
        self.container.close()


@pytest.mark.parametrize("frames", [1, 2, 3, 8])
@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_short_segments_get_sane_decode_timestamps(tmp_path, codec, frames):
    """libx265 leaves the decode timestamps of one- and two-frame streams uninitialised (a random number that the
    MP4 muxer now and then refuses: "pts/dts pair unsupported"); the segment writer re-bases them."""
    path = tmp_path / "segment.mp4"
    writer = SegmentWriter(path, 64, 32, Fraction(24), codec, 20, False)
    writer.container = recorder = _RecordingContainer(writer.container)
    writer.write(torch.rand(frames, 32, 64, 3, generator=torch.Generator().manual_seed(frames)))
    writer.close()
    assert sorted(pts for pts, _ in recorder.stamps) == list(range(frames))  # in frames (the codec's time base)
    dts = [d for _, d in recorder.stamps]
    assert dts == sorted(dts) and all(d <= pts for pts, d in recorder.stamps)
    assert -16 <= dts[0] <= 0, recorder.stamps  # behind the first frame by at most the reordering delay
    assert next(read_frames(path, 4)).shape[0] == min(frames, 4)


def test_frames_held_as_8bit_come_back_bit_identical():
    """Every 8-bit level, converted as read_frames converts a decoded frame, survives the uint8 round trip the
    converter uses for the left views waiting for their inpainting."""
    from stereocrafter.video.video_io import _to_float, frames_from_8bit, frames_to_8bit

    pixels = np.arange(256 * 4 * 3, dtype=np.int64).reshape(16, 64, 3) % 256
    pixels = pixels.astype(np.uint8)
    read = np.empty((16, 64, 3), dtype=np.float32)
    _to_float(av.VideoFrame.from_ndarray(pixels, format="rgb24"), False, read)
    frames = torch.from_numpy(read)[None].repeat(3, 1, 1, 1)
    packed = frames_to_8bit(frames)
    assert packed.dtype == torch.uint8 and torch.equal(packed[0], torch.from_numpy(pixels))
    back = frames_from_8bit(packed)
    assert back.dtype == torch.float32 and torch.equal(back.view(torch.int32), frames.view(torch.int32))
    assert frames_to_8bit(frames[:0]).shape == (0, 16, 64, 3)
