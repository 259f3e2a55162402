"""Speed-up of the shot-parallel conversion (``--gpus N``, stereocrafter/parallel.py) on a many-shot clip with the
real-size random models, N = 1, 2, 4, 8 GPUs (those the machine has).

What it does:
1. writes the real-size random models once (``bench/e2e.py``'s writer; ``--tiny``: the tests' tiny models) and a
   film of ``--shots`` equal shots (``bench/long_video.py``'s pattern, colours changed per shot, with a tone);
2. per count N runs ``python -m stereocrafter CLIP -o OUT --models DIR --gpus N --scenes CUTS`` in a fresh process
   (the cuts given, so every run plans the same parts; ``--tiny`` uses ``--workers N`` on the CPU instead);
3. prints a markdown table: wall seconds, s/frame, speed-up over N = 1, efficiency (speed-up / N), and the max
   pixel difference of each output from the first N = 1 output. The plan, not the worker count, decides the output,
   but the model path itself is not bit-reproducible run to run (on the CPU with the tiny models two N = 1 runs
   differed by up to 0.13, mean ~0.007): list 1 twice (``--counts 1,1,2,4,8``) to see that floor beside the others.

Target (issue 16): >= 1.8x on 2 GPUs and >= 0.85 efficiency at every count.

Usage (from the repository root, on a multi-GPU machine; diffusers must be importable):
    python bench/parallel.py --work /tmp/par --counts 1,2,4,8 [--frames 960 --shots 24 --size 1920x1080]
    python bench/parallel.py --work /tmp/par --tiny --size 160x96 --frames 48 --shots 6 --counts 1,2   # CPU check
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def run_count(
    count: int, clip: Path, cuts: Path, models: Path, work: Path, extra: list[str], tiny: bool, name: str
) -> dict:
    """One conversion with ``count`` workers in a fresh process: wall seconds and the output (or the error)."""
    output, log = work / f"out_{name}.mp4", work / f"log_{name}.txt"
    subprocess.run(["rm", "-rf", str(output), f"{output}.parallel.d", f"{output}.partial"], check=True)
    command = [sys.executable, "-m", "stereocrafter", str(clip), "-o", str(output), "--models", str(models)]
    command += ["--scenes", str(cuts), "--workers" if tiny else "--gpus", str(count), *extra]
    started = time.perf_counter()
    with open(log, "w") as log_file:
        code = subprocess.run(command, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - started
    if code != 0:
        return {"count": count, "seconds": seconds, "error": log.read_text()[-1500:].replace("\n", " | ")}
    return {"count": count, "seconds": seconds, "output": output}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="models, clip, outputs and logs (reused)")
    parser.add_argument("--frames", type=int, default=960, help="clip frames (default 960: 40 s at 24 fps)")
    parser.add_argument("--shots", type=int, default=24, help="shots of equal length (default 24)")
    parser.add_argument("--size", default="1920x1080", help="clip size WxH")
    parser.add_argument("--counts", default="1,2,4,8", help="GPU counts (those above the machine's are skipped)")
    parser.add_argument("--part-frames", type=int, default=80, help="--part-frames of the runs (default 80: 12 "
                        "parts of 2 shots; a film uses the CLI default, 1000)")  # fmt: skip
    parser.add_argument("--extra", default="", help="more CLI arguments for every run (one string)")
    parser.add_argument("--tiny", action="store_true", help="tiny random models, --workers on the CPU")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)

    import e2e
    import long_video
    import torch

    long_video.WIDTH, long_video.HEIGHT = (int(v) for v in args.size.split("x"))
    long_video.SHOTS = args.shots
    clip = args.work / f"film_{args.size}_{args.frames}_{args.shots}.mp4"
    if long_video.count_frames(clip) != args.frames:
        long_video.write_source(clip, args.frames)
    cuts = args.work / f"cuts_{args.frames}_{args.shots}.txt"
    cuts.write_text("\n".join(str(cut) for cut in long_video.true_cuts(args.frames)) + "\n")
    models = (e2e.write_tiny_models if args.tiny else e2e.write_real_size_models)(
        args.work / ("tiny" if args.tiny else "models")
    )
    available = torch.cuda.device_count()
    counts = [int(c) for c in args.counts.split(",")]
    if not args.tiny:
        skipped = [c for c in counts if c > available]
        counts = [c for c in counts if c <= available]
        if skipped:
            print(f"skipping {skipped}: {available} GPU(s) here", flush=True)
    extra = ["--part-frames", str(args.part_frames), *args.extra.split()]
    if args.tiny:
        extra += ["--depth-max-res", "128", "--depth-steps", "1", "--inpaint-steps", "1", "--tiles", "1"]
    runs = []
    for position, count in enumerate(counts):
        run = run_count(count, clip, cuts, models, args.work, extra, args.tiny, f"{position}_{count}")
        runs.append(run)
        print(f"{count}: {run['seconds']:.1f} s{' FAILED ' + run['error'] if 'error' in run else ''}", flush=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.tiny else "CPU"
    base = runs[0] if runs and "error" not in runs[0] and runs[0]["count"] == 1 else None
    lines = [
        f"{args.frames} frames of {args.size}, {args.shots} shots, parts of >= {args.part_frames} frames, {device}",
        "",
        "| workers | wall s | s/frame | speed-up | efficiency | max diff vs 1 |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        if "error" in run:
            lines.append(f"| {run['count']} | failed | | | | |")
            continue
        speed_up = base["seconds"] / run["seconds"] if base else float("nan")
        diff = e2e.frame_difference(base["output"], run["output"])[0] if base else float("nan")
        lines.append(f"| {run['count']} | {run['seconds']:.1f} | {run['seconds'] / args.frames:.3f} | "
                     f"{speed_up:.2f}x | {speed_up / run['count']:.2f} | {diff:.4f} |")  # fmt: skip
    result = "\n".join(lines)
    print("\n" + result)
    if args.out is not None:
        args.out.write_text(result + "\n")
    (args.work / "parallel.json").write_text(json.dumps([{k: str(v) for k, v in r.items()} for r in runs], indent=1))
    return 0 if not any("error" in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
