"""Segment encoding speed: frames/s of the converter's SegmentWriter per encoder at 1080p and 4K (packed full SBS
sizes: 3840x1080 and 7680x2160 are what a full-SBS film writes; --sizes changes them).

Each run encodes the same moving synthetic frames (float RGB in, as the converter hands them over, so the RGB →
YUV conversion is included) with the converter's settings for that encoder (:func:`stereocrafter.video.encoders.
choose_encoder`: CRF / CQ 18, 4:2:0 8-bit, or 10-bit with --ten-bit). NVENC rows need an NVIDIA GPU with NVENC;
elsewhere they are reported as unavailable, with the reason.

Usage (repository root):
    python bench/encode.py [--frames 120] [--sizes 3840x1080,7680x2160] [--ten-bit] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stereocrafter.video.encoders import choose_encoder  # noqa: E402
from stereocrafter.video.video_io import SegmentWriter  # noqa: E402

RUNS = [("h264", "off"), ("h264", "on"), ("h265", "off"), ("h265", "on")]


def frames_for(width: int, height: int, count: int) -> list[torch.Tensor]:
    """``count`` moving gradient frames [1, H, W, 3] float32 (made before timing)."""
    x = torch.linspace(0, 1, width).view(1, 1, width, 1)
    y = torch.linspace(0, 1, height).view(1, height, 1, 1)
    return [((x + y * 0.5 + k / count) % 1.0).expand(1, height, width, 3).contiguous() for k in range(count)]


def measure(codec: str, hardware: str, width: int, height: int, frames: list[torch.Tensor], ten_bit: bool) -> dict:
    row = {"codec": codec, "hardware": hardware, "size": f"{width}x{height}", "frames": len(frames)}
    try:
        encoder = choose_encoder(codec, 18, ten_bit, hardware=hardware)  # type: ignore[arg-type]
    except RuntimeError as exc:
        return {**row, "encoder": None, "error": str(exc)}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "seg.mp4"
        writer = SegmentWriter(path, width, height, Fraction(24), codec, 18, ten_bit, encoder)  # type: ignore[arg-type]
        started = time.perf_counter()
        for frame in frames:
            writer.write(frame)
        writer.close()
        seconds = time.perf_counter() - started
        size = path.stat().st_size
    return {**row, "encoder": encoder.name, "pix_fmt": encoder.pix_fmt, "seconds": seconds,
            "fps": len(frames) / seconds, "mbit_per_s_at_24fps": size * 8 / (len(frames) / 24) / 1e6}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--sizes", default="3840x1080,7680x2160")
    parser.add_argument("--ten-bit", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    print("| size | codec | hardware | encoder | frames/s | Mbit/s at 24 fps |\n| --- | --- | --- | --- | --- | --- |")
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        frames = frames_for(width, height, args.frames)
        for codec, hardware in RUNS:
            row = measure(codec, hardware, width, height, frames, args.ten_bit)
            rows.append(row)
            if row.get("encoder") is None:
                print(f"| {size} | {codec} | {hardware} | unavailable: {row['error']} | | |", flush=True)
            else:
                print(f"| {size} | {codec} | {hardware} | {row['encoder']} {row['pix_fmt']} | {row['fps']:.1f} | "
                      f"{row['mbit_per_s_at_24fps']:.1f} |", flush=True)  # fmt: skip
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
