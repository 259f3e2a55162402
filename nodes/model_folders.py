"""Where the pack's model weights live in ComfyUI's model folders (sources: ``stereocrafter/model_sources.py``).

Layout (Hugging Face folders kept as they are):
  models/depthcrafter/<name>/     tencent/DepthCrafter (config.json + diffusion_pytorch_model.safetensors)
  models/stereocrafter/<name>/    TencentARC/StereoCrafter (unet_diffusers/ or the files at its root)
  models/diffusers/<name>/        stabilityai/stable-video-diffusion-img2vid-xt-1-1 (vae/, image_encoder/, ...)
  models/stereocrafter/<name>/    TencentARC/StereoCrafter2 (its Wan-VACE transformer)
  models/diffusers/<name>/        Wan-AI/Wan2.1-VACE-14B-diffusers (vae/, text_encoder/, tokenizer/)
  models/depth_anything/<name>/   depth-anything/Depth-Anything-V2-Small-hf (config.json, model.safetensors, ...)
Extra locations from extra_model_paths.yaml under the same folder names are searched too.
"""

from __future__ import annotations

import os
from pathlib import Path

import comfy.model_management as model_management
import folder_paths

from ..stereocrafter.model_files import model_kind
from ..stereocrafter.model_sources import (
    DEPTH_ANYTHING,
    DEPTHCRAFTER,
    STEREOCRAFTER,
    STEREOCRAFTER2,
    SVD,
    WAN_VACE_BASE,
    ModelSource,
    find_model_dirs,
)

_registered = False
#: Kind folders that two models share: a loader's combo leaves out the folders that hold the other one.
_OTHER_MODEL = {STEREOCRAFTER: "stereocrafter2", STEREOCRAFTER2: "stereocrafter", SVD: "wan_vace_base",
                WAN_VACE_BASE: "svd"}  # fmt: skip


def register_model_folders() -> None:
    """Add models/depthcrafter, models/stereocrafter and models/depth_anything (``diffusers`` is a core folder);
    keeps yaml paths.

    Runs once: the extension calls it from ``on_load`` (ComfyUI 0.33+) and again before listing its nodes (0.3.75
    never calls ``on_load``); later calls do nothing."""
    global _registered
    if _registered:
        return
    for source in (DEPTHCRAFTER, STEREOCRAFTER, DEPTH_ANYTHING):
        folder_paths.add_model_folder_path(
            source.folder_name, os.path.join(folder_paths.models_dir, source.folder_name)
        )
    _registered = True


def _search_paths(source: ModelSource) -> list[Path]:
    try:
        return [Path(p) for p in folder_paths.get_folder_paths(source.folder_name)]
    except KeyError:
        return [Path(folder_paths.models_dir) / source.folder_name]


def list_model_dirs(source: ModelSource) -> list[str]:
    """Names of the sub-folders found in every search path, with the default (download target) first; folders
    that hold the other model of a shared kind folder (StereoCrafter v1/v2, SVD/Wan base) are left out."""
    other = _OTHER_MODEL.get(source)
    names = {
        p.name
        for root in _search_paths(source)
        if root.is_dir()
        for p in root.iterdir()
        if p.is_dir() and (other is None or model_kind(p) != other)
    }
    names.discard(source.default_name)
    return [source.default_name, *sorted(names)]


def resolve_model_dirs(wanted: list[tuple[ModelSource, str]], download: bool) -> list[Path]:
    """The folders for (source, name) pairs in ComfyUI's folders; missing ones are downloaded first when
    ``download`` is on (Cancel stops waiting for a download), else one error names all of them."""
    lookups = [(source, _search_paths(source), name) for source, name in wanted]
    interrupt = model_management.throw_exception_if_processing_interrupted
    return find_model_dirs(lookups, download, download_hint="turn on download_missing", interrupt=interrupt)
