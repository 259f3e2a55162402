"""Anaglyph methods against values computed by hand from their definitions."""

from __future__ import annotations

import pytest
import torch

from stereocrafter.compose.anaglyph import make_anaglyph


def _pixel(r: float, g: float, b: float) -> torch.Tensor:
    return torch.tensor([r, g, b]).view(1, 1, 1, 3)


def _srgb_to_linear(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _linear_to_srgb(c: float) -> float:
    c = min(max(c, 0.0), 1.0)
    return c * 12.92 if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


LEFT, RIGHT = (0.8, 0.3, 0.1), (0.2, 0.6, 0.9)


def test_color_takes_red_from_left_and_green_blue_from_right() -> None:
    out = make_anaglyph(_pixel(*LEFT), _pixel(*RIGHT), "color")
    torch.testing.assert_close(out.flatten(), torch.tensor([0.8, 0.6, 0.9]))


def test_half_color_uses_left_luma_for_red() -> None:
    out = make_anaglyph(_pixel(*LEFT), _pixel(*RIGHT), "half-color")
    luma_left = 0.299 * 0.8 + 0.587 * 0.3 + 0.114 * 0.1
    torch.testing.assert_close(out.flatten(), torch.tensor([luma_left, 0.6, 0.9]))


def test_gray_uses_luma_of_both_eyes() -> None:
    out = make_anaglyph(_pixel(*LEFT), _pixel(*RIGHT), "gray")
    luma_left = 0.299 * 0.8 + 0.587 * 0.3 + 0.114 * 0.1
    luma_right = 0.299 * 0.2 + 0.587 * 0.6 + 0.114 * 0.9
    torch.testing.assert_close(out.flatten(), torch.tensor([luma_left, luma_right, luma_right]))


def test_dubois_in_linear_light_by_hand() -> None:
    left_matrix = [[0.437, 0.449, 0.164], [-0.062, -0.062, -0.024], [-0.048, -0.050, -0.017]]
    right_matrix = [[-0.011, -0.032, -0.007], [0.377, 0.761, 0.009], [-0.026, -0.093, 1.234]]
    left_lin = [_srgb_to_linear(c) for c in LEFT]
    right_lin = [_srgb_to_linear(c) for c in RIGHT]
    expected = []
    for row in range(3):
        from_left = sum(left_matrix[row][k] * left_lin[k] for k in range(3))
        from_right = sum(right_matrix[row][k] * right_lin[k] for k in range(3))
        expected.append(_linear_to_srgb(min(max(from_left, 0), 1) + min(max(from_right, 0), 1)))
    out = make_anaglyph(_pixel(*LEFT), _pixel(*RIGHT), "dubois")
    torch.testing.assert_close(out.flatten(), torch.tensor(expected), atol=1e-5, rtol=0)


def test_dubois_white_left_black_right_is_pure_red() -> None:
    out = make_anaglyph(_pixel(1, 1, 1), _pixel(0, 0, 0), "dubois")
    torch.testing.assert_close(out.flatten(), torch.tensor([1.0, 0.0, 0.0]))


def test_unknown_method_and_mismatched_eyes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="method"):
        make_anaglyph(_pixel(*LEFT), _pixel(*RIGHT), "green-magenta")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same frame count"):
        make_anaglyph(torch.zeros(2, 2, 2, 3), torch.zeros(1, 2, 2, 3))
