"""Temporal chunk schedule (reference numbers), coverage for any length, feedback, cross-fade, rolling assembly."""

from __future__ import annotations

import weakref

import pytest
import torch

from stereocrafter.inpaint.temporal_chunks import (
    Chunk,
    ChunkAssembler,
    crossfade_weights,
    final_frames,
    frame_sources,
    plan_chunks,
)


def reference_schedule(total: int, chunk: int = 23, overlap: int = 3) -> list[tuple[int, int, int]]:
    """The reference loop (inpainting_inference.py) as (start, stop, feedback), written from reference.md §3.4."""
    out = []
    for i in range(0, total, chunk - overlap):
        if i + overlap >= total:
            break
        if out and i + chunk > total:
            cur_i = max(total + overlap - chunk, 0)
            cur_overlap = i - cur_i + overlap
        else:
            cur_i, cur_overlap = i, overlap
        out.append((cur_i, min(cur_i + chunk, total), cur_overlap if out else 0))
    return out


@pytest.mark.parametrize("total", [4, 5, 23, 24, 25, 42, 43, 44, 63, 100, 399])
def test_matches_reference_schedule(total: int) -> None:
    ours = [(c.start, c.stop, c.feedback) for c in plan_chunks(total)]
    assert ours == reference_schedule(total)


def test_known_schedules() -> None:
    assert [(c.start, c.stop, c.feedback) for c in plan_chunks(24)] == [(0, 23, 0), (4, 24, 19)]
    assert [(c.start, c.stop, c.feedback) for c in plan_chunks(43)] == [(0, 23, 0), (20, 43, 3)]
    assert [(c.start, c.stop, c.feedback) for c in plan_chunks(100)][-1] == (80, 100, 3)


@pytest.mark.parametrize("total", [1, 2, 3])
def test_short_clips_get_one_chunk(total: int) -> None:
    # the reference produces no chunk for T <= 3 and crashes
    assert reference_schedule(total) == []
    assert [(c.start, c.stop, c.feedback) for c in plan_chunks(total)] == [(0, total, 0)]


@pytest.mark.parametrize("total", [1, 3, 23, 24, 43, 100])
@pytest.mark.parametrize("mode", ["reference", "crossfade"])
def test_every_frame_produced_once(total: int, mode: str) -> None:
    chunks = plan_chunks(total)
    sources = frame_sources(chunks, mode)  # type: ignore[arg-type]
    assert len(sources) == total
    for frame, src in enumerate(sources):
        assert src, f"frame {frame} not produced"
        assert abs(sum(w for _, _, w in src) - 1.0) < 1e-9
        for c, local, _ in src:
            assert chunks[c].start + local == frame
        if mode == "reference":
            assert len(src) == 1

    # and through the assembler: chunk c writes the value c + 1 for every frame
    out = assemble(chunks, [torch.full((c.length,), float(c.index + 1)) for c in chunks], mode)  # type: ignore[arg-type]
    expected = torch.tensor([sum((c + 1) * w for c, _, w in src) for src in sources], dtype=torch.float32)
    torch.testing.assert_close(out, expected)


def assemble(chunks: list[Chunk], outputs: list[torch.Tensor], mode: str = "crossfade") -> torch.Tensor:
    """Add every chunk's outputs, taking the final frames after each chunk (as InpaintStream does)."""
    asm = ChunkAssembler(mode)  # type: ignore[arg-type]
    pieces = []
    for c, frames in zip(chunks, outputs, strict=True):
        asm.add(c, frames)
        pieces.append(asm.take(final_frames(chunks, c.index)))
    return torch.cat(pieces)


@pytest.mark.parametrize("total", [1, 3, 23, 24, 43, 100])
@pytest.mark.parametrize("frames,overlap", [(23, 3), (5, 2), (5, 3)])
def test_final_frames_hand_out_every_frame_once(total: int, frames: int, overlap: int) -> None:
    chunks = plan_chunks(total, frames, overlap)
    sources = frame_sources(chunks, "crossfade")
    handed_out = []
    for c in chunks:
        done = sum(handed_out)
        final = final_frames(chunks, c.index)
        assert done <= final <= c.stop
        # no later chunk touches a frame handed out now; every chunk making it has run
        assert all(later.start >= final for later in chunks[c.index + 1 :])
        assert all(src <= c.index for frame in range(done, final) for src, _, _ in sources[frame])
        handed_out.append(final - done)
    assert sum(handed_out) == total


def test_feedback_frames_are_previous_outputs() -> None:
    chunks = plan_chunks(24)
    asm = ChunkAssembler("reference")
    assert asm.feedback_for(chunks[0]) is None
    first = torch.arange(23 * 2, dtype=torch.float32).view(23, 2)
    asm.add(chunks[0], first)
    out = [asm.take(final_frames(chunks, 0))]
    assert out[0].shape[0] == 4  # frames 4.. are chunk 2's feedback frames: not final yet
    fb = asm.feedback_for(chunks[1])
    assert fb is not None and fb.shape[0] == 19
    assert torch.equal(fb, first[4:23])  # the last 19 generated frames condition chunk 2's first 19 frames
    second = -torch.ones(20, 2)
    asm.add(chunks[1], second)
    out.append(asm.take(24))
    assert torch.equal(torch.cat(out)[:23], first) and torch.equal(out[1][-1], second[19])


def test_assembler_lets_a_chunk_go_once_its_frames_are_taken() -> None:
    """Only the next chunk's feedback frames are kept (copied), not the chunk's storage (at 1080p, ~0.6 GB)."""
    chunks = plan_chunks(43)
    asm = ChunkAssembler()
    frames = torch.rand(23, 8)
    alive = weakref.ref(frames)
    asm.add(chunks[0], frames)
    asm.take(final_frames(chunks, 0))
    feedback = asm.feedback_for(chunks[1])
    assert feedback is not None and torch.equal(feedback, frames[20:])
    del frames
    assert alive() is None
    assert feedback.untyped_storage().nbytes() == feedback.numel() * feedback.element_size()


def test_crossfade_weights_and_blend() -> None:
    w = crossfade_weights(3)
    torch.testing.assert_close(w, torch.tensor([0.25, 0.5, 0.75]))
    chunks = plan_chunks(43)
    out = assemble(chunks, [torch.zeros(23), torch.ones(23)])
    torch.testing.assert_close(out[20:23], w)
    assert torch.all(out[:20] == 0) and torch.all(out[23:] == 1)


def test_crossfade_keeps_agreeing_values_exact() -> None:
    chunks = plan_chunks(30)
    values = torch.rand(30, 4)
    out = assemble(chunks, [values[c.start : c.stop].clone() for c in chunks])
    assert torch.equal(out, values)


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        plan_chunks(0)
    with pytest.raises(ValueError):
        plan_chunks(10, chunk_frames=3, overlap=3)
    with pytest.raises(ValueError):
        ChunkAssembler("blend")  # type: ignore[arg-type]
    asm = ChunkAssembler()
    with pytest.raises(ValueError, match="needs 5 frames"):
        asm.add(plan_chunks(5)[0], torch.zeros(4))
    chunks = plan_chunks(43)
    with pytest.raises(ValueError, match="does not continue"):
        asm.add(chunks[1], torch.zeros(23))  # out of order
    asm.add(chunks[0], torch.zeros(23))
    with pytest.raises(ValueError, match="not assembled"):
        asm.take(24)
    asm.take(21)
    with pytest.raises(ValueError, match="does not continue"):
        asm.add(chunks[1], torch.zeros(23))  # its feedback frames were handed out already
