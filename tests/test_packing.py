"""Frame packings: pixel placement by hand, half formats against hand-computed averages and PIL."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from stereocrafter.compose.packing import LAYOUTS, pack_stereo


def _pair(t: int = 2, h: int = 4, w: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(t, h, w, 3, generator=gen), torch.rand(t, h, w, 3, generator=gen)


def test_full_sbs_puts_left_on_the_left() -> None:
    left, right = _pair()
    packed = pack_stereo(left, right, "full SBS")
    assert packed.shape == (2, 4, 12, 3)
    assert torch.equal(packed[:, :, :6], left) and torch.equal(packed[:, :, 6:], right)


def test_full_tb_puts_left_on_top() -> None:
    left, right = _pair()
    packed = pack_stereo(left, right, "full TB")
    assert packed.shape == (2, 8, 6, 3)
    assert torch.equal(packed[:, :4], left) and torch.equal(packed[:, 4:], right)


def test_cross_eyed_swaps_the_eyes() -> None:
    left, right = _pair()
    packed = pack_stereo(left, right, "cross-eyed full SBS")
    assert torch.equal(packed[:, :, :6], right) and torch.equal(packed[:, :, 6:], left)
    half = pack_stereo(left, right, "cross-eyed half SBS", "area")
    assert torch.equal(half, pack_stereo(right, left, "half SBS", "area"))


def test_half_sbs_with_area_filter_averages_column_pairs() -> None:
    left = torch.tensor([0.0, 0.2, 0.4, 0.6]).view(1, 1, 4, 1).expand(1, 1, 4, 3)
    right = torch.tensor([1.0, 0.0, 0.5, 0.5]).view(1, 1, 4, 1).expand(1, 1, 4, 3)
    packed = pack_stereo(left, right, "half SBS", "area")
    assert packed.shape == (1, 1, 4, 3)
    torch.testing.assert_close(packed[0, 0, :, 0], torch.tensor([0.1, 0.5, 0.5, 0.5]))


def test_half_tb_with_area_filter_averages_row_pairs() -> None:
    left = torch.tensor([0.0, 1.0, 0.5, 0.5]).view(1, 4, 1, 1).expand(1, 4, 2, 3)
    packed = pack_stereo(left, left.flip(1), "half TB", "area")
    assert packed.shape == (1, 4, 2, 3)
    torch.testing.assert_close(packed[0, :, 0, 0], torch.tensor([0.5, 0.5, 0.5, 0.5]))


@pytest.mark.parametrize("resize_filter", ["bicubic", "bilinear"])
def test_half_sbs_matches_pil_antialiased_resampling(resize_filter: str) -> None:
    left, right = _pair(1, 9, 20)
    packed = pack_stereo(left, right, "half SBS", resize_filter)
    pil_filter = Image.Resampling.BICUBIC if resize_filter == "bicubic" else Image.Resampling.BILINEAR
    for channel in range(3):
        source = Image.fromarray(left[0, :, :, channel].numpy(), mode="F")
        expected = np.asarray(source.resize((10, 9), pil_filter)).clip(0, 1)
        np.testing.assert_allclose(packed[0, :, :10, channel].numpy(), expected, atol=2e-3)


def test_odd_width_half_sbs_keeps_an_even_frame() -> None:
    left, right = _pair(1, 4, 7)
    assert pack_stereo(left, right, "half SBS").shape == (1, 4, 6, 3)


def test_constant_images_stay_constant_in_every_layout() -> None:
    left = torch.full((1, 6, 8, 3), 0.25)
    right = torch.full((1, 6, 8, 3), 0.75)
    for layout in LAYOUTS:
        packed = pack_stereo(left, right, layout)
        assert packed.min() == pytest.approx(0.25, abs=1e-6), layout
        assert packed.max() == pytest.approx(0.75, abs=1e-6), layout


def test_mismatched_or_empty_pairs_get_clear_errors() -> None:
    left, right = _pair()
    with pytest.raises(ValueError, match="same frame count"):
        pack_stereo(left, right[:1])
    with pytest.raises(ValueError, match="empty"):
        pack_stereo(left[:0], right[:0])
    with pytest.raises(ValueError, match="layout"):
        pack_stereo(left, right, "diagonal")  # type: ignore[arg-type]
