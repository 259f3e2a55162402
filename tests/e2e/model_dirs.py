"""Tiny random models in a ComfyUI ``models/`` folder, in the folder names and layouts the pack's loaders list.

Built with tests/tiny_models.py and tests/tiny_wan_models.py (the exact Hugging Face layouts, random weights, ~15 MB
in all) before the test
server starts, so the loaders' combos list them and the model workflows run in seconds on the CPU. The outputs
are noise, of course: the e2e tests check wiring, sizes, frame counts, ranges and error reporting, not quality.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# The loaders' default folder names (nodes/model_folders.py), which the example workflows keep.
DEPTHCRAFTER_NAME = "DepthCrafter"
STEREOCRAFTER_NAME = "StereoCrafter"
SVD_NAME = "stable-video-diffusion-img2vid-xt-1-1"
STEREOCRAFTER2_NAME = "StereoCrafter2"
WAN_BASE_NAME = "Wan2.1-VACE-14B-diffusers"
DEPTH_ANYTHING_NAME = "Depth-Anything-V2-Small-hf"
# A StereoCrafter UNet (config.json at its root) put where DepthCrafter belongs: a user's likely mistake.
WRONG_DEPTHCRAFTER_NAME = "WrongUNet"


@dataclass(frozen=True)
class TinyModels:
    models_dir: Path
    depthcrafter: Path
    stereocrafter: Path
    svd: Path
    wrong_depthcrafter: Path
    depth_anything: Path
    stereocrafter2: Path
    wan_base: Path


def install_tiny_models(models_dir: Path) -> TinyModels:
    """Writes the tiny models under ``models_dir`` (ComfyUI's ``models/``) and returns their folders."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.tiny_depth_anything import make_tiny_depth_anything
    from tests.tiny_models import make_depthcrafter_folder, make_stereocrafter_folder, make_svd_folder
    from tests.tiny_wan_models import make_stereocrafter2_folder, make_wan_base_folder

    models_dir = Path(models_dir)
    found = TinyModels(
        models_dir=models_dir,
        depthcrafter=models_dir / "depthcrafter" / DEPTHCRAFTER_NAME,
        stereocrafter=models_dir / "stereocrafter" / STEREOCRAFTER_NAME,
        svd=models_dir / "diffusers" / SVD_NAME,
        wrong_depthcrafter=models_dir / "depthcrafter" / WRONG_DEPTHCRAFTER_NAME,
        depth_anything=models_dir / "depth_anything" / DEPTH_ANYTHING_NAME,
        stereocrafter2=models_dir / "stereocrafter" / STEREOCRAFTER2_NAME,
        wan_base=models_dir / "diffusers" / WAN_BASE_NAME,
    )
    make_depthcrafter_folder(found.depthcrafter)
    make_stereocrafter_folder(found.stereocrafter, subfolder="unet_diffusers")  # the official code's layout
    # What download_missing fetches from the (gated) SVD repository: the fp16 files only.
    make_svd_folder(found.svd, fp16_variant=True, full=False)
    make_stereocrafter_folder(found.wrong_depthcrafter, subfolder=None)  # config.json + weights at the root
    make_tiny_depth_anything(found.depth_anything)  # depth-anything/Depth-Anything-V2-Small-hf's files
    make_stereocrafter2_folder(found.stereocrafter2)  # TencentARC/StereoCrafter2: the transformer at the root
    make_wan_base_folder(found.wan_base)  # its own tiny base transformer too, as the full download would have
    return found
