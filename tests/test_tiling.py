"""Spatial tiling: geometry for any tile count, exact linear blending, and the reference's k/16 blend."""

from __future__ import annotations

import weakref

import pytest
import torch

from stereocrafter.inpaint.tiling import (
    TileGrid,
    auto_tile_counts,
    blend_tile_stream,
    blend_tiles,
    cut_tiles,
    more_tiles,
    plan_axis,
    plan_tiles,
)

COUNTS = [(r, c) for r in range(1, 5) for c in range(1, 5)]


@pytest.mark.parametrize("counts", COUNTS)
@pytest.mark.parametrize("size", [(1088, 1920), (512, 1024), (576, 704)])
def test_geometry_covers_frame_with_aligned_tiles(counts: tuple[int, int], size: tuple[int, int]) -> None:
    grid = plan_tiles(*size, counts=counts, overlap_px=128)
    assert (grid.height, grid.width) == (size[0] // 8, size[1] // 8)
    assert grid.uniform
    for spans, length in ((grid.ys, grid.height), (grid.xs, grid.width)):
        assert spans[0][0] == 0
        assert spans[-1][0] + spans[-1][1] == length
        for (s0, n0), (s1, _) in zip(spans, spans[1:], strict=False):
            assert s1 > s0
            assert s0 + n0 - s1 >= 16  # at least the requested 128 px overlap
        for _, n in spans:
            assert n % 8 == 0 or n == length  # 64 px multiples (latent multiple of 8)


@pytest.mark.parametrize("length,count", [(128, 2), (240, 2), (256, 2), (80, 2)])
def test_two_tiles_match_reference_geometry(length: int, count: int) -> None:
    px = length * 8
    ours = plan_tiles(px, px, (count, count), mode="linear")
    ref = plan_tiles(px, px, (count, count), mode="reference")
    assert ours.ys == ref.ys and ours.xs == ref.xs
    # 1920 x 1024 with 2 tiles: 576 x 1024 px tiles, latent stride 56 x 112 (reference.md §3.5)
    grid = plan_tiles(1024, 1920, (2, 2), mode="reference")
    assert grid.ys == ((0, 72), (56, 72)) and grid.xs == ((0, 128), (112, 128))


def test_reference_geometry_rejects_unaligned_counts() -> None:
    with pytest.raises(ValueError, match="linear"):
        plan_tiles(1024, 1024, (3, 3), mode="reference")


def test_small_frame_yields_fewer_tiles() -> None:
    assert plan_axis(8, 4, 16) == ((0, 8),)
    assert len(plan_tiles(64, 64, (3, 3))) == 1


@pytest.mark.parametrize("counts", COUNTS)
def test_linear_blend_reproduces_input_exactly(counts: tuple[int, int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 72, 120)
    grid = plan_tiles(72 * 8, 120 * 8, counts=counts)
    out = blend_tiles([t.clone() for t in cut_tiles(x, grid)], grid)
    assert torch.equal(out, x)
    # also at pixel scale (the decode tiles) and in fp16
    xp = torch.rand(3, 72 * 2, 120 * 2).half()
    gp = grid.scaled(2)
    assert torch.equal(blend_tiles(cut_tiles(xp, gp), gp), xp)


@pytest.mark.parametrize("counts", [(1, 2), (2, 2), (3, 3), (4, 2), (2, 4)])
def test_linear_blend_weights_sum_to_one_and_ramp(counts: tuple[int, int]) -> None:
    grid = plan_tiles(64 * 8, 96 * 8, counts=counts)
    maps = []
    for k in range(len(grid)):
        tiles = [
            torch.full((ys.stop - ys.start, xs.stop - xs.start), float(i == k))
            for i, (ys, xs) in enumerate(grid.windows())
        ]
        maps.append(blend_tiles(tiles, grid))
    weights = torch.stack(maps)
    assert weights.min() >= 0
    torch.testing.assert_close(weights.sum(0), torch.ones(grid.height, grid.width), atol=1e-6, rtol=0)
    # each tile's weight is 0 outside its window and ramps monotonically inside the first overlap
    ys, xs = grid.windows()[-1]
    w_last = weights[-1]
    assert w_last[: ys.start].abs().sum() == 0 and w_last[:, : xs.start].abs().sum() == 0
    if grid.counts[1] > 1:
        row = w_last[ys.stop - 1, xs.start : grid.xs[-2][0] + grid.xs[-2][1]]
        assert torch.all(row[1:] > row[:-1]) and 0 < row[0] and row[-1] < 1


def test_reference_blend_formula_two_tiles() -> None:
    grid = plan_tiles(1024, 1920, (2, 2), mode="reference")
    values = [1.0, 2.0, 3.0, 5.0]
    tiles = [
        torch.full((1, 1, ys.stop - ys.start, xs.stop - xs.start), v)
        for v, (ys, xs) in zip(values, grid.windows(), strict=True)
    ]
    out = blend_tiles(tiles, grid, mode="reference")[0, 0]
    assert out.shape == (128, 240)
    k = torch.arange(16) / 16
    # top row band: tile 0 on the left, tile 1 on the right, horizontal ramp k/16 starting at column 112
    torch.testing.assert_close(out[0, 112:128], (1 - k) * 1.0 + k * 2.0)
    assert torch.all(out[0, 128:] == 2.0) and torch.all(out[:56, :112] == 1.0)
    # left column band: vertical ramp between tile 0 and tile 2 from row 56
    torch.testing.assert_close(out[56:72, 0], (1 - k) * 1.0 + k * 3.0)
    # corner: tile 3 is first blended vertically with (already blended) tile 1, then horizontally with tile 2
    t1 = tiles[1][0, 0].clone()
    t1[:, :16] = (1 - k) * 1.0 + k * t1[:, :16]
    t2 = tiles[2][0, 0].clone()
    t2[:16, :] = ((1 - k) * 1.0 + k * 3.0)[:, None]
    t3 = tiles[3][0, 0].clone()
    t3[:16, :] = (1 - k[:, None]) * t1[-16:, :] + k[:, None] * t3[:16, :]
    t3[:, :16] = (1 - k) * t2[:, -16:] + k * t3[:, :16]
    torch.testing.assert_close(out[56:, 112:], t3)


def test_reference_blend_fp16_rounds_like_in_place_assignment() -> None:
    grid = plan_tiles(1024, 1024, (2, 2), mode="reference")
    torch.manual_seed(1)
    tiles = [torch.randn(2, 4, ys.stop - ys.start, xs.stop - xs.start).half() for ys, xs in grid.windows()]
    out = blend_tiles(tiles, grid, mode="reference")
    assert out.dtype == torch.float16
    k = torch.arange(16) / 16
    expected = ((1 - k) * tiles[0][..., :16, 56:72].float() + k * tiles[1][..., :16, :16].float()).half()
    assert torch.equal(out[..., :16, 56:72], expected)


def test_more_tiles_and_auto_counts() -> None:
    grid = plan_tiles(1088, 1920, (1, 1))
    assert more_tiles((1, 1), grid) == (1, 2)
    assert auto_tile_counts(1088, 1920, 10**9) == (1, 1)
    rows, cols = auto_tile_counts(1088, 1920, 1024 * 640)
    tile_h, tile_w = plan_tiles(1088, 1920, (rows, cols)).scaled(8).tile_size
    assert tile_h * tile_w <= 1024 * 640


def test_blend_validates_tiles() -> None:
    grid = TileGrid(height=8, width=16, ys=((0, 8),), xs=((0, 10), (6, 10)))
    with pytest.raises(ValueError, match="Expected 2 tiles"):
        blend_tiles([torch.zeros(8, 10)], grid)
    with pytest.raises(ValueError, match="does not match"):
        blend_tiles([torch.zeros(8, 10), torch.zeros(8, 9)], grid)


@pytest.mark.parametrize("counts", COUNTS)
def test_streamed_blend_equals_blend_and_holds_one_row(counts: tuple[int, int]) -> None:
    torch.manual_seed(1)
    grid = plan_tiles(40 * 8, 72 * 8, counts=counts).scaled(2)
    tiles = [torch.rand(2, 3, ys.stop - ys.start, xs.stop - xs.start) for ys, xs in grid.windows()]
    made: list[int] = []
    alive: list[weakref.ref] = []
    cols = grid.counts[1]

    def produce():  # each tile made only when the blend asks for it, as the decoder makes them
        for k, tile in enumerate(tiles):
            if cols > 1 and k % cols == 0:  # a new row: the tiles before it are blended into a strip and freed
                assert all(ref() is None for ref in alive)
            made.append(k)
            copy = tile.clone()
            alive.append(weakref.ref(copy))
            yield copy
            del copy  # held by the blend only

    assert torch.equal(blend_tile_stream(produce(), grid), blend_tiles(tiles, grid))
    assert made == list(range(len(grid)))


def test_streamed_blend_validates_tiles() -> None:
    grid = TileGrid(height=8, width=16, ys=((0, 8),), xs=((0, 10), (6, 10)))
    with pytest.raises(ValueError, match="got fewer"):
        blend_tile_stream(iter([torch.zeros(8, 10)]), grid)
    with pytest.raises(ValueError, match="does not match"):
        blend_tile_stream(iter([torch.zeros(8, 10), torch.zeros(8, 9)]), grid)
