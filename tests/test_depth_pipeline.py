"""VideoDepthPipeline on tiny random models: windows, stitching, sizes, determinism, dtypes and input errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from stereocrafter.depth.depth_pipeline import (
    DepthSettings,
    VideoDepthPipeline,
    blend_weights,
    check_frames,
    effective_window,
    euler_step,
    karras_schedule,
    minmax_normalize,
    plan_windows,
    processing_size,
    rotate_window_noise,
    scale_model_input,
    stage_memory_bytes,
    stitch_window,
    working_memory_bytes,
)
from stereocrafter.depth.depthcrafter_unet import (
    DepthCrafterUNet,
    chunk_feed_forward,
    load_depthcrafter_unet,
    temporal_convs_as_2d,
)
from stereocrafter.svd.svd_components import SVDComponents, load_svd_components
from tests.tiny_models import make_depthcrafter_folder, make_svd_folder, tiny_unet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# Small windows keep the tests fast: window 6, overlap 2 (stride 4), 2 steps, CFG on.
FAST = {"window_size": 6, "overlap": 2, "num_inference_steps": 2, "decode_chunk_size": 4}


def fast(**overrides: object) -> DepthSettings:
    return DepthSettings(**{**FAST, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("depth_models")
    return make_depthcrafter_folder(root / "DepthCrafter"), make_svd_folder(root / "svd")


@pytest.fixture(scope="module")
def parts(model_dirs: tuple[Path, Path]) -> tuple[DepthCrafterUNet, SVDComponents]:
    return load_depthcrafter_unet(model_dirs[0], torch.float32), load_svd_components(model_dirs[1], torch.float32)


@pytest.fixture(scope="module")
def pipe(parts: tuple[DepthCrafterUNet, SVDComponents]) -> VideoDepthPipeline:
    return VideoDepthPipeline(*parts, device="cpu", dtype=torch.float32)


def clip(frames: int, height: int = 37, width: int = 53, seed: int = 0) -> torch.Tensor:
    """A smooth moving gradient (structure for the tiny models to respond to) plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.linspace(0, 1, height).view(1, height, 1, 1)
    xs = torch.linspace(0, 1, width).view(1, 1, width, 1)
    ts = torch.linspace(0, 1, frames).view(frames, 1, 1, 1)
    base = (0.6 * xs + 0.3 * ys + 0.2 * ts).expand(frames, height, width, 3)
    return (base + 0.05 * torch.rand(frames, height, width, 3, generator=g)).clamp(0, 1)


# -- pure helpers


@pytest.mark.parametrize(
    ("hw", "expected"),
    [
        ((1080, 1920), (576, 1024)),
        ((720, 1280), (576, 1024)),
        ((2160, 3840), (576, 1024)),
        ((820, 1920), (448, 1024)),
        ((96, 160), (128, 128)),  # banker's rounding: round(1.5) = 2, round(2.5) = 2
        ((37, 53), (64, 64)),
        ((20, 2000), (64, 1024)),  # rounds to 0 -> raised to 64
    ],
)
def test_processing_size(hw: tuple[int, int], expected: tuple[int, int]) -> None:
    assert processing_size(*hw, max_res=1024) == expected


def test_plan_windows() -> None:
    assert plan_windows(5, 6, 2) == [(0, 5)]
    assert plan_windows(6, 6, 2) == [(0, 6)]
    assert plan_windows(13, 6, 2) == [(0, 6), (4, 10), (8, 13)]
    assert plan_windows(7, 6, 2) == [(0, 6), (4, 7)]
    assert effective_window(5, 6, 2) == (5, 0)
    # StereoCrafter's settings: starts 0, 45, 90, ...; the last window keeps more than `overlap` frames.
    windows = plan_windows(160, 70, 25)
    assert [s for s, _ in windows] == [0, 45, 90]
    assert windows[-1] == (90, 160)
    assert plan_windows(12, 6, 0) == [(0, 6), (6, 12)]


@pytest.mark.parametrize(("num_frames", "window", "overlap"), [(13, 6, 2), (160, 70, 25), (30, 7, 3), (9, 4, 1)])
def test_shared_frames_get_the_same_noise(num_frames: int, window: int, overlap: int) -> None:
    """Follow the reference's rotation through every window: a global frame always sees the same noise."""
    window, overlap = effective_window(num_frames, window, overlap)
    noise = torch.arange(window, dtype=torch.float32).view(1, window, 1, 1, 1).expand(1, window, 1, 2, 2).clone()
    seen: dict[int, float] = {}
    for start, end in plan_windows(num_frames, window, overlap):
        for local in range(end - start):
            value = noise[0, local, 0, 0, 0].item()
            assert seen.setdefault(start + local, value) == value
        noise = rotate_window_noise(noise, overlap)
    assert len(seen) == num_frames


def test_blend_weights_and_stitch() -> None:
    weights = blend_weights(4)
    assert weights.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    result = torch.zeros(1, 10, 1, 1, 1)
    stitch_window(result, torch.full((1, 6, 1, 1, 1), 5.0), 0, 6, None)
    stitch_window(result, torch.full((1, 6, 1, 1, 1), 2.0), 2, 8, weights)
    values = result.flatten().tolist()
    # frames 2..5 crossfade from the old window (5) to the new (2); 6..7 new; 8..9 untouched.
    assert values == pytest.approx([5, 5, 5, 4, 3, 2, 2, 2, 0, 0])


def test_schedule_and_euler(parts: tuple[DepthCrafterUNet, SVDComponents]) -> None:
    sigmas, timesteps, init_sigma = karras_schedule(parts[1], 8, torch.device("cpu"))
    assert sigmas[0].item() == pytest.approx(700.0) and sigmas[-1].item() == 0.0 and len(timesteps) == 8
    assert init_sigma.item() == pytest.approx((700.0**2 + 1) ** 0.5)
    scheduler = parts[1].make_scheduler()
    scheduler.set_timesteps(8)
    sample = torch.randn(1, 3, 4, 2, 2) * 700
    for i, t in enumerate(scheduler.timesteps):
        v = torch.randn_like(sample)
        assert torch.equal(scale_model_input(sample, sigmas[i]), scheduler.scale_model_input(sample, t))
        expected = scheduler.step(v, t, sample).prev_sample
        assert torch.equal(euler_step(v, sample, sigmas[i], sigmas[i + 1]), expected)
        sample = expected


def test_minmax_normalize() -> None:
    out = minmax_normalize(torch.tensor([[2.0, 4.0], [3.0, 6.0]]))
    assert out.min() == 0 and out.max() == 1
    assert torch.all(minmax_normalize(torch.ones(2, 3)) == 0.5)


# -- the pipeline


@pytest.mark.parametrize("num_frames", [1, 5, 6, 13])
def test_output_length_and_size(pipe: VideoDepthPipeline, num_frames: int) -> None:
    depth = pipe(clip(num_frames), fast())
    assert depth.shape == (num_frames, 37, 53) and depth.dtype == torch.float32 and depth.device.type == "cpu"
    assert depth.min().item() == 0.0 and depth.max().item() == 1.0
    assert pipe.last_stats.processing_size == (64, 64)
    assert pipe.last_stats.windows == plan_windows(num_frames, 6, 2)


def test_deterministic_for_a_seed(pipe: VideoDepthPipeline) -> None:
    frames = clip(7)
    first, second = pipe(frames, fast(seed=3)), pipe(frames, fast(seed=3))
    assert torch.equal(first, second)
    assert not torch.equal(first, pipe(frames, fast(seed=4)))


def test_window_noise_shared_in_the_pipeline(pipe: VideoDepthPipeline) -> None:
    """At step 0, window 2's overlap frames = window 1's last frames' noise (+ x0_prev/√(σ²+1), tiny at σ=700)."""
    samples: list[torch.Tensor] = []

    def record(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        samples.append((args[0] if args else kwargs["sample"])[:, :, :4].clone())

    handle = pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        pipe(clip(13), fast(guidance_scale=1.0))
    finally:
        handle.remove()
    steps = FAST["num_inference_steps"]
    first, second, third = samples[0], samples[steps], samples[2 * steps]
    assert first.shape[1] == 6 and second.shape[1] == 6 and third.shape[1] == 5
    torch.testing.assert_close(second[:, :2], first[:, 4:6], atol=0.02, rtol=0)  # shared frames: same noise
    torch.testing.assert_close(second[:, 2:], first[:, :4], atol=1e-5, rtol=0)  # rotation: fresh frames
    torch.testing.assert_close(third[:, :2], second[:, 4:6], atol=0.02, rtol=0)


def test_progress_and_interrupt(pipe: VideoDepthPipeline) -> None:
    calls: list[tuple[int, int]] = []
    pipe(clip(13), fast(), progress=lambda w, s: calls.append((w, s)))
    assert calls == [(w, s) for w in range(3) for s in range(2)]
    assert VideoDepthPipeline.num_progress_steps(13, fast()) == 6

    class Stop(Exception):
        pass

    def interrupt() -> None:
        if len(calls) >= 8:
            raise Stop

    with pytest.raises(Stop):
        pipe(clip(13), fast(), progress=lambda w, s: calls.append((w, s)), interrupt=interrupt)


def test_batched_cfg_equals_two_passes(pipe: VideoDepthPipeline) -> None:
    frames = clip(7)
    batched = pipe(frames, fast(batch_cfg=True))
    separate = pipe(frames, fast(batch_cfg=False))
    torch.testing.assert_close(batched, separate, atol=1e-4, rtol=0)


def test_encode_chunk_size_is_memory_only(pipe: VideoDepthPipeline) -> None:
    frames = clip(7)
    torch.testing.assert_close(
        pipe(frames, fast(encode_chunk_size=1)), pipe(frames, fast(encode_chunk_size=8)), atol=1e-4, rtol=0
    )


def test_reference_rng_and_preset_noise(pipe: VideoDepthPipeline) -> None:
    """reference_rng draws [T,3,h,w] then the window from one generator: same as passing those draws in."""
    frames, settings = clip(7), fast(reference_rng=True, seed=11)
    g = torch.Generator().manual_seed(11)
    aug = torch.randn(7, 3, 64, 64, generator=g)
    latents = torch.randn(1, 6, 4, 8, 8, generator=g)
    drawn = pipe(frames, settings)
    preset = pipe(frames, settings, aug_noise=aug, initial_latents=latents[0])
    assert torch.equal(drawn, preset)


def test_vae_encode_fp32_path(pipe: VideoDepthPipeline) -> None:
    depth = pipe(clip(5), fast(vae_encode_fp32=True))
    assert depth.shape == (5, 37, 53)
    assert pipe.components.vae.dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_compute_dtypes(model_dirs: tuple[Path, Path], dtype: torch.dtype) -> None:
    pipeline = VideoDepthPipeline.from_folders(*model_dirs, dtype=dtype, device="cpu")
    assert pipeline.unet.dtype == dtype and pipeline.components.vae.dtype == dtype
    depth = pipeline(clip(3, 40, 72), fast(vae_encode_fp32=dtype != torch.float32))
    assert depth.shape == (3, 40, 72) and depth.dtype == torch.float32 and torch.isfinite(depth).all()


def test_single_key_attention_is_the_same_math(model_dirs: tuple[Path, Path]) -> None:
    frames = clip(5)
    shortcut = VideoDepthPipeline.from_folders(*model_dirs, dtype=torch.float32, device="cpu")
    default = VideoDepthPipeline.from_folders(
        *model_dirs, dtype=torch.float32, device="cpu", single_key_attention=False
    )
    # fp32 rounding of two orders of the same sums, through the steps and the clip's min-max normalisation: 1.5e-5
    # on some CPUs (the kernels differ by instruction set); a wrong shortcut changes the depth by orders more
    torch.testing.assert_close(shortcut(frames, fast()), default(frames, fast()), atol=1e-4, rtol=0)


def test_offload_and_profile(parts: tuple[DepthCrafterUNet, SVDComponents]) -> None:
    pipeline = VideoDepthPipeline(*parts, device="cpu", dtype=torch.float32, offload=True)
    depth = pipeline(clip(5), fast(), profile=True)
    assert depth.shape == (5, 37, 53)
    assert {"clip", "vae_encode", "unet", "vae_decode"} <= set(pipeline.last_stats.seconds)


def test_tiny_and_large_inputs(pipe: VideoDepthPipeline) -> None:
    assert pipe(clip(2, 1, 1), fast()).shape == (2, 1, 1)  # processed at 64x64, resized back
    depth = pipe(clip(2, 150, 90), fast(max_res=64))  # downscaled to the 64 px limit, output at input size
    assert pipe.last_stats.processing_size == (64, 64) and depth.shape == (2, 150, 90)


# -- errors


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (torch.zeros(0, 32, 32, 3), "at least 1 frame"),
        (torch.zeros(32, 32, 3), "frame axis"),
        (torch.zeros(2, 32, 32, 2), "3 \\(RGB\\) channels"),
        (torch.zeros(2, 32, 32, 3, dtype=torch.uint8), "divide uint8 frames by 255"),
        (torch.zeros(2, 0, 32, 3), "no pixels"),
        ("not a tensor", "torch.Tensor"),
    ],
)
def test_bad_frames(frames: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_frames(frames)  # type: ignore[arg-type]


def test_working_memory_estimate() -> None:
    """Bytes a memory manager must free beyond the weights: at least what was measured on the GPU (bench/README.md:
    the eager decode stage peaked 13.29 GiB with 4.20 GiB of weights at 1024x576, fp16), and it scales sensibly."""
    gib = 1024**3
    sc = DepthSettings(batch_cfg=False)
    base = working_memory_bytes((576, 1024), 70, sc)
    assert 13.29 - 4.20 <= base / gib <= 12
    assert working_memory_bytes((576, 1024), 70, sc, torch.float32) == pytest.approx(2 * base, rel=1e-6)
    assert working_memory_bytes((1152, 2048), 70, sc) == pytest.approx(4 * base, rel=1e-6)
    assert working_memory_bytes((576, 1024), 3, sc) < base  # a 3-frame clip decodes 3 frames at a time
    # One 110-frame UNet pass measured 12.20 - 4.20 GiB with diffusers' plain blocks (7.07 lean; bench/README.md,
    # 2026-12-04); batched guidance doubles the batch, and the UNet becomes the largest stage.
    single = stage_memory_bytes((576, 1024), 110, DepthSettings(window_size=110, guidance_scale=1.0))["unet"]
    assert single / gib >= 12.20 - 4.20
    batched = working_memory_bytes((576, 1024), 200, DepthSettings(window_size=110, batch_cfg=True))
    assert batched / gib >= 2 * (12.20 - 4.20)


def test_nan_frames(pipe: VideoDepthPipeline) -> None:
    frames = clip(4)
    frames[2, 5, 5, 1] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite values \(frames \[2\]\)"):
        pipe(frames, fast())


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_non_finite_pixels_are_found_anywhere(value: float, dtype: torch.dtype) -> None:
    frames = torch.rand(40, 33, 47, 3, dtype=dtype)
    assert check_frames(frames) is frames
    for where in [(0, 0, 0, 0), (17, 20, 31, 1), (39, 32, 46, 2)]:  # vectorised lanes, odd tails, the last element
        bad = frames.clone()
        bad[where] = value
        with pytest.raises(ValueError, match=rf"NaN or infinite values \(frames \[{where[0]}\]\)"):
            check_frames(bad)


def test_channel_variants() -> None:
    assert check_frames(torch.rand(2, 8, 8, 1)).shape == (2, 8, 8, 3)
    assert check_frames(torch.rand(2, 8, 8, 4)).shape == (2, 8, 8, 3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"overlap": 6}, "overlap must be in"),
        ({"window_size": 0}, "window_size must be >= 1"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"max_res": 32}, "max_res must be in"),
        ({"max_res": 8192}, "max_res must be in"),
        ({"decode_chunk_size": 0}, "chunk_size"),
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"resize_mode": "nearest"}, "resize_mode"),
    ],
)
def test_bad_settings(pipe: VideoDepthPipeline, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pipe(clip(2), fast(**overrides))


def test_inpainting_unet_refused(parts: tuple[DepthCrafterUNet, SVDComponents]) -> None:
    with pytest.raises(ValueError, match="StereoCrafter inpainting UNet"):
        VideoDepthPipeline(tiny_unet(9), parts[1], device="cpu", dtype=torch.float32)  # type: ignore[arg-type]


def test_feed_forward_chunking_is_exact_math(parts: tuple[DepthCrafterUNet, SVDComponents]) -> None:
    unet = parts[0]
    sample, emb = torch.randn(2, 5, 8, 8, 8), torch.randn(2, 5, 32)
    ids, t = torch.tensor([[7.0, 127.0, 0.02]] * 2), torch.tensor(1.3)
    with torch.inference_mode():
        plain = unet(sample, t, emb, ids, return_dict=False)[0]
        assert chunk_feed_forward(unet, 7) > 0  # 7 divides none of the token counts
        try:
            chunked = unet(sample, t, emb, ids, return_dict=False)[0]
        finally:
            chunk_feed_forward(unet, None)
        restored = unet(sample, t, emb, ids, return_dict=False)[0]
    torch.testing.assert_close(chunked, plain, atol=1e-5, rtol=1e-5)
    assert torch.equal(restored, plain)


def test_temporal_convs_as_2d_same_math(parts: tuple[DepthCrafterUNet, SVDComponents]) -> None:
    unet, svd = parts
    sample, emb = torch.randn(1, 5, 8, 8, 8), torch.randn(1, 5, 32)
    ids, t = torch.tensor([[7.0, 127.0, 0.02]]), torch.tensor(0.4)
    latents = torch.randn(5, 4, 4, 4)
    with torch.inference_mode():
        plain = unet(sample, t, emb, ids, return_dict=False)[0]
        decoded = svd.vae.decode(latents, num_frames=5).sample
        assert temporal_convs_as_2d(unet) > 0 and temporal_convs_as_2d(svd.vae) > 0
        try:
            patched = unet(sample, t, emb, ids, return_dict=False)[0]
            patched_decoded = svd.vae.decode(latents, num_frames=5).sample
        finally:
            temporal_convs_as_2d(unet, False)
            temporal_convs_as_2d(svd.vae, False)
        assert torch.equal(unet(sample, t, emb, ids, return_dict=False)[0], plain)
    torch.testing.assert_close(patched, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(patched_decoded, decoded, atol=1e-5, rtol=1e-5)


# -- streaming

# Window 8, overlap 3 (stride 5): frames become final at 5, 10, 15, ..., never on a decode chunk (4) boundary at first;
# encode chunks of 3 are aligned with neither the windows nor the input chunks.
STREAM = {"window_size": 8, "overlap": 3, "num_inference_steps": 2, "decode_chunk_size": 4, "encode_chunk_size": 3}


def stream_settings(**overrides: object) -> DepthSettings:
    return DepthSettings(**{**STREAM, **overrides})  # type: ignore[arg-type]


def chunked(frames: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    yield from frames.split(size)


@torch.inference_mode()
def whole_clip_depth(pipe: VideoDepthPipeline, frames: torch.Tensor, s: DepthSettings) -> torch.Tensor:
    """Raw depth the plain whole-clip way, from the pipeline's building blocks: encode every frame, denoise every window
    into one clip-long latent tensor, decode it all; one generator drawn as the reference draws (all augmentation
    noise, then one window of noise)."""
    num_frames, height, width = frames.shape[:3]
    size = processing_size(height, width, s.max_res)
    g = torch.Generator().manual_seed(s.seed)
    step = s.encode_chunk_size
    encoded = [pipe._encode_chunk(frames[i : i + step], i, size, s, g, None, False) for i in range(0, num_frames, step)]
    emb, cond = torch.cat([e for e, _ in encoded])[None], torch.cat([c for _, c in encoded])[None]
    window, overlap = effective_window(num_frames, s.window_size, s.overlap)
    sigmas, timesteps, init_sigma = karras_schedule(pipe.components, s.num_inference_steps, pipe.device)
    time_ids = torch.tensor([[s.fps_id, s.motion_bucket_id, s.noise_aug_strength]])
    noise = torch.randn(1, window, *cond.shape[2:], generator=g) * init_sigma
    result = torch.empty(cond.shape)
    for w, (start, end) in enumerate(plan_windows(num_frames, s.window_size, s.overlap)):
        latents = noise[:, : end - start].clone()
        noise = rotate_window_noise(noise, overlap)
        if w and overlap:
            latents[:, :overlap] = result[:, start : start + overlap] + latents[:, :overlap] / init_sigma * sigmas[0]
        latents = pipe._denoise_window(
            latents, cond[:, start:end], emb[:, start:end], time_ids, sigmas, timesteps, s, w, None, None
        )
        stitch_window(result, latents, start, end, blend_weights(overlap) if w else None)
    step = s.decode_chunk_size
    return torch.cat([pipe._decode_chunk(result[0, i : i + step], (height, width)) for i in range(0, num_frames, step)])


@pytest.mark.parametrize("num_frames", [5, 8, 21])
def test_stream_equals_whole_clip(pipe: VideoDepthPipeline, num_frames: int) -> None:
    """Bit-exact whatever the input chunking, below one window, at one window and over several (final at 5, 10, 15)."""
    frames, s = clip(num_frames, 48, 80), stream_settings()
    expected = whole_clip_depth(pipe, frames, s)
    for size in sorted({1, 5, num_frames}):
        parts = list(pipe.stream(chunked(frames, size), num_frames, s))
        assert [p.shape[0] for p in parts] == [min(4, num_frames - i) for i in range(0, num_frames, 4)]
        assert all(p.dtype == torch.float32 and p.device.type == "cpu" and p.shape[1:] == (48, 80) for p in parts)
        assert torch.equal(torch.cat(parts), expected), f"input chunks of {size}"
    assert torch.equal(pipe(frames, s), minmax_normalize(expected))
    assert pipe.last_stats.windows == plan_windows(num_frames, 8, 3)


def test_stream_rng_order(pipe: VideoDepthPipeline) -> None:
    """Default RNG = the reference's order from one generator: T per-frame augmentation draws, then the window."""
    frames, s = clip(13, 48, 80), stream_settings(seed=5)
    g = torch.Generator().manual_seed(5)
    aug = torch.stack([torch.randn(3, 64, 64, generator=g) for _ in range(13)])
    window = torch.randn(8, 4, 8, 8, generator=g)
    drawn = torch.cat(list(pipe.stream(chunked(frames, 4), 13, s)))
    preset = torch.cat(list(pipe.stream([frames], 13, s, initial_latents=window, _aug_noise=aug)))
    assert torch.equal(drawn, preset)


@pytest.mark.parametrize("num_frames", [20, 40])
def test_stream_is_lazy_and_bounded(pipe: VideoDepthPipeline, num_frames: int) -> None:
    frames, s = clip(num_frames, 48, 80), stream_settings()
    pulled = 0

    def source() -> Iterator[torch.Tensor]:
        nonlocal pulled
        for frame in frames.split(1):
            pulled += 1
            yield frame

    depth = pipe.stream(source(), num_frames, s)
    assert pulled == 0  # nothing happens before iteration
    leads, done = [], 0
    for part in depth:
        done += part.shape[0]
        leads.append(pulled - done)
        if done == 4:
            assert pulled == 9  # the first window (8 frames), rounded up to the encode chunk (3)
    assert done == pulled == num_frames
    assert max(leads) <= s.window_size + s.encode_chunk_size  # input is pulled about one window ahead, not more
    held = pipe.last_stats.max_buffered_frames  # whatever the clip length:
    assert held["input"] <= s.encode_chunk_size  # 1-frame input chunks
    assert held["encoded"] <= s.window_size + s.encode_chunk_size - 1
    assert held["latents"] <= s.window_size + s.decode_chunk_size - 1


@pytest.mark.parametrize(
    ("sizes", "num_frames", "message"),
    [
        ([5, 5, 5, 5], 21, "yielded 20 frames but num_frames is 21"),
        ([5, 5, 5, 5], 19, "more than num_frames = 19"),
        ([5, 5, 5, 5], 15, "more than num_frames = 15"),  # exact count reached, then one more chunk
    ],
)
def test_stream_frame_count_errors(pipe: VideoDepthPipeline, sizes: list[int], num_frames: int, message: str) -> None:
    frames = clip(sum(sizes), 48, 80)
    with pytest.raises(ValueError, match=message):
        list(pipe.stream(frames.split(sizes), num_frames, stream_settings()))


def test_stream_input_errors(pipe: VideoDepthPipeline) -> None:
    s = stream_settings()
    with pytest.raises(ValueError, match=r"Chunk 1 of the frames is 48x90 \(HxW\) but the chunks before it are 48x80"):
        list(pipe.stream([clip(3, 48, 80), clip(3, 48, 90)], 6, s))
    bad = clip(6, 48, 80)
    bad[4, 1, 1, 0] = float("inf")
    with pytest.raises(ValueError, match=r"Chunk 1 of the frames \(clip frames from 3\).*NaN or infinite.*\[1\]"):
        list(pipe.stream(bad.split(3), 6, s))
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        pipe.stream([], 0, s)  # raised at the call, before iteration
    with pytest.raises(ValueError, match=r"reference_rng=True.*\(__call__\)"):
        pipe.stream([clip(3)], 3, stream_settings(reference_rng=True))


def test_compile_marks_unet_blocks_and_decoder(model_dirs: tuple[Path, Path]) -> None:
    """compile=True compiles the UNet's repeated blocks and the VAE encoder and decoder (not CLIP or the rest),
    after the feed-forward chunking (made shareable between blocks). No compiled graph runs here."""
    from diffusers.models.attention import BasicTransformerBlock
    from diffusers.models.resnet import AlphaBlender, ResnetBlock2D, SpatioTemporalResBlock

    from stereocrafter.svd.compiled_svd import RowChunkedFeedForward, is_compiled, is_unet_block
    from stereocrafter.svd.frames_major_blocks import FramesMajorSpatioTemporalResBlock, SplitGroupNorm

    unet, svd = load_depthcrafter_unet(model_dirs[0], torch.float32), load_svd_components(model_dirs[1], torch.float32)
    eager = VideoDepthPipeline(unet, svd, device="cpu", dtype=torch.float32, ff_chunk_rows=7)
    assert not eager.compiled and not is_compiled(unet) and not is_compiled(svd.vae)
    lean = [m for m in unet.modules() if isinstance(m, BasicTransformerBlock | ResnetBlock2D | AlphaBlender)]
    assert lean and all("forward" in m.__dict__ for m in lean)  # eager: stereocrafter.svd.lean_unet's pieces
    pipe = VideoDepthPipeline(unet, svd, device="cpu", dtype=torch.float32, compile=True, ff_chunk_rows=7)
    assert pipe.compiled
    assert not any("forward" in m.__dict__ for m in lean)  # per-instance forwards would split the shared graphs
    compiled = [m for m in unet.modules() if getattr(m, "_compiled_call_impl", None) is not None]
    assert {type(m).__name__ for m in compiled} == {
        "FramesMajorSpatioTemporalResBlock",
        "TransformerSpatioTemporalModel",
    }
    assert len(compiled) == sum(is_unet_block(m) for m in unet.modules())
    assert all(type(m) is not SpatioTemporalResBlock for m in unet.modules())  # every one swapped, none left out
    # The VAE's norms and the decoder's spatio-temporal blocks are swapped too.
    assert all(type(m) is SplitGroupNorm for m in svd.vae.modules() if isinstance(m, torch.nn.GroupNorm))
    assert all(type(m) is not SpatioTemporalResBlock for m in svd.vae.decoder.modules())
    assert any(isinstance(m, FramesMajorSpatioTemporalResBlock) for m in svd.vae.decoder.modules())
    feed_forwards = [m for m in unet.modules() if isinstance(m, RowChunkedFeedForward)]
    assert feed_forwards and all(m.max_rows == 7 for m in feed_forwards)
    assert is_compiled(svd.vae.decoder) and is_compiled(svd.vae.encoder) and not is_compiled(svd.image_encoder)


def test_compiled_encoder_sees_one_chunk_shape(model_dirs: tuple[Path, Path]) -> None:
    """When compiled, a short last encode chunk is padded to the chunk size (one compiled shape): same latents."""
    pipe = VideoDepthPipeline.from_folders(*model_dirs, dtype=torch.float32, device="cpu")
    batches: list[int] = []
    pipe.components.vae.encoder.register_forward_hook(lambda _m, args, _o: batches.append(args[0].shape[0]))
    frames, settings = clip(7), fast(encode_chunk_size=3)
    plain = pipe(frames, settings)
    assert batches == [3, 3, 1]
    batches.clear()
    pipe.compiled = True  # the flag alone: compiling itself takes minutes on a CPU
    padded = pipe(frames, settings)
    assert batches == [3, 3, 3]
    torch.testing.assert_close(padded, plain, atol=1e-4, rtol=0)  # batched-kernel rounding, as encode_chunk_size


def test_depth_presets():
    """The two named samplings: DepthCrafter 1.0.1's run.py defaults and StereoCrafter's (= the dataclass defaults,
    reference.md §1.4); other fields stay at their defaults, overrides apply, unknown names are refused."""
    fast = DepthSettings.preset("depthcrafter", seed=7)
    assert (fast.num_inference_steps, fast.guidance_scale, fast.window_size, fast.overlap) == (5, 1.0, 110, 25)
    assert fast.seed == 7 and not fast.do_cfg and fast.max_res == DepthSettings().max_res
    assert DepthSettings.preset("stereocrafter") == DepthSettings()
    with pytest.raises(ValueError, match="Unknown depth preset 'fast': use one of depthcrafter, stereocrafter"):
        DepthSettings.preset("fast")
