"""Where each model comes from (Hugging Face repository, revision, files) and where it goes in a models folder.

A models folder has ComfyUI's layout, one sub-folder per kind, Hugging Face folders kept as they are::

    <models>/depthcrafter/DepthCrafter/                               tencent/DepthCrafter
    <models>/stereocrafter/StereoCrafter/                             TencentARC/StereoCrafter
    <models>/diffusers/stable-video-diffusion-img2vid-xt-1-1/         stabilityai/stable-video-diffusion-img2vid-xt-1-1
    <models>/depth_anything/Depth-Anything-V2-Small-hf/              depth-anything/Depth-Anything-V2-Small-hf

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
    #: What a download fetches, for messages (the files ``allow_patterns`` select).
    download_size: str = ""


DEPTHCRAFTER = ModelSource(
    "depthcrafter",
    "DepthCrafter",
    "tencent/DepthCrafter",
    "c1a22b53f8abf80cd0b025adf29e637773229eca",
    ("config.json", "diffusion_pytorch_model.safetensors"),
    download_size="about 3 GB",
)
STEREOCRAFTER = ModelSource(
    "stereocrafter",
    "StereoCrafter",
    "TencentARC/StereoCrafter",
    "main",  # no commit hash could be verified offline; see the README
    ("config.json", "diffusion_pytorch_model.safetensors", "unet_diffusers/*"),
    download_size="about 3 GB",
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
    download_size="about 1.5 GB",
)


#: The command line's light depth model (``--depth-model depth-anything``): Apache-2.0, about 100 MB.
DEPTH_ANYTHING = ModelSource(
    "depth_anything",
    "Depth-Anything-V2-Small-hf",
    "depth-anything/Depth-Anything-V2-Small-hf",
    "main",  # no commit hash could be verified offline
    ("config.json", "model.safetensors", "preprocessor_config.json"),
    download_size="about 100 MB",
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


class MissingModelsError(FileNotFoundError):
    """Model folders are missing (and downloading is off); the message names every one, where it was looked for,
    its Hugging Face repository and how to fetch it."""


def _existing_dir(source: ModelSource, roots: Sequence[Path], name: str) -> Path | None:
    if Path(name).is_absolute() and Path(name).is_dir():
        return Path(name)
    for root in roots:
        candidate = Path(root) / name
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    return None


def _not_found(source: ModelSource, roots: Sequence[Path], name: str) -> str:
    searched = ", ".join(str(root) for root in roots)
    size = f", {source.download_size}" if source.download_size else ""
    gated = "; the repository is gated: accept its licence on huggingface.co and log in first" if source.gated else ""
    return (
        f"'{name}' was not found in {searched}. Put the {source.repo_id} files there (keeping the Hugging Face "
        f"layout{size}{gated})"
    )


def find_model_dirs(
    wanted: Sequence[tuple[ModelSource, Sequence[Path], str | None]],
    download: bool = False,
    download_hint: str = "allow the download of missing weights",
) -> list[Path]:
    """:func:`find_model_dir` for each (source, roots, name), in order. Without ``download`` every missing folder is
    checked first and named in one :class:`MissingModelsError`; with it the missing ones are downloaded."""
    found = [_existing_dir(source, roots, name or source.default_name) for source, roots, name in wanted]
    missing = [
        _not_found(source, roots, name or source.default_name)
        for (source, roots, name), path in zip(wanted, found, strict=True)
        if path is None
    ]
    if missing and not download:
        if len(missing) == 1:
            raise MissingModelsError(f"{missing[0]}, or {download_hint} to fetch it.")
        listed = "".join(f"\n- {line}." for line in missing)
        raise MissingModelsError(
            f"{len(missing)} model folders are missing:{listed}\nOr {download_hint} to fetch them."
        )
    return [
        path if path is not None else download_model(source, Path(roots[0]) / (name or source.default_name))
        for (source, roots, name), path in zip(wanted, found, strict=True)
    ]


def find_model_dir(
    source: ModelSource,
    roots: Sequence[Path],
    name: str | None = None,
    download: bool = False,
    download_hint: str = "allow the download of missing weights",
) -> Path:
    """The folder ``name`` (default: the source's default name) of ``source``'s kind under one of ``roots``.

    ``roots`` are kind folders (e.g. ``models/depthcrafter``). An absolute existing ``name`` is used as is. A missing
    folder is downloaded into the first root when ``download`` is on, else :class:`MissingModelsError` (a
    FileNotFoundError) names the fix (the caller's way to turn the download on is ``download_hint``).
    """
    return find_model_dirs([(source, roots, name)], download, download_hint)[0]


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
