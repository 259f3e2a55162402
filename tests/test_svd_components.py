"""The shared SVD loader and the shared CLIP/VAE helpers (reference numerics)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing

from stereocrafter.model_files import ModelFilesError
from stereocrafter.svd.svd_components import SVDComponents, load_svd_components
from stereocrafter.svd.svd_preprocess import (
    clip_image_embeds,
    clip_pixels,
    encode_clip_chunks,
    iter_vae_decode,
    module_dtype,
    resize_with_antialiasing,
    vae_decode_chunks,
    vae_encode_chunks,
    vae_encode_mode,
)
from tests.tiny_models import make_svd_folder, tiny_clip, tiny_vae

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def svd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_svd_folder(tmp_path_factory.mktemp("svd") / "svd-xt-1-1", fp16_variant=True, full=True)


@pytest.fixture(scope="module")
def svd32(svd_dir: Path) -> SVDComponents:
    return load_svd_components(svd_dir, torch.float32)


def test_loads_components(svd32: SVDComponents, svd_dir: Path) -> None:
    assert svd32.folder == svd_dir
    assert svd32.vae.dtype == torch.float32 and svd32.image_encoder.dtype == torch.float32
    assert not svd32.vae.training and not any(p.requires_grad for p in svd32.vae.parameters())
    assert svd32.clip_size == 224
    assert svd32.clip_mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert svd32.vae_scaling_factor == pytest.approx(0.18215)
    scheduler = svd32.make_scheduler()
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.use_karras_sigmas
    assert svd32.make_scheduler() is not scheduler  # fresh state for every run


def test_reference_sigmas(svd32: SVDComponents) -> None:
    scheduler = svd32.make_scheduler()
    scheduler.set_timesteps(8)
    expected = [700.0, 286.54, 102.90, 30.99, 7.276, 1.168, 0.0974, 0.002, 0.0]
    assert scheduler.sigmas.tolist() == pytest.approx(expected, rel=2e-3)
    assert scheduler.timesteps[0].item() == pytest.approx(0.25 * torch.log(torch.tensor(700.0)).item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_dtypes(svd_dir: Path, dtype: torch.dtype) -> None:
    components = load_svd_components(svd_dir, dtype)
    assert components.vae.dtype == dtype and components.image_encoder.dtype == dtype


def test_weights_equal_the_saved_model(svd_dir: Path, tmp_path: Path) -> None:
    """fp32 files only: loaded weights equal the model that wrote them (exact CLIP embeddings)."""
    full = make_svd_folder(tmp_path / "full", fp16_variant=False)
    components = load_svd_components(full, torch.float32)
    pixels = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        expected = tiny_clip()(pixel_values=pixels).image_embeds
        got = components.image_encoder(pixel_values=pixels).image_embeds
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for name, value in tiny_vae().state_dict().items():
        assert torch.equal(components.vae.state_dict()[name], value), name


def test_corrupt_vae_weights(svd_dir: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(svd_dir, tmp_path / "svd"))
    weights = folder / "vae" / "diffusion_pytorch_model.fp16.safetensors"
    weights.write_bytes(weights.read_bytes()[: len(weights.read_bytes()) // 2])
    with pytest.raises(ModelFilesError, match="corrupt or incomplete.*download it again"):
        load_svd_components(folder, torch.float32)


def test_missing_image_encoder_weights(svd_dir: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(svd_dir, tmp_path / "svd"))
    for file in (folder / "image_encoder").glob("*.safetensors"):
        file.unlink()
    with pytest.raises(ModelFilesError, match="No weights.*model.fp16.safetensors"):
        load_svd_components(folder, torch.float32)


@pytest.mark.parametrize("shape", [(1, 3, 576, 1024), (1, 3, 37, 53), (1, 3, 100, 30), (1, 3, 224, 224)])
def test_resize_matches_diffusers(shape: tuple[int, ...]) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.equal(resize_with_antialiasing(x, (224, 224)), _resize_with_antialiasing(x, (224, 224)))


def test_clip_pixels_normalisation() -> None:
    x = torch.zeros(1, 3, 64, 64)  # -> 0.5 grey after (x + 1) / 2
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.5)
    out = clip_pixels(x, mean, std, size=224)
    assert out.shape == (1, 3, 224, 224)
    expected = torch.tensor([(0.5 - m) / s for m, s in zip(mean, std, strict=True)])
    torch.testing.assert_close(out[0, :, 100, 100], expected)


def test_clip_chunks_equal_one_batch(svd32: SVDComponents) -> None:
    frames = torch.rand(5, 3, 64, 96) * 2 - 1
    args = (svd32.image_encoder, svd32.clip_mean, svd32.clip_std)
    whole = clip_image_embeds(frames, *args)
    chunked = encode_clip_chunks(frames, *args, chunk_size=2)
    assert chunked.shape == (5, 32)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


def test_vae_encode_mode_and_chunks(svd32: SVDComponents) -> None:
    frames = torch.rand(5, 3, 64, 96) * 2 - 1
    latents = vae_encode_chunks(svd32.vae, frames, chunk_size=2, out_device="cpu")
    assert latents.shape == (5, 4, 8, 12)
    with torch.inference_mode():
        mean = svd32.vae.encode(frames).latent_dist.mean  # posterior mode = mean, no scaling factor
    torch.testing.assert_close(latents, mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(vae_encode_mode(svd32.vae, frames[:1]), mean[:1], rtol=1e-5, atol=1e-5)


def test_vae_decode_chunks(svd32: SVDComponents) -> None:
    latents = torch.randn(5, 4, 4, 6)
    starts = [start for start, _ in iter_vae_decode(svd32.vae, latents[:, :, :2, :2], chunk_size=2)]
    assert starts == [0, 2, 4]
    decoded = vae_decode_chunks(svd32.vae, latents, chunk_size=2)
    assert decoded.shape == (5, 3, 32, 48) and decoded.dtype == torch.float32
    with torch.inference_mode():
        first = svd32.vae.decode(latents[:2] / svd32.vae_scaling_factor, num_frames=2).sample
    torch.testing.assert_close(decoded[:2], first, rtol=1e-4, atol=1e-5)


def test_module_dtype_restores_exactly(svd_dir: Path) -> None:
    components = load_svd_components(svd_dir, torch.float16)
    before = {k: v.clone() for k, v in components.vae.state_dict().items()}
    with module_dtype(components.vae, torch.float32) as vae:
        assert vae.dtype == torch.float32
    assert components.vae.dtype == torch.float16
    assert all(torch.equal(before[k], v) for k, v in components.vae.state_dict().items())
