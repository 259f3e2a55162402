"""A light per-frame depth model (Depth Anything V2 Small through transformers) with temporal stabilisation.

Per-frame relative depth (affine-invariant inverse depth: near = large, its scale and shift free per frame) flickers
over time. :class:`TemporalStabilizer` fixes that in two steps per frame, at the model's resolution:

1. scale/shift alignment: the least-squares ``s · d_t + b`` closest to the previous stabilised frame, so every frame
   shares the clip's running scale;
2. a short motion-gated temporal filter: ``out = w · previous + (1 − w) · aligned`` with
   ``w = strength · exp(−(|aligned − previous| / tolerance)²)``: static parts are averaged over a few frames, moving
   parts (a large change) follow the new frame at once, so nothing trails behind moving objects.

:func:`flicker` measures the result (mean |d_t − d_{t−1}| over the clip's depth range). :class:`LightDepthPipeline`
has the converter's depth-stage interface (``stream(frames, num_frames, settings, progress=, interrupt=)`` and
``num_progress_steps``), so it replaces DepthCrafter in :func:`~.convert.convert_video` unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

#: Files of a Depth Anything folder in the Hugging Face layout.
MODEL_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
#: The first stabilised frame's depth range is mapped to [ANCHOR_LOW, ANCHOR_HIGH] of the 0..1 output, leaving room
#: for later frames to reach nearer or farther without clipping (the converter normalises over the clip anyway).
ANCHOR_LOW, ANCHOR_HIGH = 0.25, 0.75


@dataclass(frozen=True)
class LightDepthSettings:
    """How the per-frame depth is computed and stabilised (defaults: a 3-4 frame average on static parts)."""

    batch_size: int = 8  # frames per model call
    align: bool = True  # scale/shift alignment to the running clip
    temporal_strength: float = 0.6  # weight of the previous frame where nothing moved (0 = no filter)
    motion_tolerance: float = 0.05  # change, as a share of the running depth range, that counts as motion

    @property
    def num_inference_steps(self) -> int:
        """One progress step per model batch (the converter's progress counts steps per window)."""
        return 1

    def validate(self) -> None:
        """Raise a ValueError naming the first bad setting."""
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}.")
        if not 0.0 <= self.temporal_strength < 1.0:
            raise ValueError(f"temporal_strength must be within [0, 1), got {self.temporal_strength}.")
        if not self.motion_tolerance > 0.0:
            raise ValueError(f"motion_tolerance must be > 0, got {self.motion_tolerance}.")


def flicker(depth: torch.Tensor) -> float:
    """Mean |d_t − d_{t−1}| of a clip [T, H, W] over its depth range (max − min over the clip): 0 = steady, scale-
    and shift-invariant. Meaningful on a static-camera clip, where the true depth does not change."""
    if depth.ndim != 3 or depth.shape[0] < 2:
        raise ValueError(f"depth must be [T >= 2, H, W], got shape {tuple(depth.shape)}.")
    depth = depth.float()
    span = (depth.max() - depth.min()).clamp(min=1e-12)
    return float((depth[1:] - depth[:-1]).abs().mean() / span)


def fit_scale_shift(
    depth: torch.Tensor, reference: torch.Tensor, weight: torch.Tensor | None = None
) -> tuple[float, float] | None:
    """The (``weight``-ed) least-squares (s, b) with ``s · depth + b`` closest to ``reference`` ([h, w] each), s kept
    positive (an anti-correlated frame keeps its own contrast, matched in spread); None when the weighted ``depth``
    is flat (no scale to fit)."""
    d, r = depth.flatten().double(), reference.flatten().double()
    w = torch.ones_like(d) if weight is None else weight.flatten().double()
    w = w / w.sum().clamp(min=1e-12)
    d_mean, r_mean = (w * d).sum(), (w * r).sum()
    variance = (w * (d - d_mean) ** 2).sum()
    if not variance > 1e-12 * max(float(d_mean.abs()), 1e-6) ** 2:
        return None
    scale = (w * (d - d_mean) * (r - r_mean)).sum() / variance
    if not scale > 0:
        scale = (w * (r - r_mean) ** 2).sum().sqrt() / variance.sqrt()
    return float(scale), float(r_mean - scale * d_mean)


def align_scale_shift(depth: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``depth`` mapped by :func:`fit_scale_shift` onto ``reference``; a flat frame becomes the reference's mean."""
    fit = fit_scale_shift(depth, reference)
    if fit is None:
        return torch.full_like(depth, float(reference.double().mean()))
    return depth * fit[0] + fit[1]


class TemporalStabilizer:
    """Stabilises a stream of relative depth frames [h, w] one by one (see the module docstring); ``reset()`` at a
    cut. Outputs are in the first frame's scale."""

    def __init__(self, settings: LightDepthSettings = LightDepthSettings()) -> None:
        settings.validate()
        self.settings = settings
        self.previous: torch.Tensor | None = None

    def reset(self) -> None:
        self.previous = None

    def __call__(self, depth: torch.Tensor) -> torch.Tensor:
        depth = depth.float()
        previous = self.previous
        if previous is None:
            out = depth
        else:
            span = (previous.max() - previous.min()).clamp(min=1e-12)
            aligned = depth
            if self.settings.align:
                aligned = align_scale_shift(depth, previous)
                # Refit on the pixels that agree (moving objects would bias the fit): the static scene sets the scale,
                # or only the shift where those pixels are flat.
                inliers = (aligned - previous).abs() <= self.settings.motion_tolerance * span
                if inliers.sum() >= 0.2 * inliers.numel():
                    fit = fit_scale_shift(depth, previous, inliers.float())
                    if fit is None:  # keep the frame's own scale: the moving part would bias a fitted one
                        fit = (1.0, float((previous - depth)[inliers].double().mean()))
                    aligned = depth * fit[0] + fit[1]
            out = aligned
            if self.settings.temporal_strength > 0:
                change = (aligned - previous).abs() / (self.settings.motion_tolerance * span)
                weight = self.settings.temporal_strength * torch.exp(-(change**2))
                out = weight * previous + (1.0 - weight) * aligned
        self.previous = out
        return out


def processing_size(height: int, width: int, size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """DPTImageProcessor's resize with ``keep_aspect_ratio`` and ``ensure_multiple_of``: the scale of the side whose
    target is closer to its own size, both sides rounded to the multiple (at least one multiple)."""
    scale_h, scale_w = size[0] / height, size[1] / width
    scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h

    def constrain(value: float) -> int:
        return max(multiple, int(round(value / multiple) * multiple))

    return constrain(scale * height), constrain(scale * width)


class LightDepthPipeline:
    """Depth Anything (``AutoModelForDepthEstimation``) frame by frame, stabilised over time."""

    def __init__(
        self,
        model: torch.nn.Module,
        preprocessor: dict,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype = torch.device(device), dtype
        size = preprocessor.get("size", {"height": 518, "width": 518})
        self.size = (int(size["height"]), int(size["width"]))
        self.multiple = int(preprocessor.get("ensure_multiple_of", 14) or 1)
        self.mean = torch.tensor(preprocessor.get("image_mean", [0.485, 0.456, 0.406])).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocessor.get("image_std", [0.229, 0.224, 0.225])).view(1, 3, 1, 1)

    @classmethod
    def from_pretrained(
        cls, folder: Path | str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> LightDepthPipeline:
        """Load a Depth Anything folder in the Hugging Face layout (:data:`MODEL_FILES`)."""
        from transformers import AutoModelForDepthEstimation

        folder = Path(folder)
        missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder} lacks {', '.join(missing)}: it must hold a Depth Anything model in the Hugging Face layout "
                "(e.g. depth-anything/Depth-Anything-V2-Small-hf); download it again (--download)."
            )
        preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
        # No dtype argument (its name changed across transformers versions): __init__ casts the ~100 MB model.
        model = AutoModelForDepthEstimation.from_pretrained(folder)
        return cls(model, preprocessor, device, dtype)

    @staticmethod
    def num_progress_steps(num_frames: int, settings: LightDepthSettings | None = None) -> int:
        """Total ``progress`` calls for a clip: one per model batch."""
        return math.ceil(num_frames / (settings or LightDepthSettings()).batch_size)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """[n, H, W, 3] float 0..1 → the model's pixel_values [n, 3, h, w] (antialiased bicubic, normalised)."""
        size = processing_size(frames.shape[1], frames.shape[2], self.size, self.multiple)
        pixels = frames[..., :3].to(self.device, torch.float32).permute(0, 3, 1, 2)
        pixels = F.interpolate(pixels, size=size, mode="bicubic", align_corners=False, antialias=True)
        pixels = (pixels - self.mean.to(self.device)) / self.std.to(self.device)
        return pixels.to(self.dtype)

    @torch.no_grad()
    def relative_depth(self, frames: torch.Tensor) -> torch.Tensor:
        """The model's relative depth [n, h, w] float32 (near = large, arbitrary scale) at the processing size."""
        return self.model(pixel_values=self.preprocess(frames)).predicted_depth.float()

    def stream(
        self,
        frames: Iterable[torch.Tensor],
        num_frames: int,
        settings: LightDepthSettings | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        interrupt: Callable[[], None] | None = None,
    ) -> Iterator[torch.Tensor]:
        """Stabilised depth for a clip arriving in chunks, as :meth:`.VideoDepthPipeline.stream`.

        Args:
            frames: chunks [n, H, W, 3] float 0..1, any chunking, one size.
            num_frames: frames the chunks hold in all (a different count is an error).
            settings: :class:`LightDepthSettings`.
            progress: called as ``progress(batch_index, 0)`` after each model batch.
            interrupt: called before each batch; raise from it to stop.

        Yields:
            Depth chunks [m, H, W] float32 on the CPU in 0..1 (near = 1), ``num_frames`` in all: the first frame's
            range maps to [ANCHOR_LOW, ANCHOR_HIGH], later frames follow its scale (clamped to 0..1).
        """
        settings = settings or LightDepthSettings()
        settings.validate()
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
        stabilizer = TemporalStabilizer(settings)
        anchor: tuple[float, float] | None = None
        seen = 0
        for index, batch in enumerate(_rechunk(frames, settings.batch_size)):
            if interrupt is not None:
                interrupt()
            seen += batch.shape[0]
            if seen > num_frames:
                raise ValueError(f"The frames iterable yields more than num_frames = {num_frames} frames.")
            relative = self.relative_depth(batch)
            steady = torch.stack([stabilizer(frame) for frame in relative])
            if anchor is None:
                low, high = float(steady[0].min()), float(steady[0].max())
                anchor = (low, high - low if high - low > 1e-12 else 1.0)
            depth = ANCHOR_LOW + (ANCHOR_HIGH - ANCHOR_LOW) * (steady - anchor[0]) / anchor[1]
            depth = F.interpolate(
                depth.unsqueeze(1), size=tuple(batch.shape[1:3]), mode="bilinear", align_corners=False
            )
            if progress is not None:
                progress(index, 0)
            yield depth.squeeze(1).clamp(0.0, 1.0).cpu()
        if seen != num_frames:
            raise ValueError(f"The frames iterable yielded {seen} frames but num_frames is {num_frames}.")


def _rechunk(frames: Iterable[torch.Tensor], size: int) -> Iterator[torch.Tensor]:
    """Chunks [n, H, W, 3] of any n regrouped into chunks of ``size`` frames (the last one shorter)."""
    pending: list[torch.Tensor] = []
    have = 0
    for chunk in frames:
        if chunk.ndim != 4 or chunk.shape[-1] < 3:
            raise ValueError(f"frames must be chunks [n, H, W, 3], got shape {tuple(chunk.shape)}.")
        pending.append(chunk)
        have += chunk.shape[0]
        while have >= size:
            joined = torch.cat(pending)
            yield joined[:size]
            pending, have = ([joined[size:]] if joined.shape[0] > size else []), have - size
    if have:
        yield torch.cat(pending)
