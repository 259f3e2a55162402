"""Small test videos written with PyAV, and decoding helpers to check what ComfyUI saved."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
# Test footage lives beside the repository (shared/data), never inside it.
SOURCE_VIDEO = REPO_ROOT.parent / "shared" / "data" / "davis_rollercoaster.mp4"


@dataclass
class Video:
    frames: np.ndarray  # [N, H, W, 3] uint8
    fps: Fraction  # of the timestamps
    audio_streams: int
    audio_samples: int  # decoded from the first audio stream, per channel
    audio_rate: int = 0  # its sample rate (Hz)

    @property
    def audio_seconds(self) -> float:
        return self.audio_samples / self.audio_rate if self.audio_rate else 0.0


def read_video(path: Path, max_frames: int | None = None) -> Video:
    import av  # PyAV: imported here so that collecting the tests works without it (they skip then)

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        # The rate of the frames' timestamps (FFmpeg's r_frame_rate guess). Not average_rate: frames over the
        # stream's duration, which some muxers round (8 frames at 12 fps read as 48/5 with correct timestamps).
        rate = stream.guessed_rate or stream.base_rate or stream.average_rate
        fps = Fraction(rate) if rate else Fraction(0)
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
        n_audio = len(container.streams.audio)
        samples = rate = 0
        if n_audio:
            rate = container.streams.audio[0].sample_rate or 0
            container.seek(0)
            for frame in container.decode(audio=0):
                samples += frame.samples
    return Video(np.stack(frames), fps, n_audio, samples, rate)


def _encode(path: Path, frames: np.ndarray, fps: int, tone_hz: float | None = None) -> None:
    """Writes ``frames`` ([N,H,W,3] uint8, even H and W) as H.264 (near-lossless), optionally with a tone."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    n, h, w = frames.shape[:3]
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "12", "preset": "veryfast"}
        audio = None
        if tone_hz is not None:
            audio = out.add_stream("aac", rate=44100)
            audio.layout = "stereo"
        for img in frames:
            for packet in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        if audio is not None:
            rate, total = 44100, int(44100 * n / fps)
            t = np.arange(total) / rate
            wave = (0.2 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
            stereo = np.stack([wave, wave])  # planar [channels, samples]
            pts = 0
            for start in range(0, total, 1024):
                chunk = np.ascontiguousarray(stereo[:, start : start + 1024])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = rate, pts
                pts += chunk.shape[1]
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)


def make_source_clip(
    path: Path, frames: int = 8, size: tuple[int, int] = (480, 270), fps: int = 24, tone_hz: float | None = None
) -> np.ndarray:
    """The first ``frames`` frames of the DAVIS clip, resized to ``size`` (W, H); returns what was encoded."""
    src = read_video(SOURCE_VIDEO, max_frames=frames).frames
    resized = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC)) for f in src])
    _encode(path, resized, fps, tone_hz)
    return resized


def disc_depth_frames(frames: int, size: tuple[int, int], background: float = 0.2, disc: float = 0.9) -> np.ndarray:
    """Synthetic depth (near = bright): a constant far background and a near disc moving left to right."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((frames, h, w, 3), np.uint8)
    for i in range(frames):
        cx, cy, r = w * (0.3 + 0.4 * i / max(1, frames - 1)), h * 0.5, h * 0.25
        d = np.where((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r, disc, background)
        out[i] = np.repeat((d * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    return out


def ramp_depth_frames(frames: int, size: tuple[int, int]) -> np.ndarray:
    """A plausible-looking stand-in depth for pictures: far at the top, near at the bottom."""
    w, h = size
    ramp = np.linspace(0.1, 0.9, h)[:, None].repeat(w, axis=1)
    img = np.repeat((ramp * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    return np.repeat(img[None], frames, axis=0)


def make_depth_clip(
    path: Path, frames: int = 8, size: tuple[int, int] = (480, 270), fps: int = 24, style: str = "disc"
) -> np.ndarray:
    """A depth video: ``disc`` (moving near disc on a flat background) or ``ramp`` (far top, near bottom)."""
    depth = disc_depth_frames(frames, size) if style == "disc" else ramp_depth_frames(frames, size)
    _encode(path, depth, fps)
    return depth


def best_horizontal_shift(reference: np.ndarray, moved: np.ndarray, max_shift: int) -> tuple[int, float]:
    """The shift s (moved[:, x] ≈ reference[:, x - s]) with the smallest mean abs error, and that error.

    Both are [H, W, C] arrays; only the columns valid for every candidate shift are compared.
    """
    ref = reference.astype(np.float32)
    mov = moved.astype(np.float32)
    w = ref.shape[1]
    lo, hi = max_shift, w - max_shift
    errors = {
        s: float(np.abs(mov[:, lo:hi] - ref[:, lo - s : hi - s]).mean()) for s in range(-max_shift, max_shift + 1)
    }
    best = min(errors, key=errors.get)
    return best, errors[best]
