"""Compare our VideoDepthPipeline with the reference DepthCrafter pipeline on identical tiny weights, inputs and noise.

Usage:
    python bench/compare_depthcrafter_reference.py PATH_TO_DEPTHCRAFTER [--frames 13] [--dtypes float32,bfloat16]

PATH_TO_DEPTHCRAFTER is a checkout of Tencent/DepthCrafter (a work tree with ``depthcrafter/``, or a bare git
directory, from which ``depthcrafter/`` is exported with ``git archive`` into a temporary folder). Their code is
imported as is; nothing in it is edited. Runs on the CPU with random tiny models written in the real Hugging Face
layouts (tests/tiny_models.py), so it needs no download.

Both sides see the same processing-size frames (our resize is applied before the reference, which normally gets
decord/FFmpeg-resized frames), the same noise (CPU generator, the reference's draw order: noise augmentation then one
window of latents) and StereoCrafter's post-processing (channel mean, bilinear resize to the input size, clip-wide
min-max; depth_splatting_inference.py lines 135-145) is applied to the reference output here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from tiny_models import PREPROCESSOR_CONFIG, make_depthcrafter_folder, make_svd_folder  # noqa: E402

from stereocrafter.depth.depth_pipeline import DepthSettings, VideoDepthPipeline, processing_size  # noqa: E402


def import_reference(path: Path, workdir: Path) -> tuple[type, type]:
    """Import DepthCrafterPipeline and their UNet class from a work tree or a bare git directory."""
    if not (path / "depthcrafter" / "depth_crafter_ppl.py").is_file():
        export = workdir / "depthcrafter_ref"
        export.mkdir()
        archive = subprocess.run(
            ["git", f"--git-dir={path}", "archive", "--format=tar", "HEAD", "depthcrafter"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(export)], input=archive, check=True)
        commit = subprocess.run(
            ["git", f"--git-dir={path}", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        print(f"reference: exported depthcrafter/ from {path} @ {commit}")
        path = export
    sys.path.insert(0, str(path))
    from depthcrafter.depth_crafter_ppl import DepthCrafterPipeline
    from depthcrafter.unet import DiffusersUNetSpatioTemporalConditionModelDepthCrafter

    return DepthCrafterPipeline, DiffusersUNetSpatioTemporalConditionModelDepthCrafter


def build_reference(pipeline_cls: type, unet_cls: type, dc_dir: Path, svd_dir: Path, dtype: torch.dtype) -> object:
    """The reference pipeline, loaded the way StereoCrafter loads it (diffusers/transformers from_pretrained)."""
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    unet = unet_cls.from_pretrained(dc_dir, torch_dtype=dtype)
    vae = AutoencoderKLTemporalDecoder.from_pretrained(svd_dir, subfolder="vae", variant="fp16", torch_dtype=dtype)
    clip = CLIPVisionModelWithProjection.from_pretrained(
        svd_dir, subfolder="image_encoder", variant="fp16", dtype=dtype
    )
    scheduler = EulerDiscreteScheduler.from_pretrained(svd_dir, subfolder="scheduler")
    extractor = CLIPImageProcessor(**{k: v for k, v in PREPROCESSOR_CONFIG.items() if not k.endswith("_type")})
    pipe = pipeline_cls(vae=vae, image_encoder=clip, unet=unet, scheduler=scheduler, feature_extractor=extractor)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference_depth(pipe: object, frames_small: torch.Tensor, size: tuple[int, int], s: DepthSettings) -> torch.Tensor:
    """Run the reference pipeline on processing-size frames, then StereoCrafter's post-processing."""
    generator = torch.Generator("cpu").manual_seed(s.seed)
    with torch.inference_mode():
        out = pipe(
            frames_small.numpy(),
            height=frames_small.shape[1],
            width=frames_small.shape[2],
            output_type="np",
            guidance_scale=s.guidance_scale,
            num_inference_steps=s.num_inference_steps,
            window_size=s.window_size,
            overlap=s.overlap,
            decode_chunk_size=s.decode_chunk_size,
            noise_aug_strength=s.noise_aug_strength,
            generator=generator,
        ).frames[0]
    res = out.sum(-1) / out.shape[-1]
    res = F.interpolate(torch.tensor(res).unsqueeze(1).float(), size=size, mode="bilinear", align_corners=False)
    res = res[:, 0]
    return (res - res.min()) / (res.max() - res.min())


def resize_like_ours(frames: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """The pipeline's input resize (so both sides see the same processing-size frames). [T,H,W,3] → [T,h,w,3]."""
    x = frames.permute(0, 3, 1, 2).float()
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True).clamp(0.0, 1.0)
    return x.permute(0, 2, 3, 1).contiguous()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("depthcrafter", type=Path, help="Tencent/DepthCrafter work tree or bare git directory")
    parser.add_argument("--frames", type=int, default=13)
    parser.add_argument("--height", type=int, default=70)
    parser.add_argument("--width", type=int, default=120)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    args = parser.parse_args()
    torch.manual_seed(0)
    frames = torch.rand(args.frames, args.height, args.width, 3)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pipeline_cls, unet_cls = import_reference(args.depthcrafter.resolve(), work)
        dc_dir = make_depthcrafter_folder(work / "DepthCrafter")
        svd_dir = make_svd_folder(work / "svd", fp16_variant=True, full=False)
        print(f"input {args.frames}x{args.height}x{args.width}, tiny random weights (fp16 files)")
        print(f"{'dtype':9} {'variant':34} {'max |ours - ref|':>18} {'mean':>10}")
        for name in args.dtypes.split(","):
            dtype = getattr(torch, name)
            base = DepthSettings(
                window_size=6,
                overlap=2,
                num_inference_steps=3,
                guidance_scale=1.2,
                decode_chunk_size=4,
                encode_chunk_size=4,  # the reference encodes in chunks of decode_chunk_size
                vae_encode_fp32=dtype == torch.float16,  # the reference upcasts the VAE encode for fp16 only
                reference_rng=True,
                batch_cfg=False,
            )
            size = processing_size(args.height, args.width, base.max_res)
            ref_pipe = build_reference(pipeline_cls, unet_cls, dc_dir, svd_dir, dtype)
            ref = reference_depth(
                ref_pipe, resize_like_ours(frames, size, base.resize_mode), (args.height, args.width), base
            )
            ours_pipe = VideoDepthPipeline.from_folders(dc_dir, svd_dir, dtype=dtype, device="cpu")
            variants = {
                "faithful (reference RNG, 2 passes)": base,
                "batched CFG": DepthSettings(**{**base.__dict__, "batch_cfg": True}),
                "VAE encode fp32": DepthSettings(**{**base.__dict__, "vae_encode_fp32": True}),
                "VAE encode in compute dtype": DepthSettings(**{**base.__dict__, "vae_encode_fp32": False}),
                "encode chunk 5 (memory knob)": DepthSettings(**{**base.__dict__, "encode_chunk_size": 5}),
                "per-frame RNG (our default)": DepthSettings(**{**base.__dict__, "reference_rng": False}),
            }
            for label, settings in variants.items():
                ours = ours_pipe(frames, settings)
                diff = (ours - ref).abs()
                print(f"{name:9} {label:34} {diff.max().item():18.3e} {diff.mean().item():10.2e}")
            print(f"{name:9} reference depth range {ref.min().item():.3f}..{ref.max().item():.3f}, std {ref.std():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
