"""The streaming node's video sources (nodes/convert_node.py) in each installed ComfyUI, with its real folder_paths
set to temporary folders: the ``video_file`` / ``depth_video_file`` lists hold the input folder's videos (as core
Load Video lists them, with its upload button), exactly one source per video is taken (link, list or path string),
and list values that are not in the list are refused with a message naming the input and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.comfy_subprocess import run_in_comfyui

_PROBE = r"""
node = importlib.import_module(pack_name + ".nodes.convert_node")
Node = node.ConvertVideoTo3D
report["listed"] = node.input_videos()
info = Node.INPUT_TYPES()
report["schema"] = {name: info["optional"][name] for name in ("video_file", "depth_video_file")}
report["validate"] = {value: Node.validate_inputs(video_file=value) for value in argv[0].split("|")}
report["validate_depth"] = Node.validate_inputs(depth_video_file="notes.txt")
report["validate_link"] = Node.validate_inputs(video_file=None)
class VideoFromFile:  # a stand-in for a linked Load Video's VIDEO, read in place
    def get_stream_source(self):
        return str(root / "input" / "b.webm")
report["chosen"] = {}
for case in json.loads(argv[1]):
    video = VideoFromFile() if case[0] else None
    try:
        found = node.chosen_video(video, case[1], case[2], "video")
        report["chosen"][json.dumps(case)] = None if found is None else str(found.path)
    except ValueError as exc:
        report["chosen"][json.dumps(case)] = "refused: " + str(exc)
stamp = Node.fingerprint_inputs(video_file="a.mp4", depth_video_path="clips/c.mp4", layout="full SBS")
os.utime(root / "input" / "a.mp4", (1e9, 1e9))
report["stamps"] = [stamp, Node.fingerprint_inputs(video_file="a.mp4", depth_video_path="clips/c.mp4")]
"""

VALUES = ["a.mp4", "b.webm", "a.mp4 [input]", "(none)", "notes.txt", "clips/c.mp4", "../secret/private.mp4",
          "missing.mp4", "a.mp4 [output]"]  # fmt: skip
# (VIDEO linked, video_file, video_path)
CASES = [[False, "a.mp4", ""], [False, "(none)", "clips/c.mp4"], [True, "(none)", ""], [False, "(none)", ""],
         [True, "a.mp4", ""], [False, "a.mp4", "clips/c.mp4"], [True, "(none)", "clips/c.mp4"],
         [False, "../secret/private.mp4", ""], [False, "link.mp4", ""]]  # fmt: skip


@pytest.fixture
def comfy_root(tmp_path: Path) -> Path:
    """input/ with two videos, a non-video, an image, a video in a sub-folder and a symlink to a video outside."""
    root = tmp_path / "comfy"
    for name in ("input", "output", "temp"):
        (root / name).mkdir(parents=True)
    for name in ("b.webm", "a.mp4", "notes.txt", "still.png", "clips/c.mp4"):
        (root / "input" / name).parent.mkdir(exist_ok=True)
        (root / "input" / name).write_bytes(b"video")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "private.mp4").write_bytes(b"secret")
    (root / "input" / "link.mp4").symlink_to(tmp_path / "secret" / "private.mp4")
    return root


@pytest.fixture(params=["comfyui", "comfyui-0.33"])
def report(request: pytest.FixtureRequest, comfy_root: Path) -> dict:
    return run_in_comfyui(request.param, comfy_root, _PROBE, "|".join(VALUES), json.dumps(CASES))


def test_lists_hold_the_input_folders_videos_with_upload(report: dict) -> None:
    """Top-level videos only, sorted (a symlink too: it is refused when used); not the text file, the image or
    the sub-folder's file (video_path takes those). "(none)" first, the default, so the path string still works."""
    assert report["listed"] == ["a.mp4", "b.webm", "link.mp4"]
    for name, (kind, options) in report["schema"].items():
        assert kind == "COMBO", name
        assert options["options"] == ["(none)", "a.mp4", "b.webm", "link.mp4"], name
        assert options["default"] == "(none)" and options["video_upload"] is True, name


def test_validation_takes_listed_files_only(report: dict) -> None:
    ok = {value for value, result in report["validate"].items() if result is True}
    assert ok == {"a.mp4", "b.webm", "a.mp4 [input]", "(none)"}
    for value in set(VALUES) - ok:
        message = report["validate"][value]
        assert message.startswith(f"video_file: {value!r} is not a video in ComfyUI's input folder"), message
        assert "set video_file to (none) and give a file in a sub-folder" in message and "as video_path" in message
    assert report["validate_depth"].startswith("depth_video_file: 'notes.txt' is not a video")
    assert "as depth_video_path" in report["validate_depth"]
    assert report["validate_link"] is True  # a linked value is checked when the node runs


def test_exactly_one_source(report: dict, comfy_root: Path) -> None:
    chosen = {tuple(json.loads(key)): value for key, value in report["chosen"].items()}
    assert chosen[(False, "a.mp4", "")] == str(comfy_root / "input" / "a.mp4")
    assert chosen[(False, "(none)", "clips/c.mp4")] == str(comfy_root / "input" / "clips" / "c.mp4")
    assert chosen[(False, "(none)", "")] is None  # nothing given: the node's own message (video required)
    assert chosen[(True, "(none)", "")] == str(comfy_root / "input" / "b.webm")  # the linked VIDEO's file
    both = {
        (True, "a.mp4", ""): "video (link) and video_file",
        (False, "a.mp4", "clips/c.mp4"): "video_file and video_path",
        (True, "(none)", "clips/c.mp4"): "video (link) and video_path",
    }
    for case, names in both.items():
        assert chosen[case] == (
            f"refused: {names} are both given; use one of them: disconnect video, set video_file to (none), "
            "or clear video_path."
        ), case
    assert chosen[(False, "../secret/private.mp4", "")].startswith("refused: video_file: '../secret/private.mp4'")
    assert "symlink leading out of ComfyUI's input folder" in chosen[(False, "link.mp4", "")]


def test_fingerprint_follows_the_files(report: dict, comfy_root: Path) -> None:
    """A file replaced under the same name (modification time changed) gives another fingerprint."""
    before, after = report["stamps"]
    assert before[0][0] == str(comfy_root / "input" / "a.mp4") and before[1] is None and before[3][0].endswith("c.mp4")
    assert after[0] == [before[0][0], 1e9] and after[3] == before[3]
