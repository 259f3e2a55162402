"""Bad and unusual inputs, each with a clear message naming the input and the fix, or a defined result checked here:
``--tiles`` out of range, huge/negative/infinite disparity, tiny and one-frame videos, phone videos with rotation
metadata (made upright, pixels checked). Unreadable files (zero-byte, truncated, text, audio-only, a folder) are in
tests/test_video_io.py."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from stereocrafter.__main__ import build_parser, main
from stereocrafter.convert import ConvertSettings, convert_video, work_paths
from stereocrafter.inpaint.inpaint_pipeline import InpaintSettings
from stereocrafter.video.video_io import probe_video, read_frames
from stereocrafter.warp.stereo_warp import WarpSettings
from tests.test_video_io import _moving, _ramp_depth, _write

# --- --tiles --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0", "tiles must be auto, N or RxC"),
        ("-1", "tiles must be auto, N or RxC"),
        ("0x2", "tiles must be auto, N or RxC"),
        ("two", "tiles must be auto, N or RxC"),
        ("100", "'100' is 10000 tiles; at most 64 in all"),
        ("9x8", "'9x8' is 72 tiles; at most 64 in all"),
    ],
)
def test_bad_tiles_are_refused_by_the_parser(value: str, words: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["in.mp4", "-o", "out.mp4", f"--tiles={value}"])
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err


def test_tiles_in_range_are_kept() -> None:
    assert build_parser().parse_args(["in.mp4", "-o", "o.mp4", "--tiles", "8x8"]).tiles == (8, 8)
    assert build_parser().parse_args(["in.mp4", "-o", "o.mp4", "--tiles", "2x3"]).tiles == (2, 3)
    assert build_parser().parse_args(["in.mp4", "-o", "o.mp4"]).tiles is None  # auto


def test_library_bounds_tiles_too() -> None:
    """The StereoInpaint node and the library check the same bound (the node's widget stops at 8 per side)."""
    InpaintSettings(tiles=(8, 8)).validate()
    with pytest.raises(ValueError, match="tiles 100x100 is more than 64 tiles in all; use fewer"):
        InpaintSettings(tiles=(100, 100)).validate()


# --- disparity ------------------------------------------------------------------------------------------------


@pytest.fixture
def clip(tmp_path):
    return _write(tmp_path / "in.mp4", _moving(3)), _write(tmp_path / "depth.mp4", _ramp_depth(3))


@pytest.mark.parametrize(
    ("disparity", "unit", "words"),
    [
        (5000.0, "pixels", "max_disparity 5000 px shifts pixels by up to 5000 px, more than the frame's width (48 px)"),
        (150.0, "percent of width", "max_disparity 150 % of 48 px shifts pixels by up to 72 px"),
        (float("inf"), "pixels", "max_disparity must be a finite number >= 0, got inf"),
        (float("nan"), "pixels", "max_disparity must be a finite number >= 0, got nan"),
        (-3.0, "pixels", "max_disparity must be a finite number >= 0, got -3.0"),
    ],
)
def test_disparity_out_of_range_is_refused(clip, tmp_path, disparity: float, unit: str, words: str) -> None:
    source, depth = clip
    output = tmp_path / "out.mp4"
    settings = ConvertSettings(WarpSettings(max_disparity=disparity, disparity_unit=unit))
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        convert_video(source, output, depth, settings)
    assert not output.exists() and not work_paths(output)[0].exists()


def test_cli_infinite_disparity_exits_1(clip, tmp_path, caplog) -> None:
    source, depth = clip
    args = [str(source), "-o", str(tmp_path / "out.mp4"), "--depth", str(depth), "--no-inpaint"]
    assert main([*args, "--max-disparity", "inf"]) == 1
    assert "max_disparity must be a finite number" in caplog.text
    assert main([*args, "--max-disparity", "48"]) == 0  # the whole width is the largest allowed shift


# --- tiny videos ----------------------------------------------------------------------------------------------


def test_16x16_video(tmp_path, caplog) -> None:
    source = _write(tmp_path / "in.mp4", _moving(4, 16, 16))
    depth = _write(tmp_path / "depth.mp4", _ramp_depth(4, 16, 16))
    output = tmp_path / "out.mp4"
    args = [str(source), "-o", str(output), "--depth", str(depth), "--no-inpaint"]
    assert main(args) == 1  # the default 20 px is more than the width: said, not an empty right eye
    assert "more than the frame's width (16 px)" in caplog.text and not output.exists()
    assert main([*args, "--max-disparity", "2"]) == 0
    info = probe_video(output)
    assert (info.width, info.height, info.frame_count) == (32, 16, 4)
    left = torch.cat(list(read_frames(output, 8)))[:, :, :16]
    assert (left - torch.cat(list(read_frames(source, 8)))).abs().mean() < 8 / 255


def test_one_frame_video(tmp_path) -> None:
    source = _write(tmp_path / "in.mp4", _moving(1))
    depth = _write(tmp_path / "depth.mp4", _ramp_depth(1))
    output = convert_video(source, tmp_path / "out.mp4", depth, ConvertSettings(layout="half SBS"))
    info = probe_video(output)
    assert (info.width, info.height, info.frame_count) == (48, 32, 1)


# --- rotation metadata (phone video) --------------------------------------------------------------------------


def _portrait() -> np.ndarray:
    """An upright 32x48 (W x H) frame: white top-left block, grey elsewhere, a red bottom band."""
    image = np.full((48, 32, 3), 90, np.uint8)
    image[:12, :12] = 255
    image[-8:] = (220, 30, 30)
    return image


def _stored_rotated(path, upright: np.ndarray, degrees: int, frames: int = 3):
    """Write ``upright`` as a phone does: the frames stored turned, with a display matrix of ``degrees``
    counter-clockwise that turns them back (PyAV's convention, as ffmpeg and players read it)."""
    stored = np.ascontiguousarray(np.rot90(upright, -round(degrees / 90)))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = stored.shape[1], stored.shape[0], "yuv444p"
        stream.options = {"crf": "0"}
        stream.set_display_rotation(degrees)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotated_phone_video_is_read_upright(tmp_path, degrees: int) -> None:
    if not hasattr(av.VideoFrame, "rotation"):
        pytest.skip("this PyAV cannot read display matrices")
    upright = _portrait()
    source = _stored_rotated(tmp_path / "phone.mp4", upright, degrees)
    info = probe_video(source)
    assert (info.width, info.height, info.rotation) == (32, 48, degrees % 360)
    frames = torch.cat(list(read_frames(source, 8)))
    assert frames.shape == (3, 48, 32, 3)
    expected = torch.from_numpy(upright.astype(np.float32) / 255)
    assert (frames - expected).abs().max() < 3 / 255  # lossless encode: only RGB<->YUV rounding


def test_rotated_phone_video_converts_upright(tmp_path) -> None:
    if not hasattr(av.VideoFrame, "rotation"):
        pytest.skip("this PyAV cannot read display matrices")
    upright = _portrait()
    source = _stored_rotated(tmp_path / "phone.mp4", upright, -90)  # how phones store portrait video
    depth = _write(tmp_path / "depth.mp4", _ramp_depth(3, 48, 32))  # a depth video of the upright frames
    output = convert_video(source, tmp_path / "out.mp4", depth, ConvertSettings(WarpSettings(max_disparity=2)))
    info = probe_video(output)
    assert (info.width, info.height, info.rotation) == (64, 48, 0)  # upright SBS, no display matrix needed
    packed = torch.cat(list(read_frames(output, 8)))
    left = packed[:, :, :32]
    assert left[:, :10, :10].mean() > 0.9  # the white block is top-left
    assert left[:, -6:, :, 0].mean() > 0.75 and left[:, -6:, :, 1].mean() < 0.25  # the red band at the bottom
    # The right eye moved along the rows only (horizontal parallax): the red band stays at the bottom there too.
    right = packed[:, :, 32:]
    assert right[:, -6:, 4:28, 0].mean() > 0.7 and right[:, :30, 16:, 0].mean() < 0.5


# --- a truncated file whose header promises more frames -------------------------------------------------------


def _faststart(path, frames: np.ndarray):
    """An MP4 with its index (and so its frame count) at the front: cut short, it still promises every frame."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "4"}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _cut(path, fraction: float):
    data = path.read_bytes()
    cut = path.with_name(f"cut_{path.name}")
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


def test_truncated_input_is_blamed_not_the_depth(tmp_path, caplog) -> None:
    source = _cut(_faststart(tmp_path / "in.mp4", _moving(24, 64, 96)), 0.9)
    depth = _write(tmp_path / "depth.mp4", _ramp_depth(24, 64, 96))
    assert probe_video(source).frame_count == 24  # the header's promise
    decoded = sum(chunk.shape[0] for chunk in read_frames(source, 8))
    assert 0 < decoded < 24
    output = tmp_path / "out.mp4"
    assert main([str(source), "-o", str(output), "--depth", str(depth), "--no-inpaint"]) == 1
    assert f"{source}: only {decoded} frames could be decoded, but its header says 24" in caplog.text
    assert "truncated or damaged" in caplog.text and "depth video" not in caplog.text
    assert not output.exists()


def test_truncated_depth_is_blamed(tmp_path) -> None:
    source = _write(tmp_path / "in.mp4", _moving(24, 64, 96))
    depth = _cut(_faststart(tmp_path / "depth.mp4", _ramp_depth(24, 64, 96)), 0.9)
    with pytest.raises(ValueError, match="depth") as error:  # the depth's pass may find it first, in its words
        convert_video(source, tmp_path / "out.mp4", depth)
    assert "in.mp4: only" not in str(error.value)  # never blames the complete input


# --- depth videos: constant, another size ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "normalization",
    [
        "clip",
        "shot",  # a constant shot's range is flat (its exact extremes bound the percentiles)
    ],
)
def test_constant_depth_gives_no_parallax(tmp_path, caplog, normalization: str) -> None:
    source = _write(tmp_path / "in.mp4", _moving(4))
    depth = _write(tmp_path / "depth.mp4", np.full((4, 32, 48, 3), 128, np.uint8))
    output = convert_video(source, tmp_path / "out.mp4", depth, ConvertSettings(depth_normalization=normalization))
    packed = torch.cat(list(read_frames(output, 8)))
    left, right = packed[:, :, :48], packed[:, :, 48:]
    assert (left - right).abs().max() < 10 / 255  # right eye = left (CRF 18 noise): not black, not shifted
    assert "constant" in caplog.text


def test_depth_of_another_size_is_resized(tmp_path) -> None:
    source = _write(tmp_path / "in.mp4", _moving(4))
    small = _write(tmp_path / "small.mp4", _ramp_depth(4, 16, 24))  # half the size of the frames
    full = _write(tmp_path / "full.mp4", _ramp_depth(4))
    from_small = torch.cat(list(read_frames(convert_video(source, tmp_path / "a.mp4", small), 8)))
    from_full = torch.cat(list(read_frames(convert_video(source, tmp_path / "b.mp4", full), 8)))
    assert from_small.shape == from_full.shape == (4, 32, 96, 3)
    assert (from_small - from_full).abs().mean() < 4 / 255  # the same ramp, up to resampling
