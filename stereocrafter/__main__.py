"""Command line: ``python -m stereocrafter INPUT -o OUTPUT [--depth DEPTH_VIDEO] [options]`` (see ``--help``).

Without ``--depth`` the depth comes from DepthCrafter; the holes of the right view are filled by StereoCrafter
unless ``--no-inpaint``. Weights are read from a models folder in ComfyUI's layout (``--models``, default
:func:`~stereocrafter.model_sources.default_models_root`), downloaded there with ``--download``.

Exit status: 0 done, 1 conversion error (message logged), 2 bad arguments, 130 interrupted (rerun to resume).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .convert import OUTPUT_LAYOUTS, ConvertSettings, DepthStage, InpaintStage, PassStats, ProgressFn, convert_video
from .model_files import ModelFilesError
from .model_sources import (
    DEPTH_ANYTHING,
    DEPTHCRAFTER,
    STEREOCRAFTER,
    STEREOCRAFTER2,
    SVD,
    WAN_VACE_BASE,
    MissingModelsError,
    ModelSource,
    default_models_root,
    find_model_dirs,
)
from .video.encoders import PIX_FMTS
from .video.scenes import read_scenes_file
from .video.video_io import VideoReadError, probe_video
from .warp.stereo_warp import WarpSettings

if TYPE_CHECKING:
    from .depth.depth_pipeline import VideoDepthPipeline
    from .inpaint.inpaint_pipeline import StereoInpaintPipeline

logger = logging.getLogger("stereocrafter")

#: Short CLI names for the layouts (the library's names work too).
LAYOUT_ALIASES: dict[str, str] = {
    "sbs": "full SBS",
    "half-sbs": "half SBS",
    "tb": "full TB",
    "half-tb": "half TB",
    "cross-sbs": "cross-eyed full SBS",
    "cross-half-sbs": "cross-eyed half SBS",
    "anaglyph": "anaglyph",
    "vr180": "vr180",
}
PRECISIONS = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
#: Feed-forwards in row chunks: the same math, less GPU memory (as the VideoDepth node).
DEPTH_FF_CHUNK_ROWS = 1 << 16
#: ``--compile auto`` compiles from this clip length on (about a minute of video): compiling costs about 6 minutes
#: on a cold cache (bench/README.md) and saves about 0.7 s per 1080p frame; Inductor's disk cache makes later runs
#: compile in about a minute.
COMPILE_AUTO_MIN_FRAMES = 1500
#: --tiles bound, as InpaintSettings.max_tiles: more tiles are mostly overlap and never finish.
MAX_TILES = 64
INDUCTOR_CACHE_DIR = Path("~/.cache/stereocrafter3d/inductor")
#: Sub-folder of the Wan base folder where StereoCrafter2's empty-prompt embedding is cached.
PROMPT_CACHE_FOLDER = ".stereocrafter3d"


def _layout(value: str) -> str:
    if value in LAYOUT_ALIASES:
        return LAYOUT_ALIASES[value]
    if value in OUTPUT_LAYOUTS:
        return value
    raise argparse.ArgumentTypeError(f"unknown layout {value!r}; choose from {', '.join(LAYOUT_ALIASES)}.")


def _tiles(value: str) -> tuple[int, int] | None:
    if value == "auto":
        return None
    try:
        rows, _, cols = value.partition("x")
        counts = (int(rows), int(cols or rows))
    except ValueError:
        counts = (0, 0)
    if min(counts) < 1:
        raise argparse.ArgumentTypeError(f"tiles must be auto, N or RxC (e.g. 2 or 2x3), got {value!r}.")
    if counts[0] * counts[1] > MAX_TILES:
        raise argparse.ArgumentTypeError(
            f"tiles {value!r} is {counts[0] * counts[1]} tiles; at most {MAX_TILES} in all (e.g. 2, 2x3 or 8x8), "
            "or auto."
        )
    return counts


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m stereocrafter``."""
    parser = argparse.ArgumentParser(
        prog="python -m stereocrafter",
        description="Convert a 2D video into a stereo 3D video (SBS, TB or anaglyph): DepthCrafter depth (or your "
        "depth video), forward splatting, StereoCrafter inpainting. Interrupted runs resume from the last finished "
        "segment when rerun with the same arguments.",
    )
    parser.add_argument("input", type=Path, help="the 2D video (used as the left eye); its audio is kept")
    parser.add_argument(
        "-o", "--output", required=True, help="output file (.mp4/.mov/.mkv), or a directory (a trailing / creates it)"
    )
    group = parser.add_argument_group("depth")
    group.add_argument("--depth", type=Path, help="use this depth video (near = bright, same frame count as INPUT) "
                       "instead of estimating depth with DepthCrafter")  # fmt: skip
    group.add_argument("--invert-depth", action="store_true", help="the --depth video has far = bright")
    group.add_argument("--depth-preset", choices=["depthcrafter", "stereocrafter"], help="DepthCrafter sampling: "
                       "depthcrafter (default: DepthCrafter 1.0.1's own 5 steps, no guidance, 110-frame windows; "
                       "about 3.8x less work) or stereocrafter (8 steps, guidance 1.2, 70-frame windows; the "
                       "default with --faithful)")  # fmt: skip
    group.add_argument("--depth-steps", type=int, default=None, help="DepthCrafter denoising steps (default: the "
                       "preset's, 5 or 8)")  # fmt: skip
    group.add_argument("--depth-max-res", type=int, default=1024, help="DepthCrafter processing size (default 1024)")
    group.add_argument("--save-depth", type=Path, help="also keep the estimated depth as a 16-bit .mkv video")
    group.add_argument("--depth-model", default="depthcrafter", choices=["depthcrafter", "depth-anything"],
                       help="without --depth: DepthCrafter (default; video diffusion, ~6 GB of weights with SVD) or "
                       "Depth Anything V2 Small (per frame, ~100 MB, stabilised over time)")  # fmt: skip
    group.add_argument("--depth-range", default="shot", choices=["shot", "clip"], help="shot (default): each "
                       "shot's 0.5-99.5th depth percentiles, eased over 12 frames after a cut; clip: the "
                       "reference's min-max over the whole clip")  # fmt: skip
    group.add_argument("--scenes", help="the hard cuts instead of detecting them: a file of frame numbers (first "
                       "frames of new shots) or a .scenes.json this converter wrote; 'none': one shot")  # fmt: skip
    group.add_argument("--cut-threshold", type=float, default=27.0, help="shot detection sensitivity "
                       "(PySceneDetect ContentDetector, default 27; lower finds more cuts)")  # fmt: skip
    group = parser.add_argument_group("stereo")
    group.add_argument("--layout", type=_layout, default="full SBS", help="sbs (default), half-sbs, tb, "
                       "half-tb, cross-sbs, cross-half-sbs, anaglyph, vr180 (180° equirectangular SBS with "
                       "spherical metadata, for headsets and YouTube)")  # fmt: skip
    group.add_argument("--vr180-fov", type=float, default=90.0, help="vr180: the picture's horizontal field of "
                       "view in degrees (default 90; larger = a bigger screen)")  # fmt: skip
    group.add_argument("--anaglyph-method", default="dubois", choices=["dubois", "color", "half-color", "gray"])
    group.add_argument("--max-disparity", type=float, default=20.0, help="largest shift (default 20)")
    group.add_argument("--disparity-unit", default="pixels", choices=["pixels", "percent"],
                       help="unit of --max-disparity: pixels or percent of the width")  # fmt: skip
    group.add_argument("--convergence", type=float, default=0.5, help="depth on the screen plane, 0..1")
    group.add_argument("--auto-convergence", action="store_true", help="put the screen plane at each shot's median "
                       "depth (eased across cuts) instead of --convergence")  # fmt: skip
    group.add_argument("--max-parallax", type=float, metavar="PERCENT", help="comfort limit: total parallax "
                       "(nearest to farthest) at most this %% of the width, lowering --max-disparity")  # fmt: skip
    group = parser.add_argument_group("inpainting")
    group.add_argument("--no-inpaint", action="store_true", help="no StereoCrafter: the holes are filled as --holes "
                       "says (no model)")  # fmt: skip
    group.add_argument("--holes", default="fill", choices=["fill", "black"], help="with --no-inpaint: fill the "
                       "holes from the background beside them (default) or leave them black")  # fmt: skip
    group.add_argument("--inpaint-model", default="stereocrafter", choices=["stereocrafter", "stereocrafter2"],
                       help="stereocrafter (default: v1, SVD UNet, fp16) or stereocrafter2 (Wan2.1-VACE-14B "
                       "transformer, bf16; --stereocrafter2 and --wan-base folders)")  # fmt: skip
    group.add_argument("--inpaint2-weights", default="bf16", choices=["bf16", "fp8", "int8"], help="stereocrafter2: "
                       "transformer weights bf16 (faithful), fp8 or int8 (torchao): half the memory")  # fmt: skip
    group.add_argument("--inpaint2-vae-tiling", default="auto", choices=["auto", "off", "on"], help="stereocrafter2: "
                       "the Wan VAE on whole frames (off, the reference), in tiles (on: less GPU memory, pixels change "
                       "a little), or tiles only when whole frames do not fit the GPU (auto, default)")  # fmt: skip
    group.add_argument("--inpaint2-low-cpu-mem", default="auto", choices=["auto", "on", "off"], help="stereocrafter2 "
                       "with its blocks streamed from the CPU: pin each block as it moves (on: host RAM about the "
                       "weights once, slower copies) or keep pinned copies (off: about twice); auto: on when the free "
                       "RAM is under twice the weights")  # fmt: skip
    group.add_argument("--inpaint-steps", type=int, default=None, help="denoising steps (default: stereocrafter 8, "
                       "stereocrafter2 10)")  # fmt: skip
    group.add_argument("--tiles", type=_tiles, default=None, help="spatial tiles: auto (default: stereocrafter from "
                       "the memory budget, stereocrafter2 2x2), N or RxC")  # fmt: skip
    group = parser.add_argument_group("models")
    group.add_argument("--models", type=Path, default=None, help="models folder in ComfyUI's layout (default: "
                       "$STEREOCRAFTER3D_MODELS, ComfyUI's models/ when run from its custom_nodes, else "
                       "~/.cache/stereocrafter3d/models)")  # fmt: skip
    group.add_argument("--depthcrafter", help="folder name (in MODELS/depthcrafter) or path of DepthCrafter")
    group.add_argument("--depth-anything", help="folder name (in MODELS/depth_anything) or path of Depth Anything")
    group.add_argument("--stereocrafter", help="folder name (in MODELS/stereocrafter) or path of StereoCrafter")
    group.add_argument("--svd", help="folder name (in MODELS/diffusers) or path of SVD xt 1.1")
    group.add_argument("--stereocrafter2", help="folder name (in MODELS/stereocrafter) or path of the StereoCrafter2 "
                       "transformer")  # fmt: skip
    group.add_argument("--wan-base", help="folder name (in MODELS/diffusers) or path of Wan2.1-VACE-14B-diffusers "
                       "(its vae/, text_encoder/, tokenizer/)")  # fmt: skip
    group.add_argument("--download", action="store_true", help="download missing weights from Hugging Face")
    group.add_argument("--precision", default="auto", choices=["auto", *PRECISIONS],
                       help="model dtype (auto: fp16 on a GPU, bf16 for stereocrafter2; fp32 on the CPU)")  # fmt: skip
    group.add_argument("--seed", type=int, default=42, help="noise seed of both models (default 42)")
    group.add_argument(
        "--compile",
        nargs="?",
        const="on",
        default="auto",
        choices=["auto", "on", "off"],
        help="torch.compile both models (CUDA with Triton only): faster on long videos, the first chunks compile for "
        f"minutes, output differs by fp16 rounding only. auto (default): from {COMPILE_AUTO_MIN_FRAMES} frames on; "
        "--compile alone = on",
    )
    group.add_argument(
        "--gpu-memory",
        type=float,
        metavar="GIB",
        help="GPU memory the models may use (default: what is free); offloading, chunks and tiles are chosen to fit",
    )
    group.add_argument(
        "--faithful",
        action="store_true",
        help="the reference's numerics in both models (StereoCrafter's depth preset with two CFG passes and fp32 VAE "
        "encode in DepthCrafter; "
        "StereoCrafter's guidance 1.01, crop, no composite, discarded chunk overlaps): slower, for comparisons",
    )
    group = parser.add_argument_group("output")
    group.add_argument("--codec", default="h264", choices=["h264", "h265"])
    group.add_argument("--crf", type=int, default=18, help="quality, 0..51, lower is better (default 18)")
    group.add_argument("--pix-fmt", choices=list(PIX_FMTS), help="encoder pixel format (default yuv420p; yuv444p "
                       "for anaglyphs; 10-bit for 10-bit sources); 4:4:4 does not play on many TVs/phones")  # fmt: skip
    group.add_argument("--hw-encode", default="auto", choices=["auto", "on", "off"], help="NVIDIA NVENC encoding: "
                       "auto (default: when it works here, else x264/x265), on (required), off")  # fmt: skip
    group.add_argument(
        "--chunk-frames",
        type=int,
        default=16,
        help="frames per chunk (memory, resume step); at 4K, 4 keeps RAM under 4 GiB",
    )
    group.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing file at the output (without it such a file is refused, and a finished output of "
        "the same job is left as it is)",
    )
    group = parser.add_argument_group("parallel (stereocrafter/parallel.py: shot-aligned parts, joined in order)")
    group.add_argument("--gpus", help="one worker per GPU: all, N (the first N) or a list such as 0,2")
    group.add_argument("--workers", type=int, help="worker processes without --gpus (CPU), or Ray actors with --ray")
    group.add_argument("--ray", metavar="ADDRESS", help="run the parts on a Ray cluster (auto, HOST:6379, "
                       "ray://HOST:10001; local: a new local one); paths must be the same on every node")  # fmt: skip
    group.add_argument("--part-frames", type=int, default=1000, help="frames per part: whole shots are grouped "
                       "until a part has this many (default 1000)")  # fmt: skip
    group.add_argument("--split-shots", type=int, metavar="FRAMES", help="also split shots longer than this inside "
                       "the shot (not seam-free: depth windows and range restart there)")  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="log every segment")
    parser.add_argument(
        "--stats", type=Path,
        help="write each pass's time, its parts' seconds and GPU memory peaks here as JSON (the inpainting then "
        "synchronises the GPU around each of its phases, so their seconds are exact)",
    )  # fmt: skip
    return parser


def _settings(args: argparse.Namespace) -> ConvertSettings:
    warp = WarpSettings(
        max_disparity=args.max_disparity,
        disparity_unit="percent of width" if args.disparity_unit == "percent" else "pixels",
        convergence=args.convergence,
        invert=args.invert_depth,
    )
    return ConvertSettings(
        warp=warp,
        layout=args.layout,
        anaglyph_method=args.anaglyph_method,
        chunk_frames=args.chunk_frames,
        codec=args.codec,
        crf=args.crf,
        holes=args.holes,
        depth_normalization=args.depth_range,
        convergence_mode="shot" if args.auto_convergence else "fixed",
        max_parallax_percent=args.max_parallax,
        cut_threshold=args.cut_threshold,
        pix_fmt=args.pix_fmt,
        vr180_fov=args.vr180_fov,
        hw_encode=args.hw_encode,
    )


def _scenes(args: argparse.Namespace) -> list[int] | None:
    """The cuts --scenes gives (None: detect them)."""
    if args.scenes is None:
        return None
    return [] if args.scenes.lower() == "none" else read_scenes_file(args.scenes)


def _model_dirs(args: argparse.Namespace) -> dict[ModelSource, Path]:
    """The folders of the models the arguments need (downloaded with --download); without it every missing one is
    named in one MissingModelsError."""
    depthcrafter = args.depth is None and args.depth_model == "depthcrafter"
    v1 = not args.no_inpaint and args.inpaint_model == "stereocrafter"
    v2 = not args.no_inpaint and args.inpaint_model == "stereocrafter2"
    wanted = [(SVD, args.svd)] if depthcrafter or v1 else []
    wanted += [(DEPTHCRAFTER, args.depthcrafter)] if depthcrafter else []
    wanted += [(DEPTH_ANYTHING, args.depth_anything)] if args.depth is None and not depthcrafter else []
    wanted += [(STEREOCRAFTER, args.stereocrafter)] if v1 else []
    wanted += [(STEREOCRAFTER2, args.stereocrafter2), (WAN_VACE_BASE, args.wan_base)] if v2 else []
    root = args.models if args.models is not None else default_models_root()
    lookups = [(source, [root / source.folder_name], name) for source, name in wanted]
    paths = find_model_dirs(lookups, args.download, download_hint="pass --download")
    return dict(zip([source for source, _ in wanted], paths, strict=True))


def _compile_wanted(args: argparse.Namespace, device: torch.device) -> bool:
    """``--compile``: on, off, or auto (CUDA with Triton, and a clip of at least COMPILE_AUTO_MIN_FRAMES)."""
    if args.compile == "off":
        return False
    if device.type != "cuda":
        if args.compile == "on":
            logger.warning("--compile needs CUDA (the device is %s): ignored.", device)
        return False
    if args.compile == "on":
        return True
    if importlib.util.find_spec("triton") is None:
        return False
    frames = probe_video(args.input).frame_count
    if frames < COMPILE_AUTO_MIN_FRAMES:
        logger.info("--compile auto: not compiling %d frames (it pays from %d on).", frames, COMPILE_AUTO_MIN_FRAMES)
        return False
    logger.info("--compile auto: compiling both models for %d frames (the first chunks take minutes).", frames)
    return True


def _gpu_budget(args: argparse.Namespace, device: torch.device) -> int | None:
    """Bytes the models may use on ``device`` (``--gpu-memory`` or what is free); None off CUDA."""
    from .memory_plan import GIB, gpu_budget_bytes

    budget = gpu_budget_bytes(device)
    if args.gpu_memory is not None and budget is not None:
        budget = min(budget, int(args.gpu_memory * GIB))
    return budget


def _stages(args: argparse.Namespace) -> tuple[DepthStage | None, InpaintStage | None]:
    """The model stages the arguments ask for; their folders are checked now, weights load when a pass starts.

    The model modules are imported here, not at the top: they import diffusers (~0.3 GB of RAM), which a
    conversion with --depth and --no-inpaint never needs."""
    from .depth.depth_pipeline import DepthSettings, VideoDepthPipeline, processing_size
    from .depth.depthcrafter_unet import load_depthcrafter_unet
    from .inpaint.inpaint_model import InpaintOptions
    from .inpaint.inpaint_pipeline import InpaintSettings, StereoInpaintPipeline
    from .inpaint.inpaint_unet import load_inpaint_unet
    from .memory_plan import DepthPlan, module_bytes, plan_depth, plan_inpaint
    from .svd.lean_unet import DEFAULT_CHUNKS
    from .svd.svd_components import load_svd_components

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = args.precision if args.precision != "auto" else ("fp16" if device.type == "cuda" else "fp32")
    dtype = PRECISIONS[precision]
    dirs = _model_dirs(args)
    svd_dir = dirs.get(SVD)
    depth_stage = inpaint_stage = None
    compile_models = None  # decided once, when the first model loads (it probes the input)
    if args.depth is None and args.depth_model == "depth-anything":
        depth_stage = _light_depth_stage(dirs[DEPTH_ANYTHING], device, dtype, precision)
    elif args.depth is None:
        depth_dir = dirs[DEPTHCRAFTER]
        # With guidance (the stereocrafter preset) two CFG passes, as the VideoDepth node: a third less GPU memory
        # than one batched pass; with the per-stage moves, 1080p depth on an H200 took 0.49 s/frame at 9.2 GiB
        # (batched, resident: 0.42 at 16.7 GiB).
        preset = args.depth_preset or ("stereocrafter" if args.faithful else "depthcrafter")
        steps = {} if args.depth_steps is None else {"num_inference_steps": args.depth_steps}
        settings = DepthSettings.preset(
            preset,
            **steps,
            max_res=args.depth_max_res,
            seed=args.seed,
            batch_cfg=False,
            vae_encode_fp32=args.faithful,
        )
        settings.validate()

        def load_depth() -> tuple[VideoDepthPipeline, DepthSettings]:
            nonlocal compile_models
            if compile_models is None:
                compile_models = _compile_wanted(args, device)
            unet = load_depthcrafter_unet(depth_dir, dtype)
            components = load_svd_components(svd_dir, dtype)
            weights = {
                "unet": module_bytes(unet),
                "vae": module_bytes(components.vae),
                "clip": module_bytes(components.image_encoder),
            }
            budget = _gpu_budget(args, device)
            plan = DepthPlan(offload=False, unet_group_offload=False, settings=settings, peak_bytes=0)
            if budget is not None:
                info = probe_video(args.input)
                size = processing_size(info.height, info.width, settings.max_res)
                plan = plan_depth(budget, weights, size, info.frame_count, settings, dtype)
                logger.info("%s", plan.describe(budget))
            group = plan.unet_group_offload and not compile_models
            pipeline = VideoDepthPipeline(
                unet,
                components,
                device,
                dtype,
                offload=plan.offload,
                ff_chunk_rows=None if args.faithful else DEPTH_FF_CHUNK_ROWS,
                compile=compile_models,
                single_key_attention=not args.faithful,
                unet_group_offload=group,
                lean_blocks=None if args.faithful else DEFAULT_CHUNKS,
            )
            return pipeline, plan.settings

        depth_stage = DepthStage(load_depth, settings, model_id=f"{depth_dir.resolve()} {precision}")
    if not args.no_inpaint and args.inpaint_model == "stereocrafter2":
        inpaint_stage = _inpaint2_stage(args, dirs[STEREOCRAFTER2], dirs[WAN_VACE_BASE], device)
    elif not args.no_inpaint:
        inpaint_dir = dirs[STEREOCRAFTER]
        options = InpaintOptions(steps=args.inpaint_steps, tiles=args.tiles, faithful=args.faithful)
        inpaint_settings = StereoInpaintPipeline.settings_from(options)

        def load_inpaint() -> tuple[StereoInpaintPipeline, InpaintSettings]:
            nonlocal compile_models
            if compile_models is None:
                compile_models = _compile_wanted(args, device)
            # Straight to the device, tensor by tensor: no host copy of the weights (3.6 GB of peak RSS at fp16).
            target = device if device.type != "cpu" else None  # the CPU keeps the memory-mapped files
            unet = load_inpaint_unet(inpaint_dir, dtype, target)
            components = load_svd_components(svd_dir, dtype, target)
            pipe = StereoInpaintPipeline.from_components(
                components, unet, single_key_attention=not args.faithful, frames_major_decoder=not args.faithful
            )
            pipe = pipe.to(device)
            pipe.sync_timing = args.stats is not None  # exact per-phase seconds for the stats file
            budget = _gpu_budget(args, device)
            planned = inpaint_settings
            if budget is not None:
                weights = module_bytes(unet) + module_bytes(components.vae) + module_bytes(components.image_encoder)
                info = probe_video(args.input)
                planned = plan_inpaint(budget, weights, (info.height, info.width), inpaint_settings)
            if planned != inpaint_settings:
                logger.info(
                    "StereoCrafter memory plan for %.1f GiB: tile budget %d, decode budget %d pixel-frames, "
                    "whole-frame encode up to %d px", budget / 1024**3, planned.max_pixel_frames,
                    planned.max_decode_pixel_frames,
                    planned.max_full_frame_encode_pixels,
                )  # fmt: skip
            return (pipe.compile() if compile_models else pipe), planned

        model_id = f"{inpaint_dir.resolve()} {precision}"
        inpaint_stage = InpaintStage(load_inpaint, inpaint_settings, args.seed, model_id=model_id)
    return depth_stage, inpaint_stage


def _inpaint2_stage(
    args: argparse.Namespace, transformer_dir: Path, base_dir: Path, device: torch.device
) -> InpaintStage:
    """StereoCrafter2 as the conversion's inpainting stage: bf16 on CUDA (the reference's dtype), fp32 on the CPU
    (bf16 convolutions there were 15x slower on the tiny test models) unless --precision says otherwise; the
    transformer's blocks streamed from the CPU when it does not fit the GPU budget (--gpu-memory)."""
    from .inpaint.inpaint2_pipeline import StereoCrafter2Pipeline, check_wan_base, find_stereocrafter2_transformer
    from .inpaint.inpaint2_pipeline import load_stereocrafter2 as load
    from .inpaint.inpaint_model import InpaintOptions

    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    dtype = PRECISIONS[precision]
    folder = find_stereocrafter2_transformer(transformer_dir)  # wrong folders are named before any pass runs
    check_wan_base(base_dir)
    options = InpaintOptions(steps=args.inpaint_steps, tiles=args.tiles, faithful=args.faithful)
    settings = StereoCrafter2Pipeline.settings_from(options)
    cache = base_dir / PROMPT_CACHE_FOLDER  # the empty prompt's embedding, next to the text encoder it comes from
    budget = int(args.gpu_memory * 1024**3) if args.gpu_memory is not None else None
    settings = replace(settings, vae_tiling=args.inpaint2_vae_tiling)
    weights = args.inpaint2_weights
    low_cpu_mem = {"auto": None, "on": True, "off": False}[args.inpaint2_low_cpu_mem]

    def loader() -> StereoCrafter2Pipeline:
        return load(folder, base_dir, device, dtype, cache, offload="auto", gpu_budget=budget, weights=weights,
                    low_cpu_mem=low_cpu_mem)  # fmt: skip

    # What changes the pixels is in the id, so that a job started in bf16 never resumes in fp8 (or the reverse);
    # an automatic VAE tiling is planned per run (as the GPU budget), a forced one is part of the job.
    model_id = f"{folder.resolve()} {base_dir.resolve()} {precision} {weights}"
    if args.inpaint2_vae_tiling != "auto":
        model_id += f" vae-tiling {args.inpaint2_vae_tiling}"
    return InpaintStage(loader, settings, args.seed, model_id=model_id)


def _light_depth_stage(folder: Path, device: torch.device, dtype: torch.dtype, precision: str) -> DepthStage:
    """Depth Anything per frame, stabilised over time (:mod:`.depth.light_depth`), as the conversion's depth stage."""
    from .depth.light_depth import LightDepthPipeline, LightDepthSettings

    settings = LightDepthSettings()
    return DepthStage(
        lambda: LightDepthPipeline.from_pretrained(folder, device, dtype), settings, f"{folder.resolve()} {precision}"
    )


def _progress_reporter() -> tuple[ProgressFn, Callable[[], None]]:
    """(on_progress, close): one tqdm bar per pass (frames/s and ETA) when tqdm is installed, else log lines."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    state: dict = {}

    def with_tqdm(stage: str, done: int, total: int) -> None:
        if state.get("stage") != stage:
            close()
            state["stage"] = stage
            state["bar"] = tqdm(total=total, initial=done, unit="frame", desc=stage, dynamic_ncols=True)
        state["bar"].update(done - state["bar"].n)

    def with_log(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if state.get("stage") != stage:
            state.update(stage=stage, start=now, first=done)
            return
        rate = (done - state["first"]) / max(now - state["start"], 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        logger.info("%s: %d/%d frames, %.1f frames/s, ETA %.0f s", stage, done, total, rate, eta)

    def close() -> None:
        if state.get("bar") is not None:
            state.pop("bar").close()

    return (with_tqdm if tqdm is not None else with_log), close


def _main_parallel(args: argparse.Namespace, argv: list[str]) -> int:
    """--gpus / --workers / --ray: the conversion as shot-aligned parts on several workers (:mod:`.parallel`)."""
    from .parallel import CliStages, convert_parallel, resolve_gpus

    try:
        gpus = resolve_gpus(args.gpus, torch.cuda.device_count()) if args.gpus is not None else []
        stages = None if args.depth is not None and args.no_inpaint else CliStages(tuple(argv))  # no models
        output = convert_parallel(
            args.input, args.output, args.depth, _settings(args), stages=stages,
            workers=args.workers, gpus=gpus, ray_address=None if args.ray in (None, "local") else args.ray,
            use_ray=args.ray is not None, device=args.device, scenes=_scenes(args), part_frames=args.part_frames,
            max_part_frames=args.split_shots, overwrite=args.overwrite,
        )  # fmt: skip
    except KeyboardInterrupt:
        logger.error("interrupted; rerun the same command to convert the unfinished parts.")
        return 130
    except (VideoReadError, ModelFilesError, ValueError, OSError, RuntimeError) as exc:
        logger.error("%s", exc)
        return 1
    logger.info("wrote %s", output)
    return 0


def use_expandable_segments() -> None:
    """CUDA's caching allocator in expandable segments unless PYTORCH_CUDA_ALLOC_CONF says otherwise.

    The models' per-stage moves and the changing chunk shapes fragment fixed-size segments: the depth pass reserved
    18.7 GiB for 9.2 GiB allocated (bench/README.md); segments that grow and shrink in place keep the two close.
    """
    if "PYTORCH_CUDA_ALLOC_CONF" in os.environ or "PYTORCH_ALLOC_CONF" in os.environ:
        return  # the user's choice
    os.environ["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"  # read when CUDA starts
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # started already (a script calling main)
        torch.cuda.memory._set_allocator_settings("expandable_segments:True")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter; returns the exit status."""
    # Transparent huge pages for PyTorch's large CPU buffers (it must be set before the first frame is allocated):
    # whole frames and CPU model activations are allocated and freed per chunk, and 4 KiB pages made the kernel's
    # page faults cost as much time as the compute (bench/long_video.py: 1.6x faster on the CPU, lower peak RSS).
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    # Compiled kernels in a folder that survives a reboot (Inductor's default is under /tmp): a later run of
    # --compile then reuses them (VideoDepth: 30 s instead of about 3 min, bench/README.md).
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(INDUCTOR_CACHE_DIR.expanduser()))
    use_expandable_segments()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    try:
        depth_stage, inpaint_stage = _stages(args)
    except MissingModelsError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")  # not an argument error: no usage text
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    if args.gpus is not None or args.workers is not None or args.ray is not None:
        return _main_parallel(args, list(sys.argv[1:] if argv is None else argv))
    on_progress, close = _progress_reporter()
    passes: list[PassStats] = []
    started = time.perf_counter()
    try:
        output = convert_video(
            args.input,
            args.output,
            args.depth,
            _settings(args),
            depth_model=depth_stage,
            inpaint=inpaint_stage,
            device=args.device,
            save_depth=args.save_depth,
            on_progress=on_progress,
            on_pass_done=passes.append,
            overwrite=args.overwrite,
            scenes=_scenes(args),
        )
    except KeyboardInterrupt:
        close()
        logger.error("interrupted; rerun the same command to resume from the last finished segment.")
        return 130
    except (VideoReadError, ModelFilesError, ValueError, OSError, RuntimeError) as exc:
        close()
        logger.error("%s", exc)
        return 1
    close()
    logger.info("wrote %s", output)
    if args.stats is not None:
        stats = {"seconds": time.perf_counter() - started, "passes": [asdict(p) for p in passes]}
        args.stats.write_text(json.dumps(stats, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
