"""Where the pack's model weights live in ComfyUI's model folders, and the opt-in download of missing ones.

Layout (Hugging Face folders kept as they are):
  models/depthcrafter/<name>/     tencent/DepthCrafter (config.json + diffusion_pytorch_model.safetensors)
  models/stereocrafter/<name>/    TencentARC/StereoCrafter (unet_diffusers/ or the files at its root)
  models/diffusers/<name>/        stabilityai/stable-video-diffusion-img2vid-xt-1-1 (vae/, image_encoder/, ...)
Extra locations from extra_model_paths.yaml under the same folder names are searched too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import folder_paths

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """A model folder kind: its ComfyUI folder name, default sub-folder, Hugging Face repo and files."""

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


def register_model_folders() -> None:
    """Add models/depthcrafter and models/stereocrafter (``diffusers`` is a core folder); keeps yaml paths."""
    for source in (DEPTHCRAFTER, STEREOCRAFTER):
        folder_paths.add_model_folder_path(
            source.folder_name, os.path.join(folder_paths.models_dir, source.folder_name)
        )


def _search_paths(source: ModelSource) -> list[Path]:
    try:
        return [Path(p) for p in folder_paths.get_folder_paths(source.folder_name)]
    except KeyError:
        return [Path(folder_paths.models_dir) / source.folder_name]


def list_model_dirs(source: ModelSource) -> list[str]:
    """Names of the sub-folders found in every search path, with the default (download target) first."""
    names = {p.name for root in _search_paths(source) if root.is_dir() for p in root.iterdir() if p.is_dir()}
    names.discard(source.default_name)
    return [source.default_name, *sorted(names)]


def resolve_model_dir(source: ModelSource, name: str, download: bool) -> Path:
    """The folder for ``name``; downloads it first when missing and ``download`` is on, else a clear error."""
    if Path(name).is_absolute() and Path(name).is_dir():
        return Path(name)
    for root in _search_paths(source):
        candidate = root / name
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    searched = ", ".join(str(root) for root in _search_paths(source))
    if not download:
        raise FileNotFoundError(
            f"'{name}' was not found in {searched}. Put the {source.repo_id} files there (keeping the Hugging Face "
            "layout), or turn on download_missing to fetch them."
        )
    return download_model(source, _search_paths(source)[0] / name)


def download_model(source: ModelSource, target: Path) -> Path:
    """Fetch ``source`` into ``target`` with huggingface_hub at its pinned revision."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError as exc:
        raise RuntimeError("download_missing needs the huggingface_hub package: pip install huggingface_hub") from exc
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
