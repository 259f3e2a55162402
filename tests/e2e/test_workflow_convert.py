"""The UI → API converter on hand-made node definitions (no server needed)."""

from __future__ import annotations

import pytest
from workflow_convert import WorkflowError, ui_to_api, widget_names

OBJECT_INFO = {
    "Loader": {
        "input": {"required": {"file": ["COMBO", {"options": ["a.mp4", "b.mp4"], "video_upload": True}]}},
        "input_order": {"required": ["file"]},
    },
    "Sampler": {
        "input": {
            "required": {
                "images": ["IMAGE", {}],
                "seed": ["INT", {"default": 0, "min": 0, "max": 100}],
                "mode": [["fast", "slow"], {}],
                "strength": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0}],
            },
            "optional": {"flag": ["BOOLEAN", {"default": False}], "mask": ["MASK", {}]},
        },
        "input_order": {"required": ["images", "seed", "mode", "strength"], "optional": ["flag", "mask"]},
    },
}


def workflow(sampler_values, extra_nodes=(), links=None):
    nodes = [
        {"id": 1, "type": "Loader", "mode": 0, "inputs": [], "widgets_values": ["a.mp4", "image"]},
        {
            "id": 2,
            "type": "Sampler",
            "mode": 0,
            "inputs": [
                {"name": "images", "type": "IMAGE", "link": 1},
                {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": None},
            ],
            "widgets_values": sampler_values,
        },
        *extra_nodes,
    ]
    return {"nodes": nodes, "links": links or [[1, 1, 0, 2, 0, "IMAGE"]], "version": 0.4}


def test_positional_widgets_with_seed_control_and_upload_button():
    prompt = ui_to_api(workflow([7, "randomize", "slow", 1.5, True]), OBJECT_INFO)
    assert prompt["1"]["inputs"] == {"file": "a.mp4"}
    assert prompt["2"]["inputs"] == {"images": ["1", 0], "seed": 7, "mode": "slow", "strength": 1.5, "flag": True}


def test_notes_dropped_and_reroutes_followed():
    extra = [
        {"id": 3, "type": "Note", "widgets_values": ["hi"]},
        {"id": 4, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 2}], "outputs": []},
    ]
    wf = workflow([7, "fixed", "fast", 1.0, False], extra, links=[[2, 1, 0, 4, 0, "*"], [1, 4, 0, 2, 0, "IMAGE"]])
    prompt = ui_to_api(wf, OBJECT_INFO)
    assert set(prompt) == {"1", "2"} and prompt["2"]["inputs"]["images"] == ["1", 0]


@pytest.mark.parametrize(
    "values, message",
    [
        ([7, "fixed", "medium", 1.0, False], "'medium' is not one of"),
        ([700, "fixed", "fast", 1.0, False], "> max 100"),
        ([7, "fixed", "fast", "1.0", False], "is not a number"),
        ([7, "fixed", "fast", 1.0, "yes"], "is not a boolean"),
        ([7, "fast", 1.0, False], "1.0 is not one of"),  # a value missing in the middle shifts the rest
    ],
)
def test_bad_widget_values_are_reported(values, message):
    with pytest.raises(WorkflowError, match=message):
        ui_to_api(workflow(values), OBJECT_INFO)


def test_unknown_node_type_is_reported():
    wf = workflow([7, "fixed", "fast", 1.0, False], [{"id": 5, "type": "Nope", "widgets_values": []}])
    with pytest.raises(WorkflowError, match="'Nope' is not registered"):
        ui_to_api(wf, OBJECT_INFO)


def test_missing_trailing_values_take_defaults_and_extra_ones_are_dropped():
    """As the frontend loads a workflow saved by an older / newer ComfyUI: noted, not an error."""
    notes: list[str] = []
    prompt = ui_to_api(workflow([7, "fixed", "slow", 1.5]), OBJECT_INFO, notes)
    assert prompt["2"]["inputs"]["flag"] is False
    assert notes == ["node 2 (Sampler): no saved value for ['flag']: the inputs' defaults"]
    notes.clear()
    prompt = ui_to_api(workflow([7, "fixed", "slow", 1.5, True, 8]), OBJECT_INFO, notes)
    assert prompt["2"]["inputs"]["flag"] is True
    assert notes == ["node 2 (Sampler): 1 extra widgets_values [8] dropped"]


# SaveVideo on ComfyUI 0.33 (trimmed): a dynamic combo whose options add nested widgets, then a hidden one.
CODEC = [
    "COMFY_DYNAMICCOMBO_V3",
    {
        "options": [
            {"key": "auto", "inputs": {"required": {}}},
            {
                "key": "h264",
                "inputs": {
                    "required": {},
                    "optional": {
                        "encoding": [
                            "COMFY_DYNAMICCOMBO_V3",
                            {
                                "options": [
                                    {"key": "auto", "inputs": {"required": {}}},
                                    {
                                        "key": "re-encode",
                                        "inputs": {
                                            "required": {
                                                "crf": ["FLOAT", {"default": 23.0, "min": 0.0, "max": 51.0}],
                                                "color_space": ["COMBO", {"options": ["auto", "sRGB"]}],
                                            }
                                        },
                                    },
                                ]
                            },
                        ]
                    },
                },
            },
        ]
    },
]
SAVE_VIDEO = {
    "input": {
        "required": {
            "video": ["VIDEO", {}],
            "filename_prefix": ["STRING", {"default": "video/ComfyUI"}],
            "format": [
                "COMFY_DYNAMICCOMBO_V3",
                {"options": [{"key": k, "inputs": {"required": {"codec": CODEC}}} for k in ("auto", "mp4")]},
            ],
        },
        "optional": {"codec": [CODEC[0], {**CODEC[1], "hidden": True}]},
    },
    "input_order": {"required": ["video", "filename_prefix", "format"], "optional": ["codec"]},
}


def save_video_workflow(values):
    nodes = [
        {"id": 1, "type": "Loader", "mode": 0, "inputs": [], "widgets_values": ["a.mp4", "image"]},
        {
            "id": 2,
            "type": "SaveVideo",
            "inputs": [{"name": "video", "type": "VIDEO", "link": 1}],
            "widgets_values": values,
        },
    ]
    return {"nodes": nodes, "links": [[1, 1, 0, 2, 0, "VIDEO"]], "version": 0.4}


@pytest.mark.parametrize(
    "values, inputs",
    [
        (["v", "auto", "auto", "auto"], {"format": "auto", "format.codec": "auto", "codec": "auto"}),
        (
            ["v", "mp4", "h264", "re-encode", 18.0, "sRGB", "auto"],
            {
                "format": "mp4",
                "format.codec": "h264",
                "format.codec.encoding": "re-encode",
                "format.codec.encoding.crf": 18.0,
                "format.codec.encoding.color_space": "sRGB",
                "codec": "auto",
            },
        ),
        (
            ["v", "mp4", "h264", "auto", "auto"],
            {"format": "mp4", "format.codec": "h264", "format.codec.encoding": "auto", "codec": "auto"},
        ),
    ],
)
def test_nested_dynamic_combo_widgets(values, inputs):
    info = {**OBJECT_INFO, "SaveVideo": SAVE_VIDEO}
    notes: list[str] = []
    prompt = ui_to_api(save_video_workflow(values), info, notes)
    assert prompt["2"]["inputs"] == {"video": ["1", 0], "filename_prefix": "v", **inputs}
    assert notes == []


def test_nested_dynamic_combo_values_are_checked():
    info = {**OBJECT_INFO, "SaveVideo": SAVE_VIDEO}
    with pytest.raises(WorkflowError, match="'format.codec.encoding.crf': 99.0 > max 51.0"):
        ui_to_api(save_video_workflow(["v", "mp4", "h264", "re-encode", 99.0, "auto", "auto"]), info)
    with pytest.raises(WorkflowError, match="'format': 'avi' is not one of"):
        ui_to_api(save_video_workflow(["v", "avi", "auto", "auto"]), info)


def test_a_workflow_from_an_older_comfyui_gets_the_nested_defaults():
    """SaveVideo saved by ComfyUI 0.3.75 (filename_prefix, format, codec) on the 0.33 definition."""
    info = {**OBJECT_INFO, "SaveVideo": SAVE_VIDEO}
    notes: list[str] = []
    prompt = ui_to_api(save_video_workflow(["v", "mp4", "h264"]), info, notes)
    assert prompt["2"]["inputs"] == {
        "video": ["1", 0],
        "filename_prefix": "v",
        "format": "mp4",
        "format.codec": "h264",
        "format.codec.encoding": "auto",
        "codec": "auto",
    }
    assert notes == ["node 2 (SaveVideo): no saved value for ['format.codec.encoding', 'codec']: the inputs' defaults"]


def test_widget_names_include_the_nested_ones():
    names = widget_names(SAVE_VIDEO)
    assert {"video", "filename_prefix", "format", "format.codec", "format.codec.encoding", "codec"} <= names
    assert "format.codec.encoding.crf" in names and "codec.encoding.color_space" in names
