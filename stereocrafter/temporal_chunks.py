"""Temporal chunk schedule for clips longer than the denoiser's window, and the assembly of chunk outputs.

Reference (StereoCrafter ``inpainting_inference.py``): chunks of 23 frames starting every 20; the first
``overlap`` (3) input frames of each later chunk are replaced by the previous chunk's generated frames
(feedback conditioning; the mask stays the original one) and those output frames are discarded. The last
chunk is anchored at ``T + overlap - 23`` so it is full-length, which makes it re-generate up to 19 frames.
Clips of at most ``overlap`` frames produce no chunk at all there (a crash); here they get one chunk.

Seams: ``reference`` keeps, for each overlapped frame, the previous chunk's output (what the reference
does); ``crossfade`` blends the previous and the current chunk's outputs with weights ramping towards the
current chunk, which smooths the colour/brightness jumps at chunk boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

SeamMode = Literal["crossfade", "reference"]


@dataclass(frozen=True)
class Chunk:
    """Frames ``[start, stop)`` of the clip, processed together.

    ``feedback`` leading frames overlap the previous chunk: their conditioning input is the previous chunk's
    output, and their output is either discarded (reference) or cross-faded with the previous one.
    """

    index: int
    start: int
    stop: int
    feedback: int

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def new_start(self) -> int:
        """First frame that no earlier chunk has produced."""
        return self.start + self.feedback


def plan_chunks(num_frames: int, chunk_frames: int = 23, overlap: int = 3) -> list[Chunk]:
    """The reference chunk schedule, extended to clips of any length ≥ 1.

    Chunks start every ``chunk_frames - overlap`` frames; a chunk that would run past the end is moved back
    so that it ends at the last frame (its ``feedback`` grows accordingly). A clip of at most
    ``chunk_frames`` frames is a single chunk.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}.")
    if not 0 <= overlap < chunk_frames:
        raise ValueError(f"overlap must be in [0, chunk_frames), got {overlap} with chunk_frames={chunk_frames}.")
    step = chunk_frames - overlap
    chunks: list[Chunk] = []
    for i in range(0, num_frames, step):
        if chunks and i + overlap >= num_frames:
            break  # everything is already covered (the reference also stops here)
        if chunks and i + chunk_frames > num_frames:
            start = max(num_frames + overlap - chunk_frames, 0)
            feedback = i - start + overlap
        else:
            start = i
            feedback = overlap if chunks else 0
        chunks.append(
            Chunk(index=len(chunks), start=start, stop=min(start + chunk_frames, num_frames), feedback=feedback)
        )
    return chunks


def crossfade_weights(n: int) -> torch.Tensor:
    """Weight of the *current* chunk for each of ``n`` overlapped frames: (k + 1) / (n + 1), float32 [n].

    Strictly between 0 and 1, increasing; the previous chunk gets ``1 - w``.
    """
    return torch.arange(1, n + 1, dtype=torch.float32) / (n + 1)


def frame_sources(chunks: list[Chunk], mode: SeamMode = "crossfade") -> list[list[tuple[int, int, float]]]:
    """For each output frame: the (chunk index, frame within chunk, weight) it is made of; weights sum to 1.

    Useful to check a schedule: every frame is produced exactly once, from one or two chunks.
    """
    if mode not in ("crossfade", "reference"):
        raise ValueError(f"Unknown seam mode {mode!r}; use 'crossfade' or 'reference'.")
    total = chunks[-1].stop
    sources: list[list[tuple[int, int, float]]] = [[] for _ in range(total)]
    for chunk in chunks:
        weights = crossfade_weights(chunk.feedback).tolist()
        for local in range(chunk.length):
            frame = chunk.start + local
            if local < chunk.feedback:
                if mode == "reference":
                    continue
                w = weights[local]
                sources[frame] = [(c, i, s * (1.0 - w)) for c, i, s in sources[frame]] + [(chunk.index, local, w)]
            else:
                sources[frame] = [(chunk.index, local, 1.0)]
    return sources


class ChunkAssembler:
    """Writes chunk outputs into a clip-sized buffer and hands out the feedback frames for the next chunk.

    Args:
        out: the output buffer [T, ...] (e.g. [T, H, W, 3] float32, any device); frames are written in place.
        mode: ``reference`` (overlapped frames keep the previous output) or ``crossfade``.
    """

    def __init__(self, out: torch.Tensor, mode: SeamMode = "crossfade") -> None:
        if mode not in ("crossfade", "reference"):
            raise ValueError(f"Unknown seam mode {mode!r}; use 'crossfade' or 'reference'.")
        self.out = out
        self.mode = mode
        self._last: tuple[Chunk, torch.Tensor] | None = None

    def feedback_for(self, chunk: Chunk) -> torch.Tensor | None:
        """The previous chunk's raw outputs for ``chunk``'s leading overlap frames [feedback, ...], or None."""
        if chunk.feedback == 0 or self._last is None:
            return None
        prev_chunk, prev_frames = self._last
        first = chunk.start - prev_chunk.start
        if first < 0 or chunk.start + chunk.feedback > prev_chunk.stop:
            raise ValueError(f"Chunk {chunk} does not overlap the previous chunk {prev_chunk} as planned.")
        return prev_frames[first : first + chunk.feedback]

    def add(self, chunk: Chunk, frames: torch.Tensor) -> None:
        """Store ``frames`` [chunk.length, ...] (this chunk's outputs) into the buffer."""
        if frames.shape[0] != chunk.length:
            raise ValueError(f"Chunk {chunk.index} needs {chunk.length} frames, got {frames.shape[0]}.")
        n = chunk.feedback if self._last is not None else 0
        target = self.out[chunk.start : chunk.stop]
        frames_out = frames.to(device=self.out.device, dtype=self.out.dtype)
        target[n:].copy_(frames_out[n:])
        if n and self.mode == "crossfade":
            shape = (n,) + (1,) * (frames.ndim - 1)
            w = crossfade_weights(n).to(device=self.out.device, dtype=self.out.dtype).view(shape)
            old = target[:n]
            # lerp: where both chunks agree (e.g. composited non-hole pixels) the value stays bit-identical.
            old.copy_(old + w * (frames_out[:n] - old))
        self._last = (chunk, frames)
