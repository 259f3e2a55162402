"""What every stereo inpainting model provides, so the nodes, the streaming converter and the command line use
StereoCrafter (v1, :class:`~.inpaint_pipeline.StereoInpaintPipeline`) and StereoCrafter2 (v2,
:class:`~.inpaint2_pipeline.StereoCrafter2Pipeline`) through one interface.

An :class:`InpaintModel` has

- ``model_name`` ("StereoCrafter" / "StereoCrafter2") and ``settings_type`` (its frozen settings dataclass);
- ``settings_from(options)``: its settings from the knobs both models share (:class:`InpaintOptions`, the widgets of
  the StereoInpaint node and the command line's flags), a classmethod so that a job record is written before the
  weights load;
- ``open_stream(...)``: an :class:`InpaintStreamLike` that takes a clip of known length in pushes of any size,
  resumably (``state_dict`` / ``state=``), restarting its temporal chunks at shot cuts;
- ``__call__(frames, mask, settings, seed, progress=, interrupt=)``: a whole clip at once.

Warped frames are [T, H, W, 3] float 0..1, masks [T, H, W] 0..1 (1 = hole), outputs [T, H, W, 3] float32 0..1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import torch

#: The command line's ``--inpaint-model`` choices, in the order of the models' release.
INPAINT_MODELS: tuple[str, ...] = ("stereocrafter", "stereocrafter2")

InterruptFn = Callable[[], None]


@dataclass(frozen=True)
class InpaintOptions:
    """The knobs both models have; ``None`` = the model's own default (they differ: v1 8 steps and 23-frame chunks,
    v2 10 steps and 81-frame chunks).

    Attributes:
        steps: denoising steps.
        chunk_frames, chunk_overlap: temporal chunking (v2 rounds ``chunk_frames`` down to ``1 + 4k``).
        tiles: spatial tiles (rows, cols); None = the model's default (v1 automatic from memory, v2 2 × 2).
        composite: keep the warped pixels outside the holes.
        seams: ``crossfade`` (ours) or ``reference`` (the later chunk's overlap outputs discarded).
        fit: ``pad`` (ours: every pixel and frame inpainted) or ``crop`` (the reference: v1 crops the frame to
            multiples of 128, v2 cuts short clips to ``1 + 4k`` frames).
        guidance_scale: v1's CFG scale (v2 runs no guidance and ignores it).
        faithful: start from the model's reference settings (:meth:`reference`) instead of ours.
    """

    steps: int | None = None
    chunk_frames: int | None = None
    chunk_overlap: int | None = None
    tiles: tuple[int, int] | None = None
    composite: bool | None = None
    seams: Literal["crossfade", "reference"] | None = None
    fit: Literal["pad", "crop"] | None = None
    guidance_scale: float | None = None
    faithful: bool = False


@runtime_checkable
class InpaintStreamLike(Protocol):
    """A clip of known length pushed in pieces; outputs come out in order as soon as they are final."""

    @property
    def frames_out(self) -> int:
        """Frames returned so far (after a restore: the frame index to push next)."""
        ...

    def push(self, warped: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The next n frames [n, H, W, 3] and masks [n, H, W] → the frames final now [m, H, W, 3] (m may be 0)."""
        ...

    def finish(self) -> torch.Tensor:
        """What is left (the push that completes the clip returns everything); raises if frames are missing."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """torch.save-able state; a stream opened with ``state=`` it continues after :attr:`frames_out`."""
        ...


@runtime_checkable
class InpaintModel(Protocol):
    """A loaded stereo inpainting model (see the module docstring)."""

    model_name: str
    settings_type: type

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @classmethod
    def settings_from(cls, options: InpaintOptions) -> Any: ...

    def open_stream(
        self,
        num_frames: int,
        height: int,
        width: int,
        settings: Any,
        seed: int = 0,
        *,
        progress: Callable[[Any], None] | None = None,
        interrupt: InterruptFn | None = None,
        state: dict[str, Any] | None = None,
        cuts: Sequence[int] = (),
    ) -> InpaintStreamLike: ...

    def __call__(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor,
        settings: Any,
        seed: int = 0,
        *,
        progress: Callable[[Any], None] | None = None,
        interrupt: InterruptFn | None = None,
    ) -> torch.Tensor: ...


def check_inpaint_model(model: object, what: str = "the inpainting model") -> InpaintModel:
    """``model`` if it is an :class:`InpaintModel`, else a TypeError naming what was given."""
    if not isinstance(model, InpaintModel):
        raise TypeError(
            f"{what} must be a StereoCrafter or StereoCrafter2 pipeline (StereoInpaintPipeline, "
            f"StereoCrafter2Pipeline), got {type(model).__name__}."
        )
    return model


def check_settings(model: InpaintModel, settings: object) -> None:
    """Raise a TypeError unless ``settings`` are ``model``'s kind (v1 InpaintSettings for a v2 model or the reverse
    is a mistake that would otherwise fail deep inside the stream)."""
    if not isinstance(settings, model.settings_type):
        raise TypeError(
            f"{model.model_name} takes {model.settings_type.__name__}, got {type(settings).__name__}; make them "
            f"with {type(model).__name__}.settings_from(InpaintOptions(...)) (or load the model they were made for)."
        )
