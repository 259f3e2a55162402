"""LoadStereoCrafter2: StereoCrafter2's Wan2.1-VACE-14B inpainter for StereoInpaint and Convert Video to 3D.

Its output is the same SC3D_STEREOCRAFTER type as LoadStereoCrafter's, so both consumers take either model; they
go through the model's :class:`~..stereocrafter.inpaint.inpaint_model.InpaintModel` interface.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import comfy.model_management as model_management
import torch
from comfy_api.latest import io

from ..stereocrafter.inpaint.inpaint2_pipeline import (
    WEIGHTS_MODES,
    WORKING_BYTES,
    check_wan_base,
    check_weights_mode,
    find_stereocrafter2_transformer,
    load_stereocrafter2,
)
from ..stereocrafter.model_sources import STEREOCRAFTER2, WAN_VACE_BASE
from .inpaint_nodes import CATEGORY, StereoCrafterModel
from .loader_inputs import model_folder_input
from .managed_model import ManagedPipeline
from .model_folders import resolve_model_dirs
from .schema_fields import extra_fields

logger = logging.getLogger(__name__)

PRECISIONS = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
MEMORY_MODES = ("auto", "gpu", "offload")
#: Sub-folder of the Wan base folder where the empty prompt's UMT5 embedding is cached (as the command line's).
PROMPT_CACHE_FOLDER = ".stereocrafter3d"
#: GPU working memory of the VAE alone (the offload mode keeps only it resident): an estimate at 1080p 2 × 2 tiles.
_VAE_WORKING_BYTES = 6 * 1024**3


@dataclass
class ManagedStereoCrafter2(ManagedPipeline):
    """ComfyUI's ModelPatcher over the modules resident on the GPU: transformer and VAE (``gpu``), or the VAE only
    (``offload``: diffusers' group offloading moves the transformer's blocks itself, prefetched on a CUDA stream)."""

    offload: bool = False

    def load(self, working_memory: int) -> torch.device:
        """Make room for our modules plus at least this model's own working memory; returns the compute device."""
        own = _VAE_WORKING_BYTES if self.offload else WORKING_BYTES
        return super().load(max(working_memory, own))


def choose_memory_mode(mode: str, transformer_bytes: int, device: torch.device) -> str:
    """``gpu`` or ``offload``: as asked, or for ``auto`` offload on CUDA when the transformer's weights plus the
    working memory exceed the device's total memory (ComfyUI evicts other models to make room), else gpu."""
    if mode not in MEMORY_MODES:
        raise ValueError(f"memory_mode must be one of {MEMORY_MODES}, got {mode!r}.")
    if mode != "auto":
        return mode
    if device.type != "cuda":
        return "gpu"
    total = model_management.get_total_memory(device)
    return "offload" if transformer_bytes + WORKING_BYTES > total else "gpu"


def _transformer_bytes(folder: Path) -> int:
    """Bytes of the transformer's safetensors files (its bf16 weights), without loading them."""
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


class LoadStereoCrafter2(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SC3D_LoadStereoCrafter2",
            **extra_fields("SC3D_LoadStereoCrafter2"),
            display_name="LoadStereoCrafter2",
            category=CATEGORY,
            description=(
                "Loads StereoCrafter2 (TencentARC/StereoCrafter2: a fine-tuned Wan2.1-VACE-14B transformer, from "
                "models/stereocrafter) with the VAE, UMT5 text encoder and tokenizer of Wan2.1-VACE-14B-diffusers "
                "(from models/diffusers). The text encoder runs once for the empty prompt at load (cached on disk "
                "after) and is freed. For StereoInpaint and Convert Video to 3D, like LoadStereoCrafter."
            ),
            inputs=[
                model_folder_input(
                    "transformer",
                    STEREOCRAFTER2,
                    "Folder in models/stereocrafter holding the StereoCrafter2 transformer (config.json + "
                    "diffusion_pytorch_model*.safetensors, or a transformer/ sub-folder).",
                ),
                model_folder_input(
                    "wan_base",
                    WAN_VACE_BASE,
                    "Folder in models/diffusers holding Wan2.1-VACE-14B-diffusers; only its vae/, text_encoder/ and "
                    "tokenizer/ are used (its own transformer/ is not needed).",
                ),
                io.Combo.Input(
                    "precision",
                    options=list(PRECISIONS),
                    default="auto",
                    tooltip="Weights and compute dtype. auto: bf16 (the reference's) on an NVIDIA GPU, fp32 on the "
                    "CPU (bf16 convolutions there are about 15x slower). fp16 may overflow in Wan.",
                ),
                io.Combo.Input(
                    "memory_mode",
                    options=list(MEMORY_MODES),
                    default="auto",
                    tooltip=(
                        "gpu: transformer (~33 GB in bf16) and VAE on the GPU. offload: the transformer stays in "
                        "RAM and its blocks are streamed to the GPU as they run (diffusers' group offloading with "
                        "prefetch; same output, slower, needs ~40 GB of RAM). auto: offload when the GPU is too "
                        "small for gpu."
                    ),
                ),
                io.Boolean.Input(
                    "download_missing",
                    default=False,
                    tooltip=(
                        "Download missing weights from Hugging Face: the StereoCrafter2 transformer (about 35 GB) "
                        "and the Wan base's VAE, text encoder and tokenizer (about 12 GB)."
                    ),
                ),
                io.Combo.Input(
                    "weights",
                    options=list(WEIGHTS_MODES),
                    default="bf16",
                    optional=True,  # appended: workflows saved before it load with bf16
                    tooltip=(
                        "Storage of the transformer's weights. bf16: as released (faithful). fp8: float8 storage, "
                        "cast up to bf16 layer by layer (diffusers' layerwise casting). int8: torchao weight-only "
                        "int8. Both halve the transformer's memory (~17 GB instead of ~33 GB, so gpu mode fits "
                        "more cards); on tiny random test models they changed the output by at most 0.02 (0..1), "
                        "not yet measured on the real weights. int8 needs torchao."
                    ),
                ),
            ],
            outputs=[
                StereoCrafterModel.Output(
                    display_name="stereocrafter", tooltip="StereoCrafter2 for StereoInpaint or Convert Video to 3D."
                )
            ],
        )

    @classmethod
    def validate_inputs(cls, transformer: str | None = None, wan_base: str | None = None) -> bool:
        """Accept folder names that are not in the list: ComfyUI 0.33 would reject them before ``execute`` can say
        which folders it searched and about ``download_missing`` (naming the inputs here skips that check)."""
        return True

    @classmethod
    def execute(
        cls,
        transformer: str,
        wan_base: str,
        precision: str,
        memory_mode: str,
        download_missing: bool,
        weights: str = "bf16",
    ) -> io.NodeOutput:
        check_weights_mode(weights)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}.")
        device = model_management.get_torch_device()
        dtype = PRECISIONS[precision] or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        root, base = resolve_model_dirs([(STEREOCRAFTER2, transformer), (WAN_VACE_BASE, wan_base)], download_missing)
        folder = find_stereocrafter2_transformer(root)  # a v1 folder or a base folder is named here
        check_wan_base(base)
        # fp8/int8 store one byte per weight instead of two (the few layers kept as loaded are small).
        stored = _transformer_bytes(folder) // (1 if weights == "bf16" else 2)
        mode = choose_memory_mode(memory_mode, stored, device)
        offload_device = model_management.unet_offload_device()
        if mode == "offload":
            logger.info("LoadStereoCrafter2: group offloading, the transformer's blocks streamed to %s.", device)
        pipeline = load_stereocrafter2(
            folder, base, device if mode == "offload" else offload_device, dtype, base / PROMPT_CACHE_FOLDER,
            offload="group" if mode == "offload" else "none", text_encoder_device=device, weights=weights,
        )  # fmt: skip
        pipeline.vae.to(offload_device)  # ComfyUI moves it to the GPU when a node runs the model
        modules = {"vae": pipeline.vae} if mode == "offload" else {"transformer": pipeline.transformer,
                                                                    "vae": pipeline.vae}  # fmt: skip
        model_id = f"{folder.resolve()} {base.resolve()} {dtype} {weights}"
        managed = ManagedStereoCrafter2.wrap(pipeline, modules, dtype, model_id)
        managed.offload = mode == "offload"
        return io.NodeOutput(managed)
