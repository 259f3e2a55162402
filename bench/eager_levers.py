"""Eager (uncompiled) speed levers of the default path, one model call each, real-size random weights, fp16.

The default conversion runs eager (``--compile auto`` compiles only long clips), so its time is these calls:
- the StereoCrafter UNet on one 23-frame chunk of one 2x2 tile of 1920x1080 (608x1024 px, 76x128 latents);
- the temporal decode of 2 frames of one 1088x1024 decode tile (1920x1080 decodes as 1x2 tiles);
- the DepthCrafter UNet on one 70-frame window at 1024x576 (one CFG pass).

Each is timed with diffusers' blocks and with :mod:`stereocrafter.svd.frames_major_blocks` (no layout permutes,
two-stage GroupNorm statistics, the temporal convolutions as GEMMs), and the decode also with channels-last
weights; the table gives ms per call, the ratio, peak memory above the weights and the max abs difference.

Usage (GPU): ``python bench/eager_levers.py`` (``--tiny`` runs tiny models on the CPU, for checking the script).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from svd_architecture import build_vae_and_clip, max_diff, peak_extra_gib, place, svd_unet_config, time_ms  # noqa: E402

from stereocrafter.svd.frames_major_blocks import use_frames_major_blocks  # noqa: E402
from stereocrafter.svd.lean_attention import lean_attention  # noqa: E402
from stereocrafter.svd.single_key_attention import use_single_key_cross_attention  # noqa: E402


def unet(in_channels: int, device: torch.device, dtype: torch.dtype, tiny: bool) -> torch.nn.Module:
    from diffusers import UNetSpatioTemporalConditionModel

    if tiny:
        from tests.tiny_models import tiny_unet

        model = tiny_unet(in_channels)
    else:
        torch.manual_seed(in_channels)
        with torch.device(device):
            model = UNetSpatioTemporalConditionModel(**svd_unet_config(in_channels))
    model = place(model, device, dtype)
    use_single_key_cross_attention(model, True)
    return model


def unet_call(model: torch.nn.Module, frames: int, h: int, w: int) -> Callable[[], torch.Tensor]:
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    g = torch.Generator(device).manual_seed(1)
    channels = model.config.in_channels
    x = torch.randn(1, frames, channels, h, w, generator=g, device=device).to(dtype)
    e = torch.randn(1, 1, model.config.cross_attention_dim, generator=g, device=device).to(dtype)
    ids = torch.tensor([[6.0, 127.0, 0.0]], device=device, dtype=dtype)
    t = torch.tensor(0.75, device=device)

    @torch.inference_mode()
    def call() -> torch.Tensor:
        return model(x, t, encoder_hidden_states=e, added_time_ids=ids, return_dict=False)[0]

    return call


def measure(rows: list[str], name: str, call: Callable[[], torch.Tensor], model: torch.nn.Module) -> None:
    """Time ``call`` with diffusers' blocks, then with the frames-major blocks swapped into ``model``."""
    ref, peak = peak_extra_gib(call)
    base = time_ms(call)
    rows.append(f"| {name}, diffusers blocks | {base:.1f} | 1.00x | {peak:.2f} | – |")
    use_frames_major_blocks(model)
    try:
        out, peak = peak_extra_gib(call)
        ms = time_ms(call)
        diff = max_diff(out, ref)[0]
        rows.append(f"| {name}, frames-major blocks | {ms:.1f} | {base / ms:.2f}x | {peak:.2f} | {diff:.2e} |")
    finally:
        use_frames_major_blocks(model, enable=False)
    print(rows[-2], rows[-1], sep="\n", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--decode-only", action="store_true", help="only the decode calls (both tile sizes)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    scale = 8 if args.tiny else 1
    rows = ["| call | ms | vs diffusers | peak above weights GiB | max abs diff |", "|---|---|---|---|---|"]

    if not args.decode_only:
        model = unet(9, device, dtype, args.tiny)
        measure(rows, "StereoCrafter UNet, 23 f x 608x1024", unet_call(model, 23, 76 // scale, 128 // scale), model)
        del model
        model = unet(8, device, dtype, args.tiny)
        call = unet_call(model, 70 // scale, 72 // scale, 128 // scale)
        measure(rows, "DepthCrafter UNet, 70 f x 1024x576", call, model)
        del model

    if args.tiny:
        from tests.tiny_models import tiny_vae

        vae = place(tiny_vae(), device, dtype)
    else:
        vae = build_vae_and_clip(device, dtype)[0]
    lat = torch.randn(2, 4, 136 // scale, 128 // scale, generator=torch.Generator(device).manual_seed(2), device=device)
    lat = lat.to(dtype)

    @torch.inference_mode()
    def decode() -> torch.Tensor:
        with lean_attention(vae):
            return vae.decode(lat, num_frames=2).sample

    measure(rows, "decode 2 f x 1088x1024", decode, vae.decoder)
    full = lat
    lat = full[..., : 76 // scale, :].contiguous()  # one tile of 1920x1080 decoded as 2x2 tiles
    measure(rows, "decode 2 f x 608x1024", decode, vae.decoder)
    lat = full
    for module in vae.decoder.modules():  # 2-D convs only (the temporal Conv3d weights are rank 5)
        if isinstance(module, torch.nn.Conv2d):
            module.to(memory_format=torch.channels_last)
    measure(rows, "decode 2 f x 1088x1024, channels-last weights", decode, vae.decoder)
    print("\n" + "\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
