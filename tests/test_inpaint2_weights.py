"""StereoCrafter2's low-precision transformer weights (fp8 layerwise casting, torchao int8) and its out-of-memory
backoff, on tiny random Wan models (CPU)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from stereocrafter.inpaint.inpaint2_pipeline import (
    Inpaint2Settings,
    Inpaint2Stream,
    choose_offload,
    load_stereocrafter2,
    parameter_bytes,
)
from tests.tiny_models import single_thread
from tests.tiny_wan_models import make_sc2_folders
from tests.tiny_wan_models import sc2_clip as clip

SMALL = Inpaint2Settings(steps=2, chunk_frames=9, chunk_overlap=2, tiles=(2, 2), tile_overlap_px=16)
#: Measured against bf16 on these tiny random models (0..1 pixels, 11 frames 56x40, composite on so only the holes
#: change): fp8 max 0.0195 / mean 0.00057 (0.0025 in the holes), int8 max 0.0215 / mean 0.00055 (0.0025 in the
#: holes). The bounds keep about 2x margin.
BOUNDS = {"fp8": (0.04, 0.0015), "int8": (0.04, 0.0015)}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_sc2_folders(tmp_path_factory.mktemp("sc2w"))


@pytest.fixture(scope="module")
def pipe(folders: tuple[Path, Path]):  # noqa: ANN201
    base, sc2 = folders
    return load_stereocrafter2(sc2, base, dtype=torch.bfloat16)


@pytest.fixture(scope="module")
def reference_frames(pipe) -> torch.Tensor:  # noqa: ANN001
    warped, mask = clip()
    with single_thread():
        return pipe(warped, mask, SMALL, seed=0)


def linear_weight_bytes(transformer: torch.nn.Module) -> int:
    blocks = [m for n, m in transformer.named_modules() if n.startswith(("blocks.", "vace_blocks."))]
    return sum(parameter_bytes(m) for m in blocks if isinstance(m, torch.nn.Linear))


@pytest.mark.parametrize("weights", ["fp8", "int8"])
def test_low_precision_weights_stay_close_to_bf16_and_halve_the_bytes(
    folders: tuple[Path, Path],
    pipe,
    reference_frames: torch.Tensor,
    weights: str,  # noqa: ANN001
) -> None:
    if weights == "int8":
        pytest.importorskip("torchao", reason="weights='int8' needs torchao (pip install torchao)")
    base, sc2 = folders
    low = load_stereocrafter2(sc2, base, dtype=torch.bfloat16, weights=weights)
    assert low.dtype == torch.bfloat16  # computation stays in bf16: only the storage changed
    bf16_bytes, low_bytes = linear_weight_bytes(pipe.transformer), linear_weight_bytes(low.transformer)
    assert low_bytes < 0.6 * bf16_bytes  # 1 byte per weight (+ int8's per-channel scales) instead of 2
    assert parameter_bytes(low.transformer) < parameter_bytes(pipe.transformer)
    warped, mask = clip()
    with single_thread():
        out = low(warped, mask, SMALL, seed=0)
    diff = (out - reference_frames).abs()
    max_bound, mean_bound = BOUNDS[weights]
    assert 0 < diff.max() <= max_bound, f"{weights}: max {diff.max():.4f}"
    assert diff.mean() <= mean_bound, f"{weights}: mean {diff.mean():.5f}"


def test_fp8_composes_with_group_offloading(folders: tuple[Path, Path]) -> None:
    base, sc2 = folders
    fp8 = load_stereocrafter2(sc2, base, dtype=torch.bfloat16, weights="fp8")
    both = load_stereocrafter2(sc2, base, dtype=torch.bfloat16, weights="fp8", offload="group")
    assert both.transformer.blocks[0].ffn.net[2].weight.dtype == torch.float8_e4m3fn  # stored fp8 between runs
    warped, mask = clip()
    with single_thread():
        assert torch.equal(both(warped, mask, SMALL, seed=0), fp8(warped, mask, SMALL, seed=0))
    assert both.transformer.blocks[0].ffn.net[2].weight.dtype == torch.float8_e4m3fn


def test_offload_auto_counts_the_smaller_weights(folders: tuple[Path, Path], pipe) -> None:  # noqa: ANN001
    from stereocrafter.inpaint import inpaint2_pipeline as v2

    base, sc2 = folders
    fp8 = load_stereocrafter2(sc2, base, dtype=torch.bfloat16, weights="fp8")
    full, half = parameter_bytes(pipe.transformer), parameter_bytes(fp8.transformer)
    budget = v2.WORKING_BYTES + (full + half) // 2  # fits the fp8 weights, not the bf16 ones
    assert choose_offload(pipe.transformer, torch.device("cuda"), budget) == "group"
    assert choose_offload(fp8.transformer, torch.device("cuda"), budget) == "none"


def test_bad_weights_value_names_the_input(folders: tuple[Path, Path]) -> None:
    base, sc2 = folders
    with pytest.raises(ValueError, match="weights must be one of"):
        load_stereocrafter2(sc2, base, weights="fp4")  # type: ignore[arg-type]


# -- out-of-memory backoff


def fail_on_width(monkeypatch: pytest.MonkeyPatch, pipe, width: int | None, times: int | None) -> list[int]:  # noqa: ANN001
    """Make the transformer raise CUDA out-of-memory for tiles ``width`` latents wide (None = any): ``times``
    times (None = always). Returns the tile widths (latents) it was called with."""
    seen: list[int] = []
    forward = pipe.transformer.forward
    left = [times]

    def oom_forward(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        w = kwargs["hidden_states"].shape[-1]
        seen.append(w)
        if width in (None, w) and (left[0] is None or left[0] > 0):
            if left[0] is not None:
                left[0] -= 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (fake)")
        return forward(*args, **kwargs)

    monkeypatch.setattr(pipe.transformer, "forward", oom_forward)
    return seen


def test_oom_retries_the_chunk_with_more_tiles_and_the_same_noise(
    monkeypatch: pytest.MonkeyPatch,
    pipe,
    reference_frames: torch.Tensor,  # noqa: ANN001
) -> None:
    # The whole frame as one tile (64 px = 8 latents wide) runs out of memory once: the chunk runs again as 2 x 2
    # tiles (6 latents wide), and the clip equals a run set to 2 x 2 from the start, later chunks included.
    seen = fail_on_width(monkeypatch, pipe, width=8, times=1)
    warped, mask = clip()
    stream = Inpaint2Stream(pipe, *warped.shape[:3], replace(SMALL, tiles=(1, 1)), seed=0)
    with single_thread():
        out = torch.cat([stream.push(warped, mask), stream.finish()])
    assert seen[0] == 8 and set(seen[1:]) == {6}
    assert stream.oom_retries == 1 and (stream.rows.count, stream.cols.count) == (2, 2)
    assert torch.equal(out, reference_frames)


def test_oom_at_the_most_tiles_names_the_fixes(monkeypatch: pytest.MonkeyPatch, pipe) -> None:  # noqa: ANN001
    seen = fail_on_width(monkeypatch, pipe, width=None, times=None)  # 1 x 1 fails, 2 x 2 too, 3 x 3 is too many
    warped, mask = clip()
    with pytest.raises(RuntimeError, match="more tiles.*offload.*fp8") as info, single_thread():
        pipe(warped, mask, replace(SMALL, tiles=(1, 1), max_tiles=4), seed=0)
    assert seen == [8, 6]  # one retry with 2 x 2 tiles, then the error
    assert isinstance(info.value.__cause__, torch.cuda.OutOfMemoryError)
    # Off: the out-of-memory error itself comes through, no retry.
    with pytest.raises(torch.cuda.OutOfMemoryError), single_thread():
        pipe(warped, mask, replace(SMALL, tiles=(1, 1), oom_retry=False), seed=0)
    assert Inpaint2Settings.reference().oom_retry is False


def test_max_tiles_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_tiles must be >= 1"):
        replace(SMALL, max_tiles=0).validate()
