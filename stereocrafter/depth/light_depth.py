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
``num_progress_steps``), so it replaces DepthCrafter in :func:`~.convert.convert_video` unchanged; calling it on a
whole clip (the LightVideoDepth node) gives depth normalised over the clip, as VideoDepth's.
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
#: Where the models come from, for messages.
REPO_ID = "depth-anything/Depth-Anything-V2-Small-hf"


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


#: Memory of the model's activations per pixel at the processing size per frame of a batch, in fp32: Depth Anything V2
#: Small's peak RSS grew by about 640 bytes per pixel per frame on the CPU (batches of 2 and 4 at 1080p, 518x924);
#: rounded up. Not measured on a GPU yet (bench/light_depth.py prints the peak there).
_MODEL_BYTES_PER_PIXEL_FP32 = 700


def working_memory_bytes(
    size: tuple[int, int], frame_size: tuple[int, int], batch_size: int, dtype: torch.dtype = torch.float16
) -> int:
    """GPU memory one model batch needs beyond the weights, for a memory manager to free (ComfyUI's
    ``load_models_gpu``): the model's activations (scaled by pixels at the processing size and element size from a
    CPU measurement of Depth Anything V2 Small) plus the batch's fp32 frames, their resized copies and the
    upsampled depth, plus 10 %.

    Args:
        size: processing size (h, w), see :func:`processing_size`.
        frame_size: the frames' (H, W).
        batch_size: frames per model call.
    """
    element = torch.finfo(dtype).bits / 32
    model = _MODEL_BYTES_PER_PIXEL_FP32 * element * size[0] * size[1]
    frames = 4 * (3 + 2) * frame_size[0] * frame_size[1]  # fp32 RGB in, depth out and its upsampling temporary
    return int(1.1 * batch_size * (model + frames + 4 * 3 * 2 * size[0] * size[1]))


class WrongModelFolderError(FileNotFoundError):
    """A model folder that is not a depth-estimation model in the Hugging Face layout (files missing, or another
    model's); the message names the folder, what is wrong and the fix."""


def check_model_folder(folder: Path, fix: str = "download it again (--download)") -> None:
    """Raise :class:`WrongModelFolderError` unless ``folder`` holds :data:`MODEL_FILES` and its config.json is a
    model that transformers' ``AutoModelForDepthEstimation`` reads (e.g. not a DepthCrafter UNet put there)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES

    expected = f"it must hold a Depth Anything model in the Hugging Face layout ({REPO_ID}: {', '.join(MODEL_FILES)})"
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise WrongModelFolderError(f"{folder} lacks {', '.join(missing)}: {expected}; {fix}.")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise WrongModelFolderError(f"{folder}/config.json cannot be read ({exc}): {expected}; {fix}.") from None
    config = config if isinstance(config, dict) else {}
    model_type = config.get("model_type")
    if model_type not in MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES:
        # A diffusers config (e.g. a DepthCrafter UNet) names its class instead of a model_type.
        what = f"model_type {model_type!r}" if model_type else f"no model_type; class {config.get('_class_name')!r}"
        raise WrongModelFolderError(
            f"{folder}/config.json is not a depth-estimation model ({what}; transformers reads "
            f"{', '.join(sorted(MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES))}): {expected}; {fix}."
        )
    if config.get("depth_estimation_type") == "metric":  # metres, far = large: the pipeline needs near = large
        raise WrongModelFolderError(
            f"{folder} is a metric depth model (depth_estimation_type 'metric', far = large); the light depth path "
            f"needs relative depth (near = large): {expected}; {fix}."
        )


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
        cls,
        folder: Path | str,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        fix: str = "download it again (--download)",
    ) -> LightDepthPipeline:
        """Load a Depth Anything folder in the Hugging Face layout (:data:`MODEL_FILES`; weights from safetensors
        only). A folder in another layout is a :class:`WrongModelFolderError` naming what is wrong and ``fix``."""
        from transformers import AutoModelForDepthEstimation

        folder = Path(folder)
        check_model_folder(folder, fix)
        preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
        # No dtype argument (its name changed across transformers versions): __init__ casts the ~100 MB model.
        model = AutoModelForDepthEstimation.from_pretrained(folder, use_safetensors=True)
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
        anchor: tuple[float, float] | None = None
        for steady, size in self._stabilised(frames, num_frames, settings, progress, interrupt):
            if anchor is None:
                low, high = float(steady[0].min()), float(steady[0].max())
                anchor = (low, high - low if high - low > 1e-12 else 1.0)
            depth = ANCHOR_LOW + (ANCHOR_HIGH - ANCHOR_LOW) * (steady - anchor[0]) / anchor[1]
            yield _resize(depth, size).clamp(0.0, 1.0).cpu()

    def __call__(
        self,
        frames: torch.Tensor,
        settings: LightDepthSettings | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        interrupt: Callable[[], None] | None = None,
    ) -> torch.Tensor:
        """Stabilised depth of a whole clip, normalised over the clip as :class:`.VideoDepthPipeline` does.

        Args:
            frames: [T, H, W, 3] float 0..1 (on any device; batches are moved to ``self.device``).
            settings, progress, interrupt: as :meth:`stream`.

        Returns:
            [T, H, W] float32 on the CPU, near = 1: the clip's nearest stabilised value 1, its farthest 0 (a flat
            clip 0.5). Nothing is clamped, so later frames reaching past the first one's range keep their depth.
        """
        if frames.ndim != 4 or frames.shape[0] == 0:
            raise ValueError(f"frames must be a non-empty batch [T, H, W, 3], got shape {tuple(frames.shape)}.")
        chunks = [
            _resize(steady, size).cpu()
            for steady, size in self._stabilised([frames], frames.shape[0], settings, progress, interrupt)
        ]
        depth = torch.cat(chunks)
        low, high = depth.min(), depth.max()
        if not high - low > 1e-12 * max(float(high.abs()), 1e-6):
            return torch.full_like(depth, 0.5)
        return (depth - low) / (high - low)

    def _stabilised(
        self,
        frames: Iterable[torch.Tensor],
        num_frames: int,
        settings: LightDepthSettings | None,
        progress: Callable[[int, int], None] | None,
        interrupt: Callable[[], None] | None,
    ) -> Iterator[tuple[torch.Tensor, tuple[int, int]]]:
        """(stabilised relative depth [n, h, w] float32 on ``self.device`` at the processing size, the frames' (H, W))
        per model batch, in the first frame's scale."""
        settings = settings or LightDepthSettings()
        settings.validate()
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
        stabilizer = TemporalStabilizer(settings)
        seen = 0
        for index, batch in enumerate(_rechunk(frames, settings.batch_size)):
            if interrupt is not None:
                interrupt()
            seen += batch.shape[0]
            if seen > num_frames:
                raise ValueError(f"The frames iterable yields more than num_frames = {num_frames} frames.")
            relative = self.relative_depth(batch)
            steady = torch.stack([stabilizer(frame) for frame in relative])
            if progress is not None:
                progress(index, 0)
            yield steady, (batch.shape[1], batch.shape[2])
        if seen != num_frames:
            raise ValueError(f"The frames iterable yielded {seen} frames but num_frames is {num_frames}.")


def _resize(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[n, h, w] → [n, H, W] (bilinear: stays within the input's range)."""
    return F.interpolate(depth.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


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
