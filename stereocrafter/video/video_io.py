"""Streaming video files in and out with PyAV: frames as float32 [n, H, W, 3] chunks, H.264/H.265 segments,
and the final remux that joins encoded segments and the source's audio without re-encoding the video.

Reading decodes frame by frame, so memory holds one chunk at a time whatever the clip length. Variable frame
rate input is read frame by frame and written at its average rate (every decoded frame becomes one output frame,
the original per-frame timing is not kept); :func:`probe_video` flags it so the caller can say so.

A :class:`TrimWindow` (a ComfyUI VIDEO's trim, e.g. from ``Video Slice``) limits probing, reading and the audio to
a part of the file: reading seeks to the window's start and stops at its end, so a short trim of a long file costs
only its own frames.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import av
import numpy as np
import torch

if TYPE_CHECKING:
    from .encoders import Encoder

logger = logging.getLogger(__name__)

#: The most frames an encoder holds back for B-frame reordering (x265's and NVENC's limit is 16).
MAX_REORDER_FRAMES = 16

Codec = Literal["h264", "h265"]
CODECS: dict[Codec, str] = {"h264": "libx264", "h265": "libx265"}
#: Output containers we can mux H.264/H.265 into, and the audio codecs each takes as a plain copy.
AUDIO_COPY_CODECS: dict[str, set[str] | None] = {
    ".mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    ".m4v": {"aac", "mp3", "ac3", "eac3", "alac"},
    ".mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_s16be", "pcm_s24be"},
    ".mkv": None,  # Matroska takes any audio codec
}


class VideoReadError(ValueError):
    """A video (or depth video) cannot be read: missing, not a video, no video stream or no frames."""


@dataclass(frozen=True)
class TrimWindow:
    """A part of a video file in seconds, with ComfyUI's rule (``VideoFromFile``): the frames whose timestamp
    ``pts`` (in the stream's time base ``tb``) has ``int(start_time / tb) <= pts < int((start_time + duration) / tb)``;
    ``duration`` 0 means up to the end. ``start_time`` >= 0 (ComfyUI's ``get_active_trim_window`` gives that)."""

    start_time: float = 0.0
    duration: float = 0.0

    def __post_init__(self) -> None:
        if not self.start_time >= 0 or not self.duration >= 0:
            raise ValueError(
                f"a trim window needs start_time >= 0 and duration >= 0 (seconds), got {self.start_time}, "
                f"{self.duration}."
            )

    @property
    def is_whole(self) -> bool:
        """True when the window is the whole file (no trim)."""
        return self.start_time == 0 and self.duration == 0

    def pts_range(self, time_base: Fraction) -> tuple[int, int | None]:
        """(first pts kept, first pts past the end or None) in units of ``time_base``, as ComfyUI computes them."""
        start = int(self.start_time / time_base)
        end = int((self.start_time + self.duration) / time_base) if self.duration else None
        return start, end


def _window(window: TrimWindow | None) -> TrimWindow | None:
    return None if window is None or window.is_whole else window


@dataclass(frozen=True)
class VideoInfo:
    """What the converter needs to know about a source video.

    ``frame_count`` comes from the container header when it has one, else from counting packets (no decoding).
    ``start_time`` is the first video timestamp in seconds (audio is re-timed relative to it). With a ``window``
    (see :func:`probe_video`) both describe the window's frames only, and the audio is cut to the window too.
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int
    time_base: Fraction
    start_time: float
    pix_fmt: str
    bit_depth: int
    variable_frame_rate: bool
    audio_streams: int
    window: TrimWindow | None = None
    #: Counter-clockwise degrees (0, 90, 180, 270) by which :func:`read_frames` turns the stored frames upright (the
    #: stream's display matrix: phones store portrait video as landscape frames with one); ``width``/``height``
    #: are those of the upright frames.
    rotation: int = 0

    @property
    def end_time(self) -> float | None:
        """Where a window's audio ends (seconds, the source's clock): its first frame time plus its frames at
        ``fps``; None without a window (all the audio is kept)."""
        if self.window is None:
            return None
        return self.start_time + float(self.frame_count / self.fps)


def _open(path: Path | str) -> av.container.InputContainer:
    path = Path(path)
    if not path.exists():
        raise VideoReadError(f"{path}: no such file.")
    if not path.is_file():
        raise VideoReadError(f"{path}: not a file.")
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise VideoReadError(f"{path}: not a readable video file ({exc}).") from exc


def _video_stream(container: av.container.InputContainer, path: Path | str) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoReadError(f"{path}: has no video stream.")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame threading: decoding is a large share of the model-free path
    return stream


def _bit_depth(stream: av.video.stream.VideoStream) -> int:
    fmt = stream.codec_context.format
    if fmt is None or not fmt.components:
        return 8
    return max(component.bits for component in fmt.components)


def _count_packets(path: Path) -> tuple[int, bool]:
    """(video packet count, whether the frame durations or timestamp steps vary) by demuxing only."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        count, durations, stamps = 0, set(), []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's final empty flush packet
            count += 1
            if packet.duration:
                durations.add(packet.duration)
            if packet.pts is not None:
                stamps.append(packet.pts)
    # Matroska gives every packet the stream's default duration, so only the timestamps show a variable rate;
    # steps may differ by one tick of rounding (29.97 fps in milliseconds: 33, 33, 34) at a constant rate.
    steps = np.diff(np.sort(np.asarray(stamps, dtype=np.int64)))
    uneven = steps.size > 1 and int(steps.max() - steps.min()) > 1 + 0.01 * float(steps.mean())
    return count, len(durations) > 1 or uneven


def _window_packets(path: Path, window: TrimWindow) -> tuple[int, int | None]:
    """(frame count, first pts) of the frames inside ``window``, by demuxing from the window's start only."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        start, end = window.pts_range(Fraction(stream.time_base))
        if start > 0:
            container.seek(start, stream=stream)
        count, first = 0, None
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None or packet.is_discard:
                continue
            if end is not None and packet.dts is not None and packet.dts >= end:
                break  # decode order: every later packet shows at or after its dts, past the window
            if packet.pts >= start and (end is None or packet.pts < end):
                count += 1
                first = packet.pts if first is None else min(first, packet.pts)
    return count, first


def probe_video(path: Path | str, window: TrimWindow | None = None) -> VideoInfo:
    """Read a video's size, rate, frame count and format; a :class:`VideoReadError` naming the problem.

    With a ``window`` (a trim), ``frame_count`` and ``start_time`` are those of the window's frames (counted by
    demuxing the window, no decoding)."""
    path = Path(path)
    window = _window(window)
    with _open(path) as container:
        stream = _video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise VideoReadError(f"{path}: the video stream has no frame rate.")
        fps = Fraction(rate)
        header_frames = int(stream.frames or 0)
        # Containers disagree on how they store rates; a real difference means variable frame rate.
        guessed = stream.guessed_rate or stream.base_rate
        vfr = bool(guessed) and abs(float(Fraction(guessed)) - float(fps)) > 0.01 * float(fps)
        info = dict(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=fps,
            time_base=Fraction(stream.time_base),
            start_time=float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0,
            pix_fmt=stream.codec_context.pix_fmt or "",
            bit_depth=_bit_depth(stream),
            audio_streams=len(container.streams.audio),
        )
        turns = _first_frame_turns(container, stream)
        if turns % 2:
            info["width"], info["height"] = info["height"], info["width"]
        info["rotation"] = 90 * turns
    frame_count = header_frames
    if frame_count <= 0:
        frame_count, varying = _count_packets(path)
        vfr = vfr or varying
    if frame_count <= 0:
        raise VideoReadError(f"{path}: the video stream has no frames.")
    if info["width"] <= 0 or info["height"] <= 0:
        raise VideoReadError(f"{path}: the video stream has no frame size.")
    if window is not None:
        frame_count, first = _window_packets(path, window)
        if frame_count <= 0 or first is None:
            raise VideoReadError(
                f"{path}: no frames in the trim window (start {window.start_time} s, duration "
                f"{window.duration or 'to the end'} s); the video has {header_frames or 'its'} frames at "
                f"{float(fps):.3f} fps. Move the trim's start_time inside the clip."
            )
        info["start_time"] = float(first * info["time_base"])
    return VideoInfo(path=path, frame_count=frame_count, variable_frame_rate=vfr, window=window, **info)


def quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns (0..3) that make a decoded frame upright, from its display matrix (as
    players and ffmpeg's autorotate show it); 0 without one, or with a PyAV too old to read it. Flips are ignored."""
    degrees = getattr(frame, "rotation", 0) or 0
    return round(degrees / 90) % 4


def _first_frame_turns(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """:func:`quarter_turns` of the first frame (the display matrix reaches the frames, not PyAV's stream); 0 when
    it cannot be decoded (reading reports that)."""
    try:
        for frame in container.decode(stream):
            return quarter_turns(frame)
    except av.FFmpegError:
        pass
    return 0


def _to_float(frame: av.VideoFrame, high_bit_depth: bool, out: np.ndarray, turns: int = 0) -> None:
    """One decoded frame into ``out`` [H, W, 3] float32 0..1 (16-bit RGB for >8-bit sources: no precision lost),
    turned ``turns`` quarter turns counter-clockwise."""
    if high_bit_depth:
        pixels, scale = frame.to_ndarray(format="rgb48le"), np.float32(65535.0)
    else:
        pixels, scale = frame.to_ndarray(format="rgb24"), np.float32(255.0)
    np.divide(np.rot90(pixels, turns) if turns else pixels, scale, out=out, dtype=np.float32)


def frames_to_8bit(frames: torch.Tensor) -> torch.Tensor:
    """[n, H, W, 3] float32 frames of an 8-bit source as :func:`read_frames` gives them (k/255) → uint8, exactly: a
    quarter of the memory for frames that wait (the left views while the inpainting runs)."""
    out = torch.empty(frames.shape, dtype=torch.uint8)
    for k, frame in enumerate(frames):  # one frame's float temporary at a time
        out[k] = frame.mul(255.0).round_()
    return out


def frames_from_8bit(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [n, H, W, 3] → float32 0..1, bit for bit what :func:`read_frames` made of the same pixels."""
    return torch.from_numpy(np.divide(frames.numpy(), np.float32(255.0), dtype=np.float32))


def decode_window(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, window: TrimWindow | None
) -> Iterator[av.VideoFrame]:
    """The decoded frames of ``stream`` inside ``window`` (all without one): seek to the keyframe at or before
    the window, drop the frames before it, stop at its end. FFmpeg errors pass unchanged."""
    first_pts, end_pts = window.pts_range(Fraction(stream.time_base)) if window is not None else (0, None)
    if first_pts > 0:
        container.seek(first_pts, stream=stream)  # to the keyframe at or before it
    for frame in container.decode(stream):
        if window is not None and frame.pts is not None:
            if frame.pts < first_pts:
                continue
            if end_pts is not None and frame.pts >= end_pts:
                break
        yield frame


def read_frames(
    path: Path | str, chunk_frames: int, start: int = 0, window: TrimWindow | None = None
) -> Iterator[torch.Tensor]:
    """Yield the frames of ``path`` from frame ``start`` on, as float32 [n, H, W, 3] 0..1 chunks of at most
    ``chunk_frames`` frames (the last may be shorter). Frames before ``start`` are decoded and dropped (exact
    for any GOP structure and frame rate, unlike seeking by time).

    With a ``window`` only its frames are read (``start`` counts from the window's first frame): the decoder
    seeks to the keyframe before the window, drops the frames before it and stops at its end."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}.")
    window = _window(window)
    with _open(path) as container:
        stream = _video_stream(container, path)
        high = _bit_depth(stream) > 8
        chunk: np.ndarray | None = None  # filled frame by frame: no list of frames plus a stacked copy
        filled = 0
        index = 0
        try:
            for frame in decode_window(container, stream, window):
                if index >= start:
                    turns = quarter_turns(frame)  # upright, as players show it (phones' portrait video)
                    if chunk is None:
                        size = (frame.width, frame.height) if turns % 2 else (frame.height, frame.width)
                        chunk = np.empty((chunk_frames, *size, 3), dtype=np.float32)
                    _to_float(frame, high, chunk[filled], turns)
                    filled += 1
                    if filled == chunk_frames:
                        yield torch.from_numpy(chunk)
                        chunk, filled = None, 0
                index += 1
        except av.FFmpegError as exc:
            raise VideoReadError(f"{path}: decoding failed at frame {index} ({exc}).") from exc
        if chunk is not None:
            yield torch.from_numpy(chunk[:filled])


def even_size(height: int, width: int) -> tuple[int, int]:
    """The size 4:2:0 encoders accept: each side rounded up to even."""
    return height + height % 2, width + width % 2


def pad_to_even(frames: torch.Tensor) -> torch.Tensor:
    """[n, H, W, C] → [n, H', W', C] with even H', W', repeating the last row/column (no content is lost,
    the extra line is invisible in practice)."""
    _, height, width, _ = frames.shape
    if height % 2:
        frames = torch.cat([frames, frames[:, -1:]], dim=1)
    if width % 2:
        frames = torch.cat([frames, frames[:, :, -1:]], dim=2)
    return frames


class SegmentWriter:
    """Encode frames to one video-only segment file (H.264 or H.265, CRF, yuv420p or yuv420p10le).

    Frames are float [n, H, W, 3] 0..1 of a fixed size; odd sizes are padded to even (see :func:`pad_to_even`).
    Timestamps start at 0 in units of one frame: segments are joined later by :func:`mux_segments`.
    """

    def __init__(
        self, path: Path, width: int, height: int, fps: Fraction, codec: Codec, crf: int, ten_bit: bool,
        encoder: Encoder | None = None,
    ) -> None:  # fmt: skip
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {tuple(CODECS)}, got {codec!r}.")
        self.path, self.fps = path, fps
        self.ten_bit = ten_bit
        self.container = av.open(str(path), "w", format="mp4")
        # ``encoder`` (:func:`~.encoders.choose_encoder`): NVENC or another pixel format; else x264/x265 4:2:0.
        name = encoder.name if encoder is not None else CODECS[codec]
        self.stream = self.container.add_stream(name, rate=fps)
        self.stream.height, self.stream.width = even_size(height, width)
        self.stream.pix_fmt = encoder.pix_fmt if encoder is not None else "yuv420p10le" if ten_bit else "yuv420p"
        options = {"crf": str(crf)}
        if codec == "h265":
            options["x265-params"] = "log-level=error"
            self.stream.codec_tag = "hvc1"  # the tag Apple players require for HEVC in MP4
        self.stream.options = dict(encoder.options) if encoder is not None else options
        self.frames_written = 0
        self._dts_shift: int | None = None  # see _mux

    def write(self, frames: torch.Tensor) -> None:
        """Encode [n, H, W, 3] float 0..1 frames."""
        # One frame at a time: the float copies of a whole chunk (clamp, scale) cost ~0.8 GB at 16 × 2560×720.
        for single in frames.split(1):
            single = pad_to_even(single.clamp(0.0, 1.0))
            if self.ten_bit:
                image = (single[0] * 65535.0 + 0.5).to(torch.int32).to(torch.uint16).numpy()
                fmt = "rgb48le"
            else:
                image = (single[0] * 255.0 + 0.5).to(torch.uint8).numpy()
                fmt = "rgb24"
            frame = av.VideoFrame.from_ndarray(image, format=fmt)
            frame.pts = self.frames_written
            self._mux(self.stream.encode(frame))
            self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        self._mux(self.stream.encode(None))
        self.container.close()

    def _mux(self, packets: list[av.Packet]) -> None:
        """Mux encoded packets, with their decode timestamps made sane.

        libx265 (FFmpeg 8) leaves the DTS of a stream shorter than its reordering delay (one or two frames)
        uninitialised: a random number that the MP4 muxer sometimes refuses ("pts/dts pair unsupported") and that
        would otherwise end up in :func:`_reorder_delay`. An encoder's real delay is a few frames (x265: at most 16
        B-frames), so a first packet decoded later than its frame or far earlier is re-based to decode at its pts.
        """
        for packet in packets:
            if packet.pts is not None and packet.dts is not None:
                if self._dts_shift is None:
                    frame_ticks = 1 / (Fraction(packet.time_base) * self.fps)
                    lag = packet.pts - packet.dts
                    self._dts_shift = lag if lag < 0 or lag > MAX_REORDER_FRAMES * frame_ticks else 0
                packet.dts += self._dts_shift
            self.container.mux(packet)


def _reorder_delay(segment: Path) -> Fraction:
    """Seconds by which a segment's first decode timestamp precedes its first frame (the encoder's B-frame delay;
    a segment of one or two frames has none)."""
    with av.open(str(segment)) as container:
        stream = container.streams.video[0]
        stamps = [(p.pts, p.dts) for p in container.demux(stream) if p.dts is not None and p.pts is not None]
    if not stamps:
        return Fraction(0)
    return (min(pts for pts, _ in stamps) - stamps[0][1]) * Fraction(stream.time_base)


def _segment_packets(
    segments: list[tuple[Path, int]], fps: Fraction, out_stream: av.video.stream.VideoStream
) -> Iterator[av.Packet]:
    """The packets of consecutive (segment, frame count) files, re-timed so they play one after another.

    Decode timestamps go one frame apart across all segments, behind the frames by the largest reordering delay
    of any segment: a segment encoded with less delay (a short last one) would leave a gap in them, which MP4
    turns into a longer frame (the file then reports a longer duration and a wrong average frame rate)."""
    delay = max(_reorder_delay(segment) for segment, _ in segments)
    offset_seconds = Fraction(0)
    for segment, frames in segments:
        with av.open(str(segment)) as container:
            stream = container.streams.video[0]
            time_base = Fraction(stream.time_base)
            shift = round(offset_seconds / time_base)
            index = 0
            for packet in container.demux(stream):
                if packet.dts is None:
                    continue
                packet.pts += shift
                # Never after its pts: this segment's own delay is at most ``delay``.
                packet.dts = round((offset_seconds + index / fps - delay) / time_base)
                index += 1
                packet.stream = out_stream
                yield packet
        offset_seconds += frames / fps


def _audio_copy_packets(
    path: Path, index: int, out_stream, shift_s: float, end_s: float | None = None
) -> Iterator[av.Packet]:
    """Copy the packets of audio stream ``index`` of ``path``, moved by ``-shift_s`` seconds (the video's start).

    With ``end_s`` (a trimmed video) only the packets starting within [shift_s, end_s) are copied."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[index]
        time_base = Fraction(stream.time_base)
        shift = round(Fraction(shift_s) / time_base)
        if end_s is not None and shift > 0:
            container.seek(shift, stream=stream)
        for packet in container.demux(stream):
            if packet.dts is None:
                continue
            if end_s is not None and packet.pts is not None:
                if packet.pts < shift:
                    continue
                if float(packet.pts * time_base) >= end_s:
                    break
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = out_stream
            yield packet


def _audio_aac_packets(
    path: Path, index: int, out_stream, shift_s: float, end_s: float | None = None
) -> Iterator[av.Packet]:
    """Re-encode audio stream ``index`` of ``path`` to AAC (for codecs the output container cannot hold); with
    ``end_s`` only the frames starting within [shift_s, end_s)."""
    codec = out_stream.codec_context
    rate = codec.sample_rate
    resampler = av.AudioResampler(format=codec.format.name, layout=codec.layout.name, rate=rate)
    fifo = av.AudioFifo()
    next_pts: int | None = None
    with av.open(str(path)) as container:
        stream = container.streams.audio[index]
        if end_s is not None and shift_s > 0:
            container.seek(int(Fraction(shift_s) / Fraction(stream.time_base)), stream=stream)
        for frame in container.decode(stream):
            if end_s is not None and frame.pts is not None:
                if float(frame.pts * frame.time_base) < shift_s:
                    continue
                if float(frame.pts * frame.time_base) >= end_s:
                    break
            if next_pts is None:
                start = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
                next_pts = round((start - shift_s) * rate)
            for resampled in resampler.resample(frame):
                resampled.pts = None  # the FIFO re-chunks; we stamp the AAC-sized frames ourselves
                fifo.write(resampled)
            while fifo.samples >= codec.frame_size:
                chunk = fifo.read(codec.frame_size)
                chunk.pts, chunk.time_base = next_pts, Fraction(1, rate)
                next_pts += chunk.samples
                yield from out_stream.encode(chunk)
    if fifo.samples and next_pts is not None:
        chunk = fifo.read()
        chunk.pts, chunk.time_base = next_pts, Fraction(1, rate)
        yield from out_stream.encode(chunk)
    yield from out_stream.encode(None)


def _packet_time(packet: av.Packet) -> float:
    return float(packet.dts * packet.time_base)


def output_format(path: Path) -> str:
    """The muxer for an output path's suffix; a ValueError for suffixes we cannot write."""
    suffix = path.suffix.lower()
    if suffix not in AUDIO_COPY_CODECS:
        raise ValueError(f"{path}: output must end in one of {tuple(AUDIO_COPY_CODECS)}, got {suffix!r}.")
    return {".mkv": "matroska", ".mov": "mov"}.get(suffix, "mp4")


def _audio_source(
    audio: VideoInfo, index: int, stream, out: av.container.OutputContainer, allowed: set[str] | None, suffix: str
) -> Iterator[av.Packet]:
    """An output stream for source audio stream ``index`` and the generator of its packets (copy or AAC)."""
    name = stream.codec_context.name
    if allowed is None or name in allowed:
        out_stream = out.add_stream_from_template(stream)
        return _audio_copy_packets(audio.path, index, out_stream, audio.start_time, audio.end_time)
    logger.info("audio: %s cannot go into %s as is; re-encoding it to AAC.", name, suffix)
    audio_out = out.add_stream("aac", rate=stream.codec_context.sample_rate)
    # The default layout for the channel count: sources may have an unordered one ("1 channels"), which AAC refuses.
    channels = stream.codec_context.layout.nb_channels
    audio_out.layout = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(channels, "stereo")  # else downmixed
    audio_out.format = "fltp"
    audio_out.codec_context.open()  # now, not at the first frame: the header needs the encoder's extradata
    return _audio_aac_packets(audio.path, index, audio_out, audio.start_time, audio.end_time)


def mux_segments(
    segments: list[tuple[Path, int]],
    fps: Fraction,
    output: Path,
    container_suffix: str,
    audio: VideoInfo | None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Join encoded video segments (path, frame count) into ``output`` without re-encoding, plus the audio of
    ``audio`` (a source video's info, or None), with container ``metadata`` tags (e.g. ``{"comment": ...}``).

    Audio streams are copied when the container (chosen by ``container_suffix``, e.g. ".mp4") takes their codec,
    else re-encoded to AAC; timing stays relative to the source's first video frame, so sync is the source's. For
    a trimmed source (``audio.window``) only the audio of the window's frames is kept."""
    fmt = output_format(Path("x" + container_suffix))
    allowed = AUDIO_COPY_CODECS[container_suffix.lower()]
    with av.open(str(segments[0][0])) as first, av.open(str(output), "w", format=fmt) as out:
        template = first.streams.video[0]
        out.metadata.update(metadata or {})
        video_out = out.add_stream_from_template(template)
        if fmt != "matroska" and template.codec_context.name == "hevc":
            video_out.codec_tag = "hvc1"
        sources = [_segment_packets(segments, fps, video_out)]
        if audio is not None and audio.audio_streams:
            # The templates must stay open while their parameters are copied into the output streams.
            with av.open(str(audio.path)) as source:
                for index, stream in enumerate(source.streams.audio):
                    sources.append(_audio_source(audio, index, stream, out, allowed, container_suffix))
        # Merge by decode time: the muxer then needs no large interleaving buffer, whatever the clip length.
        for packet in heapq.merge(*sources, key=_packet_time):
            out.mux(packet)
