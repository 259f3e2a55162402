"""Shots: hard cuts found by PySceneDetect on real footage, the sidecar file, per-shot streaming and planning."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stereocrafter.depth.depth_pipeline import plan_windows
from stereocrafter.inpaint.temporal_chunks import plan_chunks, plan_chunks_in_shots
from stereocrafter.video.scenes import (
    detect_cuts,
    parse_cuts,
    read_scenes_file,
    shot_segments,
    shot_windows,
    split_by_segments,
    write_scenes_file,
)
from stereocrafter.video.video_io import TrimWindow, VideoReadError

CLIP = Path(__file__).resolve().parent.parent.parent / "shared/data/davis_rollercoaster.mp4"
needs_clip = pytest.mark.skipif(not CLIP.exists(), reason=f"{CLIP} is missing (the shared test clip)")
FIRST_SHOT = 26  # frames of shot 1; shot 2 starts at this frame


def two_shot_frames(width: int = 320, height: int = 180) -> np.ndarray:
    """Frames 0..25 of the shared clip, then frames 40..69 mirrored left-right with inverted colours: two real
    shots back to back, the cut at frame 26. uint8 [56, H, W, 3]."""
    frames = []
    with av.open(str(CLIP)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.reformat(width=width, height=height).to_ndarray(format="rgb24"))
    first, second = np.stack(frames[:FIRST_SHOT]), np.stack(frames[40:70])
    return np.concatenate([first, 255 - second[:, :, ::-1]])


def write_clip(path: Path, frames: np.ndarray, fps: int = 24) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "12"}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def two_shots(tmp_path_factory) -> Path:
    if not CLIP.exists():
        pytest.skip(f"{CLIP} is missing (the shared test clip)")
    return write_clip(tmp_path_factory.mktemp("shots") / "two_shots.mp4", two_shot_frames())


@needs_clip
def test_the_cut_between_two_real_shots_is_found_at_its_frame(two_shots):
    cuts, frames = detect_cuts(two_shots, 24)
    assert frames == 56
    assert len(cuts) == 1 and abs(cuts[0] - FIRST_SHOT) <= 1
    assert cuts == [FIRST_SHOT]  # the content change is total: PySceneDetect marks the exact first frame


@needs_clip
def test_one_shot_has_no_cut(tmp_path):
    cuts, frames = detect_cuts(CLIP, 24)
    assert (cuts, frames) == ([], 70)


@needs_clip
def test_cuts_count_from_the_trim_window(two_shots):
    """A trim starting at frame 10 (0.4167 s at 24 fps) moves the cut to frame 16 of the trimmed part."""
    cuts, frames = detect_cuts(two_shots, 24, window=TrimWindow(start_time=10 / 24, duration=30 / 24))
    assert (cuts, frames) == ([FIRST_SHOT - 10], 30)


def test_a_truncated_file_is_named_not_a_raw_decoder_error(tmp_path):
    """A faststart MP4 cut short (its index promises frames that are gone): VideoReadError naming the file."""
    path = tmp_path / "cut.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(40):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])
    try:
        detect_cuts(path, 24)
    except VideoReadError as exc:
        assert "cut.mp4" in str(exc)
    # (a decoder that stops quietly at the cut instead is fine too: no raw av error either way)


def test_shot_segments():
    assert shot_segments([], 10) == [(0, 10)]
    assert shot_segments([7, 3, 3, 0, 10, 12], 10) == [(0, 3), (3, 7), (7, 10)]


def test_scenes_file_round_trip_and_plain_lists(tmp_path):
    path = tmp_path / "out.scenes.json"
    write_scenes_file(path, [30, 12], 50, 24, "detected")
    data = json.loads(path.read_text())
    assert data["cuts"] == [12, 30] and data["frames"] == 50
    assert [(s["start"], s["end"]) for s in data["shots"]] == [(0, 12), (12, 30), (30, 50)]
    assert read_scenes_file(path) == [12, 30]
    (tmp_path / "cuts.txt").write_text("# cuts\n120\n48, 300 # the chase\n")
    assert read_scenes_file(tmp_path / "cuts.txt") == [48, 120, 300]
    (tmp_path / "cuts.json").write_text("[5, 2]")
    assert read_scenes_file(tmp_path / "cuts.json") == [2, 5]
    (tmp_path / "bad.txt").write_text("12\nabc\n")
    with pytest.raises(ValueError, match="bad.txt: expected frame numbers"):
        read_scenes_file(tmp_path / "bad.txt")


def test_split_by_segments_recuts_any_chunking():
    frames = torch.arange(23).float()[:, None]
    chunks = list(frames.split(5))
    segments = shot_segments([4, 11, 12], 23)
    shots = [torch.cat(list(shot)) for shot in split_by_segments(chunks, segments)]
    assert [s[:, 0].tolist() for s in shots] == [list(range(a, b)) for a, b in segments]


@pytest.mark.parametrize("cuts", [[], [26], [5, 26, 27, 90], [70, 71]])
def test_no_depth_window_crosses_a_cut(cuts):
    segments = shot_segments(cuts, 120)
    windows = shot_windows(segments, lambda n: plan_windows(n, 70, 25))
    for start, end in windows:
        assert not any(start < cut < end for cut in cuts), (start, end)
    covered = sorted({f for start, end in windows for f in range(start, end)})
    assert covered == list(range(120))


@pytest.mark.parametrize("cuts", [[], [26], [5, 26, 27, 90], [1, 119]])
def test_no_inpaint_chunk_crosses_a_cut_and_shots_start_without_feedback(cuts):
    chunks = plan_chunks_in_shots(120, 23, 3, cuts)
    starts = {0, *cuts}
    for chunk in chunks:
        assert not any(chunk.start < cut < chunk.stop for cut in cuts), chunk
        assert (chunk.feedback == 0) == (chunk.start in starts), chunk
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].stop == 120
    if not cuts:
        assert chunks == plan_chunks(120, 23, 3)


def test_parse_cuts_from_a_node_input():
    assert parse_cuts("") is None and parse_cuts("  ") is None
    assert parse_cuts("none") == [] and parse_cuts("None") == []
    assert parse_cuts("348, 120 ;7") == [7, 120, 348]
    with pytest.raises(ValueError, match="scenes: expected frame numbers"):
        parse_cuts("12, 1:05")
