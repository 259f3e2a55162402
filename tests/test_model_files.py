"""Finding and validating model folders: every bad layout gets a clear ModelFilesError naming the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from stereocrafter.depth.depthcrafter_unet import load_depthcrafter_unet
from stereocrafter.model_files import (
    ModelFilesError,
    find_depthcrafter_folder,
    find_svd_folder,
    find_unet_folder,
    find_weights,
    load_safetensors,
    resolve_snapshot,
)
from tests.tiny_models import make_depthcrafter_folder, make_stereocrafter_folder, make_svd_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "depthcrafter": make_depthcrafter_folder(root / "DepthCrafter"),
        "svd": make_svd_folder(root / "svd"),
        "stereo_sub": make_stereocrafter_folder(root / "StereoCrafter"),
        "stereo_flat": make_stereocrafter_folder(root / "StereoCrafterFlat", subfolder=None),
    }


def copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# -- DepthCrafter


def test_depthcrafter_folder_found(folders: dict[str, Path]) -> None:
    assert find_depthcrafter_folder(folders["depthcrafter"]) == folders["depthcrafter"]


def test_missing_folder() -> None:
    with pytest.raises(ModelFilesError, match="does not exist"):
        find_depthcrafter_folder("/nonexistent/DepthCrafter")


def test_file_instead_of_folder(folders: dict[str, Path]) -> None:
    with pytest.raises(ModelFilesError, match="FOLDER"):
        find_depthcrafter_folder(folders["depthcrafter"] / "config.json")


def test_missing_config(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_folder(folders["depthcrafter"], tmp_path / "dc")
    (folder / "config.json").unlink()
    with pytest.raises(ModelFilesError, match="config.json is missing.*tencent/DepthCrafter"):
        find_depthcrafter_folder(folder)


def test_invalid_json_config(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_folder(folders["depthcrafter"], tmp_path / "dc")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelFilesError, match="not valid JSON"):
        find_depthcrafter_folder(folder)


def test_missing_weights(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_folder(folders["depthcrafter"], tmp_path / "dc")
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelFilesError, match="No weights.*diffusion_pytorch_model"):
        find_depthcrafter_folder(folder)


def test_pickle_weights_refused(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_folder(folders["depthcrafter"], tmp_path / "dc")
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    (folder / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelFilesError, match="pickle.*safetensors only"):
        find_depthcrafter_folder(folder)


def test_truncated_safetensors(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_folder(folders["depthcrafter"], tmp_path / "dc")
    weights = folder / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(ModelFilesError, match="corrupt or incomplete.*download it again"):
        find_depthcrafter_folder(folder)
    with pytest.raises(ModelFilesError, match=r"diffusion_pytorch_model\.safetensors is corrupt"):
        load_safetensors(weights, "tencent/DepthCrafter")


def test_git_lfs_pointer(tmp_path: Path) -> None:
    pointer = tmp_path / "model.safetensors"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    with pytest.raises(ModelFilesError, match="git lfs pull"):
        load_safetensors(pointer, "repo")


def test_svd_root_given_as_depthcrafter(folders: dict[str, Path]) -> None:
    with pytest.raises(ModelFilesError, match="Stable Video Diffusion pipeline folder.*tencent/DepthCrafter"):
        find_depthcrafter_folder(folders["svd"])


def test_stereocrafter_unet_given_as_depthcrafter(folders: dict[str, Path]) -> None:
    with pytest.raises(ModelFilesError, match="in_channels=9.*StereoCrafter inpainting UNet"):
        find_depthcrafter_folder(folders["stereo_flat"])
    with pytest.raises(ModelFilesError, match="StereoCrafter folder"):
        find_depthcrafter_folder(folders["stereo_sub"])


def test_weights_not_matching_config(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_folder(folders["depthcrafter"], tmp_path / "dc")
    shutil.copy(
        folders["stereo_flat"] / "diffusion_pytorch_model.safetensors", folder / "diffusion_pytorch_model.safetensors"
    )
    with pytest.raises(ModelFilesError, match="do not match the config.json"):
        load_depthcrafter_unet(folder, torch.float32)


def test_hf_cache_layout(folders: dict[str, Path], tmp_path: Path) -> None:
    entry = tmp_path / "models--tencent--DepthCrafter"
    copy_folder(folders["depthcrafter"], entry / "snapshots" / "e83a487")
    assert resolve_snapshot(entry) == entry / "snapshots" / "e83a487"
    assert find_depthcrafter_folder(entry) == entry / "snapshots" / "e83a487"


def test_unknown_class_name_still_loads(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_folder(folders["depthcrafter"], tmp_path / "dc")
    text = (
        (folder / "config.json")
        .read_text()
        .replace("DiffusersUNetSpatioTemporalConditionModelDepthCrafter", "SomethingElse")
    )
    (folder / "config.json").write_text(text)
    assert load_depthcrafter_unet(folder, torch.float32).config.in_channels == 8


# -- StereoCrafter UNet


def test_stereocrafter_unet_layouts(folders: dict[str, Path]) -> None:
    assert find_unet_folder(folders["stereo_sub"]) == folders["stereo_sub"] / "unet_diffusers"
    assert find_unet_folder(folders["stereo_flat"]) == folders["stereo_flat"]


def test_depthcrafter_given_as_stereocrafter(folders: dict[str, Path]) -> None:
    with pytest.raises(ModelFilesError, match="in_channels=8.*DepthCrafter UNet"):
        find_unet_folder(folders["depthcrafter"])


def test_svd_root_given_as_stereocrafter(folders: dict[str, Path]) -> None:
    with pytest.raises(ModelFilesError, match="Stable Video Diffusion pipeline folder"):
        find_unet_folder(folders["svd"])


def test_empty_folder_as_stereocrafter(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesError, match="No config.json.*unet_diffusers"):
        find_unet_folder(tmp_path)


# -- SVD


def test_svd_folder_found(folders: dict[str, Path]) -> None:
    assert find_svd_folder(folders["svd"]) == folders["svd"]


def test_depthcrafter_given_as_svd(folders: dict[str, Path]) -> None:
    with pytest.raises(ModelFilesError, match="DepthCrafter UNet.*not the Stable Video Diffusion pipeline"):
        find_svd_folder(folders["depthcrafter"])


def test_svd_subfolder_given(folders: dict[str, Path]) -> None:
    with pytest.raises(ModelFilesError, match="vae/ subfolder; point this input at its parent"):
        find_svd_folder(folders["svd"] / "vae")


def test_svd_missing_component(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_folder(folders["svd"], tmp_path / "svd")
    shutil.rmtree(folder / "scheduler")
    with pytest.raises(ModelFilesError, match="no scheduler/ subfolder"):
        find_svd_folder(folder)


def test_fp16_variant_preferred(folders: dict[str, Path], tmp_path: Path) -> None:
    vae = folders["svd"] / "vae"
    assert find_weights(vae, "diffusion_pytorch_model", "r").name == "diffusion_pytorch_model.fp16.safetensors"
    full_only = make_svd_folder(tmp_path / "full", fp16_variant=False)
    chosen = find_weights(full_only / "vae", "diffusion_pytorch_model", "r")
    assert chosen.name == "diffusion_pytorch_model.safetensors"


# -- reading weights tensor by tensor (the GPU path)


def test_read_to_a_device_equals_the_memory_mapped_load(tmp_path: Path) -> None:
    """Every dtype, shape (scalars, empty tensors) and the metadata block read back as safetensors itself reads them."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    tensors = {
        "half": torch.randn(3, 5, generator=gen).half(),
        "bf16": torch.randn(7, generator=gen).bfloat16(),
        "f32": torch.randn(2, 2, 2, generator=gen),
        "i64": torch.arange(6).reshape(2, 3),
        "flag": torch.tensor([True, False, True]),
        "scalar": torch.tensor(1.5),
        "empty": torch.zeros(0, 4),
        "fp8": torch.randn(4, generator=gen).to(torch.float8_e4m3fn),
    }
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    mapped = load_safetensors(path, "r")
    streamed = load_safetensors(path, "r", device="cpu")
    assert streamed.keys() == mapped.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert streamed[name].dtype == tensor.dtype and streamed[name].shape == tensor.shape, name
        assert torch.equal(streamed[name].reshape(-1).view(torch.uint8), mapped[name].reshape(-1).view(torch.uint8))


def test_read_to_a_device_names_a_truncated_file(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = copy_folder(folders["depthcrafter"], tmp_path / "dc")
    weights = folder / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(ModelFilesError, match=r"diffusion_pytorch_model\.safetensors is corrupt"):
        load_safetensors(weights, "tencent/DepthCrafter", device="cpu")


def test_unet_loaded_to_a_device_matches_the_mapped_load(folders: dict[str, Path]) -> None:
    mapped = load_depthcrafter_unet(folders["depthcrafter"], torch.float32)
    streamed = load_depthcrafter_unet(folders["depthcrafter"], torch.float32, device="cpu")
    a, b = mapped.state_dict(), streamed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
