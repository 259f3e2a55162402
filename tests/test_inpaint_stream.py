"""InpaintStream on tiny random models (CPU): any push size equals __call__ bit for bit, resume from a saved state,
bounded buffering, every frame returned exactly once, input validation."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from functools import cache

import pytest
import torch

from stereocrafter.inpaint.inpaint_pipeline import Fit, InpaintProgress, InpaintSettings, StereoInpaintPipeline
from stereocrafter.inpaint.inpaint_stream import InpaintStream
from stereocrafter.inpaint.temporal_chunks import final_frames, plan_chunks
from tests.tiny_models import SCHEDULER_CONFIG, tiny_clip, tiny_unet, tiny_vae

pytestmark = pytest.mark.usefixtures("one_torch_thread")

H, W = 48, 64  # padded to 64 x 64: 8 x 8 latents
# 5-frame chunks overlapping by 2: T = 11 runs 3 chunks ([0, 5), [3, 8), [6, 11)).
SETTINGS = InpaintSettings(steps=2, tiles=(1, 1), chunk_frames=5, chunk_overlap=2)


@cache
def models() -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    return tiny_unet(9), tiny_vae(), tiny_clip()


def make_pipe() -> StereoInpaintPipeline:
    """A new pipeline object on the same (module-wide) weights."""
    return StereoInpaintPipeline(*models(), SCHEDULER_CONFIG)


def make_inputs(frames: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(frames, H, W, 3, generator=gen)
    mask = torch.zeros(frames, H, W)
    mask[:, 12:30, 20:29] = 1.0
    mask[3:8] = 0.0  # hole-free frames: with 11 frames, chunk [3, 8) is skipped (its input is the feedback)
    return images, mask


@cache
def reference(frames: int, settings: InpaintSettings) -> torch.Tensor:
    """StereoInpaintPipeline.__call__'s output (the stream with the whole clip pushed at once)."""
    return make_pipe()(*make_inputs(frames), settings, seed=7)


def run_stream(
    stream: InpaintStream, images: torch.Tensor, mask: torch.Tensor, push: int, start: int = 0
) -> list[torch.Tensor]:
    """Push frames [start, T) in pieces of ``push`` frames; the returned pieces, finish() last."""
    outs = [stream.push(images[i : i + push], mask[i : i + push]) for i in range(start, images.shape[0], push)]
    return outs + [stream.finish()]


# (frames, settings): shorter than a chunk, exactly one chunk, several chunks, a last chunk anchored back
# ([6, 10) with feedback 3 > overlap 1).
CASES = [
    (3, SETTINGS),
    (5, SETTINGS),
    (11, SETTINGS),
    (11, replace(SETTINGS, seams="reference")),
    (10, replace(SETTINGS, chunk_overlap=1)),
    (10, replace(SETTINGS, chunk_overlap=1, seams="reference")),
]


@pytest.mark.parametrize("frames,settings", CASES)
def test_any_push_size_matches_call(frames: int, settings: InpaintSettings) -> None:
    images, mask = make_inputs(frames)
    expected = reference(frames, settings)
    chunks = plan_chunks(frames, settings.chunk_frames, settings.chunk_overlap)
    for push in sorted({1, 3, frames}):
        stream = InpaintStream(make_pipe(), frames, H, W, settings, seed=7)
        outs = run_stream(stream, images, mask, push)
        assert torch.equal(torch.cat(outs), expected), f"push {push}"
        assert stream.frames_out == frames and stream.pipe.stats.chunks == len(chunks)
        assert stream.pipe.stats.skipped_chunks == (frames == 11)
        if push == 1:  # a chunk's final frames come out with the push that completes it
            per_chunk = [
                final_frames(chunks, c.index) - (final_frames(chunks, c.index - 1) if c.index else 0) for c in chunks
            ]
            assert [o.shape[0] for o in outs if o.shape[0]] == [n for n in per_chunk if n]


def test_resume_from_saved_state_is_bit_identical() -> None:
    frames = 11
    images, mask = make_inputs(frames)
    expected = reference(frames, SETTINGS)
    first = InpaintStream(make_pipe(), frames, H, W, SETTINGS, seed=7)
    outs = []
    for i in range(frames):  # until the push that returns the frames after chunk 1 (frame 7 completes [3, 8))
        outs.append(first.push(images[i : i + 1], mask[i : i + 1]))
        if first.frames_out == 6:
            break
    assert i == 7 and first.frames_out == 6
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    held = state["assembler"]
    assert held["window"].shape[0] == 2 and held["raw"] is held["window"]  # the 2 overlap frames, stored once
    events: list[InpaintProgress] = []
    second = InpaintStream(make_pipe(), frames, H, W, SETTINGS, seed=123, state=state, progress=events.append)
    assert second.frames_out == 6
    outs += run_stream(second, images, mask, 2, start=second.frames_out)
    assert torch.equal(torch.cat(outs), expected)
    assert {(e.chunk, e.chunks) for e in events} == {(2, 3)}  # only the last chunk ran, numbered in the plan


def passthrough(pipe: StereoInpaintPipeline, calls: list[tuple[int, tuple[int, int]]] | None = None) -> Callable:
    """Stand-in for the denoise + decode of one chunk: returns the conditioning frames (at working size)."""

    def run(chunk, num_chunks, cond, hole, fit: Fit, counts, decode_counts, *args):  # type: ignore[no-untyped-def]
        if calls is not None:
            calls.append((chunk.index, counts))
        return fit.apply(cond.permute(0, 3, 1, 2)).permute(0, 2, 3, 1), counts, decode_counts

    return run


@pytest.mark.parametrize("push", [1, 3, 7])
def test_buffering_is_bounded_by_a_chunk_and_a_push(push: int, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = make_pipe()
    monkeypatch.setattr(pipe, "_run_chunk_with_retry", passthrough(pipe))
    held = {}
    for frames in (20, 40):
        images, mask = make_inputs(frames)
        stream = InpaintStream(pipe, frames, H, W, SETTINGS)
        out = torch.cat(run_stream(stream, images, mask, push))
        assert torch.equal(out, images)  # feedback = input, agreeing crossfades: the frames come back unchanged
        held[frames] = (stream.max_buffered_inputs, stream.max_buffered_outputs)
        assert max(held[frames]) <= SETTINGS.chunk_frames + push
    assert held[20] == held[40]


@pytest.mark.parametrize("frames", [1, 3, 23, 24, 43, 100])
@pytest.mark.parametrize("push", [1, 10, 100])
def test_every_frame_returned_once_in_order(frames: int, push: int, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = make_pipe()
    monkeypatch.setattr(pipe, "_run_chunk_with_retry", passthrough(pipe))
    # Frame f is the constant f / 128 (exact in float32), a hole everywhere: the output must be the input.
    images = (torch.arange(frames, dtype=torch.float32) / 128).view(-1, 1, 1, 1).expand(-1, 8, 8, 3)
    mask = torch.ones(frames, 8, 8)
    settings = InpaintSettings(tiles=(1, 1), chunk_frames=23, chunk_overlap=3)
    stream = InpaintStream(pipe, frames, 8, 8, settings)
    outs = run_stream(stream, images, mask, push)
    assert sum(o.shape[0] for o in outs) == frames
    assert torch.equal(torch.cat(outs), images)


def test_oom_tile_counts_carry_on_and_are_saved(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = make_pipe()
    calls: list[tuple[int, tuple[int, int]]] = []
    inner = passthrough(pipe, calls)

    def retrying(*args):  # type: ignore[no-untyped-def]
        out, counts, decode_counts = inner(*args)
        return out, (1, 2), decode_counts  # as if the chunk had needed more tiles

    monkeypatch.setattr(pipe, "_run_chunk_with_retry", retrying)
    images, mask = make_inputs(11)[0], torch.ones(11, H, W)  # no chunk is skipped
    stream = InpaintStream(pipe, 11, H, W, SETTINGS)
    stream.push(images[:5], mask[:5])
    state = stream.state_dict()
    assert state["tiles"] == (1, 2) and state["next_chunk"] == 1
    stream.push(images[5:8], mask[5:8])
    resumed = InpaintStream(pipe, 11, H, W, SETTINGS, state=state)
    resumed.push(images[3:8], mask[3:8])
    assert calls == [(0, (1, 1)), (1, (1, 2)), (1, (1, 2))]


def test_errors_name_the_input_and_the_fix() -> None:
    pipe = make_pipe()
    images, mask = make_inputs(4)
    stream = InpaintStream(pipe, 4, H, W, SETTINGS)
    with pytest.raises(ValueError, match="80x48 but the stream was built for 64x48"):
        stream.push(torch.rand(2, H, 80, 3), torch.zeros(2, H, 80))
    with pytest.raises(ValueError, match="mask has 3 frames but frames has 2"):
        stream.push(images[:2], mask[:3])
    with pytest.raises(ValueError, match="only 4 of the stream's num_frames=4 are left"):
        stream.push(*make_inputs(5))
    with pytest.raises(ValueError, match=r"finish\(\) after 0 of num_frames=4 frames; push frames 0..3"):
        stream.finish()
    state = stream.state_dict()
    for other in (
        dict(num_frames=5, height=H, width=W, settings=SETTINGS),
        dict(num_frames=4, height=H, width=72, settings=SETTINGS),
        dict(num_frames=4, height=H, width=W, settings=replace(SETTINGS, seams="reference")),
    ):
        with pytest.raises(ValueError, match="saved by a stream for another clip or settings"):
            InpaintStream(pipe, state=state, **other)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an InpaintStream.state_dict"):
        InpaintStream(pipe, 4, H, W, SETTINGS, state={"tiles": (1, 1)})
    # A clip without holes skips its chunk (no model run): push, finish, then misuse.
    done = InpaintStream(pipe, 1, H, W, SETTINGS)
    assert torch.equal(done.push(images[:1], torch.zeros(1, H, W)), images[:1])
    assert done.finish().shape == (0, H, W, 3)
    with pytest.raises(ValueError, match=r"push\(\) after finish\(\): build a new InpaintStream"):
        done.push(images[:1], mask[:1])
    with pytest.raises(ValueError, match=r"finish\(\) after finish\(\)"):
        done.finish()


def test_failed_push_stops_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = make_pipe()

    def interrupted(*args):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(pipe, "_run_chunk_with_retry", interrupted)
    images, mask = make_inputs(5)
    stream = InpaintStream(pipe, 5, H, W, SETTINGS)
    with pytest.raises(KeyboardInterrupt):
        stream.push(images, mask)
    for call in (lambda: stream.push(images[:1], mask[:1]), stream.finish, stream.state_dict):
        with pytest.raises(ValueError, match="after a push that failed"):
            call()


def test_chunks_restart_at_a_cut_without_the_previous_shot():
    """With a cut at 6, shot 2 (frames 6..10) comes out the same whatever shot 1 held: no feedback frames or
    crossfade from the previous shot (the noise generator runs on, so shot 1 keeps its chunk count)."""
    images, mask = make_inputs(11)
    mask = torch.ones_like(mask) * mask.amax(0, keepdim=True)  # holes in every frame: every chunk runs
    other = images.clone()
    other[:6] = torch.rand(6, H, W, 3, generator=torch.Generator().manual_seed(5))
    outs = []
    for frames in (images, other):
        stream = InpaintStream(make_pipe(), 11, H, W, SETTINGS, seed=3, cuts=[6])
        outs.append(torch.cat(run_stream(stream, frames, mask, push=4)))
    assert not torch.equal(outs[0][:6], outs[1][:6])
    assert torch.equal(outs[0][6:], outs[1][6:])
    # Without the cut, shot 1 leaks into frames 6.. (the control: the test can tell).
    uncut = [torch.cat(run_stream(InpaintStream(make_pipe(), 11, H, W, SETTINGS, seed=3), f, mask, 4)) for f in
             (images, other)]  # fmt: skip
    assert not torch.equal(uncut[0][6:], uncut[1][6:])
