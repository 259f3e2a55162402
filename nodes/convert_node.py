"""ConvertVideoTo3D: a whole video file → stereo video file in the output folder, chunk by chunk (bounded RAM)."""

from __future__ import annotations

import os
from pathlib import Path

import comfy.model_management as model_management
import folder_paths
from comfy_api.latest import Input, io, ui

from ..stereocrafter.compose.anaglyph import ANAGLYPH_METHODS
from ..stereocrafter.convert import (
    HOLE_MODES,
    OUTPUT_LAYOUTS,
    OUTPUT_SUFFIXES,
    ConvertSettings,
    DepthStage,
    InpaintStage,
    convert_video,
    work_paths,
)
from ..stereocrafter.depth.depth_pipeline import (
    DEPTH_PRESETS,
    DepthSettings,
    VideoDepthPipeline,
    processing_size,
    working_memory_bytes,
)
from ..stereocrafter.inpaint.inpaint_model import InpaintModel, InpaintOptions, check_inpaint_model
from ..stereocrafter.video.scenes import parse_cuts
from ..stereocrafter.video.video_io import CODECS, probe_video
from ..stereocrafter.warp.stereo_warp import WarpSettings
from . import comfy_runtime
from .depth_nodes import DepthCrafterModel, fit_depth_to_gpu
from .inpaint_nodes import StereoCrafterModel
from .managed_model import ManagedPipeline
from .safe_paths import check_output_file, output_folder, split_annotation
from .schema_fields import extra_fields
from .splat_node import parallax_inputs
from .video_inputs import VideoSource, video_source

CATEGORY = "StereoCrafter3D"
# GPU working memory reserved when the inpainting model loads (as StereoInpaint at its defaults).
_INPAINT_WORKING_BYTES = 6 * 1024**3


def video_file(video: Input.Video | None, video_path: str, name: str) -> VideoSource:
    """The file and trim window for a VIDEO input or a path string (a file in ComfyUI's input folder, never one
    outside ComfyUI's folders unless the operator allowed it); see :func:`.video_inputs.video_source`."""
    input_dir, temp_dir = folder_paths.get_input_directory(), folder_paths.get_temp_directory()
    output_dir = folder_paths.get_output_directory()
    return video_source(video, video_path, name, Path(input_dir), Path(temp_dir), Path(output_dir))


#: The first choice of the ``video_file`` / ``depth_video_file`` lists: no file from the list (a VIDEO link or a
#: path string instead).
NO_FILE = "(none)"


def input_videos() -> list[str]:
    """The video files at the top of ComfyUI's input folder, sorted, as core Load Video lists them (by MIME type;
    files in sub-folders are given by the path strings instead)."""
    input_dir = folder_paths.get_input_directory()
    try:
        names = os.listdir(input_dir)
    except FileNotFoundError:
        return []
    files = [name for name in names if os.path.isfile(os.path.join(input_dir, name))]
    return sorted(folder_paths.filter_files_content_types(files, ["video"]))


def listed_file_error(choice: str | None, input_name: str) -> str | None:
    """Why a ``video_file``-like combo value cannot be used (not one of :func:`input_videos`; ``name [input]``
    accepted, as core loaders take it), or None when it can (or is :data:`NO_FILE`, or comes from a link)."""
    if choice is None or choice == NO_FILE:
        return None
    name, annotation = split_annotation(str(choice).strip())
    if annotation in (None, "input") and name in input_videos():
        return None
    return (
        f"{input_name}: {choice!r} is not a video in ComfyUI's input folder: pick one from the list (or upload "
        f"one), or set {input_name} to {NO_FILE} and give a file in a sub-folder of the input folder as "
        f"{input_name.removesuffix('_file')}_path (e.g. clips/my_clip.mp4)."
    )


def chosen_video(video: Input.Video | None, choice: str, path: str, name: str) -> VideoSource | None:
    """The one source of the ``name`` video: the VIDEO link ``name``, the ``name_file`` list or the ``name_path``
    string; None when none is given. Two at once are refused (which one is meant is not clear), as is a list value
    that is not in the list (see :func:`listed_file_error`)."""
    given = [
        label
        for label, used in (
            (f"{name} (link)", video is not None),
            (f"{name}_file", choice != NO_FILE),
            (f"{name}_path", bool(path.strip())),
        )
        if used
    ]
    if len(given) > 1:
        raise ValueError(
            f"{' and '.join(given)} are both given; use one of them: disconnect {name}, set {name}_file to "
            f"{NO_FILE}, or clear {name}_path."
        )
    if not given:
        return None
    if choice != NO_FILE:
        error = listed_file_error(choice, f"{name}_file")
        if error:
            raise ValueError(error)
        # Resolved like a path string, so a listed symlink leading out of the input folder is still refused.
        return video_file(None, choice, name)
    return video_file(video, path, name)


def _file_stamp(value: str, name: str) -> tuple[str, float] | None:
    """(file, modification time) of a list value or path string, so a file replaced under the same name (a new
    upload) converts again, as core Load Video fingerprints its file; None when nothing usable is named."""
    if not isinstance(value, str) or value in ("", NO_FILE) or not value.strip():
        return None
    try:
        path = video_file(None, value, name).path
        return str(path), path.stat().st_mtime
    except (OSError, ValueError):
        return None  # execute reports the bad name


def output_path(prefix: str, source: Path, layout: str) -> tuple[Path, str]:
    """(file, subfolder) in the output folder: ``<prefix>_<source stem><layout suffix>[_NNNNN].mp4``, the first
    name that is not a finished file, so an interrupted conversion of the same video resumes into its work folder.
    A prefix leading out of the output folder is refused (:func:`.safe_paths.output_folder`)."""
    output_dir = Path(folder_paths.get_output_directory())
    folder, name, subfolder = output_folder(prefix, output_dir)
    base = f"{name}_{source.stem}{OUTPUT_SUFFIXES[layout]}"
    for counter in range(100000):
        candidate = folder / (f"{base}.mp4" if counter == 0 else f"{base}_{counter:05d}.mp4")
        if not candidate.exists() or work_paths(candidate)[0].exists():
            check_output_file(candidate, output_dir)
            return candidate, subfolder
    raise ValueError(f"too many outputs named {base}*.mp4 in {folder}; change filename_prefix.")


def _load_stage(managed: ManagedPipeline, working_bytes: int) -> VideoDepthPipeline | InpaintModel:
    device = managed.load(working_bytes)
    pipeline = managed.pipeline
    if isinstance(pipeline, VideoDepthPipeline):
        pipeline.device = device
    return pipeline


class ConvertVideoTo3D(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SC3D_ConvertVideoTo3D",
            **extra_fields("SC3D_ConvertVideoTo3D"),
            display_name="Convert Video to 3D (streaming)",
            category=CATEGORY,
            description=(
                "Converts a whole video file of any length to a stereo video in the output folder, chunk by chunk, "
                "so memory stays flat: DepthCrafter depth (or your depth video) → ForwardSplat → StereoCrafter or "
                "StereoCrafter2 inpainting (optional) → SBS/TB/anaglyph, with the source's audio. Depth windows and "
                "inpainting chunks carry across chunks, so there are no seams. Interrupted runs resume when queued "
                "again."
            ),
            inputs=[
                io.Video.Input("video", optional=True, tooltip="The 2D video (Load Video). Or use video_path."),
                io.String.Input(
                    "video_path",
                    default="",
                    tooltip="Instead of video: a file in ComfyUI's input folder (sub-folders allowed, e.g. "
                    "clips/a.mp4, or a.mp4 [input]); other folders only where the server allows them "
                    "(STEREOCRAFTER3D_INPUT_ROOTS).",
                ),
                DepthCrafterModel.Input(
                    "depthcrafter", optional=True, tooltip="From LoadDepthCrafter: estimate the depth."
                ),
                io.Video.Input(
                    "depth_video",
                    optional=True,
                    tooltip="Your own depth video instead of DepthCrafter (near = bright, same frame count).",
                ),
                io.String.Input(
                    "depth_video_path", default="", tooltip="Instead of depth_video: a file in input/, as video_path."
                ),
                StereoCrafterModel.Input(
                    "stereocrafter",
                    optional=True,
                    tooltip="From LoadStereoCrafter or LoadStereoCrafter2: inpaint the holes. Else they are filled or "
                    "left black (holes).",
                ),
                io.Combo.Input(
                    "layout",
                    options=list(OUTPUT_LAYOUTS),
                    default="full SBS",
                    tooltip="Frame packing for 3D TVs/headsets, or a red-cyan anaglyph.",
                ),
                io.Combo.Input(
                    "anaglyph_method",
                    options=list(ANAGLYPH_METHODS),
                    default="dubois",
                    tooltip="Anaglyph colour method (layout anaglyph only).",
                ),
                *parallax_inputs(),
                io.Boolean.Input("invert_depth", default=False, tooltip="Your depth video has far = bright."),
                io.Int.Input(
                    "depth_steps",
                    default=DEPTH_PRESETS["depthcrafter"]["num_inference_steps"],
                    min=1,
                    max=50,
                    tooltip="DepthCrafter steps (DepthCrafter 1.0.1's settings: no guidance, 110-frame windows).",
                ),
                io.Int.Input(
                    "inpaint_steps",
                    default=8,
                    min=1,
                    max=50,
                    tooltip="Inpainting steps (StereoCrafter's reference: 8, StereoCrafter2's: 10).",
                ),
                io.Int.Input("seed", default=42, min=0, max=2**31 - 1, tooltip="Noise seed of both models."),
                io.Combo.Input(
                    "codec", options=list(CODECS), default="h264", tooltip="H.264 plays anywhere; H.265 is smaller."
                ),
                io.Int.Input("crf", default=18, min=0, max=51, tooltip="Quality, lower is better."),
                io.Int.Input(
                    "chunk_frames",
                    default=16,
                    min=1,
                    max=512,
                    tooltip="Frames in RAM at a time (and the resume step). Without models a 16-frame chunk peaks at "
                    "about 3 GiB of RAM at 1080p and 8 GiB at 4K; 4 keeps 4K under 4 GiB.",
                ),
                io.String.Input(
                    "filename_prefix",
                    default="stereo3d/converted",
                    tooltip="Output file name start, under output/ (sub-folders allowed).",
                ),
                io.Combo.Input(
                    "holes",
                    options=list(HOLE_MODES),
                    default="fill",
                    optional=True,
                    tooltip="Without stereocrafter: fill the holes from the background beside them (no model, "
                    "fast) or leave them black.",
                ),
                io.String.Input(
                    "scenes",
                    default="",
                    optional=True,
                    tooltip="Hard cuts (first frames of new shots, e.g. '120, 348'): depth windows, inpainting chunks "
                    "and the depth range restart there. Empty: found automatically (PySceneDetect); 'none': one shot.",
                ),
                # Last, after every older widget: workflows saved before these lists load with the same widget order.
                io.Combo.Input(
                    "video_file",
                    options=[NO_FILE, *input_videos()],
                    default=NO_FILE,
                    upload=io.UploadType.video,
                    optional=True,
                    tooltip="Instead of video: a video in ComfyUI's input folder (or upload one). For one in a "
                    "sub-folder use video_path.",
                ),
                io.Combo.Input(
                    "depth_video_file",
                    options=[NO_FILE, *input_videos()],
                    default=NO_FILE,
                    upload=io.UploadType.video,
                    optional=True,
                    tooltip="Instead of depth_video: your depth video from ComfyUI's input folder (or upload one); "
                    "sub-folders: depth_video_path.",
                ),
            ],
            outputs=[io.String.Output(display_name="path", tooltip="The written stereo video file.")],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, video_file: str | None = NO_FILE, depth_video_file: str | None = NO_FILE) -> bool | str:
        """The list values must be files of the list (ComfyUI skips its own list check for inputs named here, so
        ``name [input]`` passes as core Load Video accepts it); a link gives None here and is checked in execute."""
        for value, name in ((video_file, "video_file"), (depth_video_file, "depth_video_file")):
            error = listed_file_error(value, name)
            if error:
                return error
        return True

    @classmethod
    def fingerprint_inputs(
        cls,
        video_file: str = NO_FILE,
        depth_video_file: str = NO_FILE,
        video_path: str = "",
        depth_video_path: str = "",
        **_other: object,
    ) -> tuple:
        """The named files' modification times (with the other inputs, ComfyUI's cache key): a file replaced under
        the same name converts again."""
        return tuple(
            _file_stamp(value, name)
            for value, name in (
                (video_file, "video"),
                (video_path, "video"),
                (depth_video_file, "depth_video"),
                (depth_video_path, "depth_video"),
            )
        )

    @classmethod
    def execute(
        cls,
        video_path: str,
        depth_video_path: str,
        layout: str,
        anaglyph_method: str,
        max_disparity: float,
        disparity_unit: str,
        convergence: float,
        invert_depth: bool,
        depth_steps: int,
        inpaint_steps: int,
        seed: int,
        codec: str,
        crf: int,
        chunk_frames: int,
        filename_prefix: str,
        video: Input.Video | None = None,
        depthcrafter: ManagedPipeline | None = None,
        depth_video: Input.Video | None = None,
        stereocrafter: ManagedPipeline | None = None,
        holes: str = "fill",
        scenes: str = "",
        video_file: str = NO_FILE,
        depth_video_file: str = NO_FILE,
    ) -> io.NodeOutput:
        source_video = chosen_video(video, video_file, video_path, "video")
        if source_video is None:
            raise ValueError("connect a video (Load Video), pick one in video_file (or upload one) or give video_path.")
        source = source_video.path
        depth_source = chosen_video(depth_video, depth_video_file, depth_video_path, "depth_video")
        depth = depth_source.path if depth_source is not None else None
        if depth is not None and depthcrafter is not None:
            raise ValueError("connect either depthcrafter or a depth video, not both.")
        if depth_source is not None and (source_video.trim or depth_source.trim):
            frames = probe_video(source, source_video.trim).frame_count
            depth_frames = probe_video(depth, depth_source.trim).frame_count
            if frames != depth_frames:
                raise ValueError(
                    f"depth_video: {depth_frames} frames, but the video has {frames} (a trim window applies to "
                    "one or both): trim both the same way (Video Slice with the same start_time and duration)."
                )
        if depth is None and depthcrafter is None:
            raise ValueError(
                "connect depthcrafter (LoadDepthCrafter) or a depth video (depth_video, depth_video_file or "
                "depth_video_path)."
            )
        settings = ConvertSettings(
            warp=WarpSettings(max_disparity, disparity_unit, convergence, invert_depth),
            layout=layout,
            anaglyph_method=anaglyph_method,
            chunk_frames=chunk_frames,
            codec=codec,
            crf=crf,
            holes=holes,
        )
        depth_stage = None
        if depthcrafter is not None:
            # DepthCrafter 1.0.1's sampling (VideoDepth's defaults); a guidance scale > 1 would run two passes.
            depth_settings = DepthSettings.preset(
                "depthcrafter", num_inference_steps=depth_steps, seed=seed, batch_cfg=False
            )
            info = probe_video(source, source_video.trim)
            size = processing_size(info.height, info.width, depth_settings.max_res)
            frames = info.frame_count or depth_settings.window_size
            dtype = depthcrafter.pipeline.dtype
            working = working_memory_bytes(size, frames, depth_settings, dtype)

            def load_depth() -> tuple[VideoDepthPipeline, DepthSettings]:
                pipeline = _load_stage(depthcrafter, working)
                return pipeline, fit_depth_to_gpu(pipeline.device, size, frames, depth_settings, dtype)

            depth_stage = DepthStage(load_depth, depth_settings, depthcrafter.model_id)
        inpaint_stage = None
        if stereocrafter is not None:
            model = check_inpaint_model(stereocrafter.pipeline, "stereocrafter")
            inpaint_stage = InpaintStage(
                lambda: _load_stage(stereocrafter, _INPAINT_WORKING_BYTES),
                model.settings_from(InpaintOptions(steps=inpaint_steps)),
                seed,
                stereocrafter.model_id,
            )
        output, subfolder = output_path(filename_prefix, source, layout)
        passes = 2 if depth_stage is not None else 1
        bars: list = []

        def on_progress(stage: str, done: int, total: int) -> None:
            # One bar in frames over both passes: the depth pass's frames, then the stereo pass's. Shot detection
            # (stage "scenes", a quick decode before them that a resume or a scenes list skips) is not on the bar,
            # so the bar never moves back.
            if stage == "scenes":
                return
            if not bars:
                bars.append(comfy_runtime.progress_reporter(passes * total))
            before = total if stage == "stereo" and passes == 2 else 0
            bars[0](before + done, passes * total)

        convert_video(
            source,
            output,
            depth,
            settings,
            depth_model=depth_stage,
            inpaint=inpaint_stage,
            device=comfy_runtime.compute_device(),
            trim=source_video.trim,
            depth_trim=depth_source.trim if depth_source is not None else None,
            on_progress=on_progress,
            interrupt=model_management.throw_exception_if_processing_interrupted,
            scenes=parse_cuts(scenes, "scenes"),
        )
        saved = ui.SavedResult(output.name, subfolder, io.FolderType.output)
        return io.NodeOutput(str(output), ui=ui.PreviewVideo([saved]))
