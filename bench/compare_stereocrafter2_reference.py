"""Run StereoCrafter2's reference inpainting (its ``main``, from a local copy of ``inpainting_inference.py`` that is
never committed) and our StereoCrafter2Pipeline on identical tiny random weights, inputs and noise; print the max
difference of the inpainted right views.

The reference reads its input with decord and writes with ``export_to_video``: both are replaced by stand-ins that
hand it our clip (the 2×2 grid it expects: left | -, mask | warped) and catch its float frames before the uint8
conversion. Its global RNG is seeded right before its chunk loop; ours draws from a generator with the same seed, in
the same order (chunk, tile row, tile column), so the noise is the same.

    .venv/bin/python bench/compare_stereocrafter2_reference.py /path/to/inpainting_inference.py [--frames 23]
        [--device cuda]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tiny_wan_models import make_stereocrafter2_folder, make_wan_base_folder  # noqa: E402

from stereocrafter.inpaint.inpaint2_pipeline import Inpaint2Settings, load_stereocrafter2  # noqa: E402


def make_clip(frames: int, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Warped frames uint8 [T, H, W, 3] and a grey-level mask uint8 [T, H, W] (moving blobs plus a soft edge)."""
    g = np.random.default_rng(seed)
    warped = g.integers(0, 256, size=(frames, height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    mask = np.zeros((frames, height, width), np.float32)
    for t in range(frames):
        cx, cy = (0.3 + 0.02 * t) * width, 0.5 * height
        mask[t] = np.clip(1.5 - np.hypot(xx - cx, yy - cy) / (0.15 * min(height, width)), 0, 1)
    mask[:, :, -width // 6 :] = 1.0  # a hole at the right edge, as a splat leaves it
    return warped, np.round(mask * 255).astype(np.uint8)


def reference_stand_ins(clip: np.ndarray, seed: int) -> dict[str, types.ModuleType]:
    """Stand-in modules for the reference's imports: decord (its reader hands out ``clip`` [T, H, W, 3] uint8 and
    seeds torch's global RNG with ``seed`` when the frames are read, right before the chunk loop draws its noise),
    fire (``Fire`` returns the function) and ftfy (the empty prompt needs no text fixing)."""

    class Batch:
        def __init__(self, a: np.ndarray) -> None:
            self.a = a

        def asnumpy(self) -> np.ndarray:
            return self.a

    class VideoReader:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def get_avg_fps(self) -> float:
            return 24.0

        def __len__(self) -> int:
            return len(clip)

        def get_batch(self, indices: list[int]) -> Batch:
            torch.manual_seed(seed)  # the models are loaded: seed the noise of the chunk loop that follows
            return Batch(clip[indices])

    decord = types.ModuleType("decord")
    decord.VideoReader, decord.cpu = VideoReader, lambda *_: None
    fire = types.ModuleType("fire")
    fire.Fire = lambda fn: fn
    ftfy = types.ModuleType("ftfy")
    ftfy.fix_text = lambda text: text
    return {"decord": decord, "fire": fire, "ftfy": ftfy}


def load_reference(
    path: Path, clip: np.ndarray, seed: int, captured: list[np.ndarray], device: str = "cpu"
) -> types.ModuleType:
    """Import the reference with :func:`reference_stand_ins` for decord, fire and ftfy."""
    sys.modules.update(reference_stand_ins(clip, seed))
    spec = importlib.util.spec_from_file_location("sc2_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.DEVICE = torch.device(device)
    module.export_to_video = lambda frames, *a, **k: captured.append(np.stack(frames))
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference", type=Path, help="local copy of StereoCrafter2's inpainting_inference.py")
    parser.add_argument("--frames", type=int, default=23)
    parser.add_argument("--height", type=int, default=72)
    parser.add_argument("--width", type=int, default=104)
    parser.add_argument("--chunk", type=int, default=13)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--tile-num", type=int, default=2)
    parser.add_argument("--tile-overlap", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both run there; noise from that device's RNG)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    warped, mask = make_clip(args.frames, args.height, args.width, args.seed)
    h, w = args.height, args.width
    grid = np.zeros((args.frames, 2 * h, 2 * w, 3), np.uint8)
    grid[:, h:, :w] = mask[..., None]
    grid[:, h:, w:] = warped
    captured: list[np.ndarray] = []
    ref = load_reference(args.reference, grid, args.seed, captured, args.device)

    with tempfile.TemporaryDirectory() as tmp:
        base = make_wan_base_folder(Path(tmp) / "Wan2.1-VACE-14B-diffusers")
        sc2 = make_stereocrafter2_folder(Path(tmp) / "StereoCrafter2")
        ref.main(
            str(base), str(sc2), str(Path(tmp) / "clip_splatting_results.mp4"), str(Path(tmp) / "out"),
            frames_chunk=args.chunk, frames_overlap=args.overlap, tile_overlap=args.tile_overlap,
            tile_num=args.tile_num, inference_steps=args.steps, seed=args.seed,
        )  # fmt: skip
        reference = torch.from_numpy(captured[0][:, :, w:])  # sbs frames: left | inpainted right
        pipe = load_stereocrafter2(sc2, base, device=args.device, dtype=torch.bfloat16)
    settings = Inpaint2Settings.reference(
        tile_num=args.tile_num, steps=args.steps, chunk_frames=args.chunk, chunk_overlap=args.overlap,
        tile_overlap_px=args.tile_overlap,
    )  # fmt: skip
    frames = torch.from_numpy(warped).float() / 255.0
    soft = torch.from_numpy(mask).float() / 255.0
    ours = pipe(frames, soft, settings, seed=args.seed)
    n = min(len(ours), len(reference))
    print(f"reference frames {len(reference)}, ours {len(ours)} (input {args.frames})")
    diff = (ours[:n] - reference[:n]).abs()
    if __import__("os").environ.get("SC2_DEBUG"):
        d = diff.amax(dim=(0, 3))
        print("rows with diff", torch.nonzero(d.amax(1) > 0).flatten().tolist())
        print("cols with diff", torch.nonzero(d.amax(0) > 0).flatten().tolist())
    print(f"max |ours - reference| = {diff.max().item():.3e}, mean {diff.mean().item():.3e}")
    again = pipe(frames, soft, settings, seed=args.seed)[:n]
    print(f"ours run twice: max |diff| = {(again - ours[:n]).abs().max().item():.3e}")
    other = pipe(frames, soft, settings, seed=args.seed + 1)[:n]  # shows the comparison can see a difference
    print(f"control, ours with seed {args.seed + 1}: max |diff| = {(other - reference[:n]).abs().max().item():.3e}")


if __name__ == "__main__":
    main()
