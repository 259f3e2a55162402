"""Temporal chunk schedule for clips longer than the denoiser's window, and the assembly of chunk outputs.

Reference (StereoCrafter ``inpainting_inference.py``): chunks of 23 frames starting every 20; the first
``overlap`` (3) input frames of each later chunk are replaced by the previous chunk's generated frames
(feedback conditioning; the mask stays the original one) and those output frames are discarded. The last
chunk is anchored at ``T + overlap - 23`` so it is full-length, which makes it re-generate up to 19 frames.
Clips of at most ``overlap`` frames produce no chunk at all there (a crash); here they get one chunk.

Seams: ``reference`` keeps, for each overlapped frame, the previous chunk's output (what the reference
does); ``crossfade`` blends the previous and the current chunk's outputs with weights ramping towards the
current chunk, which smooths the colour/brightness jumps at chunk boundaries.

Streaming: once a chunk has run, the frames before the next chunk's start are final (:func:`final_frames`); the
:class:`ChunkAssembler` keeps only the frames not handed out yet and the last chunk's outputs that the next chunk
needs, so a clip of any length is assembled in about one chunk of memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

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


def final_frames(chunks: list[Chunk], index: int) -> int:
    """How many leading frames of the clip are final once chunks ``0..index`` have run.

    Everything before the next chunk's start: the next chunk overlaps the rest (its feedback conditioning and
    seam need them), and chunk starts increase, so no later chunk touches an earlier frame. The last chunk
    finalises the whole clip. Frames ``[final_frames(chunks, index - 1), final_frames(chunks, index))`` are
    therefore handed out after chunk ``index``, each frame exactly once.
    """
    return chunks[index + 1].start if index + 1 < len(chunks) else chunks[-1].stop


class ChunkAssembler:
    """Assembles chunk outputs in a rolling window and hands out the feedback frames for the next chunk.

    It holds only frames not yet handed out (``[start, stop)``, the seam blends of the last chunks) and the last
    chunk's raw outputs from ``start`` on (the next chunk's feedback conditioning), never the clip.

    Args:
        mode: ``reference`` (overlapped frames keep the previous output) or ``crossfade``.
    """

    def __init__(self, mode: SeamMode = "crossfade") -> None:
        if mode not in ("crossfade", "reference"):
            raise ValueError(f"Unknown seam mode {mode!r}; use 'crossfade' or 'reference'.")
        self.mode = mode
        self.start = 0  # first frame not handed out yet
        self._window: torch.Tensor | None = None  # assembled frames [start, stop)
        # The last chunk's raw outputs from frame _raw_start on; None before the first chunk.
        self._raw: torch.Tensor | None = None
        self._raw_start = 0

    @property
    def stop(self) -> int:
        """One past the last assembled frame."""
        return self.start + (0 if self._window is None else self._window.shape[0])

    def feedback_for(self, chunk: Chunk) -> torch.Tensor | None:
        """The previous chunk's raw outputs for ``chunk``'s leading overlap frames [feedback, ...], or None."""
        if chunk.feedback == 0 or self._raw is None:
            return None
        first = chunk.start - self._raw_start
        if first < 0 or chunk.start + chunk.feedback > self._raw_start + self._raw.shape[0]:
            raise ValueError(f"Chunk {chunk} does not overlap the previous chunk's outputs as planned.")
        return self._raw[first : first + chunk.feedback]

    def add(self, chunk: Chunk, frames: torch.Tensor) -> None:
        """Assemble ``frames`` [chunk.length, ...] (this chunk's outputs); the chunk must continue the window,
        its ``feedback`` leading frames overlapping the window's last frames (the first chunk: none)."""
        if frames.shape[0] != chunk.length:
            raise ValueError(f"Chunk {chunk.index} needs {chunk.length} frames, got {frames.shape[0]}.")
        n = chunk.feedback if self._raw is not None else 0
        if chunk.start < self.start or chunk.start + n != self.stop:
            raise ValueError(
                f"Chunk {chunk} does not continue the assembled frames [{self.start}, {self.stop}) (chunks must be "
                "added in plan order, before their frames are taken)."
            )
        self._raw = None  # this chunk's feedback was taken from it already: free it before the window is rebuilt
        kept = frames.new_empty((0, *frames.shape[1:])) if self._window is None else self._window.to(frames.device)
        keep = chunk.start - self.start
        head = kept[keep:]
        if n and self.mode == "crossfade":
            w = crossfade_weights(n).to(device=head.device, dtype=head.dtype).view((n,) + (1,) * (frames.ndim - 1))
            # lerp: where both chunks agree (e.g. composited non-hole pixels) the value stays bit-identical.
            head = head + w * (frames[:n].to(head.dtype) - head)
        self._window = torch.cat([kept[:keep], head, frames[n:].to(kept.dtype)])
        self._raw, self._raw_start = frames, chunk.start

    def take(self, stop: int) -> torch.Tensor:
        """Hand out the assembled frames [start, stop) and forget them (and the raw outputs before ``stop``)."""
        if self._window is None or not self.start <= stop <= self.stop:
            raise ValueError(
                f"Frames [{self.start}, {stop}) are not assembled (assembled: [{self.start}, {self.stop}))."
            )
        n = stop - self.start
        out, self._window = self._window[:n], self._window[n:]
        if self._raw is not None and stop > self._raw_start:
            # a copy of the few frames left: a view would keep the whole chunk's storage alive until the next add
            self._raw, self._raw_start = self._raw[stop - self._raw_start :].clone(), stop
        self.start = stop
        return out

    def state_dict(self) -> dict[str, Any]:
        """The held frames as torch.save-able copies (a saved view would carry its whole storage)."""
        window = None if self._window is None else self._window.clone()
        raw = None if self._raw is None else self._raw.clone()
        # Usually the same frames (the last chunk's own outputs past its overlap): one tensor twice is saved once.
        # Sharing is safe: neither is modified in place.
        if window is not None and raw is not None and self._raw_start == self.start and torch.equal(window, raw):
            raw = window
        return {"start": self.start, "window": window, "raw": raw, "raw_start": self._raw_start}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output."""
        self.start = int(state["start"])
        self._window, self._raw, self._raw_start = state["window"], state["raw"], int(state["raw_start"])


def plan_chunks_in_shots(
    num_frames: int, chunk_frames: int = 23, overlap: int = 3, cuts: Sequence[int] = ()
) -> list[Chunk]:
    """:func:`plan_chunks` within each shot of a clip cut at ``cuts`` (first frames of new shots): no chunk
    crosses a cut and the first chunk of a shot has no feedback (no conditioning or crossfade from the previous
    shot). Without cuts it is :func:`plan_chunks`. Indices and frames count over the whole clip."""
    starts = [0, *sorted({int(c) for c in cuts if 0 < int(c) < num_frames})]
    chunks: list[Chunk] = []
    for start, end in zip(starts, [*starts[1:], num_frames], strict=True):
        for chunk in plan_chunks(end - start, chunk_frames, overlap):
            chunks.append(Chunk(len(chunks), start + chunk.start, start + chunk.stop, chunk.feedback))
    return chunks
