"""The user's command end to end: ``python -m stereocrafter CLIP -o OUT --models DIR`` per configuration, each in a
fresh child process, on real-size models with random weights in the real folder layouts.

What it does:
1. writes the models once into ``WORK/models`` in ComfyUI's layout (``depthcrafter/DepthCrafter``,
   ``stereocrafter/StereoCrafter/unet_diffusers``, ``diffusers/stable-video-diffusion-img2vid-xt-1-1`` with fp16
   files), built on the GPU when there is one (``--tiny``: the tests' tiny models, for checking this script on a CPU);
2. writes the clip (``bench/long_video.py``'s moving pattern with a tone track, ``--size``, ``--frames``);
3. runs each configuration of ``--configs`` (see CONFIGS) as ``python bench/e2e.py --child FRACTION -- CLI ARGS``,
   which caps this process's GPU memory with ``torch.cuda.set_per_process_memory_fraction`` (to play a smaller
   card) and calls the CLI's ``main``; the CLI's ``--stats`` JSON gives each pass's seconds and GPU peaks, and
   ``wait4`` the child's peak RSS, and ``/proc/PID/status`` sampled every 0.5 s its anonymous and file-backed
   parts (``WORK/rss_CONFIG.tsv``: the timeline with the child's last log line at each sample), and a thread in the
   child samples its own RSS every 10 ms and keeps the Python stack at each new high (``WORK/rss_peaks_CONFIG.json``);
4. prints a markdown table: per-pass s/frame, GPU peak allocated / reserved, RSS, whole-process s/frame, the ratio
   to the first configuration, and the max / mean pixel difference of each output from the first one.

Usage (from the repository root, on the GPU machine; diffusers must be importable):
    python bench/e2e.py --work /tmp/e2e [--frames 115] [--size 1920x1080] [--configs default,faithful,cap8]
    python bench/e2e.py --work /tmp/e2e --tiny --size 320x192 --frames 12 --configs default,faithful   # CPU check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from long_video import RSS_FIELDS, proc_memory  # noqa: E402 (bench/ on the path first)

GIB = 1024**3

#: name → (CLI arguments after ``SRC -o OUT --models DIR``, GPU memory cap in GiB or None).
CONFIGS: dict[str, tuple[list[str], float | None]] = {
    "default": ([], None),
    "faithful": (["--faithful"], None),
    "compile": (["--compile"], None),
    "cap8": ([], 8.0),
    "cap12": ([], 12.0),
    "cap16": ([], 16.0),
}


@dataclass
class Run:
    name: str
    frames: int
    seconds: float
    peak_rss: int
    passes: list[dict] = field(default_factory=list)
    output: Path | None = None
    error: str = ""
    rss_at_peak: dict[str, int] = field(default_factory=dict)  # /proc status fields at the highest VmRSS sample
    rss_peak_line: str = ""  # the child's last log line then
    peak_stack: list[str] = field(default_factory=list)  # "N MiB", then the main thread's stack at the 10 ms peak


def last_log_line(log: Path) -> str:
    """The last complete line of a log that is being written (progress bars' carriage returns split lines)."""
    with open(log, "rb") as file:
        file.seek(max(file.seek(0, os.SEEK_END) - 400, 0))
        lines = file.read().decode(errors="replace").replace("\r", "\n").splitlines()
    return lines[-2 if len(lines) > 1 else -1].strip()[:160] if lines else ""


def write_rss_timeline(path: Path, samples: list[tuple[float, dict[str, int], str]]) -> None:
    """seconds, the RSS fields in MiB and the log line of each sample, tab-separated."""
    rows = ["seconds\t" + "\t".join(f"{key} MiB" for key in RSS_FIELDS) + "\tlog"]
    for seconds, memory, line in samples:
        values = "\t".join(str(memory.get(key, 0) // 2**20) for key in RSS_FIELDS)
        rows.append(f"{seconds:.1f}\t{values}\t{line}")
    path.write_text("\n".join(rows) + "\n")


# --- models ----------------------------------------------------------------------------------------------------


def write_real_size_models(root: Path) -> Path:
    """Real-size DepthCrafter, StereoCrafter and SVD-xt-1-1 folders with random fp16 weights, once."""
    import torch
    from diffusers import UNetSpatioTemporalConditionModel
    from svd_architecture import build_vae_and_clip, svd_unet_config

    from tests.tiny_models import MODEL_INDEX, PREPROCESSOR_CONFIG, SCHEDULER_CONFIG, save_weights, write_json

    if (root / ".complete").exists():
        return root
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    svd = root / "diffusers" / "stable-video-diffusion-img2vid-xt-1-1"
    write_json(svd / "model_index.json", MODEL_INDEX)
    write_json(svd / "scheduler" / "scheduler_config.json", SCHEDULER_CONFIG)
    write_json(svd / "feature_extractor" / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    vae, clip = build_vae_and_clip(device, torch.float16)
    write_json(svd / "vae" / "config.json", {"_class_name": "AutoencoderKLTemporalDecoder", **dict(vae.config)})
    write_json(svd / "image_encoder" / "config.json", clip.config.to_dict())
    save_weights(vae, svd / "vae" / "diffusion_pytorch_model.fp16.safetensors", torch.float16)
    save_weights(clip, svd / "image_encoder" / "model.fp16.safetensors", torch.float16)
    del vae, clip
    unets = {
        root / "depthcrafter" / "DepthCrafter": (8, "DiffusersUNetSpatioTemporalConditionModelDepthCrafter"),
        root / "stereocrafter" / "StereoCrafter" / "unet_diffusers": (9, "UNetSpatioTemporalConditionModel"),
    }
    for folder, (in_channels, class_name) in unets.items():
        config = svd_unet_config(in_channels)
        torch.manual_seed(in_channels)
        with torch.device(device):
            unet = UNetSpatioTemporalConditionModel(**config).half()
        write_json(folder / "config.json", {"_class_name": class_name, "_diffusers_version": "0.29.2", **config})
        save_weights(unet, folder / "diffusion_pytorch_model.safetensors", torch.float16)
        del unet
    (root / ".complete").write_text("")
    print(f"wrote real-size random models to {root} in {time.perf_counter() - started:.0f} s", flush=True)
    return root


def write_tiny_models(root: Path) -> Path:
    from tests.tiny_models import make_depthcrafter_folder, make_stereocrafter_folder, make_svd_folder

    if not (root / ".complete").exists():
        make_depthcrafter_folder(root / "depthcrafter" / "DepthCrafter")
        make_stereocrafter_folder(root / "stereocrafter" / "StereoCrafter")
        make_svd_folder(root / "diffusers" / "stable-video-diffusion-img2vid-xt-1-1")
        (root / ".complete").write_text("")
    return root


# --- runs ------------------------------------------------------------------------------------------------------


def is_ours(frame: traceback.FrameSummary) -> bool:
    """A stack frame of this repository's code (not of the virtual environment's packages)."""
    path = Path(frame.filename)
    return path.is_relative_to(REPO) and ".venv" not in path.parts and "site-packages" not in path.parts


def watch_rss_peaks(path: Path, interval_s: float = 0.01, step: int = 16 * 2**20) -> Callable[[], None]:
    """Sample this process's VmRSS every ``interval_s`` in a thread; each time it passes its highest value by ``step``
    bytes, record the main thread's Python stack (the 0.5 s timeline misses short peaks). The returned function stops
    the thread and writes the records, highest last, to ``path`` as JSON."""
    main_id = threading.main_thread().ident
    records: list[dict] = []
    stop = threading.Event()

    def sample() -> None:
        highest = 0
        while not stop.wait(interval_s):
            rss = proc_memory(os.getpid()).get("VmRSS", 0)
            if rss < highest + step:
                continue
            highest = rss
            frame = sys._current_frames().get(main_id)
            stack = traceback.extract_stack(frame) if frame is not None else []
            del frame  # a frame held here would keep its locals (whole chunks of frames) alive
            ours = [f"{Path(f.filename).relative_to(REPO)}:{f.lineno} {f.name}: {f.line}" for f in stack if is_ours(f)]
            records.append(
                {"rss_mib": rss // 2**20, "stack": ours[-10:], "innermost": f"{stack[-1].name}" if stack else ""}
            )
            del records[:-40]

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join()
        path.write_text(json.dumps(records, indent=1))

    return finish


def child_main(fraction: float, argv: list[str]) -> int:
    """In the child: cap the GPU memory (fraction of the device; 0 = no cap), then run the CLI (with
    ``E2E_RSS_PEAKS`` set, :func:`watch_rss_peaks` writes there)."""
    import torch

    if fraction > 0 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(fraction)
    from stereocrafter.__main__ import main

    peaks = os.environ.get("E2E_RSS_PEAKS")
    finish = watch_rss_peaks(Path(peaks)) if peaks else None
    try:
        return main(argv)
    finally:
        if finish is not None:
            finish()


def run_config(name: str, clip: Path, models: Path, work: Path, extra: list[str], cap_gib: float | None) -> Run:
    """One CLI conversion in a fresh child; its wall time, peak RSS (wait4) and the CLI's per-pass stats."""
    output, stats, log = work / f"out_{name}.mp4", work / f"stats_{name}.json", work / f"log_{name}.txt"
    for stale in (output, stats):
        stale.unlink(missing_ok=True)
    subprocess.run(["rm", "-rf", f"{output}.partial.d", f"{output}.partial"], check=True)
    fraction = 0.0
    if cap_gib is not None:
        import torch

        fraction = cap_gib * GIB / torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 0
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(fraction), "--"]
    command += [str(clip), "-o", str(output), "--models", str(models), "--stats", str(stats), *extra]
    started = time.perf_counter()
    samples: list[tuple[float, dict[str, int], str]] = []
    with open(log, "w") as log_file:
        env = {**os.environ, "E2E_RSS_PEAKS": str(work / f"rss_peaks_{name}.json")}
        child = subprocess.Popen(command, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            memory = proc_memory(child.pid)
            if memory:
                samples.append((time.perf_counter() - started, memory, last_log_line(log)))
            time.sleep(0.5)
    seconds = time.perf_counter() - started
    write_rss_timeline(work / f"rss_{name}.tsv", samples)
    child.returncode = os.waitstatus_to_exitcode(status)
    frames = int(json.loads((work / "clip.json").read_text())["frames"])
    run = Run(name, frames, seconds, usage.ru_maxrss * 1024)
    if samples:  # where the resident memory was at its highest sample: anonymous (heap) vs file-backed (mmap)
        _, run.rss_at_peak, run.rss_peak_line = max(samples, key=lambda sample: sample[1]["VmRSS"])
    peaks = work / f"rss_peaks_{name}.json"
    if peaks.exists() and (records := json.loads(peaks.read_text())):
        top = records[-1]
        run.peak_stack = [f"{top['rss_mib']} MiB (innermost call: {top['innermost']})", *top["stack"][-6:]]
    if child.returncode != 0 or not stats.exists():
        run.error = f"exit {child.returncode}: " + log.read_text()[-1500:].replace("\n", " | ")
        return run
    run.passes = json.loads(stats.read_text())["passes"]
    run.output = output
    return run


def frame_difference(a: Path, b: Path) -> tuple[float, float]:
    """(max, mean) absolute difference of two videos' frames, 0..1."""
    from stereocrafter.video.video_io import read_frames

    worst, total, count = 0.0, 0.0, 0
    for x, y in zip(read_frames(a, 8), read_frames(b, 8), strict=True):
        d = (x - y).abs()
        worst, total, count = max(worst, d.max().item()), total + d.sum().item(), count + d.numel()
    return worst, total / max(count, 1)


def table(runs: list[Run], device: str) -> str:
    base = runs[0]
    lines = [
        f"device: {device}; clip {base.frames} frames; s/f = seconds per frame; GPU peaks in GiB "
        "(allocated / reserved)",
        "",
        "| config | depth s/f | depth GPU | stereo s/f | stereo GPU | whole s/f | vs first | RSS GiB "
        "| anon / file at peak | max / mean diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        if run.error:
            lines.append(f"| {run.name} | failed: {run.error[:300]} |")
            continue
        cells = {p["name"]: p for p in run.passes}

        def cell(name: str, cells: dict = cells, run: Run = run) -> tuple[str, str]:
            p = cells.get(name)
            if p is None:
                return "–", "–"
            gpu = f"{p['peak_allocated'] / GIB:.2f} / {p['peak_reserved'] / GIB:.2f}"
            return f"{p['seconds'] / max(p['frames'], 1):.3f}", gpu

        depth, stereo = cell("depth"), cell("stereo")
        ratio = (base.seconds / run.seconds) if not base.error else float("nan")
        diff = "–"
        if run is not base and run.output is not None and base.output is not None:
            worst, mean = frame_difference(base.output, run.output)
            diff = f"{worst:.4f} / {mean:.5f}"
        at = run.rss_at_peak
        split = f"{at.get('RssAnon', 0) / GIB:.2f} / {at.get('RssFile', 0) / GIB:.2f}" if at else "–"
        lines.append(
            f"| {run.name} | {depth[0]} | {depth[1]} | {stereo[0]} | {stereo[1]} | {run.seconds / run.frames:.3f} "
            f"| {ratio:.2f}x | {run.peak_rss / GIB:.2f} | {split} | {diff} |"
        )
    lines += ["", "RSS peak samples (the child's last log line then):"]
    lines += [f"- {run.name}: {run.rss_peak_line}" for run in runs if run.rss_peak_line]
    for run in runs:
        for p in run.passes:
            if p.get("phase_seconds"):
                parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(p["phase_seconds"].items(), key=lambda kv: -kv[1]))
                lines.append(f"- {run.name} {p['name']} pass, seconds by part ({p['seconds']:.1f} in all): {parts}")
    for run in runs:
        if run.peak_stack:
            lines += ["", f"{run.name}: highest RSS seen every 10 ms in the child, {run.peak_stack[0]}; its stack:"]
            lines += [f"    {line}" for line in run.peak_stack[1:]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(float(argv[1]), argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="models, clip, outputs and logs (reused)")
    parser.add_argument("--frames", type=int, default=115)
    parser.add_argument("--size", default="1920x1080", help="clip size WxH")
    parser.add_argument("--configs", default="default,faithful", help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--extra", default="", help="more CLI arguments for every configuration (one string)")
    parser.add_argument("--tiny", action="store_true", help="tiny random models (CPU check of this script)")
    parser.add_argument("--out", type=Path, help="also write the table here, after every configuration")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)

    import long_video

    long_video.WIDTH, long_video.HEIGHT = (int(v) for v in args.size.split("x"))
    clip = args.work / f"clip_{args.size}_{args.frames}.mp4"
    if long_video.count_frames(clip) != args.frames:
        long_video.write_source(clip, args.frames)
    (args.work / "clip.json").write_text(json.dumps({"frames": args.frames, "size": args.size}))
    write_models = write_tiny_models if args.tiny else write_real_size_models
    models = write_models(args.work / ("tiny" if args.tiny else "models"))

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    extra = args.extra.split()
    if args.tiny:
        extra += ["--depth-max-res", "128", "--depth-steps", "1", "--inpaint-steps", "1", "--tiles", "1"]
    runs = []
    for name in args.configs.split(","):
        cli_args, cap = CONFIGS[name]
        run = run_config(name, clip, models, args.work, cli_args + extra, cap)
        runs.append(run)
        print(f"{name}: {run.seconds:.1f} s{' FAILED ' + run.error if run.error else ''}", flush=True)
        if args.out is not None:  # after every configuration: a run cut short keeps what it measured
            args.out.write_text(table(runs, device) + "\n")
    print("\n" + table(runs, device))
    return 0 if not any(r.error for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
