"""One inpainting interface for StereoCrafter v1 and v2 (stereocrafter/inpaint/inpaint_model.py): the protocol,
settings from the shared options, shot cuts and interrupts in the v2 stream, the converter and the command line with
``--inpaint-model stereocrafter2`` end to end on tiny random Wan models (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_convert import _decode, _encode
from tiny_models import make_stereocrafter_folder, make_svd_folder
from tiny_wan_models import make_stereocrafter2_folder, make_wan_base_folder

from stereocrafter import convert as convert_module
from stereocrafter.__main__ import main
from stereocrafter.convert import ConvertSettings, InpaintStage, convert_video, work_paths
from stereocrafter.inpaint.inpaint2_pipeline import (
    Inpaint2Settings,
    StereoCrafter2Pipeline,
    load_stereocrafter2,
    plan_chunks2_in_shots,
)
from stereocrafter.inpaint.inpaint_model import InpaintModel, InpaintOptions, InpaintStreamLike, check_settings
from stereocrafter.inpaint.inpaint_pipeline import InpaintSettings, StereoInpaintPipeline
from stereocrafter.video.video_io import probe_video

FRAMES, HEIGHT, WIDTH = 12, 32, 48
# Chunks of 5 frames overlapping 2 on a 12-frame clip: four chunks, none aligned with the converter's 4-frame chunks.
SMALL2 = Inpaint2Settings(steps=1, chunk_frames=5, chunk_overlap=2, tiles=(1, 1))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder in ComfyUI's layout with both inpainting models (tiny random weights)."""
    root = tmp_path_factory.mktemp("models")
    make_stereocrafter_folder(root / "stereocrafter" / "StereoCrafter")
    make_svd_folder(root / "diffusers" / "stable-video-diffusion-img2vid-xt-1-1")
    make_stereocrafter2_folder(root / "stereocrafter" / "StereoCrafter2")
    make_wan_base_folder(root / "diffusers" / "Wan2.1-VACE-14B-diffusers")
    return root


@pytest.fixture(scope="module")
def v2(models: Path) -> StereoCrafter2Pipeline:
    return load_stereocrafter2(
        models / "stereocrafter" / "StereoCrafter2", models / "diffusers" / "Wan2.1-VACE-14B-diffusers"
    )


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(video, depth video): a moving bright square in front of a gradient, and its depth (square near)."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames, depths = [], []
    for k in range(FRAMES):
        image = np.stack([(xs * 5 + k * 3) % 256, (ys * 7) % 256, np.full_like(xs, 90)], -1)
        depth = np.full((HEIGHT, WIDTH, 3), 40)
        image[8:24, 8 + k : 24 + k] = 230
        depth[8:24, 8 + k : 24 + k] = 250
        frames.append(image)
        depths.append(depth)
    folder = tmp_path_factory.mktemp("clips")
    _encode(folder / "clip.mp4", np.stack(frames).astype(np.uint8))
    _encode(folder / "depth.mp4", np.stack(depths).astype(np.uint8))
    return folder / "clip.mp4", folder / "depth.mp4"


def test_both_pipelines_are_inpaint_models(models: Path, v2: StereoCrafter2Pipeline) -> None:
    v1 = StereoInpaintPipeline.from_pretrained(
        models / "diffusers" / "stable-video-diffusion-img2vid-xt-1-1", models / "stereocrafter" / "StereoCrafter",
        torch.float32,
    )  # fmt: skip
    for model, settings in ((v1, InpaintSettings(steps=1, tiles=(1, 1))), (v2, SMALL2)):
        assert isinstance(model, InpaintModel)
        stream = model.open_stream(5, 32, 48, settings, seed=1)
        assert isinstance(stream, InpaintStreamLike)
        assert stream.frames_out == 0
    assert (v1.model_name, v2.model_name) == ("StereoCrafter", "StereoCrafter2")
    with pytest.raises(TypeError, match="StereoCrafter2 takes Inpaint2Settings, got InpaintSettings"):
        check_settings(v2, InpaintSettings())
    with pytest.raises(TypeError, match="StereoCrafter takes InpaintSettings, got Inpaint2Settings"):
        check_settings(v1, Inpaint2Settings())


def test_settings_from_shared_options() -> None:
    assert StereoInpaintPipeline.settings_from(InpaintOptions()) == InpaintSettings()
    assert StereoCrafter2Pipeline.settings_from(InpaintOptions()) == Inpaint2Settings()
    assert StereoInpaintPipeline.settings_from(InpaintOptions(faithful=True)) == InpaintSettings.reference(tiles=2)
    assert StereoCrafter2Pipeline.settings_from(InpaintOptions(faithful=True)) == Inpaint2Settings.reference()
    v1 = StereoInpaintPipeline.settings_from(InpaintOptions(steps=3, fit="crop", tiles=(1, 2), guidance_scale=1.5))
    assert (v1.steps, v1.fit, v1.multiple, v1.tiles, v1.guidance_scale) == (3, "crop", 128, (1, 2), 1.5)
    # v2: chunks rounded down to 1 + 4k, fit is the temporal fit, guidance has no meaning there.
    v2 = StereoCrafter2Pipeline.settings_from(
        InpaintOptions(steps=4, chunk_frames=23, chunk_overlap=3, fit="crop", guidance_scale=1.5, seams="reference")
    )
    assert (v2.steps, v2.chunk_frames, v2.chunk_overlap, v2.temporal_fit, v2.seams) == (4, 21, 3, "crop", "reference")
    with pytest.raises(ValueError, match="chunk_overlap must be in"):
        StereoCrafter2Pipeline.settings_from(InpaintOptions(chunk_frames=6, chunk_overlap=5))


@pytest.mark.parametrize("fit", ["pad", "crop"])
@pytest.mark.parametrize(
    ("num_frames", "cuts"), [(30, [7]), (30, [1, 2, 29]), (100, [40, 41, 90]), (17, []), (50, [13, 26, 39])]
)
def test_chunks_in_shots_never_span_a_cut(num_frames: int, cuts: list[int], fit: str) -> None:
    chunks = plan_chunks2_in_shots(num_frames, 13, 3, cuts, fit=fit)
    produced = [f for c in chunks for f in range(c.new_from, c.end)]
    if fit == "pad":
        assert produced == list(range(num_frames))
    else:  # crop: only the last shot may leave a tail no chunk covers (the reference's short clips)
        last_cut = max(cuts, default=0)
        assert produced == sorted(set(produced)) and produced[:last_cut] == list(range(last_cut))
    for c in chunks:
        assert (c.length - 1) % 4 == 0
        assert not any(c.start < cut < c.end for cut in cuts), (c, cuts)
        assert (c.start in cuts) <= (c.new_from == c.start)  # a shot's first chunk takes nothing from before


def test_stream_with_cuts_in_pushes_equals_one_push(v2: StereoCrafter2Pipeline) -> None:
    g = torch.Generator().manual_seed(0)
    warped, mask = torch.rand(11, 32, 48, 3, generator=g), torch.zeros(11, 32, 48)
    mask[:, 8:20, 20:36] = 1
    whole = v2.open_stream(11, 32, 48, SMALL2, seed=5, cuts=[6])
    expected = torch.cat([whole.push(warped, mask), whole.finish()])
    assert [(c.start, c.new_from) for c in whole.chunks if c.start >= 6][0] == (6, 6)
    pieces = v2.open_stream(11, 32, 48, SMALL2, seed=5, cuts=[6])
    out = [pieces.push(warped[a : a + 3], mask[a : a + 3]) for a in range(0, 11, 3)]
    assert torch.equal(torch.cat([*out, pieces.finish()]), expected)
    assert expected.shape == warped.shape


def test_interrupt_stops_the_v2_stream_and_it_then_refuses_pushes(v2: StereoCrafter2Pipeline) -> None:
    class Stop(Exception):
        pass

    calls: list[int] = []

    def interrupt() -> None:
        calls.append(1)
        if len(calls) == 2:  # before the second denoising step
            raise Stop

    stream = v2.open_stream(9, 32, 48, SMALL2, interrupt=interrupt)
    with pytest.raises(Stop):
        stream.push(torch.rand(9, 32, 48, 3), torch.ones(9, 32, 48))
    with pytest.raises(ValueError, match=r"push\(\) after a push that failed \(Stop\)"):
        stream.push(torch.rand(1, 32, 48, 3), torch.ones(1, 32, 48))


def _v2_stage(models: Path, loads: list[int] | None = None) -> InpaintStage:
    def load() -> StereoCrafter2Pipeline:
        if loads is not None:
            loads.append(1)
        return load_stereocrafter2(
            models / "stereocrafter" / "StereoCrafter2", models / "diffusers" / "Wan2.1-VACE-14B-diffusers"
        )

    return InpaintStage(load, SMALL2, seed=3, model_id="StereoCrafter2 tiny")


def test_converter_resumes_v2_bit_identically(models, clips, tmp_path, monkeypatch, one_torch_thread) -> None:
    video, depth = clips
    packed: list[torch.Tensor] = []
    real_compose = convert_module.compose
    monkeypatch.setattr(convert_module, "compose", lambda *a: packed.append(real_compose(*a).clone()) or packed[-1])
    settings = ConvertSettings(chunk_frames=4)

    class Kill(Exception):
        pass

    def kill(index: int, done: int) -> None:
        if index == 0:  # 2 segments: frames 0..5 after the second push, the rest after the third
            raise Kill

    loads: list[int] = []
    output = tmp_path / "out.mp4"
    with pytest.raises(Kill):
        convert_video(video, output, depth, settings, inpaint=_v2_stage(models, loads), scenes=[],
                      on_chunk_done=kill)  # fmt: skip
    progress = json.loads((work_paths(output)[0] / "progress.json").read_text())
    assert len(progress["chunks"]) == 1 and progress["chunks"][-1]["state"]
    assert progress["job"]["inpaint"]["settings"]["chunk_frames"] == 5  # v2's settings in the job record
    convert_video(video, output, depth, settings, inpaint=_v2_stage(models, loads), scenes=[])
    assert loads == [1, 1] and probe_video(output).frame_count == FRAMES
    resumed = torch.cat(packed)
    packed.clear()
    convert_video(video, tmp_path / "fresh.mp4", depth, settings, inpaint=_v2_stage(models), scenes=[])
    assert torch.equal(resumed, torch.cat(packed))


def test_converter_rejects_v1_settings_for_v2(models, clips, tmp_path, one_torch_thread) -> None:
    video, depth = clips
    stage = InpaintStage(_v2_stage(models).load, InpaintSettings(steps=1), seed=0)
    with pytest.raises(TypeError, match="StereoCrafter2 takes Inpaint2Settings"):
        convert_video(video, tmp_path / "o.mp4", depth, ConvertSettings(chunk_frames=4), inpaint=stage, scenes=[])


def test_cli_converts_with_stereocrafter2(models, clips, tmp_path, one_torch_thread) -> None:
    video, depth = clips
    output = tmp_path / "out.mp4"
    args = [str(video), "-o", str(output), "--depth", str(depth), "--models", str(models), "--inpaint-model",
            "stereocrafter2", "--inpaint-steps", "1", "--tiles", "1", "--chunk-frames", "4", "--device", "cpu",
            "--scenes", "none"]  # fmt: skip
    assert main(args) == 0
    info = probe_video(output)
    assert (info.frame_count, info.width, info.height) == (FRAMES, 2 * WIDTH, HEIGHT)
    packed, left = _decode(output), _decode(video)
    assert (packed[..., :WIDTH, :] - left).abs().mean() < 6 / 255  # left eye = the source
    # The empty prompt's embedding was cached next to the base's text encoder: later loads skip UMT5.
    assert list((models / "diffusers" / "Wan2.1-VACE-14B-diffusers" / ".stereocrafter3d").glob("*.safetensors"))


def test_cli_names_missing_v2_folders(tmp_path: Path, clips, capsys) -> None:
    video, depth = clips
    args = [str(video), "-o", str(tmp_path / "o.mp4"), "--depth", str(depth), "--models", str(tmp_path / "none"),
            "--inpaint-model", "stereocrafter2"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "TencentARC/StereoCrafter2" in err and "Wan-AI/Wan2.1-VACE-14B-diffusers" in err
    assert "pass --download" in err and "stable-video-diffusion" not in err  # v2 needs no SVD


def test_cli_names_v1_folder_given_as_v2_and_the_reverse(models, clips, tmp_path, capsys) -> None:
    video, depth = clips
    base = [str(video), "-o", str(tmp_path / "o.mp4"), "--depth", str(depth), "--models", str(models)]
    with pytest.raises(SystemExit):
        main([*base, "--inpaint-model", "stereocrafter2", "--stereocrafter2", "StereoCrafter"])
    assert "StereoCrafter v1" in capsys.readouterr().err
    # The reverse fails when the weights load (the v1 loader reads the folder then): named by the library.
    from stereocrafter.inpaint.inpaint_unet import load_inpaint_unet
    from stereocrafter.model_files import ModelFilesError

    with pytest.raises(ModelFilesError, match="Wan-VACE transformer .StereoCrafter2.*--inpaint-model stereocrafter2"):
        load_inpaint_unet(models / "stereocrafter" / "StereoCrafter2")


def test_cli_download_fetches_both_v2_folders(tmp_path, clips, monkeypatch, one_torch_thread) -> None:
    """--download with --inpaint-model stereocrafter2: the transformer and the Wan base are fetched into the models
    folder's stereocrafter/ and diffusers/ (a stand-in for huggingface_hub writes the tiny models there), no SVD."""
    import stereocrafter.model_sources as sources

    fetched: list[tuple[str, Path]] = []

    def fake_download(source, target, interrupt=None):  # noqa: ANN001, ANN202
        fetched.append((source.repo_id, target))
        make = make_stereocrafter2_folder if source is sources.STEREOCRAFTER2 else make_wan_base_folder
        return make(target)

    monkeypatch.setattr(sources, "download_model", fake_download)
    video, depth = clips
    models = tmp_path / "models"
    args = [str(video), "-o", str(tmp_path / "o.mp4"), "--depth", str(depth), "--models", str(models),
            "--inpaint-model", "stereocrafter2", "--download", "--inpaint-steps", "1", "--tiles", "1",
            "--device", "cpu", "--scenes", "none"]  # fmt: skip
    assert main(args) == 0
    assert fetched == [
        ("TencentARC/StereoCrafter2", models / "stereocrafter" / "StereoCrafter2"),
        ("Wan-AI/Wan2.1-VACE-14B-diffusers", models / "diffusers" / "Wan2.1-VACE-14B-diffusers"),
    ]
    assert probe_video(tmp_path / "o.mp4").frame_count == FRAMES


def test_download_patterns_take_only_what_v2_uses() -> None:
    """The allow patterns against the repositories' layouts (file names as published; sharded safetensors): the
    base's own 14B transformer and any pickled weights are left out."""
    from huggingface_hub.utils import filter_repo_objects

    from stereocrafter.model_sources import STEREOCRAFTER2, WAN_VACE_BASE

    base = ["model_index.json", "scheduler/scheduler_config.json", "transformer/config.json",
            "transformer/diffusion_pytorch_model-00001-of-00007.safetensors", "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
            "text_encoder/model-00001-of-00005.safetensors", "text_encoder/model.safetensors.index.json",
            "text_encoder/pytorch_model.bin", "tokenizer/spiece.model", "tokenizer/tokenizer_config.json",
            "README.md"]  # fmt: skip
    taken = set(filter_repo_objects(base, allow_patterns=list(WAN_VACE_BASE.allow_patterns)))
    assert taken == {"model_index.json", "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
                     "text_encoder/config.json", "text_encoder/model-00001-of-00005.safetensors",
                     "text_encoder/model.safetensors.index.json", "tokenizer/spiece.model",
                     "tokenizer/tokenizer_config.json"}  # fmt: skip
    sc2 = ["config.json", "diffusion_pytorch_model-00001-of-00008.safetensors",
           "diffusion_pytorch_model.safetensors.index.json", "README.md", "assets/teaser.png"]  # fmt: skip
    assert set(filter_repo_objects(sc2, allow_patterns=list(STEREOCRAFTER2.allow_patterns))) == set(sc2[:3])


@pytest.mark.parametrize(("tiling", "low_cpu"), [("auto", "auto"), ("on", "on"), ("off", "off")])
def test_cli_v2_memory_options_reach_the_loader_and_the_job(models, clips, monkeypatch, tiling, low_cpu) -> None:
    """--inpaint2-vae-tiling goes into the settings (and into the job id when forced: it changes pixels);
    --inpaint2-low-cpu-mem into load_stereocrafter2."""
    import stereocrafter.inpaint.inpaint2_pipeline as inpaint2
    from stereocrafter.__main__ import _stages, build_parser

    calls = []
    monkeypatch.setattr(inpaint2, "load_stereocrafter2", lambda *a, **k: calls.append(k) or "loaded")
    video, depth = clips
    args = build_parser().parse_args([str(video), "-o", "o.mp4", "--depth", str(depth), "--models", str(models),
                                      "--inpaint-model", "stereocrafter2", "--inpaint2-vae-tiling", tiling,
                                      "--inpaint2-low-cpu-mem", low_cpu, "--device", "cpu"])  # fmt: skip
    _, stage = _stages(args)
    assert stage.settings.vae_tiling == tiling
    assert ("vae-tiling" in stage.model_id) == (tiling != "auto")
    assert stage.load() == "loaded"
    assert calls[0]["low_cpu_mem"] == {"auto": None, "on": True, "off": False}[low_cpu]
