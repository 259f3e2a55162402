"""Depth range per shot: robust percentiles instead of the whole clip's min–max, eased across cuts.

The reference normalises depth with one min–max over the whole clip, so one very near object in one frame (or one
bright shot) compresses the 3D of every other shot. Per shot (the default of the converter), the range of each shot
is the ``low``-th to ``high``-th percentile of its depth values over all its frames and pixels (defaults 0.5 and
99.5 %: a few stray pixels no longer set the scale; values outside are clamped, so the extreme 0.5 % of pixels at
each end sit at the nearest/farthest parallax). At a cut the range does not jump: over the first
``transition_frames`` frames of a shot it moves linearly from the previous shot's range to the shot's own, widened
to always contain the shot's own range (so the new shot's depth is never clamped: its 3D starts at the scale the
two shots' ranges together give and settles to its own).

The percentiles come from a histogram of :data:`BINS` bins over 0..1 (both depth sources are in 0..1: a depth
video's pixel values, DepthCrafter's raw output), accumulated while the depth is streamed; one shot's histogram is
held at a time, whatever the film's length.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..video.scenes import Segment

BINS = 4096
DEFAULT_PERCENTILES = (0.5, 99.5)

Range = tuple[float, float]


class ShotRangeAccumulator:
    """Feed depth chunks [n, H, W] (0..1, frame order, any chunking) with :meth:`add`; :attr:`ranges` then holds
    each shot's (low, high) percentile range."""

    def __init__(self, segments: Sequence[Segment], percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> None:
        low, high = percentiles
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"depth percentiles must satisfy 0 <= low < high <= 100, got {percentiles}.")
        self.segments, self.percentiles = list(segments), (low, high)
        self.ranges: list[Range] = []
        self.medians: list[float] = []  # each shot's median depth (raw units), for automatic convergence
        self._hist = torch.zeros(BINS, dtype=torch.float64)
        self._low, self._high = float("inf"), float("-inf")  # the shot's exact extremes (clamped to 0..1)
        self._frame = 0

    def add(self, depth: torch.Tensor) -> None:
        """Depth frames [n, H, W] continuing the previous ones."""
        at = 0
        while at < depth.shape[0]:
            shot = len(self.ranges)
            end = self.segments[shot][1]
            take = min(depth.shape[0] - at, end - self._frame)
            piece = depth[at : at + take].float().clamp(0.0, 1.0)
            self._hist += torch.histc(piece, bins=BINS, min=0.0, max=1.0).double()
            self._low, self._high = min(self._low, float(piece.min())), max(self._high, float(piece.max()))
            at, self._frame = at + take, self._frame + take
            if self._frame == end:
                self.ranges.append(self._shot_range())
                self.medians.append(histogram_median(self._hist))
                self._hist.zero_()
                self._low, self._high = float("inf"), float("-inf")

    def _shot_range(self) -> Range:
        """The percentile range, never beyond the shot's exact extremes: the bin edges it is read from may lie
        outside the values, and a constant shot must come out flat (no parallax), not as one bin's width."""
        low, high = histogram_range(self._hist, self.percentiles)
        return max(low, self._low), max(min(high, self._high), max(low, self._low))

    def finish(self, complete: bool = True) -> list[Range]:
        """The ranges of all shots; ValueError when fewer frames than the shots cover were added, unless not
        ``complete`` is asked for: then the shot in progress gets the range of its frames so far and later shots
        its range too (a caller that reports the short source itself, with its name, checks the count later)."""
        if len(self.ranges) != len(self.segments):
            if complete:
                raise ValueError(
                    f"the depth ended at frame {self._frame}, before the shots' end {self.segments[-1][1]}."
                )
            last = self._shot_range() if self._hist.any() else (self.ranges or [(0, 1)])[-1]
            median = histogram_median(self._hist) if self._hist.any() else (self.medians or [0.5])[-1]
            self.medians += [median] * (len(self.segments) - len(self.medians))
            self.ranges += [last] * (len(self.segments) - len(self.ranges))
        return self.ranges


def histogram_range(hist: torch.Tensor, percentiles: tuple[float, float]) -> Range:
    """(low, high) depth at the two percentiles of a [BINS] histogram over 0..1: the lower edge of the bin where
    the low percentile falls and the upper edge of the bin where the high one falls (the range never cuts into
    the bins it names)."""
    total = float(hist.sum())
    if total == 0:
        return 0.0, 1.0
    cumulative = torch.cumsum(hist, 0) / total
    low_bin = int(torch.searchsorted(cumulative, percentiles[0] / 100.0, right=True))
    high_bin = int(torch.searchsorted(cumulative, percentiles[1] / 100.0 - 1e-12))
    bins = hist.numel()
    low_bin, high_bin = min(low_bin, bins - 1), min(max(high_bin, low_bin), bins - 1)
    return low_bin / bins, (high_bin + 1) / bins


def histogram_median(hist: torch.Tensor) -> float:
    """The median of a [BINS] histogram over 0..1 (the centre of the bin where half the values are reached)."""
    total = float(hist.sum())
    if total == 0:
        return 0.5
    at = int(torch.searchsorted(torch.cumsum(hist, 0) / total, 0.5))
    return (min(at, hist.numel() - 1) + 0.5) / hist.numel()


def shot_convergence(ranges: Sequence[Range], medians: Sequence[float]) -> list[float]:
    """Each shot's median depth in its own normalised range (0..1; 0.5 for a flat shot): the screen plane of
    automatic convergence, so half of the shot's pixels come out in front of the screen and half behind."""
    out = []
    for (low, high), median in zip(ranges, medians, strict=True):
        out.append(0.5 if high - low <= 1e-12 else min(max((median - low) / (high - low), 0.0), 1.0))
    return out


def frame_convergence(
    segments: Sequence[Segment], convergence: Sequence[float], first: int, count: int, transition_frames: int
) -> torch.Tensor:
    """Per-frame convergence [count] float64 for frames [first, first + count): each shot's value, moving linearly
    from the previous shot's over its first ``transition_frames`` frames (as :func:`frame_ranges` eases the range),
    so the screen plane glides instead of jumping at a cut."""
    values = torch.tensor(convergence, dtype=torch.float64)
    starts = torch.tensor([s for s, _ in segments])
    frames = torch.arange(first, first + count)
    shot = torch.searchsorted(starts, frames, right=True) - 1
    eased = values[shot].clone()
    if transition_frames > 0:
        into = (frames - starts[shot]).double()
        easing = (shot > 0) & (into < transition_frames)
        weight = (into[easing] + 1) / (transition_frames + 1)
        previous = values[shot[easing] - 1]
        eased[easing] = previous + weight * (values[shot[easing]] - previous)
    return eased


def frame_ranges(
    segments: Sequence[Segment], ranges: Sequence[Range], first: int, count: int, transition_frames: int
) -> torch.Tensor:
    """(low, high) for frames [first, first + count) as float64 [count, 2]: the shot's range, eased from the
    previous shot's over the first ``transition_frames`` frames of every shot but the first (see the module
    docstring)."""
    out = torch.empty(count, 2, dtype=torch.float64)
    starts = torch.tensor([s for s, _ in segments])
    frames = torch.arange(first, first + count)
    shot = torch.searchsorted(starts, frames, right=True) - 1
    table = torch.tensor(ranges, dtype=torch.float64)
    out[:] = table[shot]
    if transition_frames > 0:
        into = (frames - starts[shot]).double()
        easing = (shot > 0) & (into < transition_frames)
        if bool(easing.any()):
            weight = ((into[easing] + 1) / (transition_frames + 1)).unsqueeze(1)  # first frame: a step of 1/(n+1)
            previous, own = table[shot[easing] - 1], out[easing]
            eased = previous + weight * (own - previous)
            # Never narrower than the shot's own range: its depth is not clamped while the scale settles.
            eased[:, 0] = torch.minimum(eased[:, 0], own[:, 0])
            eased[:, 1] = torch.maximum(eased[:, 1], own[:, 1])
            out[easing] = eased
    return out


def normalize_per_frame(depth: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """Depth [n, H, W] → float32 0..1 with frame k normalised by ``bounds[k]`` = (low, high), clamped; a flat
    range gives 0.5 (no parallax), as :func:`~stereocrafter.warp.disparity.normalize_depth`."""
    low = bounds[:, 0].float().view(-1, 1, 1)
    span = (bounds[:, 1] - bounds[:, 0]).float().view(-1, 1, 1)
    flat = span <= 1e-12
    out = ((depth.float() - low) / torch.where(flat, torch.ones_like(span), span)).clamp(0.0, 1.0)
    return torch.where(flat, torch.full_like(out, 0.5), out)
