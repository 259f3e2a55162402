"""Hand diffusers pipelines to ComfyUI's memory manager.

The pipelines' modules are grouped in one ``ModuleDict`` wrapped in a ``ModelPatcher``: before each run the node
calls :meth:`ManagedPipeline.load`, which lets ComfyUI evict other models to make room and move ours to its
compute device; ComfyUI offloads ours again when something else needs the memory (or on OOM / "free memory").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import comfy.model_management as model_management
import comfy.model_patcher
import torch

PRECISIONS = ("auto", "fp16", "bf16", "fp32")
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def choose_dtype(precision: str) -> torch.dtype:
    """The weights/compute dtype: as asked, or for ``auto`` what ComfyUI picks for the device (fp32 on CPU)."""
    if precision in _DTYPES:
        return _DTYPES[precision]
    if precision != "auto":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    device = model_management.get_torch_device()
    return model_management.unet_dtype(device, supported_dtypes=[torch.float16, torch.bfloat16, torch.float32])


@functools.cache
def _modules_class(name: str) -> type[torch.nn.ModuleDict]:
    """A ModuleDict class named after the pipeline: ComfyUI logs the class name of what it loads ("Requested to load
    VideoDepthPipeline" tells a user more than "ModuleDict")."""
    return type(name, (torch.nn.ModuleDict,), {"__doc__": f"The modules of a {name}, as one model for ComfyUI."})


@dataclass
class ManagedPipeline:
    """A pipeline plus the ModelPatcher that ComfyUI uses to place its modules."""

    pipeline: Any
    patcher: comfy.model_patcher.ModelPatcher
    dtype: torch.dtype
    model_id: str  # which weights: folders and dtype (recorded by conversions to resume only the same job)

    @classmethod
    def wrap(
        cls, pipeline: Any, modules: dict[str, torch.nn.Module], dtype: torch.dtype, model_id: str
    ) -> ManagedPipeline:
        container = _modules_class(type(pipeline).__name__)(modules)
        patcher = comfy.model_patcher.ModelPatcher(
            container,
            load_device=model_management.get_torch_device(),
            offload_device=model_management.unet_offload_device(),
        )
        return cls(pipeline=pipeline, patcher=patcher, dtype=dtype, model_id=model_id)

    def load(self, working_memory: int) -> torch.device:
        """Put every module on the compute device (whole: diffusers modules cannot run partially loaded)."""
        model_management.load_models_gpu([self.patcher], memory_required=working_memory, force_full_load=True)
        return self.patcher.load_device
