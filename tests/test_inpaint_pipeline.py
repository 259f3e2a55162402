"""StereoInpaintPipeline on tiny random models (CPU): shapes, compositing, fitting, chunks, tiles, determinism."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stereocrafter.inpaint.inpaint_pipeline import (
    DECODE_PROGRESS_SHARE,
    FRAMES_MAJOR_DECODE_MEMORY,
    MAX_SDPA_BATCH,
    Fit,
    InpaintProgress,
    InpaintSettings,
    StereoInpaintPipeline,
    composite,
    composite_alpha,
    latent_mask,
)
from stereocrafter.inpaint.inpaint_unet import load_inpaint_unet
from stereocrafter.inpaint.tiling import plan_tiles
from stereocrafter.model_files import ModelFilesError
from stereocrafter.svd.lean_attention import lean_attention
from tests.tiny_models import (
    SCHEDULER_CONFIG,
    make_depthcrafter_folder,
    make_stereocrafter_folder,
    make_svd_folder,
    tiny_clip,
    tiny_unet,
    tiny_vae,
)


class CountingUNet(torch.nn.Module):
    """Wraps a UNet, counting calls and recording input batch sizes; can raise an OOM on large inputs."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.inner = unet
        self.config = unet.config
        self.calls = 0
        self.batches: list[int] = []
        self.oom_above: int | None = None  # raise CUDA OOM when h * w (latent) exceeds this

    def forward(self, sample: torch.Tensor, *args: object, **kwargs: object) -> object:
        if self.oom_above is not None and sample.shape[-2] * sample.shape[-1] > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        self.calls += 1
        self.batches.append(sample.shape[0])
        return self.inner(sample, *args, **kwargs)


@pytest.fixture(scope="module")
def pipe() -> StereoInpaintPipeline:
    return StereoInpaintPipeline(CountingUNet(tiny_unet(9)), tiny_vae(), tiny_clip(), SCHEDULER_CONFIG)


def make_inputs(frames: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(frames, height, width, 3, generator=gen)
    mask = torch.zeros(frames, height, width)
    mask[:, height // 4 : height // 2, width // 3 : width // 3 + 7] = 1.0
    mask[:, -1, :] = 0.7  # the splatting bottom row hole, non-binary values
    return images, mask


FAST = InpaintSettings(steps=2, tiles=(1, 1))
FASTEST = InpaintSettings(steps=1, tiles=(1, 1))


@pytest.mark.parametrize("frames,height,width", [(1, 37, 53), (5, 41, 70), (30, 21, 33)])
def test_output_shape_matches_input(pipe: StereoInpaintPipeline, frames: int, height: int, width: int) -> None:
    images, mask = make_inputs(frames, height, width)
    out = pipe(images, mask, FASTEST)
    assert out.shape == images.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert pipe.stats.chunks == (2 if frames == 30 else 1)


def test_composite_keeps_non_hole_pixels_bit_identical(pipe: StereoInpaintPipeline) -> None:
    images, mask = make_inputs(4, 40, 72)
    out = pipe(images, mask, FASTEST)
    alpha = composite_alpha(mask >= 0.5, FASTEST.composite_dilate_px, FASTEST.composite_feather_px)
    keep = alpha == 0
    assert keep.sum() > 0.5 * keep.numel()
    assert torch.equal(out[keep], images[keep])
    assert not torch.equal(out[mask >= 0.5], images[mask >= 0.5])  # holes were filled
    # without compositing the VAE reconstructs every pixel
    raw = pipe(images, mask, InpaintSettings(steps=2, tiles=(1, 1), composite=False))
    assert not torch.equal(raw[keep], images[keep])


def test_composite_alpha_dilates_and_feathers() -> None:
    hole = torch.zeros(1, 21, 21, dtype=torch.bool)
    hole[0, 10, 10] = True
    alpha = composite_alpha(hole, dilate_px=2, feather_px=3)[0]
    assert torch.all(alpha[8:13, 8:13] == 1)
    torch.testing.assert_close(alpha[10, 13:16], torch.tensor([0.75, 0.5, 0.25]))
    assert alpha[10, 16] == 0 and alpha[0, 0] == 0
    soft = hole.float()
    assert torch.equal(composite_alpha(soft, 2, 3)[0], alpha) and soft.sum() == 1  # a float mask is not written to


@pytest.mark.parametrize(("shape", "dilate", "feather"), [((3, 17, 29), 3, 3), ((2, 5, 40), 0, 4), ((1, 9, 9), 6, 1)])
def test_composite_alpha_equals_max_pooling_the_hole(shape: tuple[int, int, int], dilate: int, feather: int) -> None:
    # the definition: grow by max pooling (padding ignores pixels outside the frame), then each 3x3 ring weighs less
    hole = torch.rand(shape, generator=torch.Generator().manual_seed(dilate + feather)) > 0.93
    grown = hole.float().unsqueeze(1)
    if dilate:
        grown = F.max_pool2d(grown, 2 * dilate + 1, stride=1, padding=dilate)
    expected, ring = grown, grown
    for k in range(1, feather + 1):
        ring = F.max_pool2d(ring, 3, stride=1, padding=1)
        expected = torch.maximum(expected, ring * (1.0 - k / (feather + 1)))
    assert torch.equal(composite_alpha(hole, dilate, feather), expected.squeeze(1))


def test_composite_into_the_generated_frames_is_the_same() -> None:
    gen = torch.Generator().manual_seed(5)
    warped, generated = torch.rand(2, 9, 11, 3, generator=gen), torch.rand(2, 9, 11, 3, generator=gen)
    alpha = torch.rand(2, 9, 11, generator=gen) * (torch.rand(2, 9, 11, generator=gen) > 0.3)
    expected = composite(warped, generated, alpha)
    out = composite(warped, generated, alpha, out=generated)
    assert out.data_ptr() == generated.data_ptr() and torch.equal(out, expected)
    assert torch.equal(expected[alpha == 0], warped[alpha == 0])


def test_fit_pad_and_crop_roundtrip() -> None:
    x = torch.rand(2, 3, 37, 53)
    fit = Fit.plan(37, 53, "pad", 64, "reflect")
    padded = fit.apply(x)
    assert padded.shape[-2:] == (64, 64)
    assert torch.equal(padded[..., :37, :53], x)
    nhwc = padded.permute(0, 2, 3, 1)
    assert torch.equal(fit.undo(nhwc, x.permute(0, 2, 3, 1)), x.permute(0, 2, 3, 1))
    crop = Fit.plan(200, 300, "crop", 128, "reflect")
    assert (crop.work_height, crop.work_width) == (128, 256)
    with pytest.raises(ValueError, match="pad"):
        Fit.plan(100, 300, "crop", 128, "reflect")


def test_crop_mode_keeps_full_size(pipe: StereoInpaintPipeline) -> None:
    images, mask = make_inputs(3, 72, 136)
    settings = InpaintSettings.reference(tiles=1, steps=2, multiple=64)
    out = pipe(images, mask, settings)
    assert out.shape == images.shape
    assert torch.equal(out[:, 64:], images[:, 64:]) and torch.equal(out[:, :, 128:], images[:, :, 128:])
    assert not torch.equal(out[:, :64, :128], images[:, :64, :128])


def test_empty_mask_returns_input_without_unet(pipe: StereoInpaintPipeline) -> None:
    images, _ = make_inputs(6, 40, 72)
    mask = torch.full((6, 40, 72), 0.49)  # below the 0.5 binarisation threshold
    before = pipe.unet.calls
    out = pipe(images, mask, FAST)
    assert pipe.unet.calls == before
    assert torch.equal(out, images)


def test_full_mask_works(pipe: StereoInpaintPipeline) -> None:
    images = torch.rand(2, 40, 72, 3)
    out = pipe(images, torch.ones(2, 40, 72), FASTEST)
    assert out.shape == images.shape and torch.isfinite(out).all()


def test_deterministic_per_seed(pipe: StereoInpaintPipeline) -> None:
    images, mask = make_inputs(3, 40, 72)
    a = pipe(images, mask, FASTEST, seed=3)
    b = pipe(images, mask, FASTEST, seed=3)
    c = pipe(images, mask, FASTEST, seed=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_single_key_attention_is_the_same_math() -> None:
    """The pipeline's default cross-attention shortcut against diffusers' processor, CFG on (zero negative token)."""
    images, mask = make_inputs(3, 40, 72)
    settings = InpaintSettings(steps=2, tiles=(1, 1), guidance_scale=1.2, composite=False, quantize_8bit=False)
    models = (tiny_vae(), tiny_clip(), SCHEDULER_CONFIG)
    shortcut = StereoInpaintPipeline(tiny_unet(9), *models, frames_major_decoder=False)
    default = StereoInpaintPipeline(tiny_unet(9), *models, single_key_attention=False, frames_major_decoder=False)
    torch.testing.assert_close(
        shortcut(images, mask, settings, seed=1), default(images, mask, settings, seed=1), atol=1e-5, rtol=0
    )


def test_frames_major_decoder_is_the_same_math_and_plans_smaller_decode_tiles() -> None:
    """The default frames-major temporal decoder against diffusers' blocks (fp32: rounding only), and its larger
    working memory counted in the automatic decode tiles; ``compile()`` swaps diffusers' blocks back."""
    from diffusers.models.resnet import SpatioTemporalResBlock

    images, mask = make_inputs(3, 40, 72)
    settings = InpaintSettings(steps=2, tiles=(1, 1), composite=False, quantize_8bit=False)
    fast = StereoInpaintPipeline(tiny_unet(9), tiny_vae(), tiny_clip(), SCHEDULER_CONFIG)
    plain = StereoInpaintPipeline(tiny_unet(9), tiny_vae(), tiny_clip(), SCHEDULER_CONFIG, frames_major_decoder=False)
    blocks = [type(m) for m in fast.vae.decoder.modules() if isinstance(m, SpatioTemporalResBlock)]
    assert blocks and all(t is not SpatioTemporalResBlock for t in blocks)
    assert all(
        type(m) is SpatioTemporalResBlock for m in plain.vae.decoder.modules() if isinstance(m, SpatioTemporalResBlock)
    )
    torch.testing.assert_close(
        fast(images, mask, settings, seed=1), plain(images, mask, settings, seed=1), atol=1e-4, rtol=0
    )
    fit = Fit(mode="pad", height=1080, width=1920, work_height=1088, work_width=1920)
    budget = InpaintSettings(tiles=(2, 2), max_decode_pixel_frames=2 * 1088 * 1024)
    fast_tiles = fast._tile_counts(fit, budget, 23)[1]
    plain_tiles = plain._tile_counts(fit, budget, 23)[1]
    assert plain_tiles == (1, 2) and fast_tiles[0] * fast_tiles[1] > 2
    fast.compile()  # lazy: nothing is traced until a call
    assert not fast.frames_major_decoder and fast._tile_counts(fit, budget, 23)[1] == plain_tiles
    assert all(
        type(m) is SpatioTemporalResBlock for m in fast.vae.decoder.modules() if isinstance(m, SpatioTemporalResBlock)
    )


@pytest.mark.parametrize("tiles", [(1, 1), (2, 2), (3, 3), (1, 3)])
def test_tile_counts_run(pipe: StereoInpaintPipeline, tiles: tuple[int, int]) -> None:
    images, mask = make_inputs(2, 150, 190)  # padded to 192 x 192: 24 x 24 latents
    out = pipe(images, mask, InpaintSettings(steps=1, tiles=tiles, tile_overlap_px=64))
    assert out.shape == images.shape
    assert pipe.stats.tiles == tiles


def test_tile_batch_matches_sequential(pipe: StereoInpaintPipeline) -> None:
    images, mask = make_inputs(2, 150, 190)
    base = InpaintSettings(steps=2, tiles=(2, 2), tile_overlap_px=64, composite=False)
    seq = pipe(images, mask, base)
    calls = pipe.unet.calls
    batched = pipe(images, mask, InpaintSettings(**{**base.__dict__, "tile_batch": 4}))
    assert pipe.unet.calls - calls == 2 and pipe.unet.batches[-1] == 4
    torch.testing.assert_close(batched, seq, atol=2 / 255, rtol=0)


def test_cfg_is_batched_and_skipped_at_one(pipe: StereoInpaintPipeline) -> None:
    images, mask = make_inputs(3, 40, 72)
    start = pipe.unet.calls
    pipe(images, mask, InpaintSettings(steps=2, tiles=(1, 1), guidance_scale=1.01))
    assert pipe.unet.calls - start == 2 and pipe.unet.batches[-1] == 2  # negative + positive in ONE call
    pipe(images, mask, InpaintSettings(steps=2, tiles=(1, 1), guidance_scale=1.0))
    assert pipe.unet.batches[-1] == 1


def test_feedback_frames_condition_next_chunk(pipe: StereoInpaintPipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    images, mask = make_inputs(24, 21, 33)
    seen: list[torch.Tensor] = []
    original = pipe._denoise_chunk

    def spy(chunk, num_chunks, cond, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(cond.clone())
        return original(chunk, num_chunks, cond, *args, **kwargs)

    monkeypatch.setattr(pipe, "_denoise_chunk", spy)
    out = pipe(images, mask, InpaintSettings(steps=1, tiles=(1, 1), seams="reference"))
    assert len(seen) == 2
    # chunk 2 = frames 4..23; its first 19 conditioning frames are chunk 1's outputs, the last one the input
    assert torch.equal(seen[1][:19], out[4:23])
    assert torch.equal(seen[1][19], images[23])


def test_progress_and_interrupt(pipe: StereoInpaintPipeline) -> None:
    images, mask = make_inputs(2, 40, 72)
    events: list[InpaintProgress] = []
    pipe(images, mask, InpaintSettings(steps=3, tiles=(1, 1), decode_chunk=1), progress=events.append)
    steps = [e for e in events if e.decoded == 0]
    assert [e.step for e in steps] == [0, 1, 2]
    # then the decode, one report per decoder call (2 frames, 1 per call): the bar keeps moving to the end
    assert [e.decoded for e in events[len(steps) :]] == [0.5, 1.0]
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and len(set(fractions)) == len(events) and fractions[-1] == 1.0
    assert steps[-1].fraction == pytest.approx(1 - DECODE_PROGRESS_SHARE)

    class Stop(Exception):
        pass

    count = {"n": 0}

    def interrupt() -> None:
        count["n"] += 1
        if count["n"] == 2:
            raise Stop

    with pytest.raises(Stop):
        pipe(images, mask, InpaintSettings(steps=3, tiles=(1, 1)), interrupt=interrupt)


def test_oom_retries_with_more_tiles(pipe: StereoInpaintPipeline) -> None:
    images, mask = make_inputs(2, 120, 200)
    pipe.unet.oom_above = 16 * 16  # the 16x32 latent full frame "does not fit"; 2 tiles of 16x16 do
    try:
        out = pipe(images, mask, InpaintSettings(steps=1, tiles=(1, 1), tile_overlap_px=0))
    finally:
        pipe.unet.oom_above = None
    assert out.shape == images.shape
    assert pipe.stats.oom_retries == 1 and pipe.stats.tiles == (1, 2)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        pipe.unet.oom_above = 0
        try:
            pipe(images, mask, InpaintSettings(steps=1, tiles=(1, 1), oom_retry=False))
        finally:
            pipe.unet.oom_above = None


def test_input_errors(pipe: StereoInpaintPipeline) -> None:
    images, mask = make_inputs(3, 40, 72)
    with pytest.raises(ValueError, match="frames"):
        pipe(images, mask[:2], FAST)
    with pytest.raises(ValueError, match="40"):
        pipe(images, mask[:, :32], FAST)
    bad = images.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pipe(bad, mask, FAST)
    with pytest.raises(ValueError, match="float"):
        pipe((images * 255).to(torch.uint8), mask, FAST)
    with pytest.raises(ValueError, match="guidance"):
        pipe(images, mask, InpaintSettings(guidance_scale=0.5))
    # a single mask for every frame, and an IMAGE-shaped mask, are accepted
    assert pipe(images, mask[0], FASTEST).shape == images.shape
    assert pipe(images, mask.unsqueeze(-1).expand(-1, -1, -1, 3), FASTEST).shape == images.shape


def test_latent_mask_is_top_left_nearest() -> None:
    mask = (torch.rand(2, 1, 64, 96) > 0.5).float()
    torch.testing.assert_close(latent_mask(mask), F.interpolate(mask, scale_factor=1 / 8))


def test_scheduler_matches_reference_sigmas(pipe: StereoInpaintPipeline) -> None:
    scheduler = pipe.make_scheduler()
    scheduler.set_timesteps(8)
    expected = [700, 286.54, 102.90, 30.99, 7.276, 1.168, 0.0974, 0.002, 0.0]
    torch.testing.assert_close(scheduler.sigmas.double(), torch.tensor(expected).double(), rtol=2e-3, atol=1e-4)
    torch.testing.assert_close(scheduler.timesteps[0].double(), torch.tensor(1.638).double(), atol=1e-3, rtol=0)


def test_load_from_folders(tmp_path: Path) -> None:
    svd = make_svd_folder(tmp_path / "svd")
    root = make_stereocrafter_folder(tmp_path / "sc")
    pipe = StereoInpaintPipeline.from_pretrained(svd, root, dtype=torch.float32)
    images, mask = make_inputs(2, 40, 72)
    assert pipe(images, mask, FASTEST).shape == images.shape
    flat = make_stereocrafter_folder(tmp_path / "flat", subfolder=None)
    assert load_inpaint_unet(flat, torch.float32).config.in_channels == 9
    depth = make_depthcrafter_folder(tmp_path / "depth")
    with pytest.raises(ModelFilesError, match="DepthCrafter"):
        load_inpaint_unet(depth)
    with pytest.raises(ModelFilesError, match="8 channels"):
        StereoInpaintPipeline(tiny_unet(8), tiny_vae(), tiny_clip(), SCHEDULER_CONFIG)


def test_lean_vae_attention_matches_default() -> None:
    vae = tiny_vae()
    latents = torch.randn(2, 4, 12, 20)
    with torch.no_grad():
        ref = vae.decode(latents, num_frames=2).sample
        with lean_attention(vae):  # fits in one call: the very same SDPA call
            same = vae.decode(latents, num_frames=2).sample
        with lean_attention(vae, max_elements=1000):  # forced into row chunks
            chunked = vae.decode(latents, num_frames=2).sample
        enc_ref = vae.encode(torch.rand(2, 3, 64, 96) * 2 - 1).latent_dist.mode()
    assert torch.equal(same, ref)
    torch.testing.assert_close(chunked, ref, atol=1e-5, rtol=1e-5)
    assert enc_ref.shape == (2, 4, 8, 12)
    assert type(vae.decoder.mid_block.attentions[0].processor).__name__ != "QueryChunkedAttnProcessor"  # restored


def test_tiles_respect_cuda_attention_batch_limit() -> None:
    fit = Fit.plan(2160, 3840, "pad", 64, "reflect")
    counts = StereoInpaintPipeline._respect_sdpa_limit(fit, InpaintSettings(guidance_scale=1.01), (1, 1))
    grid = plan_tiles(fit.work_height, fit.work_width, counts)
    assert grid.tile_size[0] * grid.tile_size[1] * 2 <= MAX_SDPA_BATCH
    fit1080 = Fit.plan(1080, 1920, "pad", 64, "reflect")  # 136 x 240 latents x 2 = 65280: fits as one tile
    assert StereoInpaintPipeline._respect_sdpa_limit(fit1080, InpaintSettings(guidance_scale=1.01), (1, 1)) == (1, 1)


def test_tiled_decode(pipe: StereoInpaintPipeline) -> None:
    images, mask = make_inputs(2, 150, 190)  # padded to 192 x 192
    whole = pipe(images, mask, InpaintSettings(steps=1, tiles=(1, 1), decode_tiles=(1, 1), composite=False))
    auto = pipe(
        images,
        mask,
        InpaintSettings(
            steps=1,
            tiles=(1, 1),
            # one 192 x 128 tile of 2 frames for the frames-major decoder (the default), which needs more per pixel
            max_decode_pixel_frames=int(2 * 192 * 128 * FRAMES_MAJOR_DECODE_MEMORY) + 1,
            tile_overlap_px=64,
            composite=False,
        ),
    )
    assert pipe.stats.decode_tiles == (1, 2)
    assert auto.shape == images.shape
    # same latents; only the decode differs, and only a little (random tiny VAE, blended 64 px overlap)
    assert (auto - whole).abs().mean() < 0.05


def test_compile_marks_unet_blocks_and_decoder_and_skips_lean_attention(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """compile() compiles the UNet's repeated blocks and the VAE decoder only; a compiled pipeline never swaps the
    VAE's attention processors (lean_vae_attention), which would recompile the decoder on every chunk. No compiled
    graph runs here (compiling takes minutes on a CPU): the modules are decompiled before the run, the flag stays."""
    import stereocrafter.inpaint.inpaint_stream as inpaint_stream
    from stereocrafter.svd.compiled_svd import UNET_BLOCK_CLASSES, decompile, is_compiled

    calls: list[torch.nn.Module] = []
    real = inpaint_stream.lean_attention

    def recording(module: torch.nn.Module, *args: object, **kwargs: object) -> object:
        calls.append(module)
        return real(module, *args, **kwargs)

    monkeypatch.setattr(inpaint_stream, "lean_attention", recording)
    images, mask = make_inputs(2, 24, 40)
    settings = InpaintSettings(steps=1, tiles=(1, 1), lean_vae_attention=True)
    plain = StereoInpaintPipeline(tiny_unet(9), tiny_vae(), tiny_clip(), SCHEDULER_CONFIG)
    plain(images, mask, settings)
    assert calls == [plain.vae]  # one chunk, under lean attention

    pipe = StereoInpaintPipeline(tiny_unet(9), tiny_vae(), tiny_clip(), SCHEDULER_CONFIG)
    assert not pipe.compiled and pipe.compile() is pipe and pipe.compiled
    compiled = {type(m).__name__ for m in pipe.unet.modules() if getattr(m, "_compiled_call_impl", None) is not None}
    assert compiled == set(UNET_BLOCK_CLASSES) and not is_compiled(pipe.unet.conv_in)
    assert is_compiled(pipe.vae.decoder) and not is_compiled(pipe.vae.encoder) and not is_compiled(pipe.image_encoder)
    # diffusers' blocks as measured for inpainting (the frames-major blocks were measured for video depth only)
    assert not any("FramesMajor" in type(m).__name__ for m in [*pipe.unet.modules(), *pipe.vae.modules()])
    decompile(pipe.unet)
    decompile(pipe.vae)
    calls.clear()
    with caplog.at_level(logging.DEBUG, logger="stereocrafter.inpaint.inpaint_pipeline"):
        pipe(images, mask, settings)
        pipe(images, mask, settings)
    assert calls == []
    assert sum("lean_vae_attention is ignored" in r.getMessage() for r in caplog.records) == 1  # logged once


class EncodeSpy:
    """Replaces a VAE's ``encode``: records each call's input (dtype, height, width); can raise CUDA OOM on inputs
    above ``oom_above`` pixels, or return infinite latents from non-fp32 calls (an fp16 overflow)."""

    def __init__(self, vae: torch.nn.Module, oom_above: int | None = None, overflow: bool = False) -> None:
        self.original, self.oom_above, self.overflow = vae.encode, oom_above, overflow
        self.calls: list[tuple[torch.dtype, int, int]] = []

    def __call__(self, x: torch.Tensor) -> object:
        self.calls.append((x.dtype, x.shape[-2], x.shape[-1]))
        if self.oom_above is not None and x.shape[-2] * x.shape[-1] > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        out = self.original(x)
        if self.overflow and x.dtype != torch.float32:
            out.latent_dist.mean.fill_(float("inf"))
        return out


def test_whole_frame_encoded_once_per_chunk_then_cropped_per_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our default encodes the whole working frame (150x190 → 192x192) once, not each of the 2x2 overlapping tiles;
    above max_full_frame_encode_pixels, and in the reference's mode, every tile is encoded on its own."""
    pipe = StereoInpaintPipeline(tiny_unet(9), tiny_vae(), tiny_clip(), SCHEDULER_CONFIG)
    images, mask = make_inputs(2, 150, 190)
    base = InpaintSettings(steps=1, tiles=(2, 2), tile_overlap_px=64)
    spy = EncodeSpy(pipe.vae)
    monkeypatch.setattr(pipe.vae, "encode", spy)
    whole = pipe(images, mask, base)
    assert spy.calls == [(torch.float32, 192, 192)]  # both frames in one call (the encode's pixel budget)
    spy.calls.clear()
    tiled = pipe(images, mask, replace(base, max_full_frame_encode_pixels=192 * 192 - 1))
    assert spy.calls == [(torch.float32, 128, 128)] * 4
    # the same model and noise; only the conditioning latents near the tile borders differ
    assert whole.shape == tiled.shape and 0 < (whole - tiled).abs().max() < 0.5
    assert not InpaintSettings.reference(tiles=2).encode_full_frame and InpaintSettings.reference().encode_fp32


def test_whole_frame_encode_out_of_memory_goes_tile_by_tile(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pipe = StereoInpaintPipeline(tiny_unet(9), tiny_vae(), tiny_clip(), SCHEDULER_CONFIG)
    images, mask = make_inputs(2, 150, 190)
    spy = EncodeSpy(pipe.vae, oom_above=128 * 128)
    monkeypatch.setattr(pipe.vae, "encode", spy)
    settings = InpaintSettings(steps=1, tiles=(2, 2), tile_overlap_px=64)
    with caplog.at_level(logging.WARNING, logger="stereocrafter.inpaint.inpaint_pipeline"):
        out = pipe(images, mask, settings)
    assert out.shape == images.shape and pipe.stats.tiles == (2, 2)
    assert spy.calls[0][1:] == (192, 192) and {c[1:] for c in spy.calls[1:]} == {(128, 128)}
    assert any("encoding tile by tile" in r.getMessage() for r in caplog.records)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        pipe(images, mask, replace(settings, oom_retry=False))


def test_half_precision_encode_that_overflows_is_redone_in_fp32(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The default encodes in the VAE's dtype (bf16 here; fp16 on GPUs); latents that overflow it are recomputed
    in fp32, as the reference's force_upcast would have, so no inf reaches the UNet."""
    pipe = StereoInpaintPipeline(tiny_unet(9), tiny_vae().to(torch.bfloat16), tiny_clip(), SCHEDULER_CONFIG)
    images, mask = make_inputs(2, 40, 72)
    settings = InpaintSettings(steps=1, tiles=(1, 1))
    clean = pipe(images, mask, settings)
    spy = EncodeSpy(pipe.vae, overflow=True)
    monkeypatch.setattr(pipe.vae, "encode", spy)
    with caplog.at_level(logging.WARNING, logger="stereocrafter.inpaint.inpaint_pipeline"):
        out = pipe(images, mask, settings)
    assert [c[0] for c in spy.calls] == [torch.bfloat16, torch.float32]
    assert torch.isfinite(out).all() and any("redone in fp32" in r.getMessage() for r in caplog.records)
    assert (out - clean).abs().max() < 0.1  # fp32 instead of bf16 latents: the same picture
    spy.calls.clear()
    pipe(images, mask, replace(settings, encode_fp32=True))
    assert [c[0] for c in spy.calls] == [torch.float32]  # the reference's upcast: no half-precision attempt
