"""Segment encoders: NVENC when it opens, else x264/x265 with a log line; 10 bits for 10-bit sources; 4:4:4
anaglyphs; --pix-fmt. The NVENC encode itself needs an NVIDIA GPU (measured with bench/encode.py on the device)."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest
import torch

from stereocrafter.video import encoders
from stereocrafter.video.encoders import choose_encoder, encoder_opens
from stereocrafter.video.video_io import SegmentWriter

no_nvenc_here = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine may have NVENC")


@pytest.fixture
def fresh_log():
    encoders._log_once.cache_clear()
    yield
    encoders._log_once.cache_clear()


@no_nvenc_here
def test_auto_falls_back_to_x264_on_a_machine_without_nvenc(caplog, fresh_log):
    assert encoder_opens("h264_nvenc", "yuv420p") is not None  # in the build, but no GPU opens it
    with caplog.at_level(logging.INFO, logger="stereocrafter.video.encoders"):
        encoder = choose_encoder("h264", 18, False)
    assert (encoder.name, encoder.pix_fmt, encoder.options, encoder.hardware) == (
        "libx264", "yuv420p", {"crf": "18"}, False
    )  # fmt: skip
    assert "encoding with libx264 on the CPU" in caplog.text and "h264_nvenc" in caplog.text
    with pytest.raises(RuntimeError, match="hardware encoding was asked for but hevc_nvenc"):
        choose_encoder("h265", 18, False, hardware="on")


def test_nvenc_when_it_opens_and_10_bit_hevc(monkeypatch, fresh_log):
    opened: list[tuple[str, str]] = []
    monkeypatch.setattr(encoders, "encoder_opens", lambda name, fmt: opened.append((name, fmt)))
    h264 = choose_encoder("h264", 20, False)
    assert (h264.name, h264.pix_fmt, h264.options["cq"], h264.hardware) == ("h264_nvenc", "yuv420p", "20", True)
    hevc10 = choose_encoder("h265", 20, True)
    assert (hevc10.name, hevc10.pix_fmt) == ("hevc_nvenc", "p010le")  # HEVC Main 10
    # H.264 NVENC has no 10-bit mode: a 10-bit source stays on libx264 in 10 bits, without trying NVENC.
    opened.clear()
    h264_10 = choose_encoder("h264", 20, True)
    assert (h264_10.name, h264_10.pix_fmt, opened) == ("libx264", "yuv420p10le", [])
    assert choose_encoder("h264", 20, False, hardware="off").name == "libx264"


def test_pixel_formats():
    off = {"hardware": "off"}
    assert choose_encoder("h264", 18, False, anaglyph=True, **off).pix_fmt == "yuv444p"
    assert choose_encoder("h265", 18, True, anaglyph=True, **off).pix_fmt == "yuv444p10le"
    assert choose_encoder("h264", 18, False, "yuv420p", anaglyph=True, **off).pix_fmt == "yuv420p"
    with pytest.raises(ValueError, match="pix_fmt must be one of"):
        choose_encoder("h264", 18, False, "nv12")
    with pytest.raises(ValueError, match="codec must be one of"):
        choose_encoder("vp9", 18, False)


@pytest.mark.parametrize(("codec", "pix_fmt"), [("h264", "yuv444p"), ("h265", "yuv444p10le"), ("h264", "yuv420p")])
def test_segment_writer_encodes_with_the_chosen_format(tmp_path, codec, pix_fmt):
    encoder = choose_encoder(codec, 18, "10" in pix_fmt, pix_fmt, "off")
    path = tmp_path / "seg.mp4"
    writer = SegmentWriter(path, 64, 48, 24, codec, 18, "10" in pix_fmt, encoder)
    frames = torch.zeros(3, 48, 64, 3)
    frames[..., 0] = torch.linspace(0, 1, 64)  # a red ramp: 4:4:4 keeps it at full resolution
    writer.write(frames)
    writer.close()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.pix_fmt == pix_fmt
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(decoded) == 3
    red = decoded[0][24, :, 0].astype(float)
    assert abs(red[0] - 0) < 8 and abs(red[-1] - 255) < 8


@pytest.mark.parametrize(("extra", "pix_fmt"), [([], "yuv444p"), (["--pix-fmt", "yuv420p"], "yuv420p")])
def test_cli_anaglyph_is_444_unless_asked(tmp_path, extra, pix_fmt):
    from test_convert import _encode

    from stereocrafter.__main__ import main

    ys, xs = np.mgrid[0:48, 0:64]
    frames = np.stack([np.stack([xs * 4 % 256, ys * 5 % 256, np.full_like(xs, 99)], -1)] * 6).astype(np.uint8)
    _encode(tmp_path / "in.mp4", frames)
    _encode(tmp_path / "depth.mp4", np.repeat((ys * 5)[None, :, :, None], 6, 0).repeat(3, -1).astype(np.uint8))
    output = tmp_path / "out.mp4"
    args = [str(tmp_path / "in.mp4"), "-o", str(output), "--depth", str(tmp_path / "depth.mp4"), "--no-inpaint"]
    assert main([*args, "--layout", "anaglyph", "--hw-encode", "off", "--scenes", "none", *extra]) == 0
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == pix_fmt
