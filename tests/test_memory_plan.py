"""The GPU memory plans: DepthCrafter placement and chunks, StereoCrafter tile budgets, the budget read-out."""

from __future__ import annotations

from dataclasses import replace

import torch

from stereocrafter.depth.depth_pipeline import DepthSettings, stage_memory_bytes, working_memory_bytes
from stereocrafter.inpaint.inpaint_pipeline import InpaintSettings
from stereocrafter.memory_plan import (
    GIB,
    fit_resident_depth,
    gpu_budget_bytes,
    module_bytes,
    plan_depth,
    plan_inpaint,
)

# fp16 weights of the real models (bytes): DepthCrafter UNet, SVD VAE, CLIP ViT-H.
WEIGHTS = {"unet": 3_050_000_000, "vae": 196_000_000, "clip": 1_265_000_000}
SIZE_1080P = (576, 1024)  # DepthCrafter's processing size for 1920x1080
SETTINGS = DepthSettings(batch_cfg=False)


def test_stage_memory_is_what_working_memory_takes_the_largest_of():
    stages = stage_memory_bytes(SIZE_1080P, 115, SETTINGS)
    assert set(stages) == {"encode", "unet", "decode"}
    assert working_memory_bytes(SIZE_1080P, 115, SETTINGS) == max(stages.values())
    half = stage_memory_bytes(SIZE_1080P, 115, replace(SETTINGS, decode_chunk_size=4, encode_chunk_size=4))
    assert half["decode"] < stages["decode"] and half["encode"] < stages["encode"] and half["unet"] == stages["unet"]


def test_large_budget_moves_models_per_stage_with_the_settings_asked():
    plan = plan_depth(140 * GIB, WEIGHTS, SIZE_1080P, 115, SETTINGS)
    assert plan.offload and not plan.unet_group_offload and plan.settings == SETTINGS
    assert plan.peak_bytes <= 12 * GIB  # the default path's target at 1080p
    resident = plan_depth(140 * GIB, WEIGHTS, SIZE_1080P, 115, SETTINGS, resident=True)
    assert not resident.offload and resident.peak_bytes > plan.peak_bytes
    assert plan_depth(None, WEIGHTS, SIZE_1080P, 115, SETTINGS).settings == SETTINGS


def test_small_budgets_stream_the_unet_then_shrink_the_decode_chunk():
    for budget in (16 * GIB, 12 * GIB, 8 * GIB):  # the caps measured in bench/e2e.py
        plan = plan_depth(budget, WEIGHTS, SIZE_1080P, 115, SETTINGS)
        assert plan.peak_bytes + GIB // 2 <= budget, (budget, plan)
        assert "GiB" in plan.describe(budget)
    eight = plan_depth(8 * GIB, WEIGHTS, SIZE_1080P, 115, SETTINGS)
    assert eight.unet_group_offload and eight.settings.encode_chunk_size < SETTINGS.encode_chunk_size
    assert eight.settings.decode_chunk_size < SETTINGS.decode_chunk_size  # pixels change: the log line says so
    twelve = plan_depth(12 * GIB, WEIGHTS, SIZE_1080P, 115, SETTINGS)
    assert twelve.settings.decode_chunk_size == SETTINGS.decode_chunk_size and not twelve.unet_group_offload


def test_depthcrafter_preset_keeps_its_window_unless_the_streamed_unet_cannot_fit_it():
    """DepthCrafter 1.0.1's 110-frame windows need more UNet memory than StereoCrafter's 70: large budgets keep them,
    small ones stream the UNet and only then shorten the window; every stage's own lever is chosen on its own."""
    fast = DepthSettings.preset("depthcrafter", batch_cfg=False)
    assert plan_depth(140 * GIB, WEIGHTS, SIZE_1080P, 115, fast).settings == fast
    for budget in (16 * GIB, 12 * GIB, 8 * GIB):
        plan = plan_depth(budget, WEIGHTS, SIZE_1080P, 115, fast)
        assert plan.peak_bytes + GIB // 2 <= budget, (budget, plan)
        assert f"window {plan.settings.window_size}" in plan.describe(budget)
        if plan.settings.window_size < fast.window_size:
            assert plan.unet_group_offload and plan.settings.window_size > fast.overlap
    eight = plan_depth(8 * GIB, WEIGHTS, SIZE_1080P, 115, fast)
    assert eight.unet_group_offload and eight.settings.window_size < fast.window_size
    # the decode stage has its own budget: a shorter window does not shrink its chunk below what fits
    assert (
        eight.settings.decode_chunk_size
        == plan_depth(8 * GIB, WEIGHTS, SIZE_1080P, 115, SETTINGS).settings.decode_chunk_size
    )


def test_resident_models_fit_the_free_memory_by_chunks_then_window():
    """Inside ComfyUI the models are placed whole by its memory manager; what is left decides the chunks, then the
    window (DepthCrafter 1.0.1's 110 frames need ~11 GiB at 1080p, a 12 GB card has ~7 left beside the weights)."""
    fast = DepthSettings.preset("depthcrafter", batch_cfg=False)
    assert fit_resident_depth(None, SIZE_1080P, 115, fast, torch.float16) == fast
    assert fit_resident_depth(64 * GIB, SIZE_1080P, 115, fast, torch.float16) == fast
    fitted = fit_resident_depth(7 * GIB, SIZE_1080P, 115, fast, torch.float16)
    assert fast.overlap < fitted.window_size < fast.window_size
    stages = stage_memory_bytes(SIZE_1080P, 115, fitted, torch.float16)
    assert max(stages.values()) + GIB // 2 <= 7 * GIB
    assert fitted.num_inference_steps == fast.num_inference_steps and fitted.overlap == fast.overlap
    smallest = fit_resident_depth(0, SIZE_1080P, 115, fast, torch.float16)
    assert (smallest.window_size, smallest.encode_chunk_size, smallest.decode_chunk_size) == (fast.overlap + 1, 1, 2)


def test_an_impossible_budget_returns_the_smallest_plan():
    plan = plan_depth(1 * GIB, WEIGHTS, SIZE_1080P, 115, SETTINGS)
    assert plan.unet_group_offload and plan.settings.decode_chunk_size == 2 and plan.settings.encode_chunk_size == 1


def test_inpaint_budgets_shrink_only_when_needed_and_only_automatic_ones():
    settings = InpaintSettings()
    weights = 4_500_000_000
    assert plan_inpaint(None, weights, (1080, 1920), settings) == settings
    assert plan_inpaint(24 * GIB, weights, (1080, 1920), settings) == settings
    small = plan_inpaint(8 * GIB, weights, (1080, 1920), settings)
    assert small.max_pixel_frames < settings.max_pixel_frames
    assert small.max_decode_pixel_frames < settings.max_decode_pixel_frames
    fixed = replace(settings, tiles=(2, 2), decode_tiles=(1, 2), encode_full_frame=False)
    assert plan_inpaint(8 * GIB, weights, (1080, 1920), fixed) == fixed
    assert plan_inpaint(8 * GIB, weights, (2160, 3840), settings).max_pixel_frames < small.max_pixel_frames


def test_whole_frame_encode_only_where_it_fits():
    """1080p frames (1920x1088 working) are encoded whole on a 12 GiB card, tile by tile on an 8 GiB one; the
    fp32 encode needs about twice the memory per pixel."""
    settings, weights, work = InpaintSettings(), 4_500_000_000, 1920 * 1088
    assert settings.encode_full_frame and settings.max_full_frame_encode_pixels >= work
    assert plan_inpaint(12 * GIB, weights, (1080, 1920), settings).max_full_frame_encode_pixels >= work
    small = plan_inpaint(8 * GIB, weights, (1080, 1920), settings).max_full_frame_encode_pixels
    assert 0 < small < work
    fp32 = plan_inpaint(8 * GIB, weights, (1080, 1920), replace(settings, encode_fp32=True))
    assert fp32.max_full_frame_encode_pixels < small


def test_module_bytes_and_no_budget_off_cuda():
    assert module_bytes(torch.nn.Linear(10, 4)) == (10 * 4 + 4) * 4
    assert gpu_budget_bytes(torch.device("cpu")) is None
