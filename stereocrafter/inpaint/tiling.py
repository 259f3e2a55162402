"""Spatial tiles with overlap, and blending of per-tile results back into one frame.

The reference (StereoCrafter ``spatial_tiled_process``) denoises ``n x n`` overlapping tiles independently and
blends their final latents. Its geometry, ``tile = int((H + 128 (n - 1)) / n)`` px with a 128 px overlap, only
gives latent-aligned tiles for n in {1, 2}; its blend ramps ``k / 16`` (k = 0..15) in place, in raster order.

Ours works for any tile count per axis: tile sizes are snapped to a multiple of 64 px (8 latents, what the
UNet's three downsamplings want), tiles are spread evenly so the last one ends at the frame edge, every
overlap is at least the requested one, and the blend is a separable sequence of linear interpolations
``canvas + w (tile - canvas)``. Each output value is therefore a convex combination of the tiles covering it
(weights sum to 1), the weight ramps across each overlap, and identical tiles give back the input bit for bit.
For n = 2 and sizes that are multiples of 128 px both geometries are the same.

All geometry here is in *units* (latent cells for the denoiser); :meth:`TileGrid.scaled` converts to pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

TileMode = Literal["linear", "reference"]
Span = tuple[int, int]  # (start, size) along one axis, in units


@dataclass(frozen=True)
class TileGrid:
    """Tile rows ``ys`` and tile columns ``xs`` as (start, size) spans over a ``height x width`` area.

    Tile (r, c) covers ``[ys[r][0], ys[r][0] + ys[r][1]) x [xs[c][0], xs[c][0] + xs[c][1])``; tiles are
    enumerated in raster order (row by row).
    """

    height: int
    width: int
    ys: tuple[Span, ...]
    xs: tuple[Span, ...]

    @property
    def counts(self) -> tuple[int, int]:
        """Tiles per axis, (rows, columns)."""
        return len(self.ys), len(self.xs)

    @property
    def tile_size(self) -> tuple[int, int]:
        """Largest tile (height, width)."""
        return max(s for _, s in self.ys), max(s for _, s in self.xs)

    @property
    def uniform(self) -> bool:
        """True when all tiles have the same size (so they can be stacked into one batch)."""
        return len({s for _, s in self.ys}) == 1 and len({s for _, s in self.xs}) == 1

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def windows(self) -> list[tuple[slice, slice]]:
        """(row slice, column slice) of every tile, raster order."""
        return [(slice(y, y + h), slice(x, x + w)) for y, h in self.ys for x, w in self.xs]

    def scaled(self, factor: int) -> TileGrid:
        """The same grid with every coordinate multiplied by ``factor`` (e.g. latent → pixel with 8)."""
        return TileGrid(
            height=self.height * factor,
            width=self.width * factor,
            ys=tuple((s * factor, n * factor) for s, n in self.ys),
            xs=tuple((s * factor, n * factor) for s, n in self.xs),
        )


def _ceil_to(value: float, multiple: int) -> int:
    return int(math.ceil(value / multiple)) * multiple


def plan_axis(length: int, count: int, overlap: int, multiple: int = 8) -> tuple[Span, ...]:
    """Spread ``count`` equal tiles over ``length`` units with at least ``overlap`` units between neighbours.

    The tile size is ``ceil((length + overlap (count - 1)) / count)`` rounded up to ``multiple`` (capped at
    ``length``); starts are spread evenly so the first tile starts at 0 and the last ends at ``length``.
    Starts are rounded to whole units, so an overlap can come out up to one unit over the requested one.
    If the frame is too small for that many distinct tiles, fewer are returned.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}.")
    if count < 1:
        raise ValueError(f"tile count must be >= 1, got {count}.")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}.")
    if count == 1:
        return ((0, length),)
    size = min(_ceil_to((length + overlap * (count - 1)) / count, multiple), length)
    starts = sorted({round(i * (length - size) / (count - 1)) for i in range(count)})
    return tuple((s, size) for s in starts)


def reference_axis(length_px: int, count: int, overlap_px: int = 128, factor: int = 8) -> tuple[Span, ...]:
    """The reference's spans along one axis, converted to units of ``factor`` px.

    Raises a ValueError when the reference geometry is not aligned to ``factor`` (it then breaks in the
    reference as well: e.g. 1024 px with 3 tiles gives 426 px tiles); use the linear mode instead.
    """
    if count < 1:
        raise ValueError(f"tile count must be >= 1, got {count}.")
    size = int((length_px + overlap_px * (count - 1)) / count)
    stride = size - overlap_px
    if size % factor or stride % factor or (count > 1 and stride <= 0):
        raise ValueError(
            f"The reference tiling of {length_px} px into {count} tiles gives {size} px tiles with a {stride} px "
            f"stride, not multiples of {factor}; use tile_blend='linear' (any count) or 1-2 tiles."
        )
    return tuple((i * stride // factor, size // factor) for i in range(count))


def plan_tiles(
    height_px: int,
    width_px: int,
    counts: tuple[int, int] = (1, 1),
    overlap_px: int = 128,
    mode: TileMode = "linear",
    factor: int = 8,
    multiple_px: int = 64,
) -> TileGrid:
    """Tile grid in latent units (pixels / ``factor``) for a ``height_px x width_px`` frame.

    Args:
        height_px, width_px: frame size in pixels, multiples of ``factor``.
        counts: tiles per axis (rows, columns); any positive counts in ``linear`` mode.
        overlap_px: minimal overlap between neighbouring tiles (reference: 128 px).
        mode: ``linear`` (ours, sizes snapped to ``multiple_px``) or ``reference`` (exact reference spans).
        factor: pixels per latent cell (8 for the SVD VAE).
        multiple_px: tile size multiple in pixels (64 = 8 latents).
    """
    if height_px % factor or width_px % factor:
        raise ValueError(f"Frame size {width_px}x{height_px} must be a multiple of {factor} px.")
    if mode == "reference":
        ys = reference_axis(height_px, counts[0], overlap_px, factor)
        xs = reference_axis(width_px, counts[1], overlap_px, factor)
        height = ys[-1][0] + ys[-1][1]
        width = xs[-1][0] + xs[-1][1]
        return TileGrid(height=height, width=width, ys=ys, xs=xs)
    if mode != "linear":
        raise ValueError(f"Unknown tile mode {mode!r}; use 'linear' or 'reference'.")
    height, width = height_px // factor, width_px // factor
    multiple = max(multiple_px // factor, 1)
    overlap = overlap_px // factor
    return TileGrid(
        height=height,
        width=width,
        ys=plan_axis(height, counts[0], overlap, multiple),
        xs=plan_axis(width, counts[1], overlap, multiple),
    )


def more_tiles(counts: tuple[int, int], grid: TileGrid) -> tuple[int, int]:
    """Tile counts that roughly halve the tile area: one more tile along the axis whose tiles are longer."""
    tile_h, tile_w = grid.tile_size
    rows, cols = counts
    return (rows + 1, cols) if tile_h > tile_w else (rows, cols + 1)


def auto_tile_counts(
    height_px: int, width_px: int, max_tile_pixels: int, overlap_px: int = 128, max_tiles: int = 64
) -> tuple[int, int]:
    """Fewest tiles (growing with :func:`more_tiles`) whose tile area is at most ``max_tile_pixels``."""
    counts = (1, 1)
    while True:
        grid = plan_tiles(height_px, width_px, counts, overlap_px).scaled(8)
        tile_h, tile_w = grid.tile_size
        if tile_h * tile_w <= max_tile_pixels or counts[0] * counts[1] >= max_tiles:
            return grid.counts
        nxt = more_tiles(counts, grid)
        if plan_tiles(height_px, width_px, nxt, overlap_px).counts == grid.counts:
            return grid.counts  # the frame cannot be split further
        counts = nxt


def _ramp(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Weights of the incoming tile across an overlap of ``n``: (k + 1) / (n + 1), strictly inside (0, 1)."""
    return torch.arange(1, n + 1, dtype=torch.float32, device=device).div_(n + 1).to(dtype)


def _blend_axis(pieces: Sequence[torch.Tensor], spans: Sequence[Span], length: int, dim: int) -> torch.Tensor:
    """Place ``pieces`` (sorted by start) along ``dim`` and lerp each new piece into what is already there."""
    first = pieces[0]
    shape = list(first.shape)
    shape[dim] = length
    out = first.new_zeros(shape)
    covered_end = 0
    for piece, (start, size) in zip(pieces, spans, strict=True):
        end = start + size
        ov_end = min(covered_end, end)
        n_ov = max(ov_end - start, 0)
        if n_ov:
            view_shape = [1] * piece.ndim
            view_shape[dim] = n_ov
            w = _ramp(n_ov, piece.dtype, piece.device).view(view_shape)
            region = out.narrow(dim, start, n_ov)
            # lerp keeps identical inputs exact: canvas + w * 0.
            region.copy_(region + w * (piece.narrow(dim, 0, n_ov) - region))
        if end > ov_end:
            keep = end - max(ov_end, start)
            out.narrow(dim, end - keep, keep).copy_(piece.narrow(dim, size - keep, keep))
        covered_end = max(covered_end, end)
    return out


def _blend_reference(tiles: Sequence[torch.Tensor], grid: TileGrid) -> torch.Tensor:
    """The reference's in-place raster blend: rows first, then columns, weight k / overlap for the newer tile.

    The weights are float32 (``arange / n``) as in the reference, so fp16 tiles are blended in float32 and
    rounded back to the tile dtype when written in place.
    """
    rows, cols = grid.counts
    work = [[tiles[r * cols + c].clone() for c in range(cols)] for r in range(rows)]

    def lerp_into(old: torch.Tensor, new: torch.Tensor, n: int, dim: int) -> None:
        shape = [1] * new.ndim
        shape[dim] = n
        w = (torch.arange(n) / n).view(shape).to(new.device)
        new.narrow(dim, 0, n).copy_((1 - w) * old.narrow(dim, old.shape[dim] - n, n) + w * new.narrow(dim, 0, n))

    for r in range(rows):
        for c in range(cols):
            if r > 0:
                n = grid.ys[r - 1][0] + grid.ys[r - 1][1] - grid.ys[r][0]
                lerp_into(work[r - 1][c], work[r][c], n, dim=-2)
            if c > 0:
                n = grid.xs[c - 1][0] + grid.xs[c - 1][1] - grid.xs[c][0]
                lerp_into(work[r][c - 1], work[r][c], n, dim=-1)
    strips = []
    for r in range(rows):
        parts = []
        for c in range(cols):
            tile = work[r][c]
            if r < rows - 1:
                tile = tile[..., : grid.ys[r + 1][0] - grid.ys[r][0], :]
            if c < cols - 1:
                tile = tile[..., : grid.xs[c + 1][0] - grid.xs[c][0]]
            parts.append(tile)
        strips.append(torch.cat(parts, dim=-1))
    return torch.cat(strips, dim=-2)


def blend_tiles(tiles: Sequence[torch.Tensor], grid: TileGrid, mode: TileMode = "linear") -> torch.Tensor:
    """Assemble per-tile results into one tensor.

    Args:
        tiles: raster-order tensors [..., h_i, w_i] matching ``grid``'s tile sizes (any leading dims/dtype).
        grid: the grid the tiles were cut with, in the tiles' units (use :meth:`TileGrid.scaled` for pixels).
        mode: ``linear`` (ours: weights sum to 1, exact for identical tiles, any count) or ``reference``.

    Returns:
        [..., grid.height, grid.width], the tiles' dtype and device.
    """
    if len(tiles) != len(grid):
        raise ValueError(f"Expected {len(grid)} tiles for a {grid.counts} grid, got {len(tiles)}.")
    for tile, (ys, xs) in zip(tiles, grid.windows(), strict=True):
        _check_tile(tile, ys, xs)
    if len(grid) == 1:
        return tiles[0]
    if mode == "reference":
        return _blend_reference(tiles, grid)
    if mode != "linear":
        raise ValueError(f"Unknown blend mode {mode!r}; use 'linear' or 'reference'.")
    return blend_tile_stream(tiles, grid)


def blend_tile_stream(tiles: Iterable[torch.Tensor], grid: TileGrid) -> torch.Tensor:
    """:func:`blend_tiles` (``linear``) of tiles that arrive one at a time in raster order, e.g. from a generator
    that decodes them: each row is blended into its strip as soon as its tiles are in, so only one row of tiles is
    held beside the strips, never the whole grid of decoded tiles. Same numbers as :func:`blend_tiles`.
    """
    rows, cols = grid.counts
    windows, tiles = list(grid.windows()), iter(tiles)
    strips = []
    for r in range(rows):
        row = []
        for ys, xs in windows[r * cols : (r + 1) * cols]:
            tile = next(tiles, None)
            if tile is None:
                raise ValueError(f"Expected {len(grid)} tiles for a {grid.counts} grid, got fewer.")
            row.append(_check_tile(tile, ys, xs))
        strips.append(_blend_axis(row, grid.xs, grid.width, dim=-1) if cols > 1 else row[0])
        del row, tile  # this row's tiles, before the next row is made
    return _blend_axis(strips, grid.ys, grid.height, dim=-2) if rows > 1 else strips[0]


def _check_tile(tile: torch.Tensor, ys: slice, xs: slice) -> torch.Tensor:
    if tuple(tile.shape[-2:]) != (ys.stop - ys.start, xs.stop - xs.start):
        raise ValueError(f"Tile of shape {tuple(tile.shape)} does not match its window {ys}, {xs}.")
    return tile


def cut_tiles(x: torch.Tensor, grid: TileGrid) -> list[torch.Tensor]:
    """Views of ``x`` [..., H, W] for every tile of ``grid`` (same units as ``x``), raster order."""
    return [x[..., ys, xs] for ys, xs in grid.windows()]
