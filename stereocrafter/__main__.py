"""Command line: ``python -m stereocrafter INPUT -o OUTPUT --depth DEPTH_VIDEO [options]`` (see ``--help``).

Exit status: 0 done, 1 conversion error (message logged), 2 bad arguments, 130 interrupted (rerun to resume).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .convert import OUTPUT_LAYOUTS, ConvertSettings, convert_video
from .video_io import VideoReadError

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
}
NO_DEPTH_MESSAGE = (
    "--depth DEPTH_VIDEO is required: DepthCrafter depth is not wired into the command line yet. Make a depth "
    "video (near = bright, same frame count) with the ComfyUI VideoDepth node (DepthCrafter) or any video depth "
    "tool (e.g. Video Depth Anything), then pass it with --depth."
)
UNSUPPORTED = {
    "models": "depth estimation from a model folder (--models) is not supported by the command line yet; "
    + "pass a depth video with --depth.",
    "inpaint": "StereoCrafter inpainting (--inpaint) is not supported by the command line yet; the holes stay "
    + "black. Use the ComfyUI StereoInpaint node for now.",
}


def _layout(value: str) -> str:
    if value in LAYOUT_ALIASES:
        return LAYOUT_ALIASES[value]
    if value in OUTPUT_LAYOUTS:
        return value
    raise argparse.ArgumentTypeError(f"unknown layout {value!r}; choose from {', '.join(LAYOUT_ALIASES)}.")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m stereocrafter``."""
    parser = argparse.ArgumentParser(
        prog="python -m stereocrafter",
        description="Convert a 2D video and its depth video into a stereo 3D video (SBS, TB or anaglyph). "
        "Interrupted runs resume from the last finished chunk when rerun with the same arguments.",
    )
    parser.add_argument("input", type=Path, help="the 2D video (used as the left eye); its audio is kept")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output file (.mp4/.mov/.mkv) or directory")
    parser.add_argument("--depth", type=Path, help="depth video, near = bright, same frame count as INPUT")
    parser.add_argument("--layout", type=_layout, default="full SBS", help="sbs (default), half-sbs, tb, "
                        "half-tb, cross-sbs, cross-half-sbs, anaglyph")  # fmt: skip
    parser.add_argument("--anaglyph-method", default="dubois", choices=["dubois", "color", "half-color", "gray"])
    parser.add_argument("--max-disparity", type=float, default=20.0, help="largest shift (default 20)")
    parser.add_argument("--disparity-unit", default="pixels", choices=["pixels", "percent"],
                        help="unit of --max-disparity: pixels or percent of the width")  # fmt: skip
    parser.add_argument("--convergence", type=float, default=0.5, help="depth on the screen plane, 0..1")
    parser.add_argument("--invert-depth", action="store_true", help="the depth video has far = bright")
    parser.add_argument("--codec", default="h264", choices=["h264", "h265"])
    parser.add_argument("--crf", type=int, default=18, help="quality, 0..51, lower is better (default 18)")
    parser.add_argument("--chunk-frames", type=int, default=16, help="frames per chunk (memory, resume step)")
    parser.add_argument("--device", help="splatting device, e.g. cpu or cuda (default: cuda when available)")
    parser.add_argument("--models", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--inpaint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every chunk")
    return parser


def _settings(args: argparse.Namespace) -> ConvertSettings:
    return ConvertSettings(
        layout=args.layout,
        anaglyph_method=args.anaglyph_method,
        max_disparity=args.max_disparity,
        disparity_unit="percent of width" if args.disparity_unit == "percent" else "pixels",
        convergence=args.convergence,
        invert=args.invert_depth,
        chunk_frames=args.chunk_frames,
        codec=args.codec,
        crf=args.crf,
    )


def _progress_reporter() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """(on_progress, close): a tqdm bar (frames/s and ETA) when tqdm is installed, else log lines."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    state: dict = {}

    def with_tqdm(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = tqdm(total=total, initial=done, unit="frame", desc="converting", dynamic_ncols=True)
        state["bar"].update(done - state["bar"].n)

    def with_log(done: int, total: int) -> None:
        now = time.perf_counter()
        if "start" not in state:
            state["start"], state["first"] = now, done
            return
        rate = (done - state["first"]) / max(now - state["start"], 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        logger.info("%d/%d frames, %.1f frames/s, ETA %.0f s", done, total, rate, eta)

    def close() -> None:
        if "bar" in state:
            state["bar"].close()

    return (with_tqdm if tqdm is not None else with_log), close


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    for option, message in UNSUPPORTED.items():
        if getattr(args, option) is not None:
            parser.error(message)
    if args.depth is None:
        parser.error(NO_DEPTH_MESSAGE)
    on_progress, close = _progress_reporter()
    try:
        output = convert_video(args.input, args.output, args.depth, _settings(args), device=args.device,
                               on_progress=on_progress)  # fmt: skip
    except KeyboardInterrupt:
        close()
        logger.error("interrupted; rerun the same command to resume from the last finished chunk.")
        return 130
    except (VideoReadError, ValueError, OSError) as exc:
        close()
        logger.error("%s", exc)
        return 1
    close()
    logger.info("wrote %s", output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
