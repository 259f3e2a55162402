"""VR180 output: flat frames onto a 180° equirectangular canvas, and Google's spherical video metadata (V2).

Projection: each eye's flat frame is treated as a pinhole image with horizontal field of view ``fov_degrees``
(default 90°: a big virtual screen in front of the viewer), centred straight ahead, and resampled onto a
square 180° × 180° equirectangular image (longitude and latitude −90°..90°); outside the frame is black. The two
eyes go side by side, left eye on the left (``_180x180_LR`` in the file name, iw3's / DeoVR's convention).

Metadata: the Spherical Video V2 boxes (github.com/google/spatial-media, docs/spherical-video-v2-rfc.md) inside the
video track's sample entry (``avc1`` / ``hvc1``): ``st3d`` (stereo mode 2 = left-right) and ``sv3d`` → ``svhd``
+ ``proj`` → ``prhd`` (no rotation) + ``equi`` with projection bounds left = right = 0x40000000 (a quarter of
360° cropped on each side: 180° wide) and top = bottom = 0 (180° high). That is what Google's Spatial Media
Metadata Injector writes for 180° left-right video, and what YouTube and headset players (DeoVR, SKYBOX, Quest TV)
read. MP4 / MOV only (Matroska has its own projection elements, not written here).
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import torch
import torch.nn.functional as F

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"sv3d", b"proj"}
SAMPLE_ENTRIES = {b"avc1", b"avc3", b"hvc1", b"hev1"}
#: Bytes of a visual sample entry before its child boxes (ISO/IEC 14496-12 VisualSampleEntry, after the header).
VISUAL_ENTRY_FIELDS = 78
STEREO_LEFT_RIGHT = 2
HALF_TURN_CROP = 0x40000000  # 0.25 in 0.32 fixed point: a quarter of 360° cropped on each side


def equirect_180(frames: torch.Tensor, fov_degrees: float = 90.0, size: int | None = None) -> torch.Tensor:
    """Flat frames [n, H, W, 3] (0..1) → [n, S, S, 3] 180° equirectangular images, see the module docstring.
    ``size`` S defaults to the frame width (rounded to even)."""
    if not 1.0 <= fov_degrees <= 179.0:
        raise ValueError(f"the VR180 screen's field of view must be within 1..179 degrees, got {fov_degrees}.")
    n, height, width, _ = frames.shape
    side = size or width + width % 2
    angles = (torch.arange(side, dtype=torch.float32) + 0.5) / side * math.pi - math.pi / 2
    lat, lon = torch.meshgrid(angles, angles, indexing="ij")  # rows: latitude top (−90°) → bottom (+90°)
    x, y, z = torch.cos(lat) * torch.sin(lon), torch.sin(lat), torch.cos(lat) * torch.cos(lon)
    focal = (width / 2) / math.tan(math.radians(fov_degrees) / 2)
    ahead = z > 1e-6
    px = torch.where(ahead, focal * x / z.clamp_min(1e-6), torch.full_like(x, 1e9))  # pixels from the centre
    py = torch.where(ahead, focal * y / z.clamp_min(1e-6), torch.full_like(y, 1e9))
    grid = torch.stack([px / (width / 2), py / (height / 2)], -1).to(frames.device)  # normalised, align_corners=False
    out = F.grid_sample(
        frames.permute(0, 3, 1, 2).float(),
        grid.unsqueeze(0).expand(n, -1, -1, -1),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    return out.permute(0, 2, 3, 1).clamp(0.0, 1.0)


def vr180_sbs(left: torch.Tensor, right: torch.Tensor, fov_degrees: float = 90.0) -> torch.Tensor:
    """Left and right flat views [n, H, W, 3] → VR180 side by side [n, S, 2S, 3] (left eye on the left)."""
    return torch.cat([equirect_180(left, fov_degrees), equirect_180(right, fov_degrees)], dim=2)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, payload: bytes) -> bytes:
    return _box(kind, b"\0\0\0\0" + payload)  # version 0, flags 0


def spherical_boxes(stereo_mode: int = STEREO_LEFT_RIGHT) -> bytes:
    """st3d + sv3d for a 180° × 180° equirectangular video."""
    st3d = _full_box(b"st3d", struct.pack(">B", stereo_mode))
    svhd = _full_box(b"svhd", b"StereoCrafter3D\0")
    prhd = _full_box(b"prhd", struct.pack(">iii", 0, 0, 0))
    equi = _full_box(b"equi", struct.pack(">IIII", 0, 0, HALF_TURN_CROP, HALF_TURN_CROP))
    return st3d + _box(b"sv3d", svhd + _box(b"proj", prhd + equi))


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of the boxes in data[start:end]."""
    out = []
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[at + 8 : at + 16])[0], 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise ValueError(f"malformed MP4 box {kind!r} at byte {at}.")
        out.append((kind, at, at + header, at + size))
        at += size
    return out


def _video_entry(moov: bytes) -> tuple[list[tuple[int, int]], int, int]:
    """In a moov box (bytes, header included): the (start, header size) of every box enclosing the video sample
    entry (moov first, the entry last), and the entry's children's start and end."""
    path: list[tuple[int, int]] = []

    def walk(start: int, end: int) -> tuple[int, int] | None:
        for kind, box, payload, box_end in _boxes(moov, start, end):
            if kind in CONTAINERS:
                path.append((box, payload - box))
                found = walk(payload, box_end)
                if found:
                    return found
                path.pop()
            elif kind == b"stsd":
                path.append((box, payload - box))
                for entry_kind, entry, entry_payload, entry_end in _boxes(moov, payload + 8, box_end):
                    if entry_kind in SAMPLE_ENTRIES:
                        path.append((entry, entry_payload - entry))
                        return entry_payload + VISUAL_ENTRY_FIELDS, entry_end
                path.pop()
        return None

    found = walk(0, len(moov))
    if found is None:
        raise ValueError("no H.264/H.265 video track in the file: spherical metadata needs one.")
    return path, found[0], found[1]


def _with_size(data: bytearray, box: int, header: int, delta: int) -> None:
    if header == 16:
        size = struct.unpack(">Q", data[box + 8 : box + 16])[0] + delta
        data[box + 8 : box + 16] = struct.pack(">Q", size)
    else:
        size = struct.unpack(">I", data[box : box + 4])[0] + delta
        data[box : box + 4] = struct.pack(">I", size)


def _shift_chunk_offsets(moov: bytearray, delta: int) -> None:
    """Move every stco/co64 chunk offset by ``delta`` (the media data moved by that much)."""

    def walk(start: int, end: int) -> None:
        for kind, _box, payload, box_end in _boxes(bytes(moov), start, end):
            if kind in CONTAINERS:
                walk(payload, box_end)
            elif kind in (b"stco", b"co64"):
                count = struct.unpack(">I", moov[payload + 4 : payload + 8])[0]
                width, fmt = (4, ">I") if kind == b"stco" else (8, ">Q")
                for k in range(count):
                    at = payload + 8 + k * width
                    moov[at : at + width] = struct.pack(fmt, struct.unpack(fmt, moov[at : at + width])[0] + delta)

    walk(0, len(moov))


def inject_vr180(path: Path | str) -> None:
    """Add the 180° left-right spherical metadata (module docstring) to an MP4/MOV file in place (write, then
    rename). A file that already has ``sv3d`` in its video entry is left as it is."""
    path = Path(path)
    data = path.read_bytes()
    top = _boxes(data, 0, len(data))
    moov_at = [i for i, (kind, *_rest) in enumerate(top) if kind == b"moov"]
    if not moov_at:
        raise ValueError(f"{path}: not an MP4/MOV file (no moov box): VR180 metadata needs .mp4 or .mov.")
    _, moov_start, _, moov_end = top[moov_at[0]]
    moov = bytearray(data[moov_start:moov_end])
    path_boxes, children, entry_end = _video_entry(bytes(moov))
    if any(kind == b"sv3d" for kind, *_rest in _boxes(bytes(moov), children, entry_end)):
        return
    extra = spherical_boxes()
    moov[entry_end:entry_end] = extra
    for box, header in path_boxes:
        _with_size(moov, box, header, len(extra))
    media_after = any(kind == b"mdat" for kind, *_rest in top[moov_at[0] + 1 :])
    if media_after:  # moov before the media (fast start): the media moves down by the inserted bytes
        _shift_chunk_offsets(moov, len(extra))
    tmp = path.with_name(path.name + ".vr180.tmp")
    with open(tmp, "wb") as out:
        out.write(data[:moov_start])
        out.write(moov)
        out.write(data[moov_end:])
    os.replace(tmp, path)


def read_spherical(path: Path | str) -> dict[str, object] | None:
    """The spherical metadata of an MP4/MOV video track (None without): stereo mode, projection, bounds."""
    data = Path(path).read_bytes()
    top = _boxes(data, 0, len(data))
    moov = next((data[s:e] for kind, s, _, e in top if kind == b"moov"), None)
    if moov is None:
        return None
    _, children, entry_end = _video_entry(moov)
    result: dict[str, object] = {}
    for kind, _box_start, payload, box_end in _boxes(moov, children, entry_end):
        if kind == b"st3d":
            result["stereo_mode"] = moov[payload + 4]
        elif kind == b"sv3d":
            for sub, _, sub_payload, sub_end in _boxes(moov, payload, box_end):
                if sub == b"proj":
                    for proj, _, proj_payload, _ in _boxes(moov, sub_payload, sub_end):
                        if proj == b"equi":
                            result["projection"] = "equirectangular"
                            top_b, bottom, left, right = struct.unpack(
                                ">IIII", moov[proj_payload + 4 : proj_payload + 20]
                            )
                            result["bounds"] = {"top": top_b, "bottom": bottom, "left": left, "right": right}
                            result["degrees"] = (
                                round(360 * (1 - (left + right) / 2**32)),
                                round(180 * (1 - (top_b + bottom) / 2**32)),
                            )
    return result or None
