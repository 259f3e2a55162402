"""Shot-parallel conversion (stereocrafter/parallel.py) on the CPU: a three-shot film from the shared clip, a depth
video and the model-free hole fill, converted by one and by two worker processes (and by a local Ray cluster
with two CPU actors); failed and lost workers; resuming only the unfinished parts; the CLI's --workers."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from test_convert import _encode
from test_scenes import FIRST_SHOT, needs_clip, two_shot_frames

from stereocrafter.__main__ import main
from stereocrafter.convert import ConvertSettings, convert_video
from stereocrafter.parallel import (
    FailOnce,
    Part,
    convert_parallel,
    frame_stamps,
    plan_parts,
    resolve_gpus,
    trim_between,
    work_folder,
)
from stereocrafter.video.scenes import scenes_path
from stereocrafter.video.video_io import probe_video, read_frames

SECOND_CUT = 56  # shot 3 (shot 1's frames again) starts here
FRAMES = 82
CUTS = [FIRST_SHOT, SECOND_CUT]
SETTINGS = ConvertSettings(chunk_frames=8, detect_cuts=False, crf=0)  # lossless: encodes compare exactly
PART_FRAMES = 20  # one part per shot: [0, 26), [26, 56), [56, 82)


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    """82 frames of 64x36 in three shots (cuts at 26 and 56), a 440 Hz tone, and a depth video with one depth
    range per shot (rows 0..100, 150..250, 60..120)."""
    folder = tmp_path_factory.mktemp("film")
    two = two_shot_frames(64, 36)
    frames = np.concatenate([two, two[:FIRST_SHOT]])
    assert frames.shape[0] == FRAMES
    rows = np.linspace(0, 1, 36)[:, None, None] * np.ones((1, 64, 3))
    levels = [(0, 100), (150, 100), (60, 60)]
    depth = np.stack([levels[int(k >= FIRST_SHOT) + int(k >= SECOND_CUT)][0] + rows * levels[
        int(k >= FIRST_SHOT) + int(k >= SECOND_CUT)][1] for k in range(FRAMES)])  # fmt: skip
    _encode(folder / "in.mp4", frames, tone_s=FRAMES / 24)
    _encode(folder / "depth.mp4", np.round(depth).astype(np.uint8))
    return folder / "in.mp4", folder / "depth.mp4"


def _decoded(path: Path) -> torch.Tensor:
    return torch.cat(list(read_frames(path, 32)))


@pytest.fixture(scope="module")
def reference(film, tmp_path_factory):
    """The film converted by one worker: (output, decoded frames)."""
    video, depth = film
    output = tmp_path_factory.mktemp("one") / "out.mp4"
    convert_parallel(video, output, depth, SETTINGS, workers=1, scenes=CUTS, part_frames=PART_FRAMES)
    return output, _decoded(output)


def test_plan_groups_whole_shots_into_parts():
    assert plan_parts([26, 56], 82, 20) == [(0, 26, ()), (26, 56, ()), (56, 82, ())]
    assert plan_parts([26, 56], 82, 50) == [(0, 56, (26,)), (56, 82, ())]
    assert plan_parts([5, 10, 15], 40, 12) == [(0, 15, (5, 10)), (15, 40, ())]
    assert plan_parts([], 30, 1000) == [(0, 30, ())]
    # Splitting long shots inside the shot: equal pieces, each its own part.
    assert plan_parts([10], 40, 5, max_part_frames=12) == [(0, 10, ()), (10, 20, ()), (20, 30, ()), (30, 40, ())]
    with pytest.raises(ValueError, match="part_frames"):
        plan_parts([], 10, 0)


@needs_clip
def test_trim_windows_hold_exactly_the_parts_frames(film):
    video, _ = film
    stamps, time_base = frame_stamps(video)
    assert len(stamps) == FRAMES
    whole = _decoded(video)
    for start, end in [(0, 26), (26, 56), (56, 82), (1, 2), (81, 82)]:
        window = trim_between(stamps, time_base, start, end)
        assert probe_video(video, window).frame_count == end - start
        assert torch.equal(torch.cat(list(read_frames(video, 16, window=window))), whole[start:end])


def test_gpu_lists():
    assert resolve_gpus("all", 3) == ["0", "1", "2"]
    assert resolve_gpus("2", 4) == ["0", "1"]
    assert resolve_gpus("0,2", 4) == ["0", "2"]
    for bad in ("5", "0,0", "a,b", "3,7"):
        with pytest.raises(ValueError, match="--gpus"):
            resolve_gpus(bad, 4)
    with pytest.raises(ValueError, match="no GPU"):
        resolve_gpus("all", 0)


@needs_clip
def test_one_worker_output_is_the_film_with_its_audio_and_shots(film, reference, tmp_path):
    video, depth = film
    output, frames = reference
    assert frames.shape == (FRAMES, 36, 128, 3)
    with av.open(str(output)) as container:
        assert len(container.streams.audio) == 1
        assert container.streams.audio[0].duration is not None
    assert json.loads(scenes_path(output).read_text())["cuts"] == CUTS
    assert not work_folder(output).exists()
    # Equal to one convert_video of the whole film but over the 12 frames after each cut on a part boundary: the
    # whole film's depth range eases from the previous shot's there, a part starts at its own shot's range.
    whole = tmp_path / "whole.mp4"
    convert_video(video, whole, depth, SETTINGS, scenes=CUTS)
    whole_frames = _decoded(whole)
    eased = [*range(FIRST_SHOT, FIRST_SHOT + 12), *range(SECOND_CUT, SECOND_CUT + 12)]
    same = [k for k in range(FRAMES) if k not in eased]
    assert torch.equal(whole_frames[same], frames[same])
    assert ((whole_frames[eased] - frames[eased]).abs().mean(dim=(1, 2, 3)) > 1 / 255).all()
    assert torch.equal(whole_frames[eased, :, :64], frames[eased, :, :64])  # the left view is the source


@dataclass(frozen=True)
class Faults:
    """Part hooks run one after the other."""

    hooks: tuple

    def __call__(self, part: Part) -> None:
        for hook in self.hooks:
            hook(part)


@needs_clip
def test_two_workers_give_the_one_worker_output_through_a_failed_and_a_lost_worker(film, reference, tmp_path):
    """Part 0 raises once in its worker, part 1's worker process ends once (exit code 3): both parts are converted
    again (the lost worker replaced) and the output is the one-worker output."""
    video, depth = film
    raised, lost = tmp_path / "raised", tmp_path / "lost"
    faults = Faults((FailOnce(raised, "raise", index=0), FailOnce(lost, "exit", index=1)))
    output = convert_parallel(video, tmp_path / "two.mp4", depth, SETTINGS, workers=2, scenes=CUTS,
                              part_frames=PART_FRAMES, on_part_start=faults)  # fmt: skip
    assert raised.exists() and lost.exists()
    assert torch.equal(_decoded(output), reference[1])


@dataclass(frozen=True)
class RecordParts:
    """Appends each part's index to ``log`` as a worker starts it."""

    log: Path

    def __call__(self, part: Part) -> None:
        with open(self.log, "a") as out:
            out.write(f"{part.index}\n")


@needs_clip
def test_a_rerun_converts_only_the_unfinished_parts(film, reference, tmp_path):
    video, depth = film
    output = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="part 2"):
        convert_parallel(video, output, depth, SETTINGS, workers=1, scenes=CUTS, part_frames=PART_FRAMES,
                         retries=0, on_part_start=FailOnce(tmp_path / "failed", index=2))  # fmt: skip
    work = work_folder(output)
    assert sorted(p.name for p in work.glob("part_*.mp4")) == ["part_00000.mp4", "part_00001.mp4"]
    log = tmp_path / "started.txt"
    convert_parallel(video, output, depth, SETTINGS, workers=2, scenes=CUTS, part_frames=PART_FRAMES,
                     on_part_start=RecordParts(log))  # fmt: skip
    assert log.read_text().split() == ["2"]
    assert torch.equal(_decoded(output), reference[1])
    # Finished: the same job again does nothing (no worker starts), another job's file is refused.
    convert_parallel(video, output, depth, SETTINGS, workers=2, scenes=CUTS, part_frames=PART_FRAMES,
                     on_part_start=RecordParts(log))  # fmt: skip
    assert log.read_text().split() == ["2"]
    with pytest.raises(FileExistsError, match="overwrite"):
        convert_parallel(video, output, depth, SETTINGS, workers=2, scenes=CUTS, part_frames=50)


@needs_clip
def test_cli_workers(film, reference, tmp_path):
    video, depth = film
    cuts = tmp_path / "cuts.txt"
    cuts.write_text("26\n56\n")
    output = tmp_path / "cli.mp4"
    argv = [str(video), "-o", str(output), "--depth", str(depth), "--no-inpaint", "--chunk-frames", "8", "--crf", "0",
            "--scenes", str(cuts), "--workers", "2", "--part-frames", str(PART_FRAMES)]  # fmt: skip
    assert main(argv) == 0
    assert torch.equal(_decoded(output), reference[1])


@needs_clip
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (requirements-dev.txt)")
def test_ray_local_cluster_with_a_lost_actor(film, reference, tmp_path):
    """Two CPU actors on a local Ray cluster; the first part's actor process ends once: Ray restarts the actor and
    retries its task, and the output is the one-worker output."""
    import ray

    video, depth = film
    marker = tmp_path / "lost"
    try:
        output = convert_parallel(
            video, tmp_path / "ray.mp4", depth, SETTINGS, use_ray=True, workers=2, device="cpu", scenes=CUTS,
            part_frames=PART_FRAMES, on_part_start=FailOnce(marker, "exit"),
            ray_init={"num_cpus": 2, "include_dashboard": False, "log_to_driver": False},
        )  # fmt: skip
    finally:
        ray.shutdown()
    assert marker.exists()
    assert torch.equal(_decoded(output), reference[1])
