"""Run one of the example workflows headless in a real ComfyUI on your own clip, and copy out the result.

    .venv/bin/python scripts/run_workflow.py example_workflows/sbs_from_your_depth.json \\
        --video ../shared/data/davis_rollercoaster.mp4 --output out/rollercoaster_SBS_LR.mp4

It starts ComfyUI (installed by scripts/install_test_deps.sh) on 127.0.0.1 with only this pack, puts the
video (and its depth video) into the server's input folder under the names the examples use, converts the
UI-format workflow to an API prompt against /object_info, runs it and copies the saved video to --output.
Without --depth it writes a stand-in ground-plane depth video (far at the top, near at the bottom);
--save-depth PATH keeps it (for `python -m stereocrafter --depth PATH`), and with neither a workflow nor
--output only writes it:

    .venv/bin/python scripts/run_workflow.py --video clip.mp4 --save-depth clip_depth.mp4
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The headless-server helpers are shared with the end-to-end tests.
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))

from comfy_harness import ComfyClient, ComfyServer  # noqa: E402
from media import _encode, ramp_depth_frames, read_video  # noqa: E402
from workflow_convert import ui_to_api  # noqa: E402

VIDEO_NAME = "input_video.mp4"
DEPTH_NAME = "input_depth.mp4"


def _ground_plane_depth(video: Path, target: Path) -> None:
    """A depth video with the clip's frame count, size and rate: far at the top, near at the bottom."""
    clip = read_video(video)
    frames, height, width = clip.frames.shape[:3]
    fps = round(float(clip.fps)) or 24
    _encode(target, ramp_depth_frames(frames, (width - width % 2, height - height % 2)), fps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "workflow", type=Path, nargs="?", help="UI-format workflow JSON (e.g. example_workflows/*.json)"
    )
    parser.add_argument("--video", type=Path, required=True, help="the 2D video to convert")
    parser.add_argument("--depth", type=Path, help="its depth video, near = bright (default: a stand-in)")
    parser.add_argument("--output", type=Path, help="where to copy the saved result")
    parser.add_argument(
        "--save-depth",
        type=Path,
        help="also save the stand-in depth video here (alone, without a workflow and --output: only that)",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the workflow")
    args = parser.parse_args(argv)

    for name, path in (("workflow", args.workflow), ("video", args.video), ("depth", args.depth)):
        if path is not None and not path.is_file():
            parser.error(f"{name} file not found: {path}")
    if args.save_depth is not None and args.depth is not None:
        parser.error("--save-depth saves the stand-in depth video, which --depth replaces: give one of them.")
    if args.save_depth is not None:
        args.save_depth.parent.mkdir(parents=True, exist_ok=True)
        _ground_plane_depth(args.video, args.save_depth)
        print(f"wrote the stand-in depth video {args.save_depth}")
        if args.workflow is None and args.output is None:
            return 0
    if args.workflow is None or args.output is None:
        parser.error("give a workflow and --output (or only --save-depth PATH to write the stand-in depth video).")
    workflow = json.loads(args.workflow.read_text())

    with tempfile.TemporaryDirectory(prefix="sc3d-run-") as tmp, ComfyServer(Path(tmp)) as server:
        shutil.copy(args.video, server.input_dir / VIDEO_NAME)
        if args.depth is not None:
            shutil.copy(args.depth, server.input_dir / DEPTH_NAME)
        elif args.save_depth is not None:
            shutil.copy(args.save_depth, server.input_dir / DEPTH_NAME)
        else:
            print("no --depth given: using a stand-in ground-plane depth video")
            _ground_plane_depth(args.video, server.input_dir / DEPTH_NAME)
        client = ComfyClient(server.url, server)
        prompt = ui_to_api(workflow, client.object_info())
        print(f"running {args.workflow.name} on {args.video.name} ...")
        result = client.run(prompt, timeout=args.timeout, workflow=workflow)
        saved = [p for p in result.saved_files(server.output_dir) if p.suffix in (".mp4", ".webm", ".mkv")]
        if not saved:
            print(f"the workflow saved no video; outputs: {json.dumps(result.outputs)}", file=sys.stderr)
            return 1
        args.output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(saved[0], args.output)
    out = read_video(args.output)
    height, width = out.frames.shape[1:3]
    print(f"wrote {args.output}: {len(out.frames)} frames, {width}x{height}, {float(out.fps):g} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
