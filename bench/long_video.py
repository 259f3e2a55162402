"""Peak process memory (RSS) of the command-line converter on long clips: it must stay flat as the clip grows.

For each frame count N (default 300, 1000 and 3000) the script writes a synthetic 1280×720 30 fps clip (a moving
colour pattern, with a stereo AAC tone track) and, for ``--mode depth-video``, a matching depth video (a bright disc
crossing a ground-plane gradient), both frame by frame so generation never holds a clip in memory. It then runs
``python -m stereocrafter SRC -o OUT --depth DEPTH --device cpu`` in a fresh child process per N, records the child's
wall time and peak RSS, checks the output (frame count, 2560×720 full SBS, audio kept) with PyAV, and prints a markdown
table plus pass/fail lines for "peak(3000) ≤ 1.10 × peak(300)" and "peak < 4 GB" (4 × 10⁹ bytes).

How RSS is measured: each conversion is its own child, reaped with ``os.wait4(pid)``, whose ``ru_maxrss`` is that
child's own high-water mark (Linux: KiB). ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` is not used: it is the
maximum over *all* children reaped so far, so after a big run every later figure would read at least as high and the
runs would not be independent. While the child runs, ``/proc/PID/status`` VmRSS is also sampled every 0.25 s to
report the peak of the first and of the second half of the run (a leak shows as a second half above the first, even
within one run). Clip generation happens in this parent, never in the measured child.

``--mode tiny-models`` converts without ``--depth``, with tiny random DepthCrafter/StereoCrafter/SVD folders written
into the work directory: the whole pipeline (DepthCrafter windows into the lossless depth file, then splatting and
StereoCrafter inpainting chunks), measuring the streaming's own RAM rather than real weights.

Usage (from the repository root; CPU is enough):
    python bench/long_video.py [--frames 300,1000,3000] [--work DIR] [--keep] [--mode depth-video|tiny-models]
            [--chunk-frames N] [--size WxH] [--device cpu|cuda] [--shots K] [--hw-encode auto,off]

``--shots K`` makes each clip a film of K shots of equal length (the pattern's colours permuted or inverted and its
motion changed at every cut, the depth range changed too): the converter's shot detection must find every cut
within one frame (read back from the ``.scenes.json`` it writes next to the output; DepthCrafter windows and
inpainting chunks are planned per shot, tests/test_scenes.py checks that none crosses a cut).
``--hw-encode auto,off`` runs each clip once per encoder mode and reports the time per frame of each (NVENC needs an
NVIDIA GPU: on the CPU, auto falls back to libx264 and both rows measure x264).

``--work`` defaults to a fresh temporary directory, removed at the end unless ``--keep``; with ``--keep`` a rerun
with the same ``--work`` reuses the clips already there (they are checked by frame count).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT, FPS = 1280, 720, 30
SAMPLE_RATE = 48000
MIB = 1024**2
LIMIT_BYTES = 4 * 10**9
GROWTH_LIMIT = 1.10
PERIOD = 160  # the source pattern repeats every 160 px, so a moving frame is a slice of one fixed canvas
SHOTS = 1  # --shots: shots of equal length per clip


def shot_of(index: int, frames: int) -> int:
    """The shot of frame ``index`` in a ``frames``-frame clip of SHOTS equal shots."""
    return min(index * SHOTS // frames, SHOTS - 1)


def true_cuts(frames: int) -> list[int]:
    """First frames of shots 1.. (the inverse of :func:`shot_of`)."""
    return [next(i for i in range(frames) if shot_of(i, frames) == k) for k in range(1, SHOTS)]


def _shot_look(canvas: np.ndarray, shot: int) -> np.ndarray:
    """Shot ``shot``'s variant of the canvas: channels rotated, every other triple inverted (a hard cut each time)."""
    look = np.roll(canvas, shot % 3, axis=-1)
    return 255 - look if (shot // 3) % 2 else look


@dataclass(frozen=True)
class Clip:
    """The inputs of one run: the source video and, for modes that need it, its depth video."""

    frames: int
    source: Path
    depth: Path | None


@dataclass(frozen=True)
class Result:
    frames: int
    seconds: float
    peak_rss: int  # bytes, from wait4's ru_maxrss
    first_half_rss: int  # bytes, sampled VmRSS peak over the first half of the wall time
    second_half_rss: int


# --- synthetic clips -------------------------------------------------------------------------------------------


def _source_canvas() -> np.ndarray:
    """A periodic colour pattern (sines and a 40 px checkerboard) larger than a frame by one period each way."""
    y = np.arange(HEIGHT + PERIOD)[:, None]
    x = np.arange(WIDTH + PERIOD)[None, :]
    red = 128 + 100 * np.sin(2 * np.pi * x / PERIOD) + 0 * y
    green = 128 + 100 * np.sin(2 * np.pi * y / (PERIOD / 2)) + 0 * x
    blue = np.where(((x // 40) + (y // 40)) % 2, 200, 50)
    return np.stack([red, green, blue], axis=-1).clip(0, 255).astype(np.uint8)


def _write_audio_until(out_stream, written: int, until: int, container) -> int:
    """Encode a 440/660 Hz stereo tone from sample ``written`` up to ``until`` in whole encoder frames."""
    step = out_stream.codec_context.frame_size or 1024
    fmt = out_stream.codec_context.format.name
    while written + step <= until:
        t = (written + np.arange(step)) / SAMPLE_RATE
        tone = np.stack([0.2 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
        if not fmt.endswith("p"):  # packed formats take one interleaved row
            tone = tone.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(tone, format=fmt, layout="stereo")
        frame.sample_rate, frame.pts = SAMPLE_RATE, written
        container.mux(out_stream.encode(frame))
        written += step
    return written


def write_source(path: Path, frames: int) -> None:
    """Encode ``frames`` frames of the moving pattern (H.264, CRF 20, veryfast) with a stereo AAC tone track,
    one frame at a time, audio interleaved with the video as it goes."""
    base = _source_canvas()
    looks = {}
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "20", "preset": "veryfast"}
        audio = out.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "stereo"
        written = 0
        for index in range(frames):
            shot = shot_of(index, frames)
            canvas = looks.setdefault(shot, _shot_look(base, shot))
            speed = 4 if shot % 2 == 0 else -3  # the motion changes at a cut too
            dx, dy = (speed * index) % PERIOD, (2 * index) % PERIOD
            image = np.ascontiguousarray(canvas[dy : dy + HEIGHT, dx : dx + WIDTH])
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
            written = _write_audio_until(audio, written, (index + 1) * SAMPLE_RATE // FPS, out)
        out.mux(video.encode(None))
        total = frames * SAMPLE_RATE // FPS
        _write_audio_until(audio, written, total + (-(total - written)) % 1024, out)  # the last partial step
        out.mux(audio.encode(None))


def write_depth(path: Path, frames: int) -> None:
    """Encode a depth video (near = bright): a ground-plane ramp with a bright disc crossing it once per clip."""
    ramp = np.linspace(40, 140, HEIGHT, dtype=np.float32)[:, None].repeat(WIDTH, axis=1)
    radius = HEIGHT // 6
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disc = (yy**2 + xx**2) <= radius**2
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "18", "preset": "ultrafast"}
        for index in range(frames):
            shot = shot_of(index, frames)
            image = (ramp * (0.5 + 0.5 * ((shot % 4) + 1) / 4)).astype(np.uint8)  # each shot its own depth range
            cx = radius + int((WIDTH - 2 * radius - 1) * index / max(frames - 1, 1))
            cy = HEIGHT // 2 + int(HEIGHT / 5 * np.sin(2 * np.pi * index / 150))
            patch = image[cy - radius : cy + radius + 1, cx - radius : cx + radius + 1]
            patch[disc] = 230
            frame = av.VideoFrame.from_ndarray(np.repeat(image[..., None], 3, axis=-1), format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))


def count_frames(path: Path) -> int:
    """Video packets of ``path`` (demux only), 0 when it is missing or unreadable."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except (av.FFmpegError, OSError, IndexError):
        return 0


def make_clip(work: Path, frames: int, mode: str) -> Clip:
    """The inputs for ``frames`` frames, generated unless valid ones are already in ``work``."""
    source = work / f"src_{frames}.mp4"
    depth = work / f"depth_{frames}.mp4" if needs_depth_video(mode) else None
    for path, writer in ((source, write_source), (depth, write_depth)):
        if path is None or count_frames(path) == frames:
            continue
        started = time.perf_counter()
        writer(path, frames)
        print(f"generated {path.name}: {frames} frames in {time.perf_counter() - started:.1f} s", flush=True)
    return Clip(frames, source, depth)


# --- modes -----------------------------------------------------------------------------------------------------


def needs_depth_video(mode: str) -> bool:
    return mode == "depth-video"


def tiny_models_folder(work: Path) -> Path:
    """Tiny random DepthCrafter, StereoCrafter and SVD folders in ComfyUI's layout (tests/tiny_models.py), once."""
    root = work / "tiny_models"
    if not (root / "diffusers").is_dir():
        sys.path.insert(0, str(REPO / "tests"))
        from tiny_models import make_depthcrafter_folder, make_stereocrafter_folder, make_svd_folder

        make_depthcrafter_folder(root / "depthcrafter" / "DepthCrafter")
        make_stereocrafter_folder(root / "stereocrafter" / "StereoCrafter")
        make_svd_folder(root / "diffusers" / "stable-video-diffusion-img2vid-xt-1-1")
    return root


def mode_args(mode: str, clip: Clip, work: Path) -> list[str]:
    """The CLI arguments a mode adds after ``SRC -o OUT``.

    depth-video: the model-free path (your depth video, holes left black). tiny-models: the whole pipeline with tiny
    random weights (DepthCrafter depth into the lossless depth file, StereoCrafter inpainting in its temporal
    chunks): the models' weights are tiny, so what is measured is the streaming's own RAM (on the CPU plus the tiny
    models' activations, which are at full resolution in the VAE: use ``--size 640x360`` there). DepthCrafter runs at
    max_res 256 and one step of each model: 3000 frames at 640x360 take about 40 minutes on a 2-core CPU.
    """
    if mode == "depth-video":
        return ["--depth", str(clip.depth), "--no-inpaint"]
    if mode == "tiny-models":
        models = tiny_models_folder(work)
        return ["--models", str(models), "--depth-max-res", "256", "--depth-steps", "1", "--inpaint-steps", "1"]
    raise ValueError(f"unknown mode {mode!r}")


# --- measuring -------------------------------------------------------------------------------------------------


RSS_FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem")


def proc_memory(pid: int) -> dict[str, int]:
    """The resident-memory fields of ``/proc/PID/status`` in bytes ({} once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if line.startswith(RSS_FIELDS))
    except OSError:
        return {}
    return {key: int(value.split()[0]) * 1024 for key, value in fields.items()}


def run_conversion(clip: Clip, output: Path, extra: list[str], log: Path, device: str = "cpu") -> Result:
    """Convert ``clip`` in a fresh child running this checkout's ``stereocrafter`` package; its wall time and
    memory (see the module docstring)."""
    for stale in (output, output.with_name(output.name + ".partial")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(output.with_name(output.name + ".partial.d"), ignore_errors=True)  # no resume from an old run
    command = [sys.executable, "-m", "stereocrafter", str(clip.source), "-o", str(output), "--device", device, *extra]
    samples: list[tuple[float, int]] = []
    with open(log, "w") as log_file:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            rss = proc_memory(child.pid).get("VmRSS")
            if rss is not None:
                samples.append((time.perf_counter() - started, rss))
            time.sleep(0.25)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    if child.returncode != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"conversion of {clip.frames} frames failed (exit {child.returncode}):\n{tail}")
    half = seconds / 2
    first = max((rss for t, rss in samples if t < half), default=0)
    second = max((rss for t, rss in samples if t >= half), default=0)
    return Result(clip.frames, seconds, usage.ru_maxrss * 1024, first, second)


def check_output(output: Path, frames: int) -> None:
    """The output has ``frames`` frames of 2560×720 (full SBS) and an audio stream."""
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        audio = len(container.streams.audio)
        count = sum(1 for packet in container.demux(stream) if packet.size)
    expected = (2 * WIDTH, HEIGHT)
    if count != frames or size != expected or audio != 1:
        raise RuntimeError(
            f"{output}: {count} frames {size[0]}x{size[1]}, {audio} audio streams; expected {frames} frames "
            f"{expected[0]}x{expected[1]} with 1 audio stream."
        )


def check_cuts(output: Path, frames: int) -> str:
    """Compare the cuts the converter wrote next to ``output`` with the true ones; RuntimeError when one is missed,
    off by more than a frame, or extra."""
    import json

    found = json.loads(output.with_name(output.stem + ".scenes.json").read_text())["cuts"]
    truth = true_cuts(frames)
    matched = len(found) == len(truth) and all(abs(a - b) <= 1 for a, b in zip(found, truth, strict=True))
    if not matched:
        raise RuntimeError(f"{output.name}: cuts found {found}, true cuts {truth}.")
    exact = sum(a == b for a, b in zip(found, truth, strict=True))
    return f"{len(truth)} cuts found ({exact} at the exact frame)"


def report(results: list[Result]) -> tuple[str, bool]:
    """The markdown table and pass/fail lines, and whether everything passed."""
    base = next((r for r in results if r.frames == min(x.frames for x in results)), None)
    lines = [
        "| frames | seconds | frames/s | peak RSS MiB | vs first | VmRSS peak 1st half → 2nd half MiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.frames} | {r.seconds:.1f} | {r.frames / r.seconds:.2f} | {r.peak_rss / MIB:.0f} | "
            f"{r.peak_rss / base.peak_rss:.3f} | {r.first_half_rss / MIB:.0f} → {r.second_half_rss / MIB:.0f} |"
        )
    ok = True
    longest = max(results, key=lambda r: r.frames)
    if longest is not base:
        flat = longest.peak_rss <= GROWTH_LIMIT * base.peak_rss
        ok &= flat
        lines.append(
            f"\n{'PASS' if flat else 'FAIL'}: peak RSS at {longest.frames} frames is "
            f"{longest.peak_rss / base.peak_rss:.3f} × the {base.frames}-frame peak (limit {GROWTH_LIMIT:.2f})."
        )
    worst = max(r.peak_rss for r in results)
    under = worst < LIMIT_BYTES
    ok &= under
    lines.append(
        f"{'PASS' if under else 'FAIL'}: largest peak RSS {worst / 1e9:.2f} GB ({worst / MIB:.0f} MiB) "
        f"{'<' if under else '≥'} 4 GB."
    )
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    global WIDTH, HEIGHT  # the clip writers and the output check read the size from here
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--frames", default="300,1000,3000", help="comma-separated frame counts (default 300,1000,3000)"
    )
    parser.add_argument("--work", type=Path, help="directory for the clips and outputs (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (and reuse its clips)")
    parser.add_argument("--mode", default="depth-video", choices=["depth-video", "tiny-models"])
    parser.add_argument("--chunk-frames", type=int, help="passed on to the converter (default: its own)")
    parser.add_argument("--size", default="1280x720", help="clip size WxH (default 1280x720)")
    parser.add_argument("--device", default="cpu", help="the converter's --device (default cpu)")
    parser.add_argument("--shots", type=int, default=1, help="shots per clip (default 1; a film: 20)")
    parser.add_argument("--hw-encode", default="", help="comma-separated --hw-encode modes to run each clip with "
                        "(e.g. auto,off); default: the converter's own")  # fmt: skip
    args = parser.parse_args(argv)
    global SHOTS
    SHOTS = args.shots
    encoders = [mode for mode in args.hw_encode.split(",") if mode] or [""]
    WIDTH, HEIGHT = (int(v) for v in args.size.split("x"))
    counts = sorted({int(n) for n in args.frames.split(",")})
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        work = args.work
    else:
        work = Path(tempfile.mkdtemp(prefix="long_video_"))
    extra_common = ["--chunk-frames", str(args.chunk_frames)] if args.chunk_frames else []
    results: list[Result] = []
    started = time.perf_counter()
    try:
        for frames, encoder in [(n, e) for n in counts for e in encoders]:
            clip = make_clip(work, frames, args.mode)
            output = work / f"out_{frames}{'_' + encoder if encoder else ''}.mp4"
            extra = mode_args(args.mode, clip, work) + extra_common + (["--hw-encode", encoder] if encoder else [])
            result = run_conversion(clip, output, extra, work / f"log_{output.stem}.txt", args.device)
            check_output(output, frames)
            cuts = check_cuts(output, frames) if SHOTS > 1 else "one shot"
            results.append(result)
            print(
                f"{frames} frames{' hw-encode ' + encoder if encoder else ''}: {result.seconds:.1f} s "
                f"({result.seconds / frames * 1000:.1f} ms/frame), peak RSS {result.peak_rss / MIB:.0f} MiB "
                f"(output checked, {cuts})",
                flush=True,
            )
            if not args.keep:
                output.unlink()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    table, ok = report(results)
    print(f"\nmode {args.mode}, {WIDTH}x{HEIGHT} @ {FPS} fps, total {time.perf_counter() - started:.0f} s "
          f"(generation included)\n")  # fmt: skip
    print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
