"""Which video encoder writes the segments: NVIDIA's hardware encoders when present, else x264/x265.

``hardware="auto"`` (the converter's default) tries PyAV's ``h264_nvenc`` / ``hevc_nvenc``: the encoder must be in
the FFmpeg build AND open on this machine (a GPU with NVENC and its driver); else libx264 / libx265, with one log
line saying why. A 10-bit source is encoded in 10 bits (``yuv420p10le``; ``p010le`` on NVENC): with ``h265`` on
NVENC that is HEVC Main 10; H.264 NVENC has no 10-bit mode, so a 10-bit source with ``h264`` stays on libx264
(choose ``h265`` for 10-bit hardware encoding).

``pix_fmt``: the encoder's pixel format. The default is 4:2:0 (what every player decodes), except for anaglyphs:
4:4:4 (``yuv444p``), because 4:2:0 halves the colour resolution and smears the red/cyan fringes that make the 3D.
H.264 4:4:4 (High 4:4:4 Predictive) and HEVC 4:4:4 (RExt) play in desktop players (VLC, mpv, browsers for HEVC
vary) but not on many TVs and phones: pass ``yuv420p`` there.

Quality: x264/x265 use ``crf``; NVENC uses constant-quality VBR with ``cq`` = the same number (NVENC's scale is
close to CRF's, files are typically somewhat larger at equal ``crf``), preset p5, high-quality tuning.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import av

logger = logging.getLogger(__name__)

Hardware = Literal["auto", "on", "off"]
HARDWARE_MODES: tuple[Hardware, ...] = ("auto", "on", "off")
SOFTWARE = {"h264": "libx264", "h265": "libx265"}
NVENC = {"h264": "h264_nvenc", "h265": "hevc_nvenc"}
#: Pixel formats the segments may use (all are 4:2:0 or 4:4:4, 8 or 10 bits; players differ in what they decode).
PIX_FMTS = ("yuv420p", "yuv420p10le", "yuv444p", "yuv444p10le")


@dataclass(frozen=True)
class Encoder:
    """An encoder and how to set it up: FFmpeg name, pixel format and options."""

    name: str
    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def hardware(self) -> bool:
        return self.name.endswith("_nvenc")


def _nvenc_pix_fmt(pix_fmt: str) -> str:
    # NVENC takes 10-bit 4:2:0 as P010; the other formats by their usual names.
    return {"yuv420p10le": "p010le", "yuv444p10le": "yuv444p16le"}.get(pix_fmt, pix_fmt)


@functools.cache
def encoder_opens(name: str, pix_fmt: str) -> str | None:
    """None when encoder ``name`` opens for a small ``pix_fmt`` stream on this machine, else why not (one trial
    open, cached per process)."""
    try:
        av.codec.Codec(name, "w")
    except Exception as exc:  # noqa: BLE001 (PyAV raises several types for an unknown codec)
        return f"{name} is not in this FFmpeg build ({exc})"
    try:
        context = av.CodecContext.create(name, "w")
        context.width, context.height, context.pix_fmt = 256, 256, pix_fmt
        context.time_base = Fraction(1, 24)
        context.open()
        context.close()
    except Exception as exc:  # noqa: BLE001 (no GPU, no driver, an unsupported format: all mean "not here")
        return f"{name} does not open here ({exc})"
    return None


@functools.cache
def _log_once(message: str) -> None:
    logger.info("%s", message)


def choose_encoder(
    codec: str, crf: int, ten_bit: bool, pix_fmt: str | None = None, hardware: Hardware = "auto", *,
    anaglyph: bool = False,
) -> Encoder:  # fmt: skip
    """The encoder for ``codec`` ("h264" or "h265") at quality ``crf``, see the module docstring.

    ``pix_fmt`` None: 4:2:0 (``yuv444p`` for an ``anaglyph``), 10 bits for a ``ten_bit`` source. ``hardware``:
    "auto" (NVENC when it opens, else software, logged), "on" (NVENC or a RuntimeError saying why), "off".
    """
    if codec not in SOFTWARE:
        raise ValueError(f"codec must be one of {tuple(SOFTWARE)}, got {codec!r}.")
    if hardware not in HARDWARE_MODES:
        raise ValueError(f"hardware encoding must be one of {HARDWARE_MODES}, got {hardware!r}.")
    if pix_fmt is None:
        pix_fmt = ("yuv444p" if anaglyph else "yuv420p") + ("10le" if ten_bit else "")
    elif pix_fmt not in PIX_FMTS:
        raise ValueError(f"pix_fmt must be one of {PIX_FMTS}, got {pix_fmt!r}.")
    if hardware != "off":
        why = None
        if codec == "h264" and "10" in pix_fmt:
            why = "H.264 NVENC has no 10-bit mode (use --codec h265 for 10-bit hardware encoding)"
        else:
            why = encoder_opens(NVENC[codec], _nvenc_pix_fmt(pix_fmt))
        if why is None:
            _log_once(f"encoding with {NVENC[codec]} (NVIDIA hardware), {pix_fmt}")
            options = {"preset": "p5", "tune": "hq", "rc": "vbr", "cq": str(crf), "b": "0"}
            return Encoder(NVENC[codec], _nvenc_pix_fmt(pix_fmt), options)
        if hardware == "on":
            raise RuntimeError(f"hardware encoding was asked for but {why}; use --hw-encode auto or off.")
        _log_once(f"encoding with {SOFTWARE[codec]} on the CPU, {pix_fmt}: {why}")
    options = {"crf": str(crf)}
    if codec == "h265":
        options["x265-params"] = "log-level=error"
    return Encoder(SOFTWARE[codec], pix_fmt, options)
