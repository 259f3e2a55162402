"""StereoCrafter2 pipeline on tiny random models in the Hugging Face layouts (CPU)."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from stereocrafter.inpaint.inpaint2_pipeline import (
    Inpaint2Settings,
    Inpaint2Stream,
    check_wan_base,
    find_stereocrafter2_transformer,
    flow_sigmas,
    load_stereocrafter2,
    pack_mask,
    plan_chunks2,
    plan_tile_axis,
    prompt_cache_file,
)
from tests.tiny_models import make_stereocrafter_folder, single_thread
from tests.tiny_wan_models import make_sc2_folders, make_wan_base_folder
from tests.tiny_wan_models import sc2_clip as clip

SMALL = Inpaint2Settings(steps=2, chunk_frames=9, chunk_overlap=2, tiles=(2, 2), tile_overlap_px=16)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_sc2_folders(tmp_path_factory.mktemp("sc2"))


@pytest.fixture(scope="module")
def pipe(folders: tuple[Path, Path]):  # noqa: ANN201
    base, sc2 = folders
    return load_stereocrafter2(sc2, base, dtype=torch.bfloat16)


# -- planning


@pytest.mark.parametrize("num_frames", [1, 2, 5, 8, 9, 10, 13, 17, 30, 81, 100, 161, 200])
@pytest.mark.parametrize(("chunk", "overlap"), [(9, 2), (13, 3), (81, 10)])
def test_chunks_pad_cover_every_frame_once_on_the_stride(num_frames: int, chunk: int, overlap: int) -> None:
    chunks = plan_chunks2(num_frames, chunk, overlap, stride=4, fit="pad")
    produced = [f for c in chunks for f in range(c.new_from, c.end)]
    assert produced == list(range(num_frames))
    for c in chunks:
        assert (c.length - 1) % 4 == 0 and c.length <= chunk
        assert c.start <= c.new_from < c.end <= num_frames
        assert c.pad < 4


def test_chunks_crop_follow_the_reference_walk() -> None:
    # 30 frames, chunks of 13 overlapping 3: [0,13), [10,23), then pulled back to end at 30: [17,30).
    assert [(c.start, c.end, c.new_from) for c in plan_chunks2(30, 13, 3, fit="crop")] == [
        (0, 13, 0),
        (10, 23, 13),
        (17, 30, 23),
    ]
    # A short clip that is not 1 + 4k: the reference cuts it to 9 frames and stops (frame 9 is never made).
    assert [(c.start, c.end) for c in plan_chunks2(10, 13, 3, fit="crop")] == [(0, 9)]
    assert [(c.start, c.end, c.pad) for c in plan_chunks2(10, 13, 3, fit="pad")] == [(0, 10, 3)]


def test_tiles_cover_the_padded_frame() -> None:
    axis = plan_tile_axis(1080, 2, 128)  # the reference at 1080p, tile_num 2
    assert (axis.size, axis.stride, axis.padded) == (608, 480, 1088)
    axis = plan_tile_axis(1920, 2, 128)
    assert (axis.size, axis.padded) == (1024, 1920)
    assert plan_tile_axis(40, 3, 128).count == 1  # too short for tiles wider than the overlap


def test_flow_sigmas_shifted() -> None:
    s = flow_sigmas(10, 5.0)
    assert s[0] == 1.0
    assert s[5].item() == pytest.approx(5 * 0.5 / (1 + 4 * 0.5))
    assert bool((s[1:] < s[:-1]).all())


def test_pack_mask_blocks_and_latent_frames() -> None:
    mask = torch.zeros(1, 9, 16, 16)
    mask[0, 4, 8 + 3, 5] = 1.0  # frame 4, block (1, 0), offset (3, 5)
    packed = pack_mask(mask, latent_frames=3)
    assert packed.shape == (1, 64, 3, 2, 2)
    # nearest-exact picks input frames floor((k + 0.5) * 9 / 3) = 1, 4, 7
    assert torch.nonzero(packed[0]).tolist() == [[3 * 8 + 5, 1, 1, 0]]


def test_settings_validate() -> None:
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        Inpaint2Settings(chunk_frames=80).validate()
    with pytest.raises(ValueError, match="multiple of 8"):
        Inpaint2Settings(tile_overlap_px=12).validate()
    Inpaint2Settings.reference().validate()


# -- the pipeline


def test_size_kept_and_deterministic(pipe) -> None:  # noqa: ANN001
    warped, mask = clip()
    with single_thread():
        a = pipe(warped, mask, SMALL, seed=1)
        b = pipe(warped, mask, SMALL, seed=1)
        c = pipe(warped, mask, SMALL, seed=2)
    assert a.shape == warped.shape and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0


def test_composite_keeps_pixels_outside_holes(pipe) -> None:  # noqa: ANN001
    warped, mask = clip()
    with single_thread():
        ours = pipe(warped, mask, SMALL, seed=0)
        raw = pipe(warped, mask, Inpaint2Settings.reference(2, **_small()), seed=0)
    far = torch.ones_like(mask, dtype=torch.bool)
    far[:, 8 - 6 : 20 + 6, 30 - 6 : 44 + 6] = False  # outside the hole grown by dilate + feather
    assert torch.equal(ours[far], warped[far])
    assert not torch.equal(raw[far], warped[far])  # without composite the VAE's reconstruction is there
    hole = mask.bool()
    assert (ours[hole] - warped[hole]).abs().max() > 0.05  # the holes are generated


def _small() -> dict[str, object]:
    return {"steps": 2, "chunk_frames": 9, "chunk_overlap": 2, "tile_overlap_px": 16}


def test_short_clip_crop_keeps_its_length(pipe) -> None:  # noqa: ANN001
    warped, mask = clip(frames=7)  # not 1 + 4k and shorter than a chunk
    with single_thread():
        out = pipe(warped, mask, Inpaint2Settings.reference(1, **_small()), seed=0)
    assert out.shape == warped.shape
    assert torch.equal(out[5:], warped[5:])  # the reference makes frames 0..4 only; the rest keeps the input


def test_stream_pushes_equal_one_call(pipe) -> None:  # noqa: ANN001
    warped, mask = clip(frames=15)
    with single_thread():
        whole = pipe(warped, mask, SMALL, seed=4)
        stream = Inpaint2Stream(pipe, 15, 40, 56, SMALL, seed=4)
        parts = [stream.push(warped[a:b], mask[a:b]) for a, b in [(0, 3), (3, 10), (10, 15)]]
        parts.append(stream.finish())
    assert sum(len(p) for p in parts) == 15
    assert torch.equal(torch.cat(parts), whole)
    with pytest.raises(ValueError, match="frames into a stream of 15"):
        stream.push(warped[:1], mask[:1])


def test_bad_inputs(pipe) -> None:  # noqa: ANN001
    warped, mask = clip()
    with pytest.raises(ValueError, match="mask is"):
        pipe(warped, mask[:, :10], SMALL)
    stream = Inpaint2Stream(pipe, 11, 40, 56, SMALL)
    stream.push(warped[:4], mask[:4])
    with pytest.raises(ValueError, match="push the rest"):
        stream.finish()


# -- loading


def test_prompt_embedding_cached_then_no_text_encoder_needed(folders: tuple[Path, Path], tmp_path: Path) -> None:
    base, sc2 = folders
    first = load_stereocrafter2(sc2, base, prompt_cache_dir=tmp_path)
    assert prompt_cache_file(tmp_path, torch.bfloat16).is_file()
    # empty prompt: one real token (</s>), zeros after, as the reference pads it
    assert first.prompt_embeds.shape == (1, 226, 32)
    assert first.prompt_embeds[0, 0].abs().sum() > 0 and first.prompt_embeds[0, 1:].abs().sum() == 0
    lean = tmp_path / "lean_base"
    lean.mkdir()
    (lean / "vae").symlink_to(base / "vae")
    second = load_stereocrafter2(sc2, lean, prompt_cache_dir=tmp_path)  # no text_encoder/ or tokenizer/ there
    assert torch.equal(first.prompt_embeds, second.prompt_embeds)


def test_v1_unet_given_for_v2_is_named(tmp_path: Path) -> None:
    v1 = make_stereocrafter_folder(tmp_path / "StereoCrafter")
    with pytest.raises(ValueError, match="StereoCrafter v1"):
        find_stereocrafter2_transformer(v1)


def test_missing_base_components_are_named(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    base = make_wan_base_folder(tmp_path / "wan", with_text_encoder=False)
    with pytest.raises(FileNotFoundError, match="text_encoder/, tokenizer/ of Wan-AI/Wan2.1-VACE-14B-diffusers"):
        check_wan_base(base)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_wan_base(tmp_path / "nowhere")
    (tmp_path / "svd" / "vae").mkdir(parents=True)
    (tmp_path / "svd" / "vae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLTemporalDecoder"}))
    with pytest.raises(ValueError, match="not Wan's AutoencoderKLWan"):
        check_wan_base(tmp_path / "svd", need_text_encoder=False)
    with pytest.raises(FileNotFoundError, match="TencentARC/StereoCrafter2"):
        find_stereocrafter2_transformer(tmp_path / "svd")


# -- resume and numerics


def test_resume_equals_an_uninterrupted_run(pipe) -> None:  # noqa: ANN001
    warped, mask = clip(frames=15)  # chunks [0, 9) and [6, 15): the second takes 3 frames of the first
    with single_thread():
        whole = pipe(warped, mask, SMALL, seed=4)
        first = Inpaint2Stream(pipe, 15, 40, 56, SMALL, seed=4)
        done = first.push(warped[:11], mask[:11])
        buffer = io.BytesIO()
        torch.save(first.state_dict(), buffer)
        buffer.seek(0)
        state = torch.load(buffer, weights_only=False)
        assert first.frames_out == len(done) == 6  # crossfade: frames 6..8 wait for the second chunk
        second = Inpaint2Stream(pipe, 15, 40, 56, SMALL, seed=99, state=state)  # the saved generator wins
        rest = second.push(warped[second.frames_out :], mask[second.frames_out :])
    assert torch.equal(torch.cat([done, rest, second.finish()]), whole)
    with single_thread():  # reference seams: the first chunk's frames are all final, the restore re-feeds 6..8
        plain = replace(SMALL, seams="reference")
        whole = pipe(warped, mask, plain, seed=4)
        first = Inpaint2Stream(pipe, 15, 40, 56, plain, seed=4)
        done = first.push(warped[:11], mask[:11])
        second = Inpaint2Stream(pipe, 15, 40, 56, plain, state=first.state_dict())
        rest = second.push(warped[9:], mask[9:])
    assert len(done) == 9 and torch.equal(torch.cat([done, rest]), whole)
    with pytest.raises(ValueError, match="steps: saved 2, now 3"):
        Inpaint2Stream(pipe, 15, 40, 56, replace(SMALL, steps=3), state=state)
    with pytest.raises(ValueError, match="not an Inpaint2Stream.state_dict"):
        Inpaint2Stream(pipe, 15, 40, 56, SMALL, state={"next_chunk": 1})


def test_transformer_gets_the_shifted_schedule_and_96_control_channels(pipe) -> None:  # noqa: ANN001
    seen: list[dict[str, torch.Tensor]] = []

    def record(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        seen.append({k: v.clone() for k, v in kwargs.items() if isinstance(v, torch.Tensor)})

    handle = pipe.transformer.register_forward_pre_hook(record, with_kwargs=True)
    try:
        warped, mask = clip(frames=9)
        with single_thread():
            pipe(warped, mask, Inpaint2Settings.reference(1, **_small()), seed=0)
    finally:
        handle.remove()
    assert len(seen) == 2  # one chunk, one tile, two steps, no guidance pass
    # sigmas 1 and 0.5, shifted by 5: 1 and 5·0.5 / (1 + 4·0.5) = 5/6; timestep = 1000 σ in bf16
    expected = torch.tensor([1000.0, 5000.0 / 6]).to(torch.bfloat16)
    assert torch.equal(torch.cat([s["timestep"] for s in seen]), expected)
    control = seen[0]["control_hidden_states"]
    assert control.shape == (1, 96, 3, 48 // 8, 64 // 8)  # 40x56 padded to 48x64 (multiples of 16)
    packed = control[0, 32:].float()  # the 64 mask channels: the hole 8:20 x 30:44 on the latent grid
    assert packed[:, :, 1:3, 3:6].amax() == 1.0 and packed[:, :, 3:, :].amax() == 0.0
    assert seen[0]["encoder_hidden_states"].shape == (1, 226, 32)


def test_crossfade_changes_only_the_overlap(pipe) -> None:  # noqa: ANN001
    warped, mask = clip(frames=15)  # chunks [0, 9) and [6, 15)
    with single_thread():
        faded = pipe(warped, mask, SMALL, seed=5)
        cut = pipe(warped, mask, replace(SMALL, seams="reference"), seed=5)
    assert torch.equal(faded[:6], cut[:6])  # only the first chunk
    assert torch.equal(faded[9:], cut[9:])  # the second chunk, conditioned on the same first-chunk frames
    for t in range(6, 9):  # blended towards the second chunk's frames
        assert not torch.equal(faded[t], cut[t])
    far = torch.ones_like(mask, dtype=torch.bool)
    far[:, 2:26, 24:50] = False
    assert torch.equal(faded[far], warped[far])  # the composite holds through the blend


def test_group_offload_gives_the_same_frames(folders: tuple[Path, Path], pipe) -> None:  # noqa: ANN001
    base, sc2 = folders
    offloaded = load_stereocrafter2(sc2, base, offload="group")  # CPU to CPU here: the hooks' path, same numbers
    assert offloaded.device == torch.device("cpu")
    assert hasattr(offloaded.transformer.blocks[0], "_diffusers_hook")  # diffusers' offload hooks are installed
    warped, mask = clip(frames=9)
    with single_thread():
        assert torch.equal(offloaded(warped, mask, SMALL, seed=0), pipe(warped, mask, SMALL, seed=0))
    with pytest.raises(ValueError, match="offload must be"):
        load_stereocrafter2(sc2, base, offload="disk")
