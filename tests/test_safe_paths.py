"""Path strings from a prompt stay inside ComfyUI's folders (nodes/safe_paths.py): reads from the input folder (or
an annotated [output]/[temp] name, or a folder the operator allowed), writes into the output folder; ``..``,
absolute paths and symlinks leading out are refused with a message naming the input and the fix. The last test
runs the convert node's own path functions inside the installed ComfyUI, with its real folder_paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.comfy_subprocess import run_in_comfyui
from tests.pack_import import import_pack_module

safe_paths = import_pack_module("nodes.safe_paths")
video_inputs = import_pack_module("nodes.video_inputs")
UnsafePathError = safe_paths.UnsafePathError
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def comfy(tmp_path: Path) -> dict[str, Path]:
    """ComfyUI's three folders, a file in each, one in a sub-folder of input, and a secret outside all of them."""
    folders = {name: tmp_path / "comfy" / name for name in ("input", "output", "temp")}
    for name, folder in folders.items():
        folder.mkdir(parents=True)
        (folder / f"{name}.mp4").write_bytes(b"video")
    (folders["input"] / "clips").mkdir()
    (folders["input"] / "clips" / "a.mp4").write_bytes(b"video")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "private.png").write_bytes(b"secret")
    return folders


def _resolve(value: str, folders: dict[str, Path], roots: list[Path] | None = None) -> Path:
    return safe_paths.resolve_input_file(value, "video_path", folders, [] if roots is None else roots)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("input.mp4", "input/input.mp4"),
        ("clips/a.mp4", "input/clips/a.mp4"),
        ("clips/../input.mp4", "input/input.mp4"),  # up and back in: still inside
        ("input.mp4 [input]", "input/input.mp4"),
        ("clips/a.mp4 [input]", "input/clips/a.mp4"),
        ("output.mp4 [output]", "output/output.mp4"),
        ("temp.mp4 [temp]", "temp/temp.mp4"),
        ("  input.mp4  ", "input/input.mp4"),
    ],
)
def test_names_inside_comfyui_folders_resolve(comfy: dict[str, Path], value: str, where: str) -> None:
    folder, _, rest = where.partition("/")
    found = _resolve(value, comfy)
    assert found.resolve() == (comfy[folder] / rest).resolve() and found.is_file()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("../../secret/private.png", "goes up out of ComfyUI's input folder"),
        ("clips/../../../secret/private.png", "goes up out of ComfyUI's input folder"),
        ("../input/input.mp4 [output]", "goes up out of ComfyUI's output folder"),
        ("{secret}", "is an absolute path outside the allowed folders"),
        ("{secret} [input]", "is an absolute path outside the allowed folders"),
        ("~/private.png", "is an absolute path outside the allowed folders"),
        ("/etc/passwd", "is an absolute path outside the allowed folders"),
        ("missing.mp4", "is not a file"),
    ],
)
def test_paths_leaving_the_folders_are_refused(comfy: dict[str, Path], tmp_path: Path, value: str, words: str) -> None:
    value = value.format(secret=tmp_path / "secret" / "private.png")
    with pytest.raises(UnsafePathError, match=words) as error:
        _resolve(value, comfy)
    message = str(error.value)
    assert message.startswith("video_path: ")
    assert str(comfy["input"]) in message and safe_paths.INPUT_ROOTS_ENV in message  # where to put it, the switch
    assert isinstance(error.value, ValueError)  # ComfyUI shows a ValueError's message to the user


def test_symlinks_leading_out_are_refused(comfy: dict[str, Path], tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    (comfy["input"] / "innocent.mp4").symlink_to(secret / "private.png")
    (comfy["input"] / "linked_dir").symlink_to(secret, target_is_directory=True)
    (comfy["input"] / "inside_link.mp4").symlink_to(comfy["input"] / "clips" / "a.mp4")
    for value in ("innocent.mp4", "linked_dir/private.png", "innocent.mp4 [input]"):
        with pytest.raises(UnsafePathError, match="symlink leading out of ComfyUI's input folder"):
            _resolve(value, comfy)
    assert _resolve("inside_link.mp4", comfy) == comfy["input"] / "inside_link.mp4"  # a link inside is fine


def test_input_folder_itself_a_symlink(tmp_path: Path) -> None:
    """ComfyUI's input folder may itself be a link to another disk: names in it still resolve."""
    real = tmp_path / "disk" / "input"
    real.mkdir(parents=True)
    (real / "x.mp4").write_bytes(b"v")
    (tmp_path / "input").symlink_to(real, target_is_directory=True)
    assert _resolve("x.mp4", {"input": tmp_path / "input"}) == tmp_path / "input" / "x.mp4"
    assert _resolve(str(real / "x.mp4"), {"input": tmp_path / "input"}) == real / "x.mp4"  # absolute, inside


def test_operator_allowed_roots(comfy: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret" / "private.png"
    monkeypatch.delenv(safe_paths.INPUT_ROOTS_ENV, raising=False)
    assert safe_paths.allowed_input_roots() == []  # off by default
    with pytest.raises(UnsafePathError):
        safe_paths.resolve_input_file(str(secret), "depth_video_path", comfy)
    (tmp_path / "other").mkdir()
    monkeypatch.setenv(safe_paths.INPUT_ROOTS_ENV, os.pathsep.join([str(tmp_path / "other"), "relative/skipped", ""]))
    assert safe_paths.allowed_input_roots() == [tmp_path / "other"]
    with pytest.raises(UnsafePathError, match=r"^depth_video_path: .*allowed absolute folders: .*other"):
        safe_paths.resolve_input_file(str(secret), "depth_video_path", comfy)
    monkeypatch.setenv(safe_paths.INPUT_ROOTS_ENV, str(tmp_path / "secret"))
    assert safe_paths.resolve_input_file(str(secret), "depth_video_path", comfy) == secret
    # An allowed root does not open relative names: they still resolve in the input folder only.
    with pytest.raises(UnsafePathError, match="goes up out of"):
        safe_paths.resolve_input_file("../../secret/private.png", "video_path", comfy)


def test_video_source_uses_the_checks(comfy: dict[str, Path], tmp_path: Path) -> None:
    def source(value: str) -> Path:
        return video_inputs.video_source(None, value, "depth_video", comfy["input"], comfy["temp"], comfy["output"])

    assert source("clips/a.mp4 [input]").path == comfy["input"] / "clips" / "a.mp4"
    assert source("output.mp4 [output]").path == comfy["output"] / "output.mp4"
    with pytest.raises(UnsafePathError, match=r"^depth_video_path: .* is an absolute path"):
        source(str(tmp_path / "secret" / "private.png"))
    with pytest.raises(UnsafePathError, match=r"^depth_video_path: .* goes up out of"):
        source("../../secret/private.png")


@pytest.mark.parametrize(
    ("prefix", "folder", "name"),
    [
        ("stereo3d/converted", "stereo3d", "converted"),
        ("converted", "", "converted"),
        ("a/b/c/x", "a/b/c", "x"),
        ("a/../x", "", "x"),
        ("./a//x", "a", "x"),
    ],
)
def test_output_prefixes_inside(comfy: dict[str, Path], prefix: str, folder: str, name: str) -> None:
    got_folder, got_name, subfolder = safe_paths.output_folder(prefix, comfy["output"])
    assert (got_folder, got_name, subfolder) == (comfy["output"] / folder, name, folder)
    assert got_folder.is_dir()


@pytest.mark.parametrize(
    ("prefix", "words"),
    [
        ("../x", "goes up out of the output folder"),
        ("../../secret/x", "goes up out of the output folder"),
        ("a/../../x", "goes up out of the output folder"),
        ("{tmp}/x", "is an absolute path"),
        ("/tmp/x", "is an absolute path"),
        ("~/x", "is an absolute path"),
        ("", "has no file name"),
        ("stereo3d/", "has no file name"),
        ("..", "has no file name"),
    ],
)
def test_output_prefixes_leaving_are_refused(comfy: dict[str, Path], tmp_path: Path, prefix: str, words: str) -> None:
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(UnsafePathError, match=words) as error:
        safe_paths.output_folder(prefix.format(tmp=tmp_path), comfy["output"])
    assert str(error.value).startswith("filename_prefix: ") and "stereo3d/converted" in str(error.value)
    assert sorted(tmp_path.rglob("*")) == before  # no folder was created anywhere


def test_output_symlink_escapes_are_refused(comfy: dict[str, Path], tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (comfy["output"] / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="leads through a symlink out of the output folder"):
        safe_paths.output_folder("linked/x", comfy["output"])
    with pytest.raises(UnsafePathError, match="leads through a symlink out of the output folder"):
        safe_paths.output_folder("linked/new/x", comfy["output"])
    assert list(outside.iterdir()) == []
    # A symlink planted at the output file or its work folder (a dangling one too) is refused before writing.
    target = comfy["output"] / "clip_SBS.mp4"
    safe_paths.check_output_file(target, comfy["output"])  # nothing there: fine
    for planted, link_to in ((target.with_name("clip_SBS.mp4.partial.d"), outside), (target, outside / "none.mp4")):
        planted.symlink_to(link_to)
        with pytest.raises(UnsafePathError, match="symlink leading out of the output folder"):
            safe_paths.check_output_file(target, comfy["output"])
        planted.unlink()


_PROBE = r"""
convert_node = importlib.import_module(pack_name + ".nodes.convert_node")
for value in ("clips/a.mp4", "input.mp4 [input]", "../../secret/private.png", str(root.parent / "secret/private.png")):
    try:
        report[value] = str(convert_node.video_file(None, value, "video").path)
    except ValueError as exc:
        report[value] = "refused: " + str(exc)
for prefix in ("stereo3d/converted", "../evil", "/tmp/evil"):
    try:
        report[prefix] = list(map(str, convert_node.output_path(prefix, Path("clip.mp4"), "full SBS")))
    except ValueError as exc:
        report[prefix] = "refused: " + str(exc)
"""


@pytest.mark.parametrize("tree", ["comfyui", "comfyui-0.33"])
def test_convert_node_paths_in_comfyui(comfy: dict[str, Path], tree: str) -> None:
    """The convert node's own path functions with ComfyUI's real folder_paths (set to temporary folders), in each
    installed ComfyUI (0.3.75 in .cache/comfyui, 0.33 in .cache/comfyui-0.33)."""
    root = comfy["input"].parent
    report = run_in_comfyui(tree, root, _PROBE)
    assert report["clips/a.mp4"] == str(comfy["input"] / "clips" / "a.mp4")
    assert report["input.mp4 [input]"] == str(comfy["input"] / "input.mp4")
    assert report["../../secret/private.png"].startswith("refused: video_path: ")
    assert "absolute path" in report[str(root.parent / "secret/private.png")]
    assert report["stereo3d/converted"] == [str(comfy["output"] / "stereo3d" / "converted_clip_SBS_LR.mp4"), "stereo3d"]
    assert report["../evil"].startswith("refused: filename_prefix: ")
    assert report["/tmp/evil"].startswith("refused: filename_prefix: ")
    assert not (root / "evil").exists() and not (root / "evil_clip_SBS.mp4").exists()
