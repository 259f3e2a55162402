"""Where each model comes from (Hugging Face repository, revision, files) and where it goes in a models folder.

A models folder has ComfyUI's layout, one sub-folder per kind, Hugging Face folders kept as they are::

    <models>/depthcrafter/DepthCrafter/                               tencent/DepthCrafter
    <models>/stereocrafter/StereoCrafter/                             TencentARC/StereoCrafter
    <models>/diffusers/stable-video-diffusion-img2vid-xt-1-1/         stabilityai/stable-video-diffusion-img2vid-xt-1-1

The ComfyUI nodes search ComfyUI's folders for these kinds; the command line searches one models folder
(:func:`default_models_root`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: Environment variable naming the command line's models folder.
MODELS_ENV = "STEREOCRAFTER3D_MODELS"
#: The command line's models folder outside a ComfyUI tree.
USER_MODELS_ROOT = Path("~/.cache/stereocrafter3d/models")


@dataclass(frozen=True)
class ModelSource:
    """A model kind: its models sub-folder, default folder name, Hugging Face repo, revision and files."""

    folder_name: str
    default_name: str
    repo_id: str
    revision: str
    allow_patterns: tuple[str, ...]
    gated: bool = False


DEPTHCRAFTER = ModelSource(
    "depthcrafter",
    "DepthCrafter",
    "tencent/DepthCrafter",
    "c1a22b53f8abf80cd0b025adf29e637773229eca",
    ("config.json", "diffusion_pytorch_model.safetensors"),
)
STEREOCRAFTER = ModelSource(
    "stereocrafter",
    "StereoCrafter",
    "TencentARC/StereoCrafter",
    "main",  # no commit hash could be verified offline; see the README
    ("config.json", "diffusion_pytorch_model.safetensors", "unet_diffusers/*"),
)
SVD = ModelSource(
    "diffusers",
    "stable-video-diffusion-img2vid-xt-1-1",
    "stabilityai/stable-video-diffusion-img2vid-xt-1-1",
    "main",  # no commit hash could be verified offline; see the README
    (
        "model_index.json",
        "feature_extractor/*",
        "scheduler/*",
        "image_encoder/config.json",
        "image_encoder/model.fp16.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ),
    gated=True,
)


def comfyui_models_root(package_dir: Path | None = None) -> Path | None:
    """``ComfyUI/models`` when this pack sits in ``ComfyUI/custom_nodes/<pack>/``, else None."""
    package_dir = package_dir or Path(__file__).resolve().parent.parent
    custom_nodes = package_dir.parent
    models = custom_nodes.parent / "models"
    if custom_nodes.name == "custom_nodes" and models.is_dir():
        return models
    return None


def default_models_root() -> Path:
    """``$STEREOCRAFTER3D_MODELS``, else ComfyUI's models folder when run inside a ComfyUI tree, else
    ``~/.cache/stereocrafter3d/models``."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV]).expanduser()
    return comfyui_models_root() or USER_MODELS_ROOT.expanduser()


def find_model_dir(
    source: ModelSource,
    roots: Sequence[Path],
    name: str | None = None,
    download: bool = False,
    download_hint: str = "allow the download of missing weights",
) -> Path:
    """The folder ``name`` (default: the source's default name) of ``source``'s kind under one of ``roots``.

    ``roots`` are kind folders (e.g. ``models/depthcrafter``). An absolute existing ``name`` is used as is. A missing
    folder is downloaded into the first root when ``download`` is on, else FileNotFoundError names the fix (the
    caller's way to turn the download on is ``download_hint``).
    """
    name = name or source.default_name
    if Path(name).is_absolute() and Path(name).is_dir():
        return Path(name)
    for root in roots:
        candidate = Path(root) / name
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    if not download:
        searched = ", ".join(str(root) for root in roots)
        raise FileNotFoundError(
            f"'{name}' was not found in {searched}. Put the {source.repo_id} files there (keeping the Hugging Face "
            f"layout), or {download_hint} to fetch them."
        )
    return download_model(source, Path(roots[0]) / name)


def download_model(source: ModelSource, target: Path) -> Path:
    """Fetch ``source`` into ``target`` with huggingface_hub at its pinned revision."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError as exc:
        raise RuntimeError("downloading weights needs huggingface_hub: pip install huggingface_hub") from exc
    logger.info("Downloading %s@%s to %s", source.repo_id, source.revision, target)
    try:
        snapshot_download(
            source.repo_id, revision=source.revision, local_dir=target, allow_patterns=list(source.allow_patterns)
        )
    except (GatedRepoError, RepositoryNotFoundError) as exc:
        if source.gated:
            raise RuntimeError(
                f"{source.repo_id} is gated: accept its licence on huggingface.co while logged in, then run "
                "`huggingface-cli login` (or set HF_TOKEN) on this machine and try again."
            ) from exc
        raise
    return target
