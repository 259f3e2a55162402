"""Numerical comparison with the reference StereoCrafter inpainting code (not a test; runs on the CPU).

Runs TencentARC/StereoCrafter's ``StableVideoDiffusionInpaintingPipeline`` (plus its ``spatial_tiled_process``
and decode path) and our :class:`StereoInpaintPipeline` in reference mode on identical tiny random weights, inputs
and initial noise, and prints the max abs difference of the final latents and of the decoded frames.

Usage:
    .venv/bin/python bench/compare_stereocrafter_reference.py /work/.mirror/TencentARC+StereoCrafter/repo

The path may be a checkout (work tree) or a bare git directory (files are read with ``git show HEAD:<file>``).
Their code is imported at runtime from that path; nothing of it is copied into this repository. Its
``inpainting_inference.py`` imports cv2/decord/fire at the top, so only the functions we need are taken from its
syntax tree.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from stereocrafter.inpaint.inpaint_pipeline import InpaintSettings, StereoInpaintPipeline  # noqa: E402
from tests.tiny_models import PREPROCESSOR_CONFIG, SCHEDULER_CONFIG, tiny_clip, tiny_unet, tiny_vae  # noqa: E402

REFERENCE_FILES = ("pipelines/stereo_video_inpainting.py", "inpainting_inference.py")


def read_reference_file(root: Path, name: str) -> str:
    """A file of the reference checkout, from a work tree or a bare git directory."""
    if (root / name).is_file():
        return (root / name).read_text(encoding="utf-8")
    return subprocess.run(
        ["git", f"--git-dir={root}", "show", f"HEAD:{name}"], check=True, capture_output=True, text=True
    ).stdout


def load_reference(root: Path) -> tuple[ModuleType, dict[str, Any]]:
    """Import the reference pipeline module and the tiling functions of inpainting_inference.py."""
    tmp = Path(tempfile.mkdtemp(prefix="stereocrafter_ref_"))
    pipeline_file = tmp / "stereo_video_inpainting.py"
    pipeline_file.write_text(read_reference_file(root, REFERENCE_FILES[0]), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("stereocrafter_reference_pipeline", pipeline_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    tree = ast.parse(read_reference_file(root, REFERENCE_FILES[1]))
    wanted = {"blend_h", "blend_v", "spatial_tiled_process"}
    funcs = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in wanted]
    namespace: dict[str, Any] = {"torch": torch}
    exec(compile(ast.Module(body=funcs, type_ignores=[]), "inpainting_inference.py", "exec"), namespace)  # noqa: S102
    return module, namespace


def make_models(dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    return tiny_unet(9).to(dtype), tiny_vae().to(dtype), tiny_clip().to(dtype)


def compare(root: Path, dtype: torch.dtype, tiles: int, frames_n: int, height: int, width: int, seed: int) -> None:
    from transformers import CLIPImageProcessor

    ref_module, ref_funcs = load_reference(root)
    unet, vae, clip = make_models(dtype)
    from diffusers import EulerDiscreteScheduler

    feature_extractor = CLIPImageProcessor(
        image_mean=PREPROCESSOR_CONFIG["image_mean"], image_std=PREPROCESSOR_CONFIG["image_std"]
    )
    ref_pipe = ref_module.StableVideoDiffusionInpaintingPipeline(
        vae=vae,
        image_encoder=clip,
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(SCHEDULER_CONFIG),
        feature_extractor=feature_extractor,
    )
    ref_pipe.set_progress_bar_config(disable=True)
    # The UNet is shared with the reference pipeline: keep diffusers' processor (the shortcut would change both).
    ours = StereoInpaintPipeline(
        unet, vae, clip, SCHEDULER_CONFIG, single_key_attention=False, frames_major_decoder=False
    )

    # Inputs as the reference sees them after reading the grid video: k/255 frames, mask = channel mean.
    gen = torch.Generator().manual_seed(seed)
    warped = (torch.rand(frames_n, 3, height, width, generator=gen) * 255).round() / 255
    mask = torch.zeros(frames_n, 1, height, width)
    mask[:, :, height // 4 : height // 2, width // 5 : width // 5 + 23] = 1.0
    mask[:, :, :, -5:] = 0.6  # right-edge disocclusion band, not yet binarised
    mask[:, :, 7, :] = 0.4  # below the threshold: not a hole

    # Our run; capture the final (blended) latents on their way to the decoder and the noise we drew.
    captured: dict[str, torch.Tensor] = {}
    real_decode = ours._decode

    def spy_decode(latents: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        captured["latents"] = latents.clone()
        return real_decode(latents, *args, **kwargs)

    ours._decode = spy_decode  # type: ignore[method-assign]
    settings = InpaintSettings.reference(tiles=tiles)
    t0 = time.perf_counter()
    our_frames = ours(warped.permute(0, 2, 3, 1), mask[:, 0], settings, generator=torch.Generator().manual_seed(seed))
    t_ours = time.perf_counter() - t0
    noise = torch.randn((frames_n, 4, height // 8, width // 8), generator=torch.Generator().manual_seed(seed)).to(dtype)

    # The reference: spatial_tiled_process over its pipeline; each tile gets the crop of the same noise.
    grid_calls: list[tuple[int, int]] = []

    def ref_process(frames: torch.Tensor, frames_mask: torch.Tensor, **kwargs: Any) -> Any:
        n = int((height + 128 * (tiles - 1)) / tiles) - 128 if tiles > 1 else 0
        m = int((width + 128 * (tiles - 1)) / tiles) - 128 if tiles > 1 else 0
        i, j = divmod(len(grid_calls), tiles)
        grid_calls.append((i, j))
        y0, x0 = i * n // 8, j * m // 8
        tile_noise = noise[:, :, y0 : y0 + frames.shape[2] // 8, x0 : x0 + frames.shape[3] // 8]
        return ref_pipe(frames=frames, frames_mask=frames_mask, latents=tile_noise.unsqueeze(0), **kwargs)

    t0 = time.perf_counter()
    with torch.no_grad():
        ref_latents = ref_funcs["spatial_tiled_process"](
            warped.clone(),
            mask.clone(),
            ref_process,
            tiles,
            spatial_n_compress=8,
            min_guidance_scale=1.01,
            max_guidance_scale=1.01,
            decode_chunk_size=8,
            fps=7,
            motion_bucket_id=127,
            noise_aug_strength=0.0,
            num_inference_steps=8,
        )
        decoded = ref_pipe.decode_latents(ref_latents.unsqueeze(0), num_frames=frames_n, decode_chunk_size=2)
        pil = ref_module.tensor2vid(decoded, ref_pipe.image_processor, output_type="pil")[0]
    t_ref = time.perf_counter() - t0
    import numpy as np

    ref_frames = torch.stack([torch.from_numpy(np.array(img)).float() / 255.0 for img in pil])

    lat_diff = (captured["latents"].float() - ref_latents.float()).abs().max().item()
    lat_scale = ref_latents.float().abs().max().item()
    frame_diff = (our_frames - ref_frames).abs().max().item()
    frame_mean = (our_frames - ref_frames).abs().mean().item()
    print(
        f"dtype={str(dtype).removeprefix('torch.')} tiles={tiles}x{tiles} frames={frames_n} size={width}x{height}: "
        f"latents max|diff|={lat_diff:.3g} (max|latent|={lat_scale:.3g}), "
        f"frames max|diff|={frame_diff:.3g} ({frame_diff * 255:.2f}/255), mean|diff|={frame_mean:.2e}; "
        f"time ours {t_ours:.1f} s, reference {t_ref:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path, help="TencentARC/StereoCrafter checkout or bare git dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    # fp16 convolutions are very slow on the CPU: the fp16 cases are kept small.
    for dtype, tiles, frames_n, (h, w) in (
        (torch.float32, 1, 5, (128, 256)),
        (torch.float32, 2, 3, (256, 384)),
        (torch.float16, 1, 3, (128, 128)),
        (torch.float16, 2, 2, (256, 256)),
    ):
        compare(args.reference, dtype, tiles, frames_n, h, w, args.seed)


if __name__ == "__main__":
    main()
