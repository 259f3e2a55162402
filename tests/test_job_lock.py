"""One conversion per output: a second process on the same output stops with a message naming the running job, a
lock left by a killed run is taken over; an existing file at the output is kept (this job's finished output is
reported done, any other file refused) unless ``overwrite``. Processes are synchronised through pipes, no sleeps."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from stereocrafter.__main__ import main
from stereocrafter.convert import ConvertSettings, convert_video, work_paths
from stereocrafter.job_lock import JobLock, JobLockedError, lock_path
from stereocrafter.video.video_io import probe_video, read_frames
from stereocrafter.warp.stereo_warp import WarpSettings
from tests.test_video_io import _moving, _ramp_depth, _write

REPO_ROOT = Path(__file__).resolve().parent.parent

# A child that takes the lock of OUTPUT, says "locked" on stdout and holds it until its stdin closes.
_HOLDER = """
import sys
from pathlib import Path
from stereocrafter.job_lock import JobLock
with JobLock(Path(sys.argv[1]), "holder-input.mp4"):
    print("locked", flush=True)
    sys.stdin.read()
"""

# A child that converts SOURCE with DEPTH to OUTPUT in 2-frame chunks and, after its first segment, says
# "segment" and waits until its stdin closes.
_CONVERTER = """
import sys
from stereocrafter.convert import ConvertSettings, convert_video

def pause(index, done):
    if index == 0:
        print("segment", flush=True)
        sys.stdin.read()

convert_video(sys.argv[1], sys.argv[2], sys.argv[3], ConvertSettings(chunk_frames=2), on_chunk_done=pause)
print("done", flush=True)
"""


def _child(script: str, *args: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT,
    )  # fmt: skip


def _wait_for(child: subprocess.Popen, word: str) -> None:
    line = child.stdout.readline().strip()
    assert line == word, f"child said {line!r} (exit {child.poll()})"


@pytest.fixture
def clip(tmp_path: Path) -> tuple[Path, Path]:
    return _write(tmp_path / "in.mp4", _moving(6)), _write(tmp_path / "depth.mp4", _ramp_depth(6))


def test_second_run_stops_naming_the_running_job(clip: tuple[Path, Path], tmp_path: Path) -> None:
    source, depth = clip
    output = tmp_path / "out.mp4"
    holder = _child(_HOLDER, output)
    try:
        _wait_for(holder, "locked")
        with pytest.raises(JobLockedError, match=f"another conversion is writing {output}") as error:
            convert_video(source, output, depth)
        assert f"pid {holder.pid} " in str(error.value) and "holder-input.mp4" in str(error.value)
        assert not work_paths(output)[0].exists()  # the second run touched nothing
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    assert not lock_path(output).exists()  # released and removed
    assert convert_video(source, output, depth) == output  # free again
    assert not lock_path(output).exists()


def test_cli_second_run_exits_1_with_the_message(clip: tuple[Path, Path], tmp_path: Path, caplog) -> None:
    source, depth = clip
    output = tmp_path / "out.mp4"
    holder = _child(_HOLDER, output)
    try:
        _wait_for(holder, "locked")
        assert main([str(source), "-o", str(output), "--depth", str(depth), "--no-inpaint"]) == 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert f"another conversion is writing {output} (pid {holder.pid}" in caplog.text


def test_stale_lock_of_a_killed_run_is_taken_over(clip: tuple[Path, Path], tmp_path: Path, caplog) -> None:
    source, depth = clip
    output = tmp_path / "out.mp4"
    holder = _child(_HOLDER, output)
    _wait_for(holder, "locked")
    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait(timeout=60) == -signal.SIGKILL
    assert json.loads(lock_path(output).read_text())["pid"] == holder.pid  # left behind, naming the dead run
    assert convert_video(source, output, depth) == output
    assert f"taking over the lock of a conversion that stopped without finishing (pid {holder.pid}" in caplog.text
    assert probe_video(output).frame_count == 6 and not lock_path(output).exists()


def test_lock_in_the_same_process_is_exclusive(tmp_path: Path) -> None:
    """Two conversions in one process (two ComfyUI threads) exclude each other too."""
    with JobLock(tmp_path / "out.mp4"):
        with pytest.raises(JobLockedError, match=f"pid {os.getpid()} "):
            JobLock(tmp_path / "out.mp4").__enter__()
    with JobLock(tmp_path / "out.mp4"):  # released: free again
        pass


def test_two_conversions_with_different_settings_never_mix(clip: tuple[Path, Path], tmp_path: Path) -> None:
    """The first run is paused after its first segment; the second (other settings) stops without touching its
    work folder, and the first finishes with its own frames only."""
    source, depth = clip
    output = tmp_path / "out.mp4"
    first = _child(_CONVERTER, source, output, depth)
    try:
        _wait_for(first, "segment")
        work_dir = work_paths(output)[0]
        before = sorted(path.name for path in work_dir.iterdir())
        other = ConvertSettings(WarpSettings(max_disparity=3), chunk_frames=2)
        with pytest.raises(JobLockedError, match=f"pid {first.pid} "):
            convert_video(source, output, depth, other)
        assert sorted(path.name for path in work_dir.iterdir()) == before
    finally:
        first.stdin.close()
    _wait_for(first, "done")
    assert first.wait(timeout=60) == 0
    alone = convert_video(source, tmp_path / "alone.mp4", depth, ConvertSettings(chunk_frames=2))
    assert np.array_equal(np.concatenate(list(read_frames(output, 8))), np.concatenate(list(read_frames(alone, 8))))
    # Now the other settings find a finished output of another job there: refused, not silently replaced.
    with pytest.raises(FileExistsError, match="is not this conversion's output"):
        convert_video(source, output, depth, other)


def _recorder(into: list[int]):
    return lambda index, done: into.append(index)


def test_finished_output_of_the_same_job_is_done(clip: tuple[Path, Path], tmp_path: Path, caplog) -> None:
    source, depth = clip
    caplog.set_level(logging.INFO, logger="stereocrafter")
    for name in ("out.mp4", "out.mkv"):
        output = tmp_path / name
        convert_video(source, output, depth)
        stamp = output.stat().st_mtime_ns
        segments: list[int] = []
        assert convert_video(source, output, depth, on_chunk_done=_recorder(segments)) == output
        assert segments == [] and output.stat().st_mtime_ns == stamp  # nothing recomputed or rewritten
        assert f"{output} is already converted from the same input and settings" in caplog.text
        assert not work_paths(output)[0].exists()
        convert_video(source, output, depth, overwrite=True, on_chunk_done=_recorder(segments))
        assert segments == [0]  # converted again


def test_unrelated_file_at_the_output_is_refused(clip: tuple[Path, Path], tmp_path: Path, caplog) -> None:
    source, depth = clip
    output = tmp_path / "holiday.mp4"
    precious = _write(output, _moving(3, 16, 16))  # someone's own video
    content = precious.read_bytes()
    args = [str(source), "-o", str(output), "--depth", str(depth), "--no-inpaint"]
    assert main(args) == 1
    assert f"{output} already exists and is not this conversion's output" in caplog.text
    assert "--overwrite" in caplog.text
    assert output.read_bytes() == content and not work_paths(output)[0].exists()
    (tmp_path / "notes.mp4").write_text("not even a video")
    with pytest.raises(FileExistsError):
        convert_video(source, tmp_path / "notes.mp4", depth)
    assert main([*args, "--overwrite"]) == 0
    assert probe_video(output).frame_count == 6
