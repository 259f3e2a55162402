"""StereoCrafter2's memory plan (offload, VAE tiling, tiles from the GPU budget) and its tiled VAE, on tiny random
Wan models (CPU) and on the real models' planned byte counts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from stereocrafter.inpaint.inpaint2_pipeline import (
    Inpaint2Settings,
    Inpaint2Stream,
    load_stereocrafter2,
    offload_window_bytes,
    parameter_bytes,
    plan_offload,
    vae_tiles,
)
from stereocrafter.memory_plan import GIB, plan_inpaint2, sc2_working_bytes
from tests.tiny_models import single_thread
from tests.tiny_wan_models import make_sc2_folders
from tests.tiny_wan_models import sc2_clip as clip

SMALL = Inpaint2Settings(steps=2, chunk_frames=9, chunk_overlap=2, tiles=(2, 2), tile_overlap_px=16)
#: Real sizes: Wan2.1-VACE-14B's 17.3B parameters in bf16 (32.2 GiB) and fp8 (~16.3 GiB), about two blocks plus
#: the modules outside the blocks when offloaded, the Wan VAE (0.24 GiB).
BF16, FP8, WINDOW, VAE = int(32.2 * GIB), int(16.3 * GIB), int(1.2 * GIB), int(0.24 * GIB)
HD = dict(frame_size=(1080, 1920), chunk_frames=81, tiles=(2, 2), tile_overlap_px=128)
#: Tiled VAE vs whole frames through the whole pipeline on these tiny random models (11 frames 56x40, 32 px VAE
#: tiles, composite on so only the holes change), measured: max 0.352 / mean 0.0128 (0.054 in the holes) on 0..1
#: pixels; 48 px tiles 0.243 / 0.0071. A random tiny VAE has no smooth image prior and its tiles are a few latent
#: cells, so this is far above what the trained VAE's 256+ px tiles change. About 1.5x margin.
TILED_BOUNDS = (0.5, 0.02)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_sc2_folders(tmp_path_factory.mktemp("sc2m"))


@pytest.fixture(scope="module")
def pipe(folders: tuple[Path, Path]):  # noqa: ANN201
    base, sc2 = folders
    return load_stereocrafter2(sc2, base, dtype=torch.bfloat16)


@pytest.fixture(scope="module")
def whole_frames(pipe) -> torch.Tensor:  # noqa: ANN001
    warped, mask = clip()
    with single_thread():
        return pipe(warped, mask, replace(SMALL, vae_tiling="off"), seed=0)


# -- the plan on the real models' byte counts


def test_plan_keeps_the_faithful_path_where_it_fits() -> None:
    plan = plan_inpaint2(140 * GIB, BF16 + VAE, WINDOW + VAE, **HD)
    assert (plan.offload, plan.vae_tile, plan.tiles, plan.fits) == (False, None, (2, 2), True)
    assert plan_inpaint2(None, BF16 + VAE, WINDOW + VAE, **HD).vae_tile is None  # no budget: as asked


def test_plan_offloads_before_it_tiles_the_vae() -> None:
    # 56 GiB: bf16 resident + the whole-frame decode (~25 GiB at 81 frames) does not fit, offloaded it does.
    plan = plan_inpaint2(56 * GIB, BF16 + VAE, WINDOW + VAE, **HD)
    assert (plan.offload, plan.vae_tile, plan.tiles) == (True, None, (2, 2))
    # When whole frames fit neither: the largest VAE tile (fewest seams) first, resident weights before offloaded.
    plan = plan_inpaint2(22 * GIB, FP8 + VAE, WINDOW + VAE, **(HD | {"chunk_frames": 21}))
    assert (plan.offload, plan.vae_tile, plan.tiles) == (True, 1024, (2, 2))
    plan = plan_inpaint2(30 * GIB, FP8 + VAE, WINDOW + VAE, **(HD | {"chunk_frames": 21}), offload=False)
    assert (plan.offload, plan.vae_tile) == (False, 1024)


@pytest.mark.parametrize(("budget_gib", "resident"), [(24, BF16), (12, FP8)])
def test_plan_fits_24_and_12_gib_at_1080p(budget_gib: int, resident: int) -> None:
    plan = plan_inpaint2(budget_gib * GIB, resident + VAE, WINDOW + VAE, **HD)
    assert plan.offload and plan.vae_tile is not None and plan.fits
    assert plan.peak_bytes < budget_gib * GIB
    whole = sc2_working_bytes(HD["frame_size"], 81, (2, 2), 128, None)
    assert whole["decode"] > 20 * GIB  # what did not fit: the whole-frame decode
    assert "VAE tiled" in plan.describe(budget_gib * GIB) and "streamed" in plan.describe(budget_gib * GIB)


def test_plan_adds_tiles_only_when_allowed_and_vae_tiling_off_is_kept() -> None:
    plan = plan_inpaint2(10 * GIB, FP8 + VAE, WINDOW + VAE, **HD)
    assert plan.fits and plan.tiles[0] > 2 and plan.vae_tile == 256
    fixed = plan_inpaint2(10 * GIB, FP8 + VAE, WINDOW + VAE, **HD, grow_tiles=False)
    assert fixed.tiles == (2, 2) and not fixed.fits and "does NOT fit" in fixed.describe(10 * GIB)
    off = plan_inpaint2(24 * GIB, BF16 + VAE, WINDOW + VAE, **HD, vae_tiling="off")
    assert off.vae_tile is None and off.tiles[0] > 2  # more transformer tiles do not shrink the decode: no fit
    assert plan_inpaint2(140 * GIB, BF16 + VAE, WINDOW + VAE, **HD, vae_tiling="on", vae_tile=320).vae_tile == 320


def test_offload_window_and_load_time_plan(pipe) -> None:  # noqa: ANN001
    window = offload_window_bytes(pipe.transformer)
    assert 0 < window < parameter_bytes(pipe.transformer)
    assert plan_offload(pipe.transformer, pipe.vae, torch.device("cpu")) is None  # no GPU: nothing to plan
    assert not pipe.offloaded  # load_stereocrafter2's default offload='auto' keeps it resident off CUDA


# -- the plan in a stream (a fake GPU budget on the CPU)


def test_stream_tiles_the_vae_under_a_small_budget_only(pipe) -> None:  # noqa: ANN001
    try:
        pipe.gpu_budget = 10**12
        big = Inpaint2Stream(pipe, 11, 40, 56, SMALL)
        assert big.vae_tile is None and (big.rows.count, big.cols.count) == (2, 2)
        pipe.gpu_budget = parameter_bytes(pipe.transformer) + 2 * 1024**2  # the weights and 2 MiB
        small = Inpaint2Stream(pipe, 11, 40, 56, SMALL)
        assert small.vae_tile is not None
        reference = Inpaint2Stream(pipe, 11, 40, 56, Inpaint2Settings.reference(**_common()))
        assert (reference.rows.count, reference.cols.count) == (2, 2)  # no oom_retry: tiles as asked
    finally:
        pipe.gpu_budget = None


def _common() -> dict:
    return dict(steps=2, chunk_frames=9, chunk_overlap=2, tile_overlap_px=16)


# -- the tiled VAE


def test_vae_tiles_context_restores_the_vae(pipe) -> None:  # noqa: ANN001
    vae = pipe.vae
    before = (vae.use_tiling, vae.tile_sample_min_height, vae.tile_sample_stride_width)
    with vae_tiles(vae, 64):
        assert vae.use_tiling and vae.tile_sample_min_height == 64 and vae.tile_sample_stride_width == 48
    assert (vae.use_tiling, vae.tile_sample_min_height, vae.tile_sample_stride_width) == before
    vae.use_tiling = True
    try:
        with vae_tiles(vae, None):
            assert not vae.use_tiling  # whole frames even on a VAE someone left tiled
        assert vae.use_tiling
    finally:
        vae.use_tiling = False


def test_tiled_vae_stays_within_its_bound_and_auto_is_whole_frames_without_budget(
    pipe, whole_frames: torch.Tensor
) -> None:  # noqa: ANN001
    warped, mask = clip()
    with single_thread():
        tiled = pipe(warped, mask, replace(SMALL, vae_tiling="on", vae_tile_px=32), seed=0)
        auto = pipe(warped, mask, SMALL, seed=0)
    diff = (tiled - whole_frames).abs()
    assert diff.max() > 0  # the tiles did run (the decoded frame is 48x80 > 32 px)
    assert diff.max() <= TILED_BOUNDS[0] and diff.mean() <= TILED_BOUNDS[1], (diff.max(), diff.mean())
    assert diff[:, :, :20].max() == 0  # far from the holes both keep the warped pixels (composite)
    assert torch.equal(auto, whole_frames)  # no GPU budget: the reference's whole frames, bit for bit


def test_decode_out_of_memory_retries_with_vae_tiles(
    monkeypatch: pytest.MonkeyPatch, pipe, whole_frames: torch.Tensor
) -> None:  # noqa: ANN001
    decode = pipe._decode
    seen: list[int | None] = []

    def oom_decode(latents: torch.Tensor, vae_tile: int | None = None) -> torch.Tensor:
        seen.append(vae_tile)
        if vae_tile is None:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (fake)")
        return decode(latents, vae_tile)

    monkeypatch.setattr(pipe, "_decode", oom_decode)
    warped, mask = clip()
    stream = Inpaint2Stream(pipe, 11, 40, 56, SMALL)
    with single_thread():
        out = torch.cat([stream.push(warped, mask), stream.finish()])
    assert seen[:2] == [None, 1024] and all(t == 1024 for t in seen[1:])  # kept for the later chunks
    assert stream.oom_retries == 1
    assert torch.equal(out, whole_frames)  # 1024 px tiles on 48x80 frames: whole frames, the same numbers
    with pytest.raises(torch.cuda.OutOfMemoryError), single_thread():
        pipe(warped, mask, replace(SMALL, vae_tiling="off"), seed=0)
