"""Convert a 2D video file and its depth video into a stereo 3D video file, streaming chunk by chunk.

Pipeline per chunk of ``chunk_frames`` frames: read the frames and the depth frames in lockstep → disparity with
one fixed depth range for the whole clip (found by a first pass over the depth video, so there is no
normalisation jump between chunks and the result equals splatting the whole clip at once) → forward splat →
optional hole filling (``fill_holes``) → pack (SBS/TB) or anaglyph → encode to its own segment file.

Resumable: segments and ``progress.json`` live in ``OUTPUT.partial.d/``; a rerun with the same inputs and
settings continues after the last finished chunk. At the end the segments are joined without re-encoding,
with the source's audio, into ``OUTPUT.partial``, which is renamed to ``OUTPUT`` only when complete.

Not supported yet: depth estimation (DepthCrafter) inside the converter — a depth video is required — and
StereoCrafter inpainting from a model folder: the holes stay black unless a ``fill_holes`` callable is given
(it sees one chunk at a time, with no overlap between chunks).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Literal

import torch

from .anaglyph import ANAGLYPH_METHODS, AnaglyphMethod, make_anaglyph
from .disparity import DISPARITY_UNITS, DisparityUnit, depth_bounds
from .packing import LAYOUT_SUFFIXES, LAYOUTS, RESIZE_FILTERS, Layout, ResizeFilter, pack_stereo
from .stereo_warp import WarpSettings, warp_to_right_eye
from .video_io import CODECS, Codec, SegmentWriter, VideoInfo, mux_segments, output_format, probe_video, read_frames

logger = logging.getLogger(__name__)

OutputLayout = Layout | Literal["anaglyph"]
OUTPUT_LAYOUTS: tuple[OutputLayout, ...] = (*LAYOUTS, "anaglyph")
#: File-name suffixes for ``-o DIRECTORY``: the packing ones plus the anaglyph.
OUTPUT_SUFFIXES: dict[OutputLayout, str] = {**LAYOUT_SUFFIXES, "anaglyph": "_anaglyph"}
PROGRESS_VERSION = 1

#: fill_holes(left, right, occlusion) → right: [n, H, W, 3], [n, H, W, 3], [n, H, W] float32 0..1 (1 = hole).
HoleFiller = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ConvertSettings:
    """Everything that changes the output; a resume only continues a job with equal settings."""

    layout: OutputLayout = "full SBS"
    anaglyph_method: AnaglyphMethod = "dubois"
    resize_filter: ResizeFilter = "bicubic"
    max_disparity: float = 20.0
    disparity_unit: DisparityUnit = "pixels"
    convergence: float = 0.5
    invert: bool = False
    chunk_frames: int = 16
    codec: Codec = "h264"
    crf: int = 18

    def validate(self) -> None:
        """Raise a ValueError naming the first bad setting."""
        choices = {
            "layout": (self.layout, OUTPUT_LAYOUTS),
            "anaglyph_method": (self.anaglyph_method, ANAGLYPH_METHODS),
            "resize_filter": (self.resize_filter, RESIZE_FILTERS),
            "disparity_unit": (self.disparity_unit, DISPARITY_UNITS),
            "codec": (self.codec, tuple(CODECS)),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
        if not self.max_disparity >= 0:
            raise ValueError(f"max_disparity must be >= 0, got {self.max_disparity}.")
        if not 0.0 <= self.convergence <= 1.0:
            raise ValueError(f"convergence must be within 0..1, got {self.convergence}.")
        if self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {self.chunk_frames}.")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be within 0..51, got {self.crf}.")


def resolve_output_path(input_path: Path, output: Path, layout: OutputLayout) -> Path:
    """``output`` itself, or for a directory ``DIR/<input stem><layout suffix>.mp4``."""
    if output.is_dir():
        return output / f"{input_path.stem}{OUTPUT_SUFFIXES[layout]}.mp4"
    return output


def work_paths(output: Path) -> tuple[Path, Path]:
    """(segment directory, partial output file) of a job writing ``output``."""
    return output.with_name(output.name + ".partial.d"), output.with_name(output.name + ".partial")


def _fingerprint(path: Path) -> dict[str, object]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _write_json(path: Path, data: dict) -> None:
    # Write then rename: a kill mid-write leaves the previous progress file intact.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _load_progress(work_dir: Path, job: dict) -> dict | None:
    path = work_dir / "progress.json"
    if not path.exists():
        return None
    try:
        progress = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        logger.warning("%s is unreadable; starting the conversion over.", path)
        return None
    if progress.get("version") != PROGRESS_VERSION or progress.get("job") != job:
        logger.warning("%s belongs to other inputs or settings; starting the conversion over.", work_dir)
        return None
    chunks = progress.get("chunks", [])
    if not all((work_dir / chunk["file"]).is_file() for chunk in chunks):
        logger.warning("segments listed in %s are missing; starting the conversion over.", path)
        return None
    return progress


def _prepare_work_dir(work_dir: Path) -> None:
    try:
        work_dir.mkdir(parents=False, exist_ok=True)
        probe = work_dir / ".write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OSError(f"cannot write next to the output ({work_dir.parent}): {exc.strerror or exc}.") from exc


def depth_range(depth_path: Path, chunk_frames: int) -> tuple[float, float]:
    """(min, max) of a depth video over all frames and pixels, channels averaged as the splat stage reads
    them; one streaming decode pass."""
    low, high = float("inf"), float("-inf")
    for chunk in read_frames(depth_path, chunk_frames):
        chunk_low, chunk_high = depth_bounds(chunk.mean(dim=-1))
        low, high = min(low, chunk_low), max(high, chunk_high)
    return low, high


def splat_chunk(
    left: torch.Tensor,
    depth: torch.Tensor,
    settings: ConvertSettings,
    bounds: tuple[float, float],
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right view [n, H, W, 3] and occlusion [n, H, W] (float32, CPU) of one chunk, depth normalised with the
    clip's fixed ``bounds``."""
    warp = WarpSettings(
        max_disparity=settings.max_disparity,
        disparity_unit=settings.disparity_unit,
        convergence=settings.convergence,
        invert=settings.invert,
    )
    result = warp_to_right_eye(left, depth, warp, device=device, batch_size=left.shape[0], depth_range=bounds)
    return result.right, result.occlusion


def compose(left: torch.Tensor, right: torch.Tensor, settings: ConvertSettings) -> torch.Tensor:
    """The packed stereo frames [n, H', W', 3] float32 0..1 for the chosen layout."""
    if settings.layout == "anaglyph":
        return make_anaglyph(left, right, settings.anaglyph_method)
    return pack_stereo(left, right, settings.layout, settings.resize_filter)


def _check_pair(info: VideoInfo, depth_info: VideoInfo) -> None:
    if info.frame_count != depth_info.frame_count:
        raise ValueError(
            f"the depth video has {depth_info.frame_count} frames but {info.path.name} has {info.frame_count}; "
            "they must match one to one (make the depth from the same clip, at the same frame rate)."
        )
    if info.variable_frame_rate:
        logger.warning(
            "%s has a variable frame rate: every frame is kept and written at the average %.3f fps, so per-frame "
            "timing (and audio sync over long stretches) may drift; convert it to constant frame rate first "
            "for exact sync.",
            info.path.name,
            float(info.fps),
        )


def convert_video(
    input_path: Path | str,
    output: Path | str,
    depth: Path | str,
    settings: ConvertSettings = ConvertSettings(),
    *,
    device: torch.device | str | None = None,
    fill_holes: HoleFiller | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_chunk_done: Callable[[int, int], None] | None = None,
) -> Path:
    """Convert ``input_path`` into a stereo video, resuming an interrupted run of the same job.

    Args:
        input_path: the 2D video (left eye). Its audio streams are carried over.
        output: the output file (.mp4, .mov, .m4v or .mkv), or an existing directory (the name is then the input
            stem plus :data:`OUTPUT_SUFFIXES` of the layout, .mp4).
        depth: a depth video with the same frame count, near = bright (``settings.invert`` for far = bright);
            any size (resized to the frames), channels averaged, 8 or 16 bit.
        settings: layout, disparity, chunking and encoding settings.
        device: where to splat (default: CUDA when available, else CPU).
        fill_holes: optional per-chunk hole filler, see :data:`HoleFiller`.
        on_progress: called with (frames done, total frames) at start and after each chunk.
        on_chunk_done: called with (chunk index, frames done) after a chunk is safely on disk (tests use it to
            interrupt a run).

    Returns:
        The path of the finished output file.
    """
    settings.validate()
    input_path, depth_path = Path(input_path), Path(depth)
    info, depth_info = probe_video(input_path), probe_video(depth_path)
    _check_pair(info, depth_info)
    output = resolve_output_path(input_path, Path(output), settings.layout)
    suffix = output.suffix.lower()
    output_format(output)
    if output.resolve() in (input_path.resolve(), depth_path.resolve()):
        raise ValueError(f"{output}: the output would overwrite an input.")
    work_dir, partial = work_paths(output)
    _prepare_work_dir(work_dir)
    device = (
        torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )

    job = {"input": _fingerprint(input_path), "depth": _fingerprint(depth_path), "settings": asdict(settings)}
    progress = _load_progress(work_dir, job)
    if progress is None:
        for stale in work_dir.glob("chunk_*"):
            stale.unlink()
        progress = {"version": PROGRESS_VERSION, "job": job, "depth_range": None, "chunks": []}
    else:
        logger.info("resuming %s after %d finished chunks.", output.name, len(progress["chunks"]))
    if progress["depth_range"] is None:
        progress["depth_range"] = list(depth_range(depth_path, settings.chunk_frames))
        _write_json(work_dir / "progress.json", progress)
    bounds = tuple(progress["depth_range"])
    if bounds[1] - bounds[0] <= 1e-12 * max(1.0, abs(bounds[1])):
        logger.warning("the depth video is constant: no parallax, the right view equals the left.")

    done = _run_chunks(
        info, depth_path, work_dir, progress, settings, bounds, device, fill_holes, on_progress, on_chunk_done
    )
    if done != info.frame_count:
        logger.warning(
            "%s has %d frames, not the %d its header says; all were converted.", info.path.name, done, info.frame_count
        )
    segments = [(work_dir / chunk["file"], chunk["frames"]) for chunk in progress["chunks"]]
    mux_segments(segments, info.fps, partial, suffix, info)
    os.replace(partial, output)
    shutil.rmtree(work_dir)
    return output


def _run_chunks(
    info: VideoInfo,
    depth_path: Path,
    work_dir: Path,
    progress: dict,
    settings: ConvertSettings,
    bounds: tuple[float, float],
    device: torch.device,
    fill_holes: HoleFiller | None,
    on_progress: Callable[[int, int], None] | None,
    on_chunk_done: Callable[[int, int], None] | None,
) -> int:
    """Encode the chunks not yet in ``progress`` to segment files; returns the total frames converted."""
    done = sum(chunk["frames"] for chunk in progress["chunks"])
    if on_progress is not None:
        on_progress(done, info.frame_count)
    frames_iter = read_frames(info.path, settings.chunk_frames, start=done)
    depth_iter = read_frames(depth_path, settings.chunk_frames, start=done)
    warned_odd = False
    for left, depth in zip_longest(frames_iter, depth_iter):
        if left is None or depth is None or left.shape[0] != depth.shape[0]:
            raise ValueError(
                f"the depth video and {info.path.name} have different frame counts (found while decoding at frame "
                f"{done}); they must match one to one."
            )
        started = time.perf_counter()
        right, occlusion = splat_chunk(left, depth, settings, bounds, device)
        if fill_holes is not None:
            right = fill_holes(left, right, occlusion)
        packed = compose(left, right, settings)
        height, width = packed.shape[1:3]
        if (height % 2 or width % 2) and not warned_odd:
            logger.info(
                "output frames are %dx%d; padded to even %dx%d for the encoder.",
                width,
                height,
                width + width % 2,
                height + height % 2,
            )
            warned_odd = True
        index = len(progress["chunks"])
        name = f"chunk_{index:05d}.mp4"
        _write_segment(work_dir / name, packed, info, settings)
        done += left.shape[0]
        progress["chunks"].append(
            {"index": index, "start": done - left.shape[0], "frames": left.shape[0], "file": name}
        )
        _write_json(work_dir / "progress.json", progress)
        logger.debug("chunk %d: %d frames in %.2f s", index, left.shape[0], time.perf_counter() - started)
        if on_progress is not None:
            on_progress(done, info.frame_count)
        if on_chunk_done is not None:
            on_chunk_done(index, done)
    return done


def _write_segment(path: Path, packed: torch.Tensor, info: VideoInfo, settings: ConvertSettings) -> None:
    """Encode one chunk to ``path`` via a temporary name, so a listed segment is always complete."""
    tmp = path.with_name(path.stem + ".tmp.mp4")
    writer = SegmentWriter(
        tmp, packed.shape[2], packed.shape[1], info.fps, settings.codec, settings.crf, info.bit_depth > 8
    )
    writer.write(packed)
    writer.close()
    os.replace(tmp, path)
