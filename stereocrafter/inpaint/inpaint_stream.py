"""Stream a clip of any length through :class:`~.inpaint_pipeline.StereoInpaintPipeline`, resumably.

The clip is planned as temporal chunks up front (:func:`~.temporal_chunks.plan_chunks`, its length is known); the
caller pushes its warped frames and masks in pieces of any size. A chunk runs as soon as all its input frames are
in; then the frames before the next chunk's start are final (:func:`~.temporal_chunks.final_frames`) and are
returned. The stream holds the inputs from the first frame a pending chunk needs and the outputs not yet returned
(the rolling :class:`~.temporal_chunks.ChunkAssembler`), about one chunk plus the last push, never the clip.

The numbers do not depend on how the clip is cut into pushes: the noise comes from one generator in chunk order,
and tile counts are planned once (an out-of-memory retry's larger counts carry on to later chunks), so the output
equals :meth:`StereoInpaintPipeline.__call__`'s bit for bit. :meth:`InpaintStream.state_dict` captures everything a
later stream needs to continue after the frames returned so far.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch

from ..svd.lean_attention import lean_attention
from .inpaint_pipeline import (
    Fit,
    InpaintSettings,
    InterruptFn,
    ProgressFn,
    RunStats,
    StereoInpaintPipeline,
    binarize_mask,
    check_inputs,
    composite,
    composite_alpha,
)
from .temporal_chunks import Chunk, ChunkAssembler, final_frames, plan_chunks_in_shots

logger = logging.getLogger(__name__)


def check_saved_state(state: Any, keys: tuple[str, ...], own: dict[str, Any], stream: str) -> None:
    """Raise a ValueError unless ``state`` is a ``stream.state_dict()`` (all ``keys``) whose fingerprint equals
    ``own`` (same clip length, size and settings)."""
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise ValueError(f"state is not an {stream}.state_dict(); pass what state_dict() returned.")
    saved = dict(state["fingerprint"])
    differ = [k for k in own if saved.get(k) != own[k]]
    if differ:
        details = ", ".join(f"{k}: saved {saved.get(k)!r}, now {own[k]!r}" for k in differ)
        raise ValueError(
            f"state was saved by a stream for another clip or settings ({details}); build the stream with the "
            "saved num_frames, height, width and settings, or start over without state."
        )


class InpaintStream:
    """Feeds a clip of known length through a StereoInpaintPipeline in pushes of any size; holds about one temporal
    chunk (+ the last push) of frames, never the clip.

    Args:
        pipe: the pipeline (its ``stats`` describe this stream's run from construction on).
        num_frames, height, width: the clip's length and frame size (every push must match).
        settings: see :class:`InpaintSettings`.
        seed: noise seed (ignored when ``generator`` is given or the stream is restored from ``state``).
        generator: a CPU ``torch.Generator`` for the noise instead of ``seed``.
        progress: called after every denoising step with an :class:`InpaintProgress` (chunk of the whole plan).
        interrupt: called before every denoising step; raise from it to stop. A push that raises (interrupt,
            out of memory) leaves the stream unusable: continue from the last :meth:`state_dict` instead.
        state: a :meth:`state_dict` of a stream built with the same clip length, size and settings; this stream
            then continues after its :attr:`frames_out` frames.
        cuts: first frames of new shots: temporal chunks restart there (see
            :func:`~.temporal_chunks.plan_chunks_in_shots`).

    Attributes:
        max_buffered_inputs, max_buffered_outputs: the most input frames and output frames (not yet returned, or
            being returned by the current push) held at once, for checking the memory bound.
    """

    def __init__(
        self,
        pipe: StereoInpaintPipeline,
        num_frames: int,
        height: int,
        width: int,
        settings: InpaintSettings = InpaintSettings(),  # noqa: B008 (frozen, as in StereoInpaintPipeline.__call__)
        seed: int = 0,
        *,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        interrupt: InterruptFn | None = None,
        state: dict[str, Any] | None = None,
        cuts: Sequence[int] = (),
    ) -> None:
        settings.validate()
        if height < 1 or width < 1:
            raise ValueError(f"height and width must be >= 1, got {width}x{height}.")
        self.pipe = pipe
        self.settings = settings
        self.num_frames, self.height, self.width = num_frames, height, width
        self.progress, self.interrupt = progress, interrupt
        # Chunks restart at every cut (first frames of new shots): nothing of a shot conditions or blends into the next.
        self.cuts = sorted({int(c) for c in cuts if 0 < int(c) < num_frames})
        self._chunks = plan_chunks_in_shots(num_frames, settings.chunk_frames, settings.chunk_overlap, self.cuts)
        self._fit = Fit.plan(height, width, settings.fit, settings.multiple, settings.pad_mode)
        fit = self._fit
        if fit.mode == "crop" and (fit.work_height, fit.work_width) != (height, width):
            logger.warning(
                "fit='crop': only the top-left %dx%d of %dx%d is inpainted (the reference's behaviour); the rest "
                "keeps the warped input. Use fit='pad' to inpaint every pixel.",
                fit.work_width,
                fit.work_height,
                width,
                height,
            )
        # Planned once for the whole clip (as for one call), so every push size gives the same tiles.
        self._tiles, self._decode_tiles = pipe._tile_counts(fit, settings, min(num_frames, settings.chunk_frames))
        self._generator = generator if generator is not None else torch.Generator().manual_seed(seed)
        self._assembler = ChunkAssembler(settings.seams)
        self._next_chunk = 0  # index of the first chunk not run yet
        self._pushed = 0  # input frames received (counted from frame 0, also after a restore)
        # Input frames [_buffer_start, _pushed) and their binary holes: what the pending chunks still need.
        self._frames: torch.Tensor | None = None
        self._hole: torch.Tensor | None = None
        self._buffer_start = 0
        self._finished = False
        self._failure: str | None = None  # a failed push: its frames were lost, the stream cannot go on
        self.max_buffered_inputs = 0
        self.max_buffered_outputs = 0
        if state is not None:
            self._load_state(state)
        pipe.stats = RunStats(chunks=len(self._chunks), decode_tiles=self._decode_tiles)
        logger.info(
            "Inpainting %d frames of %dx%d (work %dx%d) in %d chunk(s), %dx%d tile(s), guidance %.3g%s",
            num_frames,
            width,
            height,
            fit.work_width,
            fit.work_height,
            len(self._chunks),
            *self._tiles,
            settings.guidance_scale,
            f", resuming at frame {self.frames_out}" if state is not None else "",
        )

    @property
    def frames_out(self) -> int:
        """Frames returned so far; also the frame index the caller must feed next after a restore from state."""
        return self._assembler.start

    # -- feeding

    def push(self, warped: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """warped [n, H, W, 3] float 0..1, mask [n, H, W] 0..1 (1 = hole), the next n frames of the clip.
        Returns the frames that are final now, [m, H, W, 3] float32 0..1 (m may be 0), in order.

        The mask may also take the other shapes :func:`check_inputs` accepts. Outputs are on the device of the
        pushed frames (CPU keeps GPU memory low).
        """
        self._check_usable("push()")
        frames, mask = check_inputs(warped, mask)
        n = frames.shape[0]
        if tuple(frames.shape[1:3]) != (self.height, self.width):
            raise ValueError(
                f"warped frames are {frames.shape[2]}x{frames.shape[1]} but the stream was built for "
                f"{self.width}x{self.height}; push frames of that size or build a stream for this one."
            )
        if self._pushed + n > self.num_frames:
            raise ValueError(
                f"warped has {n} frames but only {self.num_frames - self._pushed} of the stream's num_frames="
                f"{self.num_frames} are left (after {self._pushed}); push the clip's remaining frames only, or "
                "build the stream with the clip's real length."
            )
        try:
            return self._push(frames, binarize_mask(mask))
        except BaseException as exc:
            # Chunks of this push may have run already: their frames were taken but not returned.
            self._failure = type(exc).__name__
            raise

    def finish(self) -> torch.Tensor:
        """The remaining frames [m, H, W, 3] float32 0..1; ValueError if fewer than num_frames frames were pushed.

        The push that completes the clip already returns every frame, so this is empty; call it anyway to check
        that the clip was complete.
        """
        self._check_usable("finish()")
        if self._pushed < self.num_frames:
            raise ValueError(
                f"finish() after {self._pushed} of num_frames={self.num_frames} frames; push frames "
                f"{self._pushed}..{self.num_frames - 1} first."
            )
        self._finished = True
        return self._assembler.take(self.num_frames)

    def _check_usable(self, what: str, finished_ok: bool = False) -> None:
        if self._failure is not None:
            raise ValueError(
                f"{what} after a push that failed ({self._failure}): its frames are lost; build a new stream with "
                "state= the last state_dict() taken before it, or start over."
            )
        if self._finished and not finished_ok:
            raise ValueError(f"{what} after finish(): build a new InpaintStream for another clip.")

    def _push(self, frames: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        if self._frames is None or self._frames.shape[0] == 0:
            self._frames, self._hole = frames, hole  # no copy: a whole clip pushed at once stays the caller's
        else:
            assert self._hole is not None
            self._frames = torch.cat([self._frames.to(frames.device), frames])
            self._hole = torch.cat([self._hole.to(hole.device), hole])
        self._pushed += frames.shape[0]
        self.max_buffered_inputs = max(self.max_buffered_inputs, self._frames.shape[0])
        ready = [c for c in self._chunks[self._next_chunk :] if c.stop <= self._pushed]
        first = self.frames_out
        # The returned frames are known before the chunks run: allocate them once instead of concatenating.
        stop = final_frames(self._chunks, ready[-1].index) if ready else first
        out = torch.empty((stop - first, self.height, self.width, 3), dtype=torch.float32, device=frames.device)
        for chunk in ready:
            self._run_chunk(chunk)
            done, final = self.frames_out, final_frames(self._chunks, chunk.index)
            out[done - first : final - first] = self._assembler.take(final)
            self._next_chunk = chunk.index + 1
            self._drop_inputs()
        self.max_buffered_outputs = max(self.max_buffered_outputs, self._assembler.stop - first)
        return out

    def _drop_inputs(self) -> None:
        """Forget the input frames before the first frame the next chunk needs (all of them after the last)."""
        assert self._frames is not None and self._hole is not None
        need = self._chunks[self._next_chunk].start if self._next_chunk < len(self._chunks) else self._pushed
        cut = need - self._buffer_start
        self._frames, self._hole, self._buffer_start = self._frames[cut:], self._hole[cut:], need

    # -- one chunk

    def _run_chunk(self, chunk: Chunk) -> None:
        """Feedback conditioning, denoise (tiled, OOM retry), decode, unfit, composite, assemble."""
        assert self._frames is not None and self._hole is not None
        pipe, settings = self.pipe, self.settings
        first = chunk.start - self._buffer_start
        warped = self._frames[first : first + chunk.length]
        hole = self._hole[first : first + chunk.length]
        if settings.composite and not bool(hole.any()):
            pipe.stats.skipped_chunks += 1
            self._assembler.add(chunk, warped.clone())  # nothing to fill: the composite would be the input
            return
        cond = warped.clone()
        feedback = self._assembler.feedback_for(chunk)
        if feedback is not None:
            cond[: chunk.feedback] = feedback
        pipe.out_device = warped.device
        with lean_attention(pipe.vae) if pipe.use_lean_vae_attention(settings) else contextlib.nullcontext():
            generated, self._tiles, self._decode_tiles = pipe._run_chunk_with_retry(
                chunk,
                len(self._chunks),
                cond,
                hole,
                self._fit,
                self._tiles,
                self._decode_tiles,
                settings,
                self._generator,
                self.progress,
                self.interrupt,
            )
        pipe.stats.decode_tiles = self._decode_tiles
        generated = self._fit.undo(generated, warped)
        if settings.composite:
            alpha = composite_alpha(hole, settings.composite_dilate_px, settings.composite_feather_px)
            generated = composite(warped, generated, alpha, out=generated)  # the decoded chunk is ours to overwrite
        self._assembler.add(chunk, generated)

    # -- resuming

    def _fingerprint(self) -> dict[str, Any]:
        """What a saved state must have been made with: the clip's length and size, every setting."""
        return {
            "num_frames": self.num_frames,
            "height": self.height,
            "width": self.width,
            **({"cuts": self.cuts} if self.cuts else {}),  # absent without cuts: older saved states still load
            **{f"settings.{k}": v for k, v in asdict(self.settings).items()},
        }

    def state_dict(self) -> dict[str, Any]:
        """torch.save-able state to continue later: generator state, index of the next chunk, tile counts in use,
        and the previous chunk's outputs still needed (feedback conditioning and crossfade of the next chunk).
        A stream built with state=this continues after frames_out: the caller pushes input frames again starting
        at frame `frames_out`, and the remaining outputs are bit-identical to an uninterrupted run."""
        self._check_usable("state_dict()", finished_ok=True)
        return {
            "fingerprint": self._fingerprint(),
            "generator": self._generator.get_state(),
            "next_chunk": self._next_chunk,
            "tiles": self._tiles,
            "decode_tiles": self._decode_tiles,
            "assembler": self._assembler.state_dict(),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        keys = ("fingerprint", "generator", "next_chunk", "tiles", "decode_tiles", "assembler")
        check_saved_state(state, keys, self._fingerprint(), "InpaintStream")
        self._generator.set_state(state["generator"])
        self._next_chunk = int(state["next_chunk"])
        (rows, cols), (decode_rows, decode_cols) = state["tiles"], state["decode_tiles"]
        self._tiles, self._decode_tiles = (int(rows), int(cols)), (int(decode_rows), int(decode_cols))
        self._assembler.load_state_dict(state["assembler"])
        # The caller feeds the inputs again from frames_out on.
        self._pushed = self._buffer_start = self.frames_out
