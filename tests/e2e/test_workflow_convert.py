"""The UI → API converter on hand-made node definitions (no server needed)."""

from __future__ import annotations

import pytest
from workflow_convert import WorkflowError, ui_to_api

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
        ([7, "fast", 1.0, False], "4 widgets_values"),
    ],
)
def test_bad_widget_values_are_reported(values, message):
    with pytest.raises(WorkflowError, match=message):
        ui_to_api(workflow(values), OBJECT_INFO)


def test_unknown_node_type_is_reported():
    wf = workflow([7, "fixed", "fast", 1.0, False], [{"id": 5, "type": "Nope", "widgets_values": []}])
    with pytest.raises(WorkflowError, match="'Nope' is not registered"):
        ui_to_api(wf, OBJECT_INFO)
