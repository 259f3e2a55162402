"""Temporal chunk schedule (reference numbers), coverage for any length, feedback and cross-fade."""

from __future__ import annotations

import pytest
import torch

from stereocrafter.temporal_chunks import ChunkAssembler, crossfade_weights, frame_sources, plan_chunks


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
    out = torch.full((total,), -1.0)
    asm = ChunkAssembler(out, mode)  # type: ignore[arg-type]
    for c in chunks:
        asm.add(c, torch.full((c.length,), float(c.index + 1)))
    expected = torch.tensor([sum((c + 1) * w for c, _, w in src) for src in sources], dtype=torch.float32)
    torch.testing.assert_close(out, expected)


def test_feedback_frames_are_previous_outputs() -> None:
    chunks = plan_chunks(24)
    out = torch.zeros(24, 2)
    asm = ChunkAssembler(out, "reference")
    assert asm.feedback_for(chunks[0]) is None
    first = torch.arange(23 * 2, dtype=torch.float32).view(23, 2)
    asm.add(chunks[0], first)
    fb = asm.feedback_for(chunks[1])
    assert fb is not None and fb.shape[0] == 19
    assert torch.equal(fb, first[4:23])  # the last 19 generated frames condition chunk 2's first 19 frames
    second = -torch.ones(20, 2)
    asm.add(chunks[1], second)
    assert torch.equal(out[:23], first) and torch.equal(out[23], second[19])


def test_crossfade_weights_and_blend() -> None:
    w = crossfade_weights(3)
    torch.testing.assert_close(w, torch.tensor([0.25, 0.5, 0.75]))
    chunks = plan_chunks(43)
    out = torch.zeros(43)
    asm = ChunkAssembler(out, "crossfade")
    asm.add(chunks[0], torch.zeros(23))
    asm.add(chunks[1], torch.ones(23))
    torch.testing.assert_close(out[20:23], w)
    assert torch.all(out[:20] == 0) and torch.all(out[23:] == 1)


def test_crossfade_keeps_agreeing_values_exact() -> None:
    chunks = plan_chunks(30)
    values = torch.rand(30, 4)
    out = torch.zeros(30, 4)
    asm = ChunkAssembler(out, "crossfade")
    for c in chunks:
        asm.add(c, values[c.start : c.stop].clone())
    assert torch.equal(out, values)


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        plan_chunks(0)
    with pytest.raises(ValueError):
        plan_chunks(10, chunk_frames=3, overlap=3)
    with pytest.raises(ValueError):
        ChunkAssembler(torch.zeros(3), "blend")  # type: ignore[arg-type]
    asm = ChunkAssembler(torch.zeros(5))
    with pytest.raises(ValueError, match="needs 5 frames"):
        asm.add(plan_chunks(5)[0], torch.zeros(4))
