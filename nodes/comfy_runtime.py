"""The few ComfyUI runtime services the nodes use: devices, free memory and the progress bar."""

from __future__ import annotations

from collections.abc import Callable

import comfy.model_management as model_management
import comfy.utils
import torch


def compute_device() -> torch.device:
    """The device ComfyUI computes on (the CPU under --cpu)."""
    return model_management.get_torch_device()


def output_device() -> torch.device:
    """Where node outputs live (the CPU unless --gpu-only)."""
    return model_management.intermediate_device()


def frames_per_batch(height: int, width: int, bytes_per_pixel: int, device: torch.device, cap: int = 64) -> int:
    """How many frames of ``bytes_per_pixel`` working memory fit in half of the free memory of ``device``."""
    free = model_management.get_free_memory(device)
    return max(1, min(cap, int(free * 0.5) // max(1, height * width * bytes_per_pixel)))


def progress_reporter(total: int) -> Callable[[int, int], None]:
    """A callback (done, total) that drives ComfyUI's progress bar; its hook also raises on interrupt."""
    bar = comfy.utils.ProgressBar(total)

    def report(done: int, total: int) -> None:
        bar.update_absolute(done, total)

    return report
