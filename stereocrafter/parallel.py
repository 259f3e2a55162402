"""Shot-parallel conversion: a film cut into shot-aligned parts, converted by several workers, joined in order.

A film's shots are independent units of the converter (DepthCrafter's windows, StereoCrafter's chunks and the
per-shot depth range restart at every cut), so parts made of whole shots convert independently with no seam:

1. Plan (:func:`plan_parts`): the cuts (given, or detected once by :mod:`.video.scenes`) group consecutive whole shots
   into parts of at least ``part_frames`` frames. The plan depends on the cuts and ``part_frames`` only, never on
   the number of workers, so one worker and eight give the same parts and the same output.
2. Convert: each part is :func:`~.convert.convert_video` of the input's frames [start, end) (a :class:`TrimWindow`
   placed between two frames' timestamps, so it holds exactly those frames) with the part's own cuts, into
   ``OUTPUT.parallel.d/part_NNNNN.mp4``. Workers are independent: one process per GPU pulling parts from the
   parent (:func:`convert_parallel`), or Ray actors on many machines (:func:`convert_with_ray`). Each worker loads
   its models once and keeps them for all its parts.
3. Join: the parts' video packets, re-timed one after another, with the source's audio
   (:func:`~.video.video_io.mux_segments`, no re-encoding), into ``OUTPUT``.

Resumable: a part file exists only when that part is complete (convert_video renames it at the end), and an
unfinished part resumes after its last finished segment; a rerun of the same command redoes only what is missing.

Differences from one :func:`~.convert.convert_video` of the whole film, by design:

- At a cut that is also a part boundary the depth range steps to the new shot's at once instead of easing over
  ``shot_transition_frames`` (12) frames; cuts inside a part ease as usual. Long parts (``part_frames``) keep such
  boundaries rare.
- ``depth_normalization="clip"`` becomes one range per part.
- ``max_part_frames`` (off by default) splits shots longer than that inside the shot. Such a split is NOT
  seam-free: DepthCrafter's windows restart there (the relative depth's scale may jump, no overlap blends it) and
  each piece has its own depth range, so the split is treated as a cut. Use it only for shots far longer than a
  part (many minutes), where the balance matters more than one possible step in depth.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from .compose.spatial_media import inject_vr180
from .convert import JOB_TAG_KEY, ConvertSettings, DepthStage, InpaintStage, output_job_tag, resolve_output_path
from .job_lock import JobLock
from .video.scenes import check_cuts, detect_cuts, scenes_path, shot_segments, write_scenes_file
from .video.video_io import TrimWindow, _open, _video_stream, mux_segments, output_format, probe_video

logger = logging.getLogger(__name__)

#: Default part length: about 40 s at 24 fps, 20 min of an H200 at 0.5 s/frame; a two-hour film is ~170 parts,
#: enough to keep 8 GPUs busy to the end while few cuts fall on a part boundary.
PART_FRAMES = 1000
#: Attempts of one part after a failure (an exception in the worker, or a worker that died) before the run stops.
PART_RETRIES = 2
PLAN_VERSION = 1
DEFAULT_SETTINGS = ConvertSettings()

#: Builds a worker's (depth stage, inpainting stage); must pickle (a module-level function, a partial of one, or
#: :class:`CliStages`), as it runs in each worker process or Ray actor. None: depth video, no inpainting.
StageFactory = Callable[[], tuple[DepthStage | None, InpaintStage | None]]


@dataclass(frozen=True)
class Part:
    """Frames [start, end) of the input with their cuts (relative to ``start``) and the trim windows that hold
    exactly those frames in the input and in the depth video."""

    index: int
    start: int
    end: int
    cuts: tuple[int, ...]
    window: TrimWindow
    depth_window: TrimWindow | None = None

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def file_name(self) -> str:
        return f"part_{self.index:05d}.mp4"


def plan_parts(
    cuts: Sequence[int], num_frames: int, part_frames: int = PART_FRAMES, max_part_frames: int | None = None
) -> list[tuple[int, int, tuple[int, ...]]]:
    """(start, end, cuts inside relative to start) of each part: consecutive whole shots until a part has at least
    ``part_frames`` frames (the last part may be shorter); shots longer than ``max_part_frames`` are first split
    into equal pieces (not seam-free, see the module docstring)."""
    if part_frames < 1:
        raise ValueError(f"part_frames must be >= 1, got {part_frames}.")
    if max_part_frames is not None and max_part_frames < 1:
        raise ValueError(f"max_part_frames must be >= 1 or None, got {max_part_frames}.")
    shots = shot_segments(check_cuts(cuts, num_frames), num_frames)
    if max_part_frames is not None:
        pieces = []
        for start, end in shots:
            count = -(-(end - start) // max_part_frames)
            bounds = [start + (end - start) * k // count for k in range(count + 1)]
            pieces += list(zip(bounds[:-1], bounds[1:], strict=True))
        shots = pieces
    parts: list[tuple[int, int, tuple[int, ...]]] = []
    group: list[tuple[int, int]] = []
    for shot in shots:
        group.append(shot)
        if group[-1][1] - group[0][0] >= part_frames or (
            max_part_frames is not None and shot[1] - shot[0] >= max_part_frames
        ):
            parts.append(_group(group))
            group = []
    if group:
        parts.append(_group(group))
    return parts


def _group(shots: list[tuple[int, int]]) -> tuple[int, int, tuple[int, ...]]:
    start = shots[0][0]
    return start, shots[-1][1], tuple(s - start for s, _ in shots[1:])


def frame_stamps(path: Path | str) -> tuple[list[int], Fraction]:
    """(presentation timestamps of every frame in display order, stream time base), by demuxing only."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        stamps = sorted(
            packet.pts for packet in container.demux(stream) if packet.size and packet.pts is not None
        )  # fmt: skip
        return stamps, Fraction(stream.time_base)


def trim_between(stamps: Sequence[int], time_base: Fraction, start: int, end: int) -> TrimWindow:
    """The :class:`TrimWindow` whose frames are exactly frames [start, end) of a video with these timestamps.

    ComfyUI's rule keeps ``int(start_time / tb) <= pts < int((start_time + duration) / tb)``: both edges are put
    half a tick after a frame's timestamp, so rounding of the seconds cannot move them across a frame."""
    if not 0 <= start < end <= len(stamps):
        raise ValueError(f"frames [{start}, {end}) are not inside the video's {len(stamps)} frames.")
    first = 0.0 if start == 0 else float((stamps[start] + Fraction(1, 2)) * time_base)
    if end == len(stamps):
        return TrimWindow(first, 0.0)
    return TrimWindow(first, float((stamps[end] + Fraction(1, 2)) * time_base) - first)


def _fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@dataclass(frozen=True)
class PartJob:
    """What every worker needs to convert any part (pickled to worker processes and Ray actors)."""

    input_path: Path
    work_dir: Path
    depth_path: Path | None = None
    settings: ConvertSettings = ConvertSettings()
    stages: StageFactory | None = None
    device: str | None = None
    #: Keep the models loaded between parts (both at once: the depth model's and the inpainting model's memory);
    #: False loads them per part, as a single conversion does (less memory, a load per part).
    keep_models: bool = True
    #: Called in the worker with each part before converting it (fault drills and tests: :class:`FailOnce`).
    on_part_start: Callable[[Part], None] | None = None


def _cached(load: Callable[[], Any]) -> Callable[[], Any]:
    box: list[Any] = []

    def cached() -> Any:
        if not box:
            box.append(load())
        return box[0]

    return cached


class PartConverter:
    """One worker's converter: builds the stages once (models load at the first part that needs them, then stay
    with ``keep_models``), converts parts into the work folder."""

    def __init__(self, job: PartJob) -> None:
        self.job = job
        depth, inpaint = job.stages() if job.stages is not None else (None, None)
        if job.keep_models:
            depth = dataclasses.replace(depth, load=_cached(depth.load)) if depth is not None else None
            inpaint = dataclasses.replace(inpaint, load=_cached(inpaint.load)) if inpaint is not None else None
        self.depth_stage, self.inpaint_stage = depth, inpaint

    def __call__(self, part: Part) -> int:
        """Convert ``part`` (a finished part is left as it is); returns its index."""
        from .convert import convert_video

        job = self.job
        if job.on_part_start is not None:
            job.on_part_start(part)
        target = job.work_dir / part.file_name
        if target.exists():
            return part.index
        # Any draw from the global RNGs (a model without its own generator) starts from the same state in every
        # part: a part's output never depends on which parts its worker converted before it.
        torch.manual_seed(self.inpaint_stage.seed if self.inpaint_stage is not None else 0)
        convert_video(
            job.input_path, target, job.depth_path, job.settings, depth_model=self.depth_stage,
            inpaint=self.inpaint_stage, device=job.device, trim=part.window, depth_trim=part.depth_window,
            scenes=list(part.cuts),
        )  # fmt: skip
        return part.index


@dataclass(frozen=True)
class FailOnce:
    """A part hook that fails the first part any worker starts (or part ``index``), once per ``marker`` file (which
    it creates): ``mode`` "raise" raises a RuntimeError, "exit" ends the worker process at once (a lost worker)."""

    marker: Path
    mode: str = "raise"
    index: int | None = None

    def __call__(self, part: Part) -> None:
        if self.index is not None and part.index != self.index:
            return
        try:
            with open(self.marker, "x"):
                pass
        except FileExistsError:
            return
        if self.mode == "exit":
            os._exit(3)
        raise RuntimeError(f"FailOnce: part {part.index} fails this once")


@dataclass(frozen=True)
class CliStages:
    """The command line's model stages, rebuilt in each worker from its arguments (closures do not pickle)."""

    argv: tuple[str, ...]

    def __call__(self) -> tuple[DepthStage | None, InpaintStage | None]:
        cli = importlib.import_module("stereocrafter.__main__")
        return cli._stages(cli.build_parser().parse_args(list(self.argv)))


@dataclass
class Plan:
    """A parallel job: its parts, the work folder, the output and what identifies the job."""

    job: PartJob
    parts: list[Part]
    output: Path
    record: dict[str, Any]
    cuts: list[int] = field(default_factory=list)
    frame_count: int = 0

    def pending(self) -> list[Part]:
        """The parts without a finished part file."""
        return [part for part in self.parts if not (self.job.work_dir / part.file_name).exists()]


def work_folder(output: Path) -> Path:
    """The parallel job's folder next to ``output``: plan and part files."""
    return output.with_name(output.name + ".parallel.d")


def _tag(record: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps([PLAN_VERSION, record], sort_keys=True).encode()).hexdigest()
    return f"StereoCrafter3D parallel job {digest[:32]}"


def make_plan(
    input_path: Path | str,
    output: Path | str,
    depth: Path | str | None = None,
    settings: ConvertSettings = DEFAULT_SETTINGS,
    *,
    stages: StageFactory | None = None,
    device: str | None = None,
    scenes: Sequence[int] | None = None,
    part_frames: int = PART_FRAMES,
    max_part_frames: int | None = None,
    keep_models: bool = True,
    on_part_start: Callable[[Part], None] | None = None,
) -> Plan:
    """Find the cuts (``scenes``, else detected when ``settings.detect_cuts``, else none; kept in the work folder's
    plan.json, so a rerun does not detect again) and plan the parts. A plan.json of another job is discarded with
    its parts."""
    settings.validate()
    input_path = Path(input_path)
    depth_path = Path(depth) if depth is not None else None
    output = resolve_output_path(input_path, output, settings.layout)
    output_format(output)
    info = probe_video(input_path)
    if depth_path is None and stages is None:
        raise ValueError("give a depth video or the model stages (stages=...) for the depth.")
    depth_stage, inpaint_stage = stages() if stages is not None else (None, None)
    record = {
        "input": _fingerprint(input_path),
        "depth": _fingerprint(depth_path) if depth_path is not None else None,
        "models": [
            None if s is None else {"model": s.model_id, "settings": asdict(s.settings)}
            for s in (depth_stage, inpaint_stage)
        ],
        "seed": inpaint_stage.seed if inpaint_stage is not None else None,
        "settings": asdict(settings),
        "part_frames": part_frames,
        "max_part_frames": max_part_frames,
        "scenes": None if scenes is None else check_cuts(scenes, info.frame_count, "scenes"),
    }
    record = json.loads(json.dumps(record))
    work_dir = work_folder(output)
    work_dir.mkdir(exist_ok=True)
    plan_file = work_dir / "plan.json"
    saved = json.loads(plan_file.read_text()) if plan_file.exists() else None
    if saved is not None and saved.get("version") == PLAN_VERSION and saved.get("job") == record:
        cuts = saved["cuts"]
        logger.info("resuming %s: its plan is in %s.", output.name, work_dir)
    else:
        if saved is not None:
            logger.warning("%s belongs to other inputs or settings; starting over.", work_dir)
            shutil.rmtree(work_dir)
            work_dir.mkdir()
        if scenes is not None:
            cuts = list(record["scenes"])
        elif settings.detect_cuts:
            cuts, _ = detect_cuts(input_path, info.fps, None, settings.cut_threshold)
            cuts = [cut for cut in cuts if cut < info.frame_count]
        else:
            cuts = []
        tmp = plan_file.with_name("plan.json.tmp")
        tmp.write_text(json.dumps({"version": PLAN_VERSION, "job": record, "cuts": cuts}, indent=1))
        os.replace(tmp, plan_file)
    stamps, time_base = frame_stamps(input_path)
    depth_stamps = frame_stamps(depth_path) if depth_path is not None else None
    if depth_stamps is not None and len(depth_stamps[0]) != len(stamps):
        raise ValueError(
            f"the depth video has {len(depth_stamps[0])} frames but {input_path.name} has {len(stamps)}; they must "
            "match one to one (make the depth from the same clip, at the same frame rate)."
        )
    parts = []
    for index, (start, end, part_cuts) in enumerate(plan_parts(cuts, len(stamps), part_frames, max_part_frames)):
        depth_window = trim_between(*depth_stamps, start, end) if depth_stamps is not None else None
        parts.append(Part(index, start, end, part_cuts, trim_between(stamps, time_base, start, end), depth_window))
    job = PartJob(input_path, work_dir, depth_path, settings, stages, device, keep_models, on_part_start)
    logger.info("%d shot(s) in %d frames: %d part(s) of about %d frames.", len(cuts) + 1, len(stamps), len(parts),
                part_frames)  # fmt: skip
    return Plan(job, parts, output, record, cuts, len(stamps))


def join_parts(plan: Plan) -> Path:
    """Join the finished parts in order with the source's audio (no re-encoding) into the output; removes the work
    folder. Returns the output."""
    info = probe_video(plan.job.input_path)
    work_dir = plan.job.work_dir
    segments = [(work_dir / part.file_name, part.frames) for part in plan.parts]
    missing = [str(path) for path, _ in segments if not path.exists()]
    if missing:
        raise RuntimeError(f"parts missing, rerun to convert them: {', '.join(missing)}")
    partial = plan.output.with_name(plan.output.name + ".partial")
    mux_segments(segments, info.fps, partial, plan.output.suffix.lower(), info, {JOB_TAG_KEY: _tag(plan.record)})
    if plan.job.settings.layout == "vr180":
        inject_vr180(partial)
    os.replace(partial, plan.output)
    source = "given" if plan.record["scenes"] is not None else "detected" if plan.job.settings.detect_cuts else "none"
    write_scenes_file(scenes_path(plan.output), plan.cuts, plan.frame_count, info.fps, source)
    shutil.rmtree(work_dir)
    return plan.output


def _finished(plan: Plan, overwrite: bool) -> bool:
    """True when the output is this job's finished output; a FileExistsError for another file there."""
    if overwrite or not plan.output.exists():
        return False
    if output_job_tag(plan.output) == _tag(plan.record):
        logger.info("%s is already converted from the same input and settings: nothing to do.", plan.output)
        return True
    raise FileExistsError(
        f"{plan.output} already exists and is not this conversion's output: choose another output, or pass "
        "--overwrite (overwrite=True) to replace it."
    )


def resolve_gpus(spec: str | None, available: int) -> list[str]:
    """``--gpus`` as CUDA device ids: "all" (every visible GPU), "N" (the first N) or "0,2" (those)."""
    if spec is None:
        return []
    spec = spec.strip().lower()
    if spec == "all":
        ids = [str(k) for k in range(available)]
    elif spec.isdigit():
        if int(spec) > available:
            raise ValueError(f"--gpus {spec}: only {available} GPU(s) are visible here.")
        ids = [str(k) for k in range(int(spec))]
    else:
        ids = [item.strip() for item in spec.split(",") if item.strip()]
        if not ids or not all(item.isdigit() for item in ids) or len(set(ids)) != len(ids):
            raise ValueError(f"--gpus must be all, a count or a list of distinct GPU ids (e.g. 0,2), got {spec!r}.")
        if max(int(item) for item in ids) >= available:
            raise ValueError(f"--gpus {spec}: GPU ids go up to {available - 1} here.")
    if not ids:
        raise ValueError(f"--gpus {spec}: no GPU is visible here (CUDA_VISIBLE_DEVICES, drivers).")
    return ids


def _worker(job: PartJob, gpu: str | None, conn: Any, worker: int, threads: int | None = None) -> None:
    """One worker process: its own models (on GPU ``gpu`` when given; ``threads`` CPU threads), parts from ``conn``
    until None; every message back goes through its own pipe (a worker that dies cannot block the others')."""
    if gpu is not None:  # before CUDA starts in this process: the worker sees only its GPU, as cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    if threads is not None:
        torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format=f"%(levelname)s: [worker {worker}] %(message)s")
    try:
        converter = PartConverter(job)
    except Exception:  # noqa: BLE001 (reported to the parent, which stops the run with it)
        conn.send(("broken", None, traceback.format_exc()))
        return
    conn.send(("ready", None, None))
    while (part := conn.recv()) is not None:
        try:
            converter(part)
        except Exception:  # noqa: BLE001 (the parent retries the part or stops with this traceback)
            conn.send(("failed", part.index, traceback.format_exc()))
        else:
            conn.send(("done", part.index, None))


@dataclass
class _Slot:
    """A worker process as the parent sees it."""

    proc: Any
    conn: Any
    gpu: str | None
    ready: bool = False
    part: Part | None = None  # the part it converts


def run_local(plan: Plan, workers: int, gpus: Sequence[str] = (), retries: int = PART_RETRIES) -> None:
    """Convert the plan's pending parts with ``workers`` processes (one per GPU id in ``gpus`` when given), each
    given the next part when it finishes one. A part that fails is retried up to ``retries`` times (in any
    worker); a worker that dies is replaced and its part redone."""
    pending = plan.pending()
    if not pending:
        return
    count = len(gpus) if gpus else workers
    if count < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    context = multiprocessing.get_context("spawn")  # CUDA cannot start in a forked child
    # CPU workers share the cores (each would take them all: oversubscribed, several times slower).
    threads = None if gpus else max(1, (os.cpu_count() or 1) // count)
    slots: dict[int, _Slot] = {}
    attempts: dict[int, int] = {}
    todo = list(pending)
    done: set[int] = set()
    next_id = 0

    def start(gpu: str | None) -> None:
        nonlocal next_id
        parent_end, child_end = context.Pipe()
        proc = context.Process(target=_worker, args=(plan.job, gpu, child_end, next_id, threads), daemon=True,
                               name=f"stereocrafter-worker-{next_id}")  # fmt: skip
        proc.start()
        child_end.close()  # the parent's copy: the pipe then reports EOF when the worker dies
        slots[next_id] = _Slot(proc, parent_end, gpu)
        next_id += 1

    def give(slot: _Slot) -> None:
        if todo:
            slot.part = todo.pop(0)
            slot.conn.send(slot.part)

    def failed(part: Part, why: str) -> None:
        attempts[part.index] = attempts.get(part.index, 0) + 1
        if attempts[part.index] > retries:
            raise RuntimeError(f"part {part.index} (frames {part.start}..{part.end - 1}) failed "
                               f"{attempts[part.index]} times; the last error:\n{why}")  # fmt: skip
        logger.warning("part %d failed (%s); converting it again.", part.index, why.strip().splitlines()[-1])
        todo.insert(0, part)

    def lost(worker: int) -> None:
        slot = slots.pop(worker)
        slot.proc.join()
        if not slot.ready:  # it never started: a new one would end the same way
            raise RuntimeError(
                f"worker {worker} ended (exit code {slot.proc.exitcode}) before it could convert a part; see its "
                "error above (a script starting a parallel conversion needs the if __name__ == '__main__': guard, "
                "as any multiprocessing program)."
            )
        if slot.part is not None:
            failed(slot.part, f"worker {worker} ended with exit code {slot.proc.exitcode}")
        # A lost worker (killed, out of memory): its part is redone, a new worker takes its place.
        start(slot.gpu)

    try:
        for index in range(min(count, len(pending))):
            start(gpus[index] if gpus else None)
        while len(done) < len(pending):
            by_conn = {slot.conn: worker for worker, slot in slots.items()}
            for conn in multiprocessing.connection.wait(list(by_conn)):
                worker = by_conn[conn]
                slot = slots[worker]
                try:
                    kind, index, detail = conn.recv()
                except (EOFError, OSError):
                    lost(worker)
                    continue
                if kind == "broken":
                    raise RuntimeError(f"worker {worker} could not start:\n{detail}")
                if kind == "ready":
                    slot.ready = True
                elif kind == "done":
                    done.add(index)
                    slot.part = None
                    logger.info("part %d done (%d of %d).", index, len(done), len(pending))
                elif kind == "failed":
                    part, slot.part = slot.part, None
                    failed(part, detail)
                give(slot)
        for slot in slots.values():
            slot.conn.send(None)
        for slot in slots.values():
            slot.proc.join(timeout=60)
    finally:
        for slot in slots.values():
            if slot.proc.is_alive():
                slot.proc.terminate()
                slot.proc.join()


class RayConverter:
    """A Ray actor's body: one :class:`PartConverter` (its models stay loaded across the actor's tasks)."""

    def __init__(self, job: PartJob) -> None:
        self.convert = PartConverter(job)

    def run(self, part: Part) -> int:
        return self.convert(part)


def run_ray(
    plan: Plan,
    address: str | None,
    workers: int | None = None,
    gpus_per_worker: float = 1.0,
    cpus_per_worker: float = 1.0,
    retries: int = PART_RETRIES,
    init_kwargs: dict[str, Any] | None = None,
) -> None:
    """Convert the pending parts on a Ray cluster (``address``: "auto", "ray://host:10001", "host:6379"; None
    starts a local one): one actor per worker holding its models, each given the next part when it returns one.

    An actor that dies (its machine lost, killed, out of memory) is restarted by Ray and its part retried
    (``max_restarts``, ``max_task_retries``); a part whose task raises is submitted again up to ``retries`` times.
    Inputs, models and the output folder must be at the same paths on every node (a shared file system)."""
    import ray

    pending = plan.pending()
    if not pending:
        return
    if not ray.is_initialized():
        ray.init(address=address, **(init_kwargs or {}))
    resources = ray.cluster_resources()
    if gpus_per_worker > 0 and resources.get("GPU", 0) < gpus_per_worker:
        # Actors asking for a GPU would wait for one for ever.
        raise RuntimeError(f"the Ray cluster has {resources.get('GPU', 0):g} GPU(s); start its nodes on GPU machines, "
                           "or convert on the CPU (--device cpu).")  # fmt: skip
    if workers is None:
        workers = int(resources.get("GPU", 0) // gpus_per_worker) if gpus_per_worker else 0
        workers = workers or int(resources.get("CPU", 1) // max(cpus_per_worker, 1e-9))
    workers = max(1, min(workers, len(pending)))
    actor_class = ray.remote(
        num_gpus=gpus_per_worker, num_cpus=cpus_per_worker, max_restarts=retries + 1, max_task_retries=retries + 1
    )(RayConverter)
    actors = [actor_class.remote(plan.job) for _ in range(workers)]
    todo = list(pending)
    attempts: dict[int, int] = {}
    running: dict[Any, tuple[Any, Part]] = {}
    logger.info("Ray: %d part(s) on %d actor(s).", len(todo), workers)

    def give(actor: Any) -> None:
        if todo:
            part = todo.pop(0)
            running[actor.run.remote(part)] = (actor, part)

    for actor in actors:
        give(actor)
    done = 0
    while running:
        ready, _ = ray.wait(list(running), num_returns=1)
        actor, part = running.pop(ready[0])
        try:
            ray.get(ready[0])
        except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
            attempts[part.index] = attempts.get(part.index, 0) + 1
            if attempts[part.index] > retries:
                raise RuntimeError(f"part {part.index} failed {attempts[part.index]} times on Ray: {exc}") from exc
            logger.warning("part %d failed on Ray (%s); converting it again.", part.index, type(exc).__name__)
            todo.insert(0, part)
            if isinstance(exc, ray.exceptions.RayActorError):  # gone for good: a fresh actor in its place
                actor = actor_class.remote(plan.job)
        else:
            done += 1
            logger.info("part %d done (%d of %d).", part.index, done, len(pending))
        give(actor)


def convert_parallel(
    input_path: Path | str,
    output: Path | str,
    depth: Path | str | None = None,
    settings: ConvertSettings = DEFAULT_SETTINGS,
    *,
    stages: StageFactory | None = None,
    workers: int | None = None,
    gpus: Sequence[str] = (),
    ray_address: str | None = None,
    use_ray: bool = False,
    ray_init: dict[str, Any] | None = None,
    device: str | None = None,
    scenes: Sequence[int] | None = None,
    part_frames: int = PART_FRAMES,
    max_part_frames: int | None = None,
    keep_models: bool = True,
    overwrite: bool = False,
    retries: int = PART_RETRIES,
    on_part_start: Callable[[Part], None] | None = None,
) -> Path:
    """Convert ``input_path`` as shot-aligned parts in parallel (see the module docstring), resuming an
    interrupted run of the same job; returns the finished output.

    Args:
        input_path, output, depth, settings, device, scenes, overwrite: as :func:`~.convert.convert_video`.
        stages: builds a worker's model stages (picklable; None with a depth video and no inpainting).
        workers: worker processes without ``gpus`` (default 1; CPU tests), or Ray actors (default: one per GPU of
            the cluster, or per CPU with ``device="cpu"``).
        gpus: CUDA device ids, one worker process each (:func:`resolve_gpus`).
        use_ray, ray_address, ray_init: run on Ray (:func:`run_ray`; address None with use_ray: a local cluster,
            started with ``ray_init`` arguments).
        part_frames, max_part_frames: the plan (:func:`plan_parts`).
        keep_models: see :class:`PartJob`.
        retries: attempts per part after a failure.
        on_part_start: see :class:`PartJob`.
    """
    input_path = Path(input_path)
    target = resolve_output_path(input_path, output, settings.layout)
    with JobLock(target, input_path):
        plan = make_plan(
            input_path, target, depth, settings, stages=stages, device=device, scenes=scenes,
            part_frames=part_frames, max_part_frames=max_part_frames, keep_models=keep_models,
            on_part_start=on_part_start,
        )  # fmt: skip
        if _finished(plan, overwrite):
            shutil.rmtree(plan.job.work_dir, ignore_errors=True)
            return plan.output
        if use_ray or ray_address is not None:
            gpus_per_worker = 0.0 if device == "cpu" else 1.0
            run_ray(plan, ray_address, workers, gpus_per_worker, retries=retries, init_kwargs=ray_init)
        else:
            run_local(plan, workers or 1, gpus, retries)
        return join_parts(plan)
