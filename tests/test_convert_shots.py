"""The converter on a film of several shots: cuts detected in the first pass (or given), kept in the job state and
the sidecar, per-shot depth ranges, DepthCrafter streams and inpainting chunks restarting at each cut."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_convert import _encode
from test_convert_models import DEPTH, INPAINT, SETTINGS, _stages, models, source  # noqa: F401 (fixtures)
from test_scenes import FIRST_SHOT, needs_clip, two_shot_frames

import stereocrafter.inpaint.inpaint_stream as inpaint_stream_module
from stereocrafter import convert as convert_module
from stereocrafter.__main__ import main
from stereocrafter.convert import ConvertSettings, convert_video, work_paths
from stereocrafter.depth.depth_pipeline import VideoDepthPipeline
from stereocrafter.video.depth_file import read_depth_file
from stereocrafter.video.scenes import scenes_path
from stereocrafter.video.video_io import read_frames
from stereocrafter.warp.disparity import normalize_depth


class Interrupt(Exception):
    pass


def _stop(index: int, done: int) -> None:
    raise Interrupt


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    """The two-shot clip (cut at frame 26, 160x90) and a depth video: shot 1 levels 0..100, shot 2 150..250 with
    one stray pixel at 255 in one frame."""
    folder = tmp_path_factory.mktemp("film")
    frames = two_shot_frames(160, 90)
    n = frames.shape[0]
    rows = np.linspace(0, 1, 90)[:, None, None] * np.ones((1, 160, 3))
    depth = np.stack([rows * 100 if k < FIRST_SHOT else 150 + rows * 100 for k in range(n)])
    depth[40, 5, 5] = 255
    _encode(folder / "in.mp4", frames)
    _encode(folder / "depth.mp4", np.round(depth).astype(np.uint8))
    return folder / "in.mp4", folder / "depth.mp4"


@needs_clip
def test_cuts_and_shot_ranges_in_the_job_state_and_sidecar(film, tmp_path):
    video, depth = film
    output = tmp_path / "out.mp4"
    with pytest.raises(Interrupt):
        convert_video(video, output, depth, ConvertSettings(chunk_frames=8), on_chunk_done=_stop)
    progress = json.loads((work_paths(output)[0] / "progress.json").read_text())
    assert progress["cuts"] == [FIRST_SHOT]
    decoded = torch.cat(list(read_frames(depth, 64))).mean(-1).numpy()
    for (low, high), shot in zip(progress["shot_ranges"], (decoded[:FIRST_SHOT], decoded[FIRST_SHOT:]), strict=True):
        assert abs(low - np.percentile(shot, 0.5)) <= 2 / 4096
        assert abs(high - np.percentile(shot, 99.5)) <= 2 / 4096
    assert progress["shot_ranges"][1][1] < 252 / 255  # the stray pixel does not set the range
    assert progress["depth_range"][1] == pytest.approx(1.0, abs=1 / 255)  # min-max still kept (clip mode)
    reports: list[tuple[str, int, int]] = []
    convert_video(video, output, depth, ConvertSettings(chunk_frames=8), on_progress=lambda *r: reports.append(r))
    assert ("scenes", 56, 56) not in reports  # a resume does not detect again: the cuts come from progress.json
    convert_video(video, tmp_path / "again.mp4", depth, ConvertSettings(chunk_frames=8),
                  on_progress=lambda *r: reports.append(r))  # fmt: skip
    assert ("scenes", 56, 56) in reports
    sidecar = json.loads(scenes_path(output).read_text())
    assert sidecar["cuts"] == [FIRST_SHOT] and sidecar["source"] == "detected"


@needs_clip
def test_per_shot_range_gives_each_shot_its_full_3d(film, tmp_path, monkeypatch):
    """Each shot's depth spans 0..1 after normalisation (clip mode: shot 1 only 0..0.4), eased after the cut."""
    video, depth = film
    seen: list[torch.Tensor] = []
    real = convert_module.splat_chunk

    def splat_chunk(left, depth, settings, bounds, device):
        seen.append(normalize_depth(depth, bounds))  # what the splat maps to disparity
        return real(left, depth, settings, bounds, device)

    monkeypatch.setattr(convert_module, "splat_chunk", splat_chunk)
    convert_video(video, tmp_path / "shot.mp4", depth, ConvertSettings(chunk_frames=8, shot_transition_frames=4))
    per_shot = torch.cat(seen)
    seen.clear()
    convert_video(video, tmp_path / "clip.mp4", depth, ConvertSettings(chunk_frames=8, depth_normalization="clip"))
    whole = torch.cat(seen)
    assert per_shot.shape[0] == whole.shape[0] == 56
    assert whole[:FIRST_SHOT].amax() < 0.45 and per_shot[:FIRST_SHOT].amax() > 0.99
    last = per_shot[FIRST_SHOT + 4 :]
    assert last.amin() < 0.01 and last.amax() > 0.99
    # The first frames of shot 2 move from a range holding both shots to its own: the far end of its depth goes
    # step by step from mid-range to 0, the near end is never clamped below its own range (stays at 1).
    far = [float(per_shot[k].amin()) for k in range(FIRST_SHOT, FIRST_SHOT + 5)]
    assert all(a > b + 0.05 for a, b in zip(far, far[1:], strict=False)) and far[0] > 0.4 and far[-1] < 0.01, far
    assert bool((per_shot[FIRST_SHOT:].flatten(1).amax(1) > 0.98).all())


@needs_clip
def test_cli_scenes_file_overrides_the_detection(film, tmp_path, monkeypatch):
    video, depth = film
    monkeypatch.setattr(convert_module, "detect_cuts", lambda *a, **k: pytest.fail("detection ran"))
    cuts = tmp_path / "cuts.txt"
    cuts.write_text("10\n40\n")
    output = tmp_path / "out.mp4"
    args = [str(video), "-o", str(output), "--depth", str(depth), "--no-inpaint", "--device", "cpu"]
    assert main([*args, "--scenes", str(cuts)]) == 0
    sidecar = json.loads(scenes_path(output).read_text())
    assert (sidecar["cuts"], sidecar["source"]) == ([10, 40], "given")
    assert main([*args, "--scenes", str(cuts), "-o", str(tmp_path / "bad.mp4")]) == 0
    cuts.write_text("99\n")
    assert main([*args, "--scenes", str(cuts), "-o", str(tmp_path / "bad2.mp4")]) == 1  # outside the clip


def test_depthcrafter_and_inpainting_restart_at_a_cut(models, source, tmp_path, monkeypatch, one_torch_thread):  # noqa: F811
    """Given a cut at 8 (20 frames): DepthCrafter runs one stream per shot (shot 2 equals a stream over its frames
    alone: nothing of shot 1 reaches it) and the inpainting chunks restart at the cut."""
    depth_stage, inpaint_stage = _stages(models)
    streams: list[int] = []
    real_stream = VideoDepthPipeline.stream

    def stream(self, frames, num_frames, *args, **kwargs):
        streams.append(num_frames)
        return real_stream(self, frames, num_frames, *args, **kwargs)

    plans: list[list] = []
    real_plan = inpaint_stream_module.plan_chunks_in_shots

    def plan(*args):
        plans.append(real_plan(*args))
        return plans[-1]

    monkeypatch.setattr(VideoDepthPipeline, "stream", stream)
    monkeypatch.setattr(inpaint_stream_module, "plan_chunks_in_shots", plan)
    depth_out = tmp_path / "depth.mkv"
    convert_video(source, tmp_path / "out.mp4", None, SETTINGS, depth_model=depth_stage, inpaint=inpaint_stage,
                  save_depth=depth_out, scenes=[8])  # fmt: skip
    assert streams == [8, 12]
    (chunks,) = plans
    assert [(c.start, c.stop, c.feedback) for c in chunks if c.start < 8 < c.stop] == []
    assert [c.feedback for c in chunks if c.start == 8] == [0]
    frames = torch.cat(list(read_frames(source, 64)))
    alone = torch.cat(list(real_stream(depth_stage.load(), [frames[8:]], 12, DEPTH)))
    stored = torch.cat(list(read_depth_file(depth_out, 64)))
    assert (stored[8:] - alone).abs().max() <= 0.5 / 65535 + 1e-6
    assert INPAINT.chunk_frames < 12  # so that shot 2 has chunks of its own


@needs_clip
def test_missing_detector_converts_as_one_shot(film, tmp_path, monkeypatch, caplog):
    def missing(*args, **kwargs):
        raise ImportError("shot detection needs PySceneDetect (No module named 'cv2')")

    monkeypatch.setattr(convert_module, "detect_cuts", missing)
    video, depth = film
    output = convert_video(video, tmp_path / "out.mp4", depth, ConvertSettings(chunk_frames=16))
    assert json.loads(scenes_path(output).read_text())["cuts"] == []
    assert "converting as one shot" in caplog.text


def test_resume_with_cuts_and_inpainting_is_the_uninterrupted_run(models, source, tmp_path, monkeypatch,  # noqa: F811
                                                                   one_torch_thread):  # fmt: skip
    """Killed after the second segment with a cut at 9: the resumed run uses the saved cuts and inpainting state and
    encodes the same frames as one run."""
    from test_convert_models import _record_segments

    depth_stage, inpaint_stage = _stages(models)
    output = tmp_path / "out.mp4"
    packed = _record_segments(monkeypatch)

    def kill_after_second(index: int, done: int) -> None:
        if index == 1:
            raise Interrupt

    run = {"depth_model": depth_stage, "inpaint": inpaint_stage, "scenes": [9]}
    with pytest.raises(Interrupt):
        convert_video(source, output, None, SETTINGS, on_chunk_done=kill_after_second, **run)
    assert json.loads((work_paths(output)[0] / "progress.json").read_text())["cuts"] == [9]
    convert_video(source, output, None, SETTINGS, **run)
    resumed = torch.cat(packed)
    packed.clear()
    convert_video(source, tmp_path / "fresh.mp4", None, SETTINGS, **run)
    assert torch.equal(resumed, torch.cat(packed))


@needs_clip
def test_automatic_convergence_follows_each_shots_median(tmp_path, monkeypatch):
    """Shot 1 mostly far (depth = rows²), shot 2 mostly near (sqrt(rows)): the screen plane sits at each shot's
    median normalised depth (numpy's median and percentiles of the decoded depth), gliding over 4 frames."""
    frames = two_shot_frames(160, 90)
    rows = np.linspace(0, 1, 90)[:, None, None] * np.ones((1, 160, 3))
    depth = np.stack([rows**2 * 255 if k < FIRST_SHOT else np.sqrt(rows) * 255 for k in range(frames.shape[0])])
    _encode(tmp_path / "in.mp4", frames)
    _encode(tmp_path / "depth.mp4", np.round(depth).astype(np.uint8))
    planes: list[float] = []
    real = convert_module.splat_chunk

    def splat_chunk(left, depth, settings, bounds, device):
        planes.extend([settings.warp.convergence] * left.shape[0])
        return real(left, depth, settings, bounds, device)

    monkeypatch.setattr(convert_module, "splat_chunk", splat_chunk)
    settings = ConvertSettings(chunk_frames=8, convergence_mode="shot", shot_transition_frames=4)
    convert_video(tmp_path / "in.mp4", tmp_path / "out.mp4", tmp_path / "depth.mp4", settings)
    decoded = torch.cat(list(read_frames(tmp_path / "depth.mp4", 64))).mean(-1).numpy()
    expected = []
    for shot in (decoded[:FIRST_SHOT], decoded[FIRST_SHOT:]):
        low, median, high = np.percentile(shot, [0.5, 50, 99.5])
        expected.append((median - low) / (high - low))
    assert expected[0] < 0.35 and expected[1] > 0.6  # the clip is what the test says
    assert len(planes) == 56
    # Within one row's depth step (~0.012 here): with 90 rows the median lies between two rows' values, where numpy
    # interpolates and the histogram takes the row reaching half of the pixels.
    assert planes[:FIRST_SHOT] == pytest.approx([expected[0]] * FIRST_SHOT, abs=0.012)
    assert planes[FIRST_SHOT + 4 :] == pytest.approx([expected[1]] * (56 - FIRST_SHOT - 4), abs=0.012)
    gliding = planes[FIRST_SHOT - 1 : FIRST_SHOT + 5]
    assert all(a < b for a, b in zip(gliding, gliding[1:], strict=False))
    with pytest.raises(ValueError, match='needs depth_normalization "shot"'):
        ConvertSettings(convergence_mode="shot", depth_normalization="clip").validate()


def test_comfort_limit_lowers_the_parallax_to_a_share_of_the_width():
    from stereocrafter.convert import comfort_limited
    from stereocrafter.warp.stereo_warp import WarpSettings

    wide = ConvertSettings(WarpSettings(max_disparity=3, disparity_unit="percent of width"), max_parallax_percent=4)
    limited = comfort_limited(wide, 1920)  # 3 % = 57.6 px each way = 6 % in all > 4 %: 38.4 px
    assert (limited.warp.max_disparity, limited.warp.disparity_unit) == (pytest.approx(38.4), "pixels")
    within = ConvertSettings(WarpSettings(max_disparity=20), max_parallax_percent=4)
    assert comfort_limited(within, 1920) is within  # 40 px in all = 2.1 %
    assert comfort_limited(ConvertSettings(), 100) == ConvertSettings()  # no limit
    with pytest.raises(ValueError, match="max_parallax_percent must be within 0..100"):
        ConvertSettings(max_parallax_percent=0).validate()


@needs_clip
def test_cli_max_parallax_reaches_the_splat(film, tmp_path, monkeypatch):
    video, depth = film
    seen: list[tuple[float, str]] = []
    real = convert_module.splat_chunk

    def splat_chunk(left, depth, settings, bounds, device):
        seen.append((settings.warp.max_disparity, settings.warp.disparity_unit))
        return real(left, depth, settings, bounds, device)

    monkeypatch.setattr(convert_module, "splat_chunk", splat_chunk)
    args = [str(video), "-o", str(tmp_path / "o.mp4"), "--depth", str(depth), "--no-inpaint", "--scenes", "none"]
    assert main([*args, "--max-disparity", "20", "--max-parallax", "5"]) == 0  # 160 px wide: 8 px in all
    assert set(seen) == {(4.0, "pixels")}
