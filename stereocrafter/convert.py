"""Convert a 2D video file into a stereo 3D video file, streaming chunk by chunk with bounded memory.

Two passes over the input:

1. Depth: a depth video given by the user, or DepthCrafter (:class:`DepthStage`) run over the whole clip with its
   sliding windows carried across chunks; estimated depth goes to a lossless 16-bit file in the work folder
   (:mod:`.video.depth_file`), because the depth is normalised over the whole clip before splatting (as the reference
   does) and that needs the last frame's depth before the first frame can be splatted.
2. Stereo, per chunk of ``chunk_frames``: read the frames and the depth in lockstep → disparity with the clip's
   fixed depth range → forward splat → optional StereoCrafter inpainting (:class:`InpaintStage`, an
   :class:`~.inpaint.inpaint_stream.InpaintStream` whose temporal chunks and feedback frames carry across our chunks, so
   there is no seam) → pack (SBS/TB) or anaglyph → encode a segment file.

Resumable: segments, the depth file, the inpainting state and ``progress.json`` live in ``OUTPUT.partial.d/``; a
rerun with the same inputs and settings continues after the last finished segment (a depth pass that was cut off
starts over). At the end the segments are joined without re-encoding, with the source's audio, into
``OUTPUT.partial``, which is renamed to ``OUTPUT`` only when complete.
"""

from __future__ import annotations

import errno
import functools
import gc
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import av
import torch

from .compose.anaglyph import ANAGLYPH_METHODS, AnaglyphMethod, make_anaglyph
from .compose.packing import LAYOUT_SUFFIXES, LAYOUTS, RESIZE_FILTERS, Layout, ResizeFilter, pack_stereo
from .compose.spatial_media import inject_vr180, vr180_sbs
from .depth.shot_depth import (
    ShotRangeAccumulator,
    frame_convergence,
    frame_ranges,
    normalize_per_frame,
    shot_convergence,
)
from .job_lock import JobLock
from .video.depth_file import DepthFileWriter, read_depth_file
from .video.encoders import HARDWARE_MODES, PIX_FMTS, Encoder, Hardware, choose_encoder
from .video.scenes import check_cuts, detect_cuts, scenes_path, shot_segments, split_by_segments, write_scenes_file
from .video.video_io import (
    CODECS,
    Codec,
    SegmentWriter,
    TrimWindow,
    VideoInfo,
    VideoReadError,
    frames_from_8bit,
    frames_to_8bit,
    mux_segments,
    output_format,
    probe_video,
    read_frames,
)
from .warp.disparity import DISPARITY_UNITS, check_disparity_fits, depth_bounds, max_disparity_pixels
from .warp.hole_fill import fill_holes
from .warp.stereo_warp import WarpSettings, depth_channels_mean, warp_to_right_eye

if TYPE_CHECKING:  # the model modules import diffusers (~0.3 GB of RAM), which a model-free conversion never needs
    from .depth.depth_pipeline import DepthSettings, VideoDepthPipeline
    from .inpaint.inpaint_model import InpaintModel, InpaintStreamLike

logger = logging.getLogger(__name__)

HoleMode = Literal["fill", "black"]
HOLE_MODES: tuple[HoleMode, ...] = ("fill", "black")
ConvergenceMode = Literal["fixed", "shot"]
CONVERGENCE_MODES: tuple[ConvergenceMode, ...] = ("fixed", "shot")
DepthNormalization = Literal["shot", "clip"]
DEPTH_NORMALIZATIONS: tuple[DepthNormalization, ...] = ("shot", "clip")
OutputLayout = Layout | Literal["anaglyph", "vr180"]
OUTPUT_LAYOUTS: tuple[OutputLayout, ...] = (*LAYOUTS, "anaglyph", "vr180")
#: File-name suffixes for ``-o DIRECTORY``: the packing ones plus the anaglyph.
OUTPUT_SUFFIXES: dict[OutputLayout, str] = {**LAYOUT_SUFFIXES, "anaglyph": "_anaglyph", "vr180": "_180x180_LR"}
PROGRESS_VERSION = 2
#: Pixels per splat call: the PyTorch splat needs ~110 B of temporaries per pixel, so a whole 16-frame 720p chunk
#: at once would cost ~1.6 GB of RAM on the CPU; 4 frames of 720p keep it under 0.5 GB at the same speed. Larger
#: frames go fewer at a time (4K: one).
SPLAT_PIXELS = 4 * 1280 * 720
#: Frames packed at a time while a segment is encoded: a packed chunk (two views side by side, float32) would be
#: another two chunk-sized copies (2.6 GB for 16 frames of 4K).
COMPOSE_FRAMES = 2
DEPTH_FILE = "depth.mkv"

#: on_progress(stage, frames done, total frames); stage is "scenes" (shot detection), "depth" (estimation pass) or
#: "stereo".
ProgressFn = Callable[[str, int, int], None]


@dataclass
class PassStats:
    """What one pass of a conversion took. ``seconds`` is wall time with model loading included (``load_seconds``
    of it); the peaks are ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` over the pass, in bytes
    (0 without CUDA); ``host_peak`` is the process's peak RSS so far (``ru_maxrss``, bytes, 0 where unknown): a
    later pass that raises it is the one that needs the host RAM. A pass skipped by a resume is not reported."""

    name: str  # "depth" or "stereo"
    frames: int
    seconds: float = 0.0
    load_seconds: float = 0.0
    peak_allocated: int = 0
    peak_reserved: int = 0
    host_peak: int = 0
    #: Wall seconds of the pass's parts (stereo: read, splat, inpaint, write, and the inpainting model's own phases
    #: as ``inpaint:PHASE`` where it reports them; exact on CUDA only when the model synchronises per phase).
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One log line: time, s/frame, GPU peaks."""
        per_frame = self.seconds / max(self.frames, 1)
        line = f"{self.name} pass: {self.frames} frames in {self.seconds:.1f} s ({per_frame:.3f} s/frame"
        line += f", models loaded in {self.load_seconds:.1f} s)" if self.load_seconds else ")"
        if self.peak_reserved:
            line += f", GPU peak {self.peak_allocated / 1024**3:.2f} GiB allocated / "
            line += f"{self.peak_reserved / 1024**3:.2f} GiB reserved"
        if self.host_peak:
            line += f", host RAM peak so far {self.host_peak / 1024**3:.2f} GiB"
        return line


PassFn = Callable[[PassStats], None]


@contextmanager
def _measured_pass(name: str, frames: int, on_pass_done: PassFn | None) -> Iterator[PassStats]:
    """Time a pass and track the CUDA peaks over it; log its summary and report it when it completes."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # else CUDA starts in the pass, counters at 0
        torch.cuda.reset_peak_memory_stats()
    stats = PassStats(name, frames)
    started = time.perf_counter()
    yield stats
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
        stats.peak_allocated = torch.cuda.max_memory_allocated()
        stats.peak_reserved = torch.cuda.max_memory_reserved()
    stats.seconds = time.perf_counter() - started
    stats.host_peak = host_peak_bytes()
    logger.info("%s", stats.summary())
    if on_pass_done is not None:
        on_pass_done(stats)


@dataclass(frozen=True)
class ConvertSettings:
    """Everything about the splat, packing and encoding that changes the output; a resume only continues a job
    with equal settings."""

    warp: WarpSettings = WarpSettings()
    layout: OutputLayout = "full SBS"
    anaglyph_method: AnaglyphMethod = "dubois"
    resize_filter: ResizeFilter = "bicubic"
    chunk_frames: int = 16
    codec: Codec = "h264"
    crf: int = 18
    #: "shot": each shot's depth percentiles, eased across cuts (:mod:`.depth.shot_depth`); "clip": the reference's
    #: whole-clip min–max.
    depth_normalization: DepthNormalization = "shot"
    depth_percentiles: tuple[float, float] = (0.5, 99.5)
    shot_transition_frames: int = 12
    #: "fixed": the screen plane at ``warp.convergence``; "shot": at each shot's median depth (half of its pixels in
    #: front of the screen, half behind), eased across cuts like the range (needs ``depth_normalization="shot"``).
    convergence_mode: ConvergenceMode = "fixed"
    #: Comfort limit: the total parallax (nearest to farthest point, 2 × max_disparity) at most this percentage of
    #: the frame width; a larger max_disparity is lowered to it (logged). None: no limit.
    max_parallax_percent: float | None = None
    #: Find hard cuts (PySceneDetect) when no cut list is given; DepthCrafter windows, inpainting chunks and the
    #: per-shot depth range restart at each.
    detect_cuts: bool = True
    cut_threshold: float = 27.0
    #: Segment encoding (:mod:`.video.encoders`): NVENC "auto" / "on" / "off", the pixel format (None: 4:2:0, 4:4:4 for
    #: anaglyphs, 10 bits for 10-bit sources).
    hw_encode: Hardware = "auto"
    pix_fmt: str | None = None
    #: layout "vr180": the flat frame's horizontal field of view on the 180° canvas (:mod:`.compose.spatial_media`).
    vr180_fov: float = 90.0
    #: Without an inpainting stage: "fill" the holes from their background side (:mod:`.warp.hole_fill`, no model) or
    #: leave them "black".
    holes: HoleMode = "fill"

    def validate(self) -> None:
        """Raise a ValueError naming the first bad setting."""
        choices = {
            "layout": (self.layout, OUTPUT_LAYOUTS),
            "anaglyph_method": (self.anaglyph_method, ANAGLYPH_METHODS),
            "resize_filter": (self.resize_filter, RESIZE_FILTERS),
            "disparity_unit": (self.warp.disparity_unit, DISPARITY_UNITS),
            "codec": (self.codec, tuple(CODECS)),
            "depth_normalization": (self.depth_normalization, DEPTH_NORMALIZATIONS),
            "convergence_mode": (self.convergence_mode, CONVERGENCE_MODES),
            "hw_encode": (self.hw_encode, HARDWARE_MODES),
            "pix_fmt": (self.pix_fmt, (None, *PIX_FMTS)),
            "holes": (self.holes, HOLE_MODES),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
        if not 0 <= self.warp.max_disparity < float("inf"):
            raise ValueError(f"max_disparity must be a finite number >= 0, got {self.warp.max_disparity}.")
        if not 0.0 <= self.warp.convergence <= 1.0:
            raise ValueError(f"convergence must be within 0..1, got {self.warp.convergence}.")
        if self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {self.chunk_frames}.")
        if not 1.0 <= self.vr180_fov <= 179.0:
            raise ValueError(f"vr180_fov must be within 1..179 degrees, got {self.vr180_fov}.")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be within 0..51, got {self.crf}.")
        low, high = self.depth_percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(f"depth_percentiles must be 0 <= low < high <= 100, got {self.depth_percentiles}.")
        if self.convergence_mode == "shot" and self.depth_normalization != "shot":
            raise ValueError('convergence_mode "shot" needs depth_normalization "shot" (it uses the shots\' depth).')
        if self.max_parallax_percent is not None and not 0 < self.max_parallax_percent <= 100:
            raise ValueError(f"max_parallax_percent must be within 0..100, got {self.max_parallax_percent}.")
        if self.shot_transition_frames < 0:
            raise ValueError(f"shot_transition_frames must be >= 0, got {self.shot_transition_frames}.")
        if not self.cut_threshold > 0:
            raise ValueError(f"cut_threshold must be > 0, got {self.cut_threshold}.")


@dataclass(frozen=True)
class DepthStage:
    """DepthCrafter (or :class:`~.depth.light_depth.LightDepthPipeline`: any pipeline with ``stream`` and
    ``num_progress_steps``) inside the conversion. ``load`` is called only when the depth pass runs (not on a resume
    after it), and the pipeline is released before the stereo pass. It returns the pipeline, or (pipeline, the
    settings to run with) when it fitted them to the GPU (``settings`` as asked stay in the job record). ``model_id``
    names the weights in the job record."""

    load: Callable[[], VideoDepthPipeline | tuple[VideoDepthPipeline, DepthSettings]]
    settings: DepthSettings
    model_id: str = "DepthCrafter"


@dataclass(frozen=True)
class InpaintStage:
    """Inpainting of the splat's holes inside the conversion by any :class:`~.inpaint.inpaint_model.InpaintModel`
    (StereoCrafter or StereoCrafter2); ``load`` is called when the stereo pass starts and returns the model or
    (model, settings to run with), as :class:`DepthStage`; ``settings`` are the model's kind
    (``InpaintSettings`` / ``Inpaint2Settings``). ``model_id`` names the weights in the job record."""

    load: Callable[[], InpaintModel | tuple[InpaintModel, Any]]
    settings: Any
    seed: int = 0
    model_id: str = "StereoCrafter"


class _Progress:
    """Reports (stage, frames done, total) to ``callback``, never backwards within a stage. Between finished chunks
    the models' denoising steps move it by an estimate (share of steps done × total frames)."""

    def __init__(self, callback: ProgressFn | None, total: int) -> None:
        self.callback, self.total = callback, total
        self.stage, self.done = "", -1

    def __call__(self, stage: str, done: int) -> None:
        if stage != self.stage:
            self.stage, self.done = stage, -1
        if self.callback is not None and done > self.done:
            self.done = done
            self.callback(stage, min(done, self.total), self.total)

    def fraction(self, stage: str, fraction: float) -> None:
        """Report ``fraction`` (0..1) of the stage's frames as done."""
        self(stage, int(fraction * self.total))


def resolve_output_path(input_path: Path, output: Path | str, layout: OutputLayout) -> Path:
    """``output`` itself, or for a directory ``DIR/<input stem><layout suffix>.mp4``. A trailing slash names a
    directory (``out/``), which is created when missing."""
    as_dir = str(output).endswith(("/", os.sep))
    output = Path(output)
    if as_dir:
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create the output folder {output}: {exc.strerror or exc}.") from exc
    if output.is_dir():
        return output / f"{input_path.stem}{OUTPUT_SUFFIXES[layout]}.mp4"
    return output


def work_paths(output: Path) -> tuple[Path, Path]:
    """(work folder, partial output file) of a job writing ``output``."""
    return output.with_name(output.name + ".partial.d"), output.with_name(output.name + ".partial")


def _fingerprint(path: Path) -> dict[str, object]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _job_record(
    input_path: Path,
    depth: Path | None,
    depth_model: DepthStage | None,
    inpaint: InpaintStage | None,
    settings: ConvertSettings,
) -> dict[str, Any]:
    """What identifies a job, as it reads back from JSON (tuples become lists)."""
    job = {
        "input": _fingerprint(input_path),
        "depth": _fingerprint(depth)
        if depth is not None
        else {"model": depth_model.model_id, "settings": asdict(depth_model.settings)},
        "inpaint": None
        if inpaint is None
        else {"model": inpaint.model_id, "settings": asdict(inpaint.settings), "seed": inpaint.seed},
        "settings": asdict(settings),
    }
    return json.loads(json.dumps(job))


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
    chunks = progress["chunks"]
    files = [chunk["file"] for chunk in chunks] + [chunk["state"] for chunk in chunks[-1:] if chunk["state"]]
    if progress["depth_range"] is not None and job["depth"].get("model"):
        files.append(DEPTH_FILE)
    if not all((work_dir / name).is_file() for name in files):
        logger.warning("files listed in %s are missing; starting the conversion over.", path)
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


def comfort_limited(settings: ConvertSettings, width: int) -> ConvertSettings:
    """``settings`` with max_disparity lowered (in pixels) so that the total parallax 2 × max_disparity is at most
    ``max_parallax_percent`` of ``width``; unchanged without a limit or within it."""
    if settings.max_parallax_percent is None:
        return settings
    pixels = max_disparity_pixels(settings.warp.max_disparity, settings.warp.disparity_unit, width)
    limit = settings.max_parallax_percent / 100 * width / 2
    if pixels <= limit:
        return settings
    logger.info(
        "max_disparity %.1f px gives a total parallax of %.1f %% of the width; lowered to %.1f px (the comfort "
        "limit of %.3g %%).", pixels, 200 * pixels / width, limit, settings.max_parallax_percent,
    )  # fmt: skip
    return replace(settings, warp=replace(settings.warp, max_disparity=limit, disparity_unit="pixels"))


def depth_range(
    depth_path: Path, chunk_frames: int, trim: TrimWindow | None = None, shots: ShotRangeAccumulator | None = None
) -> tuple[float, float]:
    """(min, max) of a depth video (its ``trim`` window only) over all frames and pixels, channels averaged as the
    splat stage reads them; one streaming decode pass, which also feeds ``shots`` (per-shot percentiles)."""
    low, high = float("inf"), float("-inf")
    for chunk in read_frames(depth_path, chunk_frames, window=trim):
        chunk = depth_channels_mean(chunk)
        chunk_low, chunk_high = depth_bounds(chunk)
        low, high = min(low, chunk_low), max(high, chunk_high)
        if shots is not None:
            shots.add(chunk)
    return low, high


def _shot_cuts(
    info: VideoInfo,
    progress: dict,
    settings: ConvertSettings,
    given: list[int] | None,
    work_dir: Path,
    interrupt: Callable[[], None] | None,
    report: _Progress | None = None,
) -> list[int]:
    """The job's cuts: from progress.json on a resume, else the given ones, else detected (one cheap streaming
    decode pass at 256 px wide, before the depth pass, which plans its windows per shot), else none."""
    if progress.get("cuts") is None:
        if given is not None:
            cuts = given
        elif settings.detect_cuts:
            started = time.perf_counter()

            def on_frame(seen: int) -> None:
                if seen % 64 == 0:
                    if interrupt is not None:
                        interrupt()
                    if report is not None:
                        report("scenes", seen)

            try:
                cuts, seen = detect_cuts(info.path, info.fps, info.window, settings.cut_threshold, on_frame=on_frame)
            except ImportError as exc:  # a broken or missing OpenCV must not stop a conversion: one shot, said so
                logger.warning("%s; converting as one shot.", exc)
                cuts, seen = [], info.frame_count
            cuts = [cut for cut in cuts if cut < info.frame_count]
            logger.info("%d shot(s) in %d frames (%.1f s to find the cuts).", len(cuts) + 1, seen,
                        time.perf_counter() - started)  # fmt: skip
            if report is not None:
                report("scenes", seen)
        else:
            cuts = []
        progress["cuts"] = cuts
        _write_json(work_dir / "progress.json", progress)
    return list(progress["cuts"])


def splat_chunk(
    left: torch.Tensor,
    depth: torch.Tensor,
    settings: ConvertSettings,
    bounds: tuple[float, float],
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right view [n, H, W, 3] and occlusion [n, H, W] (float32, CPU) of one chunk, depth ([n, H, W] or
    [n, H, W, C]) normalised with the clip's fixed ``bounds``."""
    batch = max(1, min(left.shape[0], SPLAT_PIXELS // (left.shape[1] * left.shape[2])))
    result = warp_to_right_eye(left, depth, settings.warp, device=device, batch_size=batch, depth_range=bounds)
    return result.right, result.occlusion


def compose(left: torch.Tensor, right: torch.Tensor, settings: ConvertSettings) -> torch.Tensor:
    """The packed stereo frames [n, H', W', 3] float32 0..1 for the chosen layout."""
    if settings.layout == "anaglyph":
        return make_anaglyph(left, right, settings.anaglyph_method)
    if settings.layout == "vr180":
        return vr180_sbs(left, right, settings.vr180_fov)
    return pack_stereo(left, right, settings.layout, settings.resize_filter)


def _check_pair(info: VideoInfo, depth_info: VideoInfo) -> None:
    if info.frame_count != depth_info.frame_count:
        raise ValueError(
            f"the depth video has {depth_info.frame_count} frames but {info.path.name} has {info.frame_count}; "
            "they must match one to one (make the depth from the same clip, at the same frame rate)."
        )


def _check_sources(
    info: VideoInfo,
    depth: Path | None,
    depth_model: DepthStage | None,
    settings: ConvertSettings,
    depth_trim: TrimWindow | None = None,
) -> None:
    if (depth is None) == (depth_model is None):
        raise ValueError("give either a depth video or a depth model (DepthCrafter), not both and not neither.")
    if depth is not None:
        _check_pair(info, probe_video(depth, depth_trim))
    elif settings.warp.invert:
        raise ValueError("invert applies to depth videos with far = bright; DepthCrafter depth is near = bright.")
    if info.variable_frame_rate:
        logger.warning(
            "%s has a variable frame rate: every frame is kept and written at the average %.3f fps, so per-frame "
            "timing (and audio sync over long stretches) may drift; convert it to constant frame rate first "
            "for exact sync.",
            info.path.name,
            float(info.fps),
        )


def _one_job_per_output(convert: Callable[..., Path]) -> Callable[..., Path]:
    """Run a conversion holding the lock of its output's job (:mod:`.job_lock`): a second run on the same output
    stops with a :class:`~.job_lock.JobLockedError` naming the running one instead of sharing its work folder."""

    @functools.wraps(convert)
    def locked(
        input_path: Path | str, output: Path | str, depth: Path | str | None = None,
        settings: ConvertSettings = ConvertSettings(), **kwargs: Any,
    ) -> Path:  # fmt: skip
        settings.validate()
        target = resolve_output_path(Path(input_path), output, settings.layout)
        with JobLock(target, input_path):
            return convert(input_path, target, depth, settings, **kwargs)

    return locked


#: Container metadata key holding the job's digest: a rerun of a finished job finds its output done.
JOB_TAG_KEY = "comment"


def _job_tag(job: dict) -> str:
    digest = hashlib.sha256(json.dumps([PROGRESS_VERSION, job], sort_keys=True).encode()).hexdigest()
    return f"StereoCrafter3D job {digest[:32]}"


def output_job_tag(path: Path) -> str | None:
    """The job tag of a finished output (its container's JOB_TAG_KEY), None for any other file (or an unreadable
    one)."""
    try:
        with av.open(str(path)) as container:
            return {key.lower(): value for key, value in container.metadata.items()}.get(JOB_TAG_KEY)
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return None


def _finished_before(output: Path, work_dir: Path, job: dict, overwrite: bool) -> bool:
    """True when ``output`` is this job's finished output (nothing to do); a FileExistsError for another file
    there unless ``overwrite``."""
    if overwrite or not output.exists():
        return False
    if work_dir.is_dir() and not any(work_dir.iterdir()):
        work_dir.rmdir()  # made for this run just now
    if output_job_tag(output) == _job_tag(job):
        logger.info("%s is already converted from the same input and settings: nothing to do (overwrite to "
                    "convert it again).", output)  # fmt: skip
        return True
    raise FileExistsError(
        f"{output} already exists and is not this conversion's output (another file, or other inputs or settings): "
        "choose another output, or pass --overwrite (overwrite=True) to replace it."
    )


@_one_job_per_output
def convert_video(
    input_path: Path | str,
    output: Path | str,
    depth: Path | str | None = None,
    settings: ConvertSettings = ConvertSettings(),
    *,
    depth_model: DepthStage | None = None,
    inpaint: InpaintStage | None = None,
    device: torch.device | str | None = None,
    trim: TrimWindow | None = None,
    depth_trim: TrimWindow | None = None,
    save_depth: Path | str | None = None,
    on_progress: ProgressFn | None = None,
    on_chunk_done: Callable[[int, int], None] | None = None,
    interrupt: Callable[[], None] | None = None,
    on_pass_done: PassFn | None = None,
    overwrite: bool = False,
    scenes: Sequence[int] | None = None,
) -> Path:
    """Convert ``input_path`` into a stereo video, resuming an interrupted run of the same job.

    One run per output at a time (a second one raises :class:`~.job_lock.JobLockedError`). An existing output is
    kept: this job's finished output is returned as it is, any other file raises FileExistsError, unless
    ``overwrite``.

    Args:
        input_path: the 2D video (left eye). Its audio streams are carried over.
        output: the output file (.mp4, .mov, .m4v or .mkv), or an existing directory (the name is then the input
            stem plus :data:`OUTPUT_SUFFIXES` of the layout, .mp4).
        depth: a depth video with the same frame count, near = bright (``settings.warp.invert`` for far = bright);
            any size (resized to the frames), channels averaged, 8 or 16 bit. Exclusive with ``depth_model``.
        settings: splat, layout, chunking and encoding settings.
        depth_model: estimate the depth with DepthCrafter instead of reading a depth video.
        inpaint: fill the disocclusion holes with StereoCrafter (else ``settings.holes`` says: filled or black).
        device: where to splat (default: CUDA when available, else CPU). The models run where they are.
        trim: convert only this part of ``input_path`` (a ComfyUI VIDEO's trim window); the audio is cut to it.
        depth_trim: the part of ``depth`` that goes with it (same frame count as the trimmed input).
        save_depth: with ``depth_model``, also keep the estimated depth as a lossless 16-bit video (.mkv) there.
        on_progress: called as (stage, frames done, total frames) at the start, after each chunk and (estimated
            from the denoising steps) while the models run; never backwards within a stage.
        on_chunk_done: called with (segment index, frames done) after a segment is safely on disk (tests use it to
            interrupt a run).
        interrupt: called between chunks and before every denoising step; raise from it to stop (rerun to resume).
        on_pass_done: called with each pass's :class:`PassStats` when it completes (also logged at INFO).
        overwrite: replace an existing file at the output (or convert this job's finished output again).
        scenes: the hard cuts (first frames of new shots, from the converted part's first frame) instead of
            detecting them (``settings.detect_cuts``); ``[]`` is one shot. The cuts used are kept in the job state
            and written next to the output as ``<output stem>.scenes.json`` (:mod:`.video.scenes`).

    Returns:
        The path of the finished output file.
    """
    settings.validate()
    input_path = Path(input_path)
    depth_path = Path(depth) if depth is not None else None
    info = probe_video(input_path, trim)
    settings = comfort_limited(settings, info.width)
    _check_sources(info, depth_path, depth_model, settings, depth_trim)
    output = resolve_output_path(input_path, output, settings.layout)
    output_format(output)
    if settings.layout == "vr180" and output.suffix.lower() not in (".mp4", ".mov", ".m4v"):
        raise ValueError(f"{output.name}: VR180 output needs .mp4 or .mov (its 180° metadata is written in MP4 boxes).")
    if output.resolve() in (input_path.resolve(), depth_path.resolve() if depth_path else None):
        raise ValueError(f"{output}: the output would overwrite an input.")
    check_disparity_fits(settings.warp.max_disparity, settings.warp.disparity_unit, info.width)
    work_dir, partial = work_paths(output)
    _prepare_work_dir(work_dir)
    report = _Progress(on_progress, info.frame_count)
    device = (
        torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    if device.type == "cuda":
        from .warp.splat_cuda import cuda_splat_ready

        cuda_splat_ready()  # a first run builds the kernel in the background while the depth pass runs

    job = _job_record(input_path, depth_path, depth_model, inpaint, settings)
    trims = [None if t is None or t.is_whole else asdict(t) for t in (trim, depth_trim)]
    if any(trims):  # another part of the same files is another job
        job["trim"] = trims
    # The encoder actually used: a resume elsewhere (no NVENC there) starts over instead of mixing encoders' segments.
    job["encoder"] = asdict(segment_encoder(settings, info.bit_depth > 8))
    if scenes is not None:  # other cuts are another job
        job["scenes"] = check_cuts(scenes, info.frame_count, "scenes")
    if _finished_before(output, work_dir, job, overwrite):  # the whole job record is known from here on
        return output
    progress = _load_progress(work_dir, job)
    if progress is None:
        for stale in work_dir.iterdir():
            stale.unlink()
        progress = {"version": PROGRESS_VERSION, "job": job, "depth_range": None, "chunks": []}
    else:
        logger.info("resuming %s after %d finished segments.", output.name, len(progress["chunks"]))
    cuts = _shot_cuts(info, progress, settings, job.get("scenes"), work_dir, interrupt, report)
    segments = shot_segments(cuts, info.frame_count)
    write_scenes_file(scenes_path(output), cuts, info.frame_count, info.fps, "given" if scenes is not None else
                      "detected" if settings.detect_cuts else "none")  # fmt: skip
    per_shot = settings.depth_normalization == "shot"
    if depth_model is not None:
        depth_path = work_dir / DEPTH_FILE
        if progress["depth_range"] is None:
            ranges = ShotRangeAccumulator(segments, settings.depth_percentiles) if per_shot else None
            with _measured_pass("depth", info.frame_count, on_pass_done) as stats:
                bounds = _estimate_depth(info, depth_model, depth_path, settings, report, interrupt, stats, segments,
                                         ranges)  # fmt: skip
            progress["depth_range"] = list(bounds)
            progress["shot_ranges"] = ranges.finish() if ranges is not None else None
            progress["shot_medians"] = ranges.medians if ranges is not None else None
            _write_json(work_dir / "progress.json", progress)
    elif progress["depth_range"] is None:
        ranges = ShotRangeAccumulator(segments, settings.depth_percentiles) if per_shot else None
        progress["depth_range"] = list(depth_range(depth_path, settings.chunk_frames, depth_trim, ranges))
        # A depth video shorter than its header is named by the stereo pass, which reads both files in lockstep.
        progress["shot_ranges"] = ranges.finish(complete=False) if ranges is not None else None
        progress["shot_medians"] = ranges.medians if ranges is not None else None
        _write_json(work_dir / "progress.json", progress)
    bounds = tuple(progress["depth_range"])
    if bounds[1] - bounds[0] <= 1e-12 * max(1.0, abs(bounds[1])):
        logger.warning("the depth is constant: no parallax, the right view equals the left.")

    job_run = _StereoPass(info, depth_path, depth_model is not None, work_dir, progress, settings, bounds, device)
    job_run.depth_trim = depth_trim
    job_run.cuts, job_run.segments = cuts, segments
    job_run.shot_ranges = progress.get("shot_ranges") if per_shot else None
    if settings.convergence_mode == "shot":
        job_run.convergence = shot_convergence(progress["shot_ranges"], progress["shot_medians"])
    with _measured_pass("stereo", info.frame_count - job_run.done, on_pass_done) as stats:
        done = job_run.run(inpaint, report, on_chunk_done, interrupt, stats)
    if done != info.frame_count:
        logger.warning(
            "%s has %d frames, not the %d its header says; all were converted.", info.path.name, done, info.frame_count
        )
    segments = [(work_dir / chunk["file"], chunk["frames"]) for chunk in progress["chunks"]]
    with _disk_full_hint(partial):
        mux_segments(segments, info.fps, partial, output.suffix.lower(), info, {JOB_TAG_KEY: _job_tag(job)})
        if settings.layout == "vr180":  # players see 180° 3D by the spherical metadata, not the pixels
            inject_vr180(partial)
    os.replace(partial, output)
    if save_depth is not None and depth_model is not None:
        shutil.move(work_dir / DEPTH_FILE, save_depth)
    shutil.rmtree(work_dir)
    return output


def _estimate_depth(
    info: VideoInfo,
    stage: DepthStage,
    path: Path,
    settings: ConvertSettings,
    report: _Progress,
    interrupt: Callable[[], None] | None,
    stats: PassStats,
    segments: Sequence[tuple[int, int]] | None = None,
    shots: ShotRangeAccumulator | None = None,
) -> tuple[float, float]:
    """Run DepthCrafter over the whole input shot by shot (``segments``, [start, end) frames; default one shot),
    streaming its raw depth into a lossless file; returns the file's (min, max) and feeds ``shots``. Each shot is
    its own DepthCrafter stream: its windows start at the shot's first frame, none blends across a cut."""
    report("depth", 0)
    started = time.perf_counter()
    pipeline, run_settings = _loaded(stage.load(), stage.settings)
    stats.load_seconds = time.perf_counter() - started
    tmp = path.with_name("depth.tmp.mkv")
    writer = DepthFileWriter(tmp, info.width, info.height, info.fps)
    frames = read_frames(info.path, settings.chunk_frames, window=info.window)
    segments = list(segments or [(0, info.frame_count)])
    shot_steps = [type(pipeline).num_progress_steps(end - start, run_settings) for start, end in segments]
    steps = sum(shot_steps)
    per_window = run_settings.num_inference_steps
    steps_before = 0

    def step_done(window: int, step: int) -> None:
        report.fraction("depth", (steps_before + window * per_window + step + 1) / steps)

    with _disk_full_hint(tmp):
        for (start, end), shot_frames, shot_step_count in zip(
            segments, split_by_segments(frames, segments), shot_steps, strict=True
        ):
            shot = pipeline.stream(shot_frames, end - start, run_settings, progress=step_done, interrupt=interrupt)
            for depth in shot:
                writer.write(depth)
                if shots is not None:
                    shots.add(depth)
                report("depth", writer.frames_written)
            steps_before += shot_step_count
        writer.close()
    os.replace(tmp, path)
    del pipeline
    _release_memory()
    return writer.low, writer.high


def _loaded(result: Any, settings: Any) -> tuple[Any, Any]:
    """A stage's ``load()`` result as (pipeline, settings to run with). The host copies of weights that the load
    moved to the GPU are given back to the system first (see :func:`_release_memory`)."""
    _release_memory()
    return result if isinstance(result, tuple) else (result, settings)


def _release_memory() -> None:
    """Free what the last model left: Python garbage, CUDA's cached blocks, and the C heap's free pages.

    Weight tensors under glibc's mmap threshold (most of a UNet's) live on the heap; freed, they stay in the process
    (RSS) until ``malloc_trim``, so the stereo pass's models were loaded on top of the depth models' freed pages.
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    _trim_c_heap()


@functools.cache
def _libc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None on other C libraries, e.g. macOS, Windows, musl)."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _trim_c_heap() -> None:
    trim = _libc_malloc_trim()
    if trim is not None:
        trim(0)


def host_peak_bytes() -> int:
    """This process's peak resident memory so far, in bytes (0 where ``resource`` is missing: Windows)."""
    try:
        import resource
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux: KiB; macOS: bytes


@contextmanager
def _disk_full_hint(path: Path) -> Iterator[None]:
    """Re-raise "no space left on device" with what to do; other errors pass unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise OSError(
            errno.ENOSPC,
            f"disk full while writing {path}: free some space on that disk and rerun the same command; it resumes "
            "after the last finished segment (the output file is only created when complete)",
        ) from exc


class _StereoPass:
    """Pass 2: splat, optional inpainting, packing and segment encoding from where ``progress`` stopped."""

    def __init__(
        self,
        info: VideoInfo,
        depth_path: Path,
        depth_is_file: bool,
        work_dir: Path,
        progress: dict,
        settings: ConvertSettings,
        bounds: tuple[float, float],
        device: torch.device,
    ) -> None:
        self.info, self.work_dir, self.progress, self.settings = info, work_dir, progress, settings
        self.depth_path, self.depth_is_file = depth_path, depth_is_file
        self.bounds, self.device = bounds, device
        self.done = sum(chunk["frames"] for chunk in progress["chunks"])
        self.warned_odd = False
        self.depth_trim: TrimWindow | None = None  # the part of a depth video to read
        self.cuts: list[int] = []  # first frames of new shots: inpainting chunks restart there
        self.segments: list[tuple[int, int]] = [(0, info.frame_count)]
        self.shot_ranges: list[list[float]] | None = None  # per-shot depth ranges (None: the clip's ``bounds``)
        self.convergence: list[float] | None = None  # per-shot screen planes (None: settings.warp.convergence)
        self.model: object | None = None  # the inpainting model, once loaded

    def _splat(
        self, left: torch.Tensor, depth: torch.Tensor, bounds: tuple[float, float], first: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """splat_chunk of frames [first, first + n), frame by frame with automatic convergence (each frame its own
        screen plane; at 1080p and up the splat runs one frame per call anyway)."""
        if self.convergence is None:
            return splat_chunk(left, depth, self.settings, bounds, self.device)
        planes = frame_convergence(self.segments, self.convergence, first, left.shape[0],
                                   self.settings.shot_transition_frames)  # fmt: skip
        views = []
        for k in range(left.shape[0]):
            warp = replace(self.settings.warp, convergence=float(planes[k]))
            views.append(splat_chunk(left[k : k + 1], depth[k : k + 1], replace(self.settings, warp=warp), bounds,
                                     self.device))  # fmt: skip
        return torch.cat([v[0] for v in views]), torch.cat([v[1] for v in views])

    def _normalized(self, depth: torch.Tensor, first: int) -> tuple[torch.Tensor, tuple[float, float]]:
        """(depth, range to splat it with) of frames [first, first + n): with per-shot ranges the depth is
        normalised here frame by frame (eased across cuts) and splatted with the range 0..1."""
        if self.shot_ranges is None:
            return depth, self.bounds
        ranges = [tuple(r) for r in self.shot_ranges]
        bounds = frame_ranges(self.segments, ranges, first, depth.shape[0], self.settings.shot_transition_frames)
        return normalize_per_frame(depth, bounds), (0.0, 1.0)

    def _depth_chunks(self) -> Iterator[torch.Tensor]:
        """[n, H, W] depth chunks (a depth video's channels averaged at once, as the splat would: a third of the
        RAM while the chunk waits for its splat)."""
        chunk = self.settings.chunk_frames
        if self.depth_is_file:
            return read_depth_file(self.depth_path, chunk, start=self.done)
        frames = read_frames(self.depth_path, chunk, start=self.done, window=self.depth_trim)
        return (depth_channels_mean(chunk_frames) for chunk_frames in frames)

    def _inpaint_stream(
        self, stage: InpaintStage, report: _Progress, interrupt: Callable[[], None] | None, stats: PassStats
    ) -> InpaintStreamLike:
        from .inpaint.inpaint_model import check_inpaint_model, check_settings

        chunks = self.progress["chunks"]
        state = None
        if chunks and chunks[-1]["state"]:
            state = torch.load(self.work_dir / chunks[-1]["state"], map_location="cpu", weights_only=True)
        info = self.info
        started = time.perf_counter()
        pipeline, run_settings = _loaded(stage.load(), stage.settings)
        stats.load_seconds = time.perf_counter() - started
        model = check_inpaint_model(pipeline, "InpaintStage.load()")
        check_settings(model, run_settings)
        self.model = model
        stream = model.open_stream(
            info.frame_count, info.height, info.width, run_settings, stage.seed,
            progress=lambda step: report.fraction("stereo", step.fraction), interrupt=interrupt, state=state,
            cuts=self.cuts,
        )  # fmt: skip
        if stream.frames_out != self.done:
            raise ValueError(f"the inpainting state in {self.work_dir} does not match its segments; delete the folder.")
        return stream

    def run(
        self,
        inpaint: InpaintStage | None,
        report: _Progress,
        on_chunk_done: Callable[[int, int], None] | None,
        interrupt: Callable[[], None] | None,
        stats: PassStats,
    ) -> int:
        """Encode the segments not yet in ``progress``; returns the total frames converted."""
        report("stereo", self.done)
        if self.progress["chunks"] and self.done >= self.info.frame_count:
            return self.done  # killed between the last segment and the mux: nothing left to compute
        stream = self._inpaint_stream(inpaint, report, interrupt, stats) if inpaint is not None else None
        # The left views wait for their inpainted right views (about a chunk and a push): as uint8 where the source
        # is 8-bit (exact), a quarter of the RAM (~0.6 GB fewer at 1080p).
        eight_bit = self.info.bit_depth <= 8
        pending_left: list[torch.Tensor] = []

        def take_left(count: int) -> torch.Tensor:
            waited = _take(pending_left, count)
            return frames_from_8bit(waited) if eight_bit else waited

        timed = functools.partial(_timed_phase, stats.phase_seconds)
        frames_iter = read_frames(self.info.path, self.settings.chunk_frames, start=self.done, window=self.info.window)
        chunks = zip_longest(frames_iter, self._depth_chunks())
        position = self.done
        while True:
            with timed("read"):
                left, depth = next(chunks, (None, None))
            if left is None and depth is None:
                break
            if left is None or depth is None or left.shape[0] != depth.shape[0]:
                raise _ended_early(self.info, self.depth_path, position, left, depth)
            if interrupt is not None:
                interrupt()
            position += left.shape[0]
            with timed("splat"):
                depth, bounds = self._normalized(depth, position - left.shape[0])
                right, occlusion = self._splat(left, depth, bounds, position - left.shape[0])
            if stream is None:
                if self.settings.holes == "fill":  # no model fills them: the background beside each hole does
                    right = fill_holes(right.to(self.device), occlusion.to(self.device)).cpu()
                with timed("write"):
                    self._emit(left, right, None, report, on_chunk_done)
            else:
                pending_left.append(frames_to_8bit(left) if eight_bit else left)
                with timed("inpaint"):
                    right = stream.push(right, occlusion)
                if right.shape[0]:
                    with timed("write"):
                        self._emit(take_left(right.shape[0]), right, stream.state_dict(), report, on_chunk_done)
            del left, depth, right, occlusion  # free this chunk before the next one is decoded
        if stream is not None:
            with timed("inpaint"):
                right = stream.finish()
            if right.shape[0]:
                with timed("write"):
                    self._emit(take_left(right.shape[0]), right, None, report, on_chunk_done)
            model_stats = getattr(self.model, "stats", None)
            for phase, seconds in getattr(model_stats, "seconds", {}).items():
                stats.phase_seconds[f"inpaint:{phase}"] = seconds
        return self.done

    def _emit(
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        state: dict | None,
        report: _Progress,
        on_chunk_done: Callable[[int, int], None] | None,
    ) -> None:
        """Pack and encode frames [done, done + n) as the next segment, then record it (and the inpainting state
        that continues after it) in progress.json."""
        started = time.perf_counter()
        chunks = self.progress["chunks"]
        index = len(chunks)
        name = f"chunk_{index:05d}.mp4"
        state_name = f"chunk_{index:05d}.state.pt" if state is not None else None
        with _disk_full_hint(self.work_dir / name):
            packed_size = _write_segment(self.work_dir / name, left, right, self.info, self.settings)
            if state_name is not None:
                tmp = self.work_dir / (state_name + ".tmp")
                torch.save(state, tmp)
                os.replace(tmp, self.work_dir / state_name)
            previous_state = chunks[-1]["state"] if chunks else None
            chunks.append({"index": index, "start": self.done, "frames": left.shape[0], "file": name,
                           "state": state_name})  # fmt: skip
            _write_json(self.work_dir / "progress.json", self.progress)
        self._note_odd_size(packed_size)
        _trim_c_heap()  # each segment's frames, tiles and encoder buffers are freed now: give their pages back
        if previous_state:
            (self.work_dir / previous_state).unlink(missing_ok=True)
        self.done += left.shape[0]
        logger.debug("segment %d: %d frames in %.2f s", index, left.shape[0], time.perf_counter() - started)
        report("stereo", self.done)
        if on_chunk_done is not None:
            on_chunk_done(index, self.done)

    def _note_odd_size(self, packed_size: tuple[int, int]) -> None:
        height, width = packed_size
        if (height % 2 or width % 2) and not self.warned_odd:
            logger.info(
                "output frames are %dx%d; padded to even %dx%d for the encoder.",
                width, height, width + width % 2, height + height % 2,
            )  # fmt: skip
            self.warned_odd = True


@contextmanager
def _timed_phase(seconds: dict[str, float], phase: str) -> Iterator[None]:
    """Add the block's wall time to ``seconds[phase]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - started


def _ended_early(
    info: VideoInfo, depth_path: Path, position: int, left: torch.Tensor | None, depth: torch.Tensor | None
) -> ValueError:
    """The error for an input or depth video that ran out of frames at ``position`` (+ the chunk read), naming the
    one that is short: a truncated file whose header promises more frames must not blame the depth."""
    left_frames = position + (left.shape[0] if left is not None else 0)
    depth_frames = position + (depth.shape[0] if depth is not None else 0)
    if left_frames < depth_frames:
        return VideoReadError(
            f"{info.path}: only {left_frames} frames could be decoded, but its header says {info.frame_count}: the "
            "file is truncated or damaged. Re-export or re-download it, or cut it to the frames it has (e.g. ffmpeg "
            f"-i IN -frames:v {left_frames} -c copy OUT)."
        )
    return ValueError(
        f"the depth video {depth_path.name} ends after {depth_frames} frames, but {info.path.name} has more "
        f"({info.frame_count} by its header); they must match one to one (make the depth from the same clip, at the "
        "same frame rate)."
    )


def _take(pending: list[torch.Tensor], count: int) -> torch.Tensor:
    """Remove and return the first ``count`` frames of a list of [n, ...] chunks."""
    taken, have = [], 0
    while have < count:
        chunk = pending.pop(0)
        need = count - have
        if chunk.shape[0] > need:
            pending.insert(0, chunk[need:])
            chunk = chunk[:need]
        taken.append(chunk)
        have += chunk.shape[0]
    return torch.cat(taken)


def segment_encoder(settings: ConvertSettings, ten_bit: bool) -> Encoder:
    """The encoder of the job's segments (:func:`~.video.encoders.choose_encoder`, cached per process)."""
    anaglyph = settings.layout == "anaglyph"
    pix_fmt, hardware = settings.pix_fmt, settings.hw_encode
    return choose_encoder(settings.codec, settings.crf, ten_bit, pix_fmt, hardware, anaglyph=anaglyph)


def _write_segment(
    path: Path, left: torch.Tensor, right: torch.Tensor, info: VideoInfo, settings: ConvertSettings
) -> tuple[int, int]:
    """Pack the views ([n, H, W, 3] each) and encode them as one segment to ``path``, via a temporary name so that a
    listed segment is always complete. Returns the packed frame size (height, width)."""
    tmp = path.with_name(path.stem + ".tmp.mp4")
    writer = None
    for start in range(0, left.shape[0], COMPOSE_FRAMES):
        packed = compose(left[start : start + COMPOSE_FRAMES], right[start : start + COMPOSE_FRAMES], settings)
        if writer is None:
            size = (packed.shape[1], packed.shape[2])
            ten_bit = info.bit_depth > 8
            encoder = segment_encoder(settings, ten_bit)
            writer = SegmentWriter(tmp, size[1], size[0], info.fps, settings.codec, settings.crf, ten_bit, encoder)
        writer.write(packed)
    writer.close()
    os.replace(tmp, path)
    return size
