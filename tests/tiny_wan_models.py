"""Tiny random StereoCrafter2 models in the EXACT Hugging Face folder layouts (no network).

- :func:`make_wan_base_folder`: ``Wan-AI/Wan2.1-VACE-14B-diffusers`` (model_index.json, transformer/, vae/,
  text_encoder/, tokenizer/, scheduler/).
- :func:`make_stereocrafter2_folder`: ``TencentARC/StereoCrafter2`` (the transformer's config.json + weights at the
  root, as the reference's ``--transformer_path`` loads it).

What matters to the pipeline is kept real: the VAE's 8× spatial / 4× temporal stride and 16 latent channels, the
96 VACE control channels (16 + 16 + 8·8), patch (1, 2, 2), a T5 tokenizer that turns "" into [</s>, <pad>, ...].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKLWan, WanVACETransformer3DModel

TEXT_DIM = 32

MODEL_INDEX: dict[str, Any] = {
    "_class_name": "WanVACEPipeline",
    "_diffusers_version": "0.35.0.dev0",
    "scheduler": ["diffusers", "UniPCMultistepScheduler"],
    "text_encoder": ["transformers", "UMT5EncoderModel"],
    "tokenizer": ["transformers", "T5TokenizerFast"],
    "transformer": ["diffusers", "WanVACETransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLWan"],
}

SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "UniPCMultistepScheduler",
    "_diffusers_version": "0.35.0.dev0",
    "beta_schedule": "linear",
    "flow_shift": 5.0,
    "num_train_timesteps": 1000,
    "prediction_type": "flow_prediction",
    "use_flow_sigmas": True,
}


def tiny_transformer(seed: int = 0) -> WanVACETransformer3DModel:
    """A 2-layer WanVACETransformer3DModel (one VACE block at layer 0) with random weights, outputs not near 0."""
    torch.manual_seed(seed)
    model = WanVACETransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=TEXT_DIM, freq_dim=16, ffn_dim=32, num_layers=2, rope_max_seq_len=32, vace_layers=[0],
        vace_in_channels=96,
    )  # fmt: skip
    # diffusers zero-initialises some projections; random weights everywhere make every input matter.
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    return model.eval()


def tiny_vae(seed: int = 1) -> AutoencoderKLWan:
    """AutoencoderKLWan with the real strides (8× spatial, 4× temporal) and z_dim 16, 8 base channels."""
    torch.manual_seed(seed)
    return AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1).eval()


def save_tiny_tokenizer(folder: Path) -> None:
    """A T5 tokenizer (Unigram, a..h) saved by transformers: "" → [</s>] as UMT5's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in "abcdefgh"]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    T5TokenizerFast(
        tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>", extra_ids=0
    ).save_pretrained(folder)


def tiny_text_encoder(seed: int = 2) -> torch.nn.Module:
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    config = UMT5Config(
        vocab_size=16, d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=16,
    )  # fmt: skip
    return UMT5EncoderModel(config).eval()


def make_wan_base_folder(root: Path, *, with_text_encoder: bool = True) -> Path:
    """``Wan-AI/Wan2.1-VACE-14B-diffusers`` layout under ``root`` (its own random base transformer included)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2))
    (root / "scheduler").mkdir(exist_ok=True)
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2))
    tiny_vae().save_pretrained(root / "vae")
    tiny_transformer(seed=5).save_pretrained(root / "transformer")
    if with_text_encoder:
        tiny_text_encoder().save_pretrained(root / "text_encoder")
        save_tiny_tokenizer(root / "tokenizer")
    return root


def make_stereocrafter2_folder(root: Path, seed: int = 0) -> Path:
    """``TencentARC/StereoCrafter2`` layout: the transformer's config.json and weights at ``root``."""
    tiny_transformer(seed).save_pretrained(root)
    return root


def make_sc2_folders(root: Path) -> tuple[Path, Path]:
    """(Wan base folder, StereoCrafter2 folder) of tiny random models under ``root``."""
    return make_wan_base_folder(root / "Wan2.1-VACE-14B-diffusers"), make_stereocrafter2_folder(root / "StereoCrafter2")


def sc2_clip(frames: int = 11, height: int = 40, width: int = 56) -> tuple[torch.Tensor, torch.Tensor]:
    """Random warped frames [frames, height, width, 3] and a mask [frames, height, width] with one hole, far from
    most pixels (a fixed seed: every test module sees the same clip)."""
    g = torch.Generator().manual_seed(3)
    warped = torch.rand(frames, height, width, 3, generator=g)
    mask = torch.zeros(frames, height, width)
    mask[:, 8:20, 30:44] = 1.0
    return warped, mask
