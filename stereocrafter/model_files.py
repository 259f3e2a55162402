"""Finding, validating and loading model folders in Hugging Face layouts (safetensors only).

Layouts handled (reference.md §5):

- SVD-xt-1-1 (``stabilityai/stable-video-diffusion-img2vid-xt-1-1``): ``model_index.json`` plus the ``vae/``,
  ``image_encoder/``, ``feature_extractor/`` and ``scheduler/`` subfolders.
- DepthCrafter (``tencent/DepthCrafter``): ``config.json`` + ``diffusion_pytorch_model.safetensors`` at the root.
- StereoCrafter inpainting UNet (``TencentARC/StereoCrafter``): the same files in ``unet_diffusers/`` or at the root.

Each folder may also be a Hugging Face cache entry (``models--org--name`` with ``snapshots/<hash>/``). Weights are
read from ``*.safetensors`` only, never from pickled ``.bin``/``.pt`` files; ``*.fp16.safetensors`` variants are
preferred when present. Every failure raises :class:`ModelFilesError` with a message that names the fix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

logger = logging.getLogger(__name__)

SVD_REPO = "stabilityai/stable-video-diffusion-img2vid-xt-1-1"
DEPTHCRAFTER_REPO = "tencent/DepthCrafter"
STEREOCRAFTER_REPO = "TencentARC/StereoCrafter"

DIFFUSERS_WEIGHTS = "diffusion_pytorch_model"
TRANSFORMERS_WEIGHTS = "model"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")

# in_channels of the SVD-architecture UNets this pack knows, to say which model a folder really holds.
UNET_KINDS = {
    8: f"the DepthCrafter UNet ({DEPTHCRAFTER_REPO})",
    9: f"the StereoCrafter inpainting UNet ({STEREOCRAFTER_REPO})",
}

M = TypeVar("M", bound=torch.nn.Module)


class ModelFilesError(ValueError):
    """A model folder is missing, incomplete, corrupt or holds a different model than expected."""


def resolve_snapshot(root: str | Path) -> Path:
    """The folder itself, or the newest ``snapshots/<hash>`` of a Hugging Face cache entry (``models--org--name``)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise ModelFilesError(f"Model folder {root} does not exist. Check the path, or download the model there.")
    if not root.is_dir():
        raise ModelFilesError(f"{root} is a file; give the model's FOLDER (the one that holds config.json).")
    snapshots = root / "snapshots"
    if snapshots.is_dir() and not (root / "config.json").exists() and not (root / "model_index.json").exists():
        candidates = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise ModelFilesError(f"{root} is a Hugging Face cache entry without snapshots; download the model again.")
        logger.info("Using Hugging Face cache snapshot %s", candidates[-1])
        return candidates[-1]
    return root


def read_json(path: Path, what: str, repo: str) -> dict[str, Any]:
    """Parse a JSON config file; a missing or broken file names the folder and the repository to fetch it from."""
    if not path.is_file():
        raise ModelFilesError(
            f"{path.name} is missing in {path.parent} ({what}). Download it from the Hugging Face repository {repo} "
            "into that folder, keeping the repository's layout."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFilesError(f"{path} is not valid JSON ({exc}); download it again from {repo}.") from exc
    if not isinstance(data, dict):
        raise ModelFilesError(f"{path} does not hold a JSON object; download it again from {repo}.")
    return data


def find_weights(folder: Path, stem: str, repo: str) -> Path:
    """``{stem}.fp16.safetensors`` when present, else ``{stem}.safetensors``; clear errors for missing or pickle-only
    weights. Sharded checkpoints (``*.safetensors.index.json``) are not used by these models and not supported."""
    for name in (f"{stem}.fp16.safetensors", f"{stem}.safetensors"):
        if (folder / name).is_file():
            return folder / name
    pickles = sorted(p.name for p in folder.glob(f"{stem}*") if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelFilesError(
            f"{folder} only has pickle weights ({', '.join(pickles)}). This pack loads safetensors only (pickles can "
            f"run code when loaded): download {stem}.safetensors (or {stem}.fp16.safetensors) from {repo}."
        )
    others = sorted(p.name for p in folder.glob("*.safetensors"))
    hint = f" Found instead: {', '.join(others)}." if others else ""
    raise ModelFilesError(
        f"No weights in {folder}: expected {stem}.fp16.safetensors or {stem}.safetensors.{hint} "
        f"Download them from {repo}, keeping the repository's layout."
    )


def load_safetensors(path: Path, repo: str, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a corrupt or truncated file (or a Git LFS pointer) names the fix.

    ``device`` None: CPU tensors backed by a memory map of the file (pages are read when first used). With a device
    (a GPU for weights that live there), the tensors are read one at a time with plain file reads and copied there:
    the host holds one tensor at a time. Moving a memory-mapped state dict to the GPU instead keeps every page of
    the file resident until the last tensor is released (a 3 GB UNet added 3 GB to the process's peak RSS).
    """
    try:
        head = path.open("rb").read(64)
    except OSError as exc:
        raise ModelFilesError(f"Cannot read {path}: {exc}.") from exc
    if head.startswith(b"version https://git-lfs"):
        raise ModelFilesError(
            f"{path} is a Git LFS pointer, not the weights: run `git lfs pull` in that repository, or download the "
            f"file from {repo}."
        )
    try:
        if device is None:
            return load_file(str(path), device="cpu")
        check_safetensors_header(path, repo)  # the library validates offsets and sizes; we only read
        return _read_tensors(path, torch.device(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFilesError(
            f"{path} is corrupt or incomplete ({exc}). Delete it and download it again from {repo}."
        ) from exc


#: safetensors dtype names → torch dtypes.
SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}  # fmt: skip


def _read_tensors(path: Path, device: torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of a (validated) safetensors file, read one by one into host memory and copied to ``device``.

    One host buffer serves every tensor (a copy from pageable memory returns once the buffer is read): a buffer
    per tensor would be freed into the C heap, which keeps the pages (the whole file's worth) until a trim.
    """
    tensors = {}
    with path.open("rb", buffering=0) as file:
        header_size = int.from_bytes(file.read(8), "little")
        header = json.loads(file.read(header_size))
        header.pop("__metadata__", None)
        base = 8 + header_size
        entries = sorted(header.items(), key=lambda item: item[1]["data_offsets"][0])  # file order
        largest = max((entry["data_offsets"][1] - entry["data_offsets"][0] for _, entry in entries), default=0)
        buffer = torch.empty(largest, dtype=torch.uint8)
        for name, entry in entries:
            dtype = SAFETENSORS_DTYPES.get(entry["dtype"])
            if dtype is None:
                raise ValueError(f"tensor {name} has dtype {entry['dtype']}, which this pack does not read")
            begin, end = entry["data_offsets"]
            host = buffer[: end - begin]
            file.seek(base + begin)
            if file.readinto(memoryview(host.numpy())) != end - begin:
                raise ValueError(f"the file ends inside tensor {name}")
            tensor = host.view(dtype).reshape(entry["shape"])
            # .to() of a CPU tensor to the CPU would return the buffer itself
            tensors[name] = tensor.clone() if device.type == "cpu" else tensor.to(device)
    return tensors


def check_safetensors_header(path: Path, repo: str) -> None:
    """Validate a safetensors header without reading the tensors (cheap; catches truncated downloads)."""
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError) as exc:
        raise ModelFilesError(
            f"{path} is corrupt or incomplete ({exc}). Delete it and download it again from {repo}."
        ) from exc


def build_module(factory: Callable[[], M], state_dict: dict[str, torch.Tensor], dtype: torch.dtype, source: Path) -> M:
    """Build a module on the meta device (no random init, no second copy of the weights) and assign ``state_dict``.

    Missing/unexpected keys or wrong shapes mean the weights do not belong to the config next to them.
    """
    with torch.device("meta"):
        module = factory()
    try:
        module.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelFilesError(
            f"The weights in {source} do not match the config.json next to them ({str(exc)[:500]}). "
            "The files come from different models or versions: download both again from the same repository."
        ) from exc
    _materialize_buffers(module, next(iter(state_dict.values())).device if state_dict else torch.device("cpu"))
    # torch's own .to(): diffusers' override warns about fp32-kept modules even when there are none.
    return torch.nn.Module.to(module, dtype=dtype).eval().requires_grad_(False)


def _materialize_buffers(module: torch.nn.Module, device: torch.device) -> None:
    """Non-persistent buffers are not in checkpoints and stay on the meta device: rebuild the known ones (on the
    weights' ``device``)."""
    for name, buffer in list(module.named_buffers()):
        if not buffer.is_meta:
            continue
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        if attr == "position_ids":  # CLIP embeddings: arange over positions, shape [1, n]
            owner.register_buffer(
                attr, torch.arange(buffer.shape[-1], device=device).expand(buffer.shape), persistent=False
            )
        else:
            raise ModelFilesError(f"Cannot initialise buffer {name} of {type(module).__name__}; update the pack.")


def describe_unet_config(config: dict[str, Any]) -> str:
    """A short human description of which UNet a config belongs to, from its in_channels."""
    in_channels = config.get("in_channels")
    return UNET_KINDS.get(in_channels, f"a UNet with in_channels={in_channels}")


def check_unet_config(config: dict[str, Any], expected_in_channels: int, folder: Path, wanted: str, repo: str) -> None:
    """Reject a config that is not an SVD-architecture UNet with ``expected_in_channels`` input channels."""
    if config.get("_class_name") == "WanVACETransformer3DModel":
        raise ModelFilesError(
            f"{folder} holds a Wan-VACE transformer (StereoCrafter2), not an SVD UNet: load it with "
            f"LoadStereoCrafter2 (command line: --inpaint-model stereocrafter2), or point this input at {wanted} "
            f"({repo})."
        )
    if "block_out_channels" not in config or "in_channels" not in config:
        raise ModelFilesError(
            f"{folder / 'config.json'} is not a UNet config (no block_out_channels/in_channels). Point this input at "
            f"{wanted} ({repo})."
        )
    in_channels = config["in_channels"]
    if in_channels != expected_in_channels:
        raise ModelFilesError(
            f"{folder} holds a UNet with in_channels={in_channels}, but {wanted} needs {expected_in_channels}: this "
            f"looks like {describe_unet_config(config)}. Point this input at {wanted} ({repo})."
        )


def _class_name(path: Path) -> str | None:
    """``_class_name`` of a JSON config, None when it is missing or unreadable (listing folders never fails)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data.get("_class_name") if isinstance(data, dict) else None


def model_kind(folder: Path) -> str | None:
    """Which of the models that share a kind folder ``folder`` holds, from its configs alone: ``stereocrafter``
    (v1's SVD UNet), ``stereocrafter2`` (the Wan-VACE transformer), ``svd`` or ``wan_vace_base`` (pipelines in
    models/diffusers); None when it is none of them or not downloaded yet."""
    index = _class_name(folder / "model_index.json")
    if index is not None:
        return {"StableVideoDiffusionPipeline": "svd", "WanVACEPipeline": "wan_vace_base"}.get(index)
    if (folder / "unet_diffusers" / "config.json").is_file():
        return "stereocrafter"
    for config in (folder / "config.json", folder / "transformer" / "config.json"):
        name = _class_name(config)
        if name == "WanVACETransformer3DModel":
            return "stereocrafter2"
        if name == "UNetSpatioTemporalConditionModel" and config.parent == folder:
            return "stereocrafter"
    return None


def looks_like_svd_root(folder: Path) -> bool:
    """A diffusers pipeline root (SVD) rather than a single model folder."""
    return (folder / "model_index.json").is_file() or ((folder / "vae").is_dir() and (folder / "unet").is_dir())


def find_depthcrafter_folder(root: str | Path) -> Path:
    """The folder holding DepthCrafter's UNet (config.json + weights at its root), validated.

    Raises:
        ModelFilesError: missing folder/config/weights, an SVD root or a StereoCrafter UNet given instead.
    """
    folder = resolve_snapshot(root)
    wanted = "the DepthCrafter UNet folder"
    if not (folder / "config.json").is_file():
        if looks_like_svd_root(folder):
            raise ModelFilesError(
                f"{folder} is a Stable Video Diffusion pipeline folder (model_index.json, unet/, vae/), not "
                f"DepthCrafter. Point this input at the folder downloaded from {DEPTHCRAFTER_REPO} (config.json and "
                "diffusion_pytorch_model.safetensors at its root); the SVD folder goes to the SVD input."
            )
        if (folder / "unet_diffusers" / "config.json").is_file():
            raise ModelFilesError(
                f"{folder} is the StereoCrafter folder (unet_diffusers/), not DepthCrafter. Point this input at the "
                f"folder downloaded from {DEPTHCRAFTER_REPO}."
            )
    config = read_json(folder / "config.json", "DepthCrafter UNet config", DEPTHCRAFTER_REPO)
    check_unet_config(config, 8, folder, wanted, DEPTHCRAFTER_REPO)
    check_safetensors_header(find_weights(folder, DIFFUSERS_WEIGHTS, DEPTHCRAFTER_REPO), DEPTHCRAFTER_REPO)
    return folder


def find_unet_folder(root: str | Path, expected_in_channels: int = 9) -> Path:
    """StereoCrafter's inpainting UNet: ``root/unet_diffusers/`` (official code) or ``root/`` itself (HF tree, svjack).

    Raises:
        ModelFilesError: missing folder/config/weights, or a UNet with other in_channels (e.g. DepthCrafter's 8).
    """
    base = resolve_snapshot(root)
    wanted = "the StereoCrafter inpainting UNet folder"
    candidates = [base / "unet_diffusers", base]
    folder = next((c for c in candidates if (c / "config.json").is_file()), None)
    if folder is None:
        if looks_like_svd_root(base):
            raise ModelFilesError(
                f"{base} is a Stable Video Diffusion pipeline folder, not StereoCrafter's UNet. Point this input at "
                f"the folder downloaded from {STEREOCRAFTER_REPO} (unet_diffusers/ or config.json at its root)."
            )
        raise ModelFilesError(
            f"No config.json in {base} or {base / 'unet_diffusers'}. Download {STEREOCRAFTER_REPO} there, keeping "
            "its layout."
        )
    config = read_json(folder / "config.json", "StereoCrafter UNet config", STEREOCRAFTER_REPO)
    check_unet_config(config, expected_in_channels, folder, wanted, STEREOCRAFTER_REPO)
    check_safetensors_header(find_weights(folder, DIFFUSERS_WEIGHTS, STEREOCRAFTER_REPO), STEREOCRAFTER_REPO)
    return folder


def find_svd_folder(root: str | Path) -> Path:
    """The SVD-xt-1-1 pipeline root (``model_index.json`` and the component subfolders), validated for the parts
    this pack uses (``vae``, ``image_encoder``, ``feature_extractor``, ``scheduler``; the SVD ``unet/`` is not needed).

    Raises:
        ModelFilesError: missing folder/files, or a single-model folder (e.g. DepthCrafter) given instead.
    """
    folder = resolve_snapshot(root)
    if not looks_like_svd_root(folder) and not (folder / "vae").is_dir():
        if folder.name in ("vae", "image_encoder", "feature_extractor", "scheduler", "unet"):
            raise ModelFilesError(
                f"{folder} is the {folder.name}/ subfolder; point this input at its parent, the {SVD_REPO} folder."
            )
        if (folder / "config.json").is_file():
            config = read_json(folder / "config.json", "config", SVD_REPO)
            is_unet = "in_channels" in config and "cross_attention_dim" in config
            what = describe_unet_config(config) if is_unet else "a single model"
            raise ModelFilesError(
                f"{folder} holds {what}, not the Stable Video Diffusion pipeline. Point this input at the folder "
                f"downloaded from {SVD_REPO} (model_index.json with vae/, image_encoder/, feature_extractor/, "
                "scheduler/ inside)."
            )
        raise ModelFilesError(
            f"{folder} is not a Stable Video Diffusion folder (no model_index.json, no vae/). Download {SVD_REPO} "
            "there (the repository is gated: accept its licence on Hugging Face first)."
        )
    index = folder / "model_index.json"
    if index.is_file() and read_json(index, "pipeline index", SVD_REPO).get("_class_name") == "WanVACEPipeline":
        raise ModelFilesError(
            f"{folder} is the Wan2.1-VACE base of StereoCrafter2, not Stable Video Diffusion: it goes to "
            f"LoadStereoCrafter2's wan_base input. Point this input at the {SVD_REPO} folder."
        )
    for sub in ("vae", "image_encoder", "feature_extractor", "scheduler"):
        if not (folder / sub).is_dir():
            raise ModelFilesError(
                f"{folder} has no {sub}/ subfolder. Download it from {SVD_REPO}, keeping the repository's layout."
            )
    return folder
