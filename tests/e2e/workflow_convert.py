"""UI-format workflow (what File → Save and example_workflows/ hold) → API-format prompt, checked against
the server's /object_info.

The UI format stores widget values *positionally* in ``widgets_values``; their names come from the node
definitions: the widget inputs (not socket-only types such as IMAGE) in ``input_order`` (required, then
optional). The frontend inserts extra values that are not inputs: ``control_after_generate`` after seed-like
INT widgets, and the upload button's value after combos with ``image_upload``/``video_upload``/... . A dynamic
combo (``COMFY_DYNAMICCOMBO_V3``, e.g. SaveVideo's ``format`` on ComfyUI 0.33) is followed by the widgets of the
option it selects, named ``format.codec``, ``format.codec.encoding``, ... (depth first), as the frontend saves
and queues them. Missing trailing values (a workflow saved before a node got another input) take the input's
default and extra trailing values (saved by a newer ComfyUI) are dropped, as the frontend does when it loads
the file; both are reported in ``notes``. Links are ``[id, origin_id, origin_slot, target_id, target_slot,
type]``. Covers what our examples use plus Note/MarkdownNote (dropped), Reroute (followed) and PrimitiveNode
(its value goes to the target widget); muted nodes are dropped; bypassed nodes and subgraphs are not supported
(raise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
VIRTUAL_NODES = {"Note", "MarkdownNote"}
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload", "upload")
SEED_NAMES = {"seed", "noise_seed"}


class WorkflowError(ValueError):
    pass


@dataclass
class Widget:
    name: str  # the API input name: "format.codec" for a widget inside a dynamic combo's option
    type: str  # INT, FLOAT, STRING, BOOLEAN, COMBO or COMFY_DYNAMICCOMBO_V3
    options: dict[str, Any]
    combo_values: list[Any] | None = None
    optional: bool = False
    # COMFY_DYNAMICCOMBO_V3: the widgets each option adds after this one (option key -> widgets)
    children: dict[Any, list[Widget]] = field(default_factory=dict)

    @property
    def extra_values(self) -> int:
        """Values the frontend stores after this widget that are not node inputs."""
        extra = 0
        if self.type in ("INT", "FLOAT", "COMBO") and (
            self.options.get("control_after_generate") or (self.type == "INT" and self.name in SEED_NAMES)
        ):
            extra += 1
        if self.type == "COMBO" and any(self.options.get(flag) for flag in UPLOAD_FLAGS):
            extra += 1
        return extra

    def default(self) -> Any:
        """The value the frontend gives a new widget: the input's default, else the first option (combos)."""
        if "default" in self.options:
            return self.options["default"]
        if self.combo_values:
            return self.combo_values[0]
        return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(self.type)


def _section_specs(inputs: dict[str, Any], order: dict[str, list[str]] | None = None):
    """(name, type, options, optional) of every required then optional input, in the declared order."""
    order = order or {s: list(inputs.get(s) or {}) for s in ("required", "optional")}
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = (inputs.get(section) or {})[name]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            yield name, spec[0], options, section == "optional"


def _input_specs(info: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, type, options) of every top-level required then optional input, in the node's declared order."""
    return [(n, t, o) for n, t, o, _ in _section_specs(info["input"], info.get("input_order"))]


def _widgets(inputs: dict[str, Any], order: dict[str, list[str]] | None, prefix: str) -> list[Widget]:
    widgets = []
    for name, typ, options, optional in _section_specs(inputs, order):
        full = prefix + name
        if isinstance(typ, list):  # legacy combo: the type is the list of values
            widgets.append(Widget(full, "COMBO", options, list(typ), optional))
        elif typ == "COMBO":
            widgets.append(Widget(full, "COMBO", options, list(options.get("options", [])), optional))
        elif typ == DYNAMIC_COMBO:
            choices = options.get("options", [])
            widget = Widget(full, DYNAMIC_COMBO, options, [c["key"] for c in choices], optional)
            widget.children = {c["key"]: _widgets(c.get("inputs") or {}, None, full + ".") for c in choices}
            widgets.append(widget)
        elif typ in WIDGET_TYPES and not options.get("forceInput"):
            widgets.append(Widget(full, typ, options, None, optional))
    return widgets


def widgets_of(info: dict[str, Any]) -> list[Widget]:
    """The top-level widget inputs of a node definition from /object_info, in ``widgets_values`` order (a
    dynamic combo's nested widgets are in its ``children``)."""
    return _widgets(info["input"], info.get("input_order"), "")


def widget_names(info: dict[str, Any]) -> set[str]:
    """Every input name a prompt for this node can carry: the top-level inputs and every nested widget."""
    names = {name for name, _, _ in _input_specs(info)}
    stack = widgets_of(info)
    while stack:
        widget = stack.pop()
        names.add(widget.name)
        for children in widget.children.values():
            stack.extend(children)
    return names


def widget_inputs(info: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Every widget input of a node as the frontend queues a new node of this type with ``values`` set (by API
    name, e.g. ``format.codec``): the defaults for the rest, the selected options' nested widgets included."""
    inputs: dict[str, Any] = {}
    problems: list[str] = []

    def fill(widgets: list[Widget]) -> None:
        for widget in widgets:
            value = values[widget.name] if widget.name in values else widget.default()
            problems.extend(check_widget_value(info.get("name", "node"), widget, value))
            inputs[widget.name] = value
            if widget.type == DYNAMIC_COMBO and value in widget.children:
                fill(widget.children[value])

    fill(widgets_of(info))
    unknown = sorted(set(values) - set(inputs))
    if unknown or problems:
        raise WorkflowError(f"{info.get('name', 'node')}: inputs {unknown} are not widgets here; {problems}")
    return inputs


def check_widget_value(node_label: str, widget: Widget, value: Any) -> list[str]:
    """Problems with ``value`` for ``widget`` (empty list if fine)."""
    where = f"{node_label} widget {widget.name!r}"
    o = widget.options
    if widget.type in ("COMBO", DYNAMIC_COMBO):
        if value not in widget.combo_values:
            return [f"{where}: {value!r} is not one of {widget.combo_values}"]
        return []
    if widget.type == "BOOLEAN":
        return [] if isinstance(value, bool) else [f"{where}: {value!r} is not a boolean"]
    if widget.type == "STRING":
        return [] if isinstance(value, str) else [f"{where}: {value!r} is not a string"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [f"{where}: {value!r} is not a number"]
    if widget.type == "INT" and not float(value).is_integer():
        return [f"{where}: {value!r} is not an integer"]
    problems = []
    if "min" in o and value < o["min"]:
        problems.append(f"{where}: {value} < min {o['min']}")
    if "max" in o and value > o["max"]:
        problems.append(f"{where}: {value} > max {o['max']}")
    return problems


def _read_widgets(
    label: str,
    widgets: list[Widget],
    values: list[Any],
    position: int,
    inputs: dict[str, Any],
    problems: list[str],
    defaulted: list[str],
) -> int:
    """Assigns ``values[position:]`` to ``widgets`` (and the nested widgets of the dynamic combo options they
    select) in the frontend's order; returns the position after the last value used."""
    for widget in widgets:
        if position < len(values):
            value = values[position]
            problems.extend(check_widget_value(label, widget, value))
        else:
            value = widget.default()
            defaulted.append(widget.name)
        inputs[widget.name] = value
        position += 1 + widget.extra_values
        if widget.type == DYNAMIC_COMBO and value in widget.children:
            position = _read_widgets(label, widget.children[value], values, position, inputs, problems, defaulted)
    return position


def ui_to_api(workflow: dict[str, Any], object_info: dict[str, Any], notes: list[str] | None = None) -> dict[str, Any]:
    """Converts a UI-format workflow to an API-format prompt; raises `WorkflowError` listing every problem
    (unknown node types, widget values outside what /object_info allows, required inputs without a value).
    Appends to ``notes`` (if given) each node whose saved values were too few (defaults used) or too many
    (dropped): a workflow saved by another ComfyUI version; the frontend loads it the same way."""
    notes = [] if notes is None else notes
    if workflow.get("definitions", {}).get("subgraphs"):
        raise WorkflowError("subgraphs are not supported by this converter")
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {}
    for link in workflow.get("links", []):
        if isinstance(link, dict):  # schema 1.0 objects
            link = [
                link["id"],
                link["origin_id"],
                link["origin_slot"],
                link["target_id"],
                link["target_slot"],
                link.get("type"),
            ]
        links[link[0]] = link

    problems: list[str] = []

    def resolve(link_id: int) -> list[Any] | None:
        """[origin id, slot] of the real node a link comes from, following Reroutes."""
        seen = set()
        while link_id is not None and link_id not in seen:
            seen.add(link_id)
            _, origin, slot, *_ = links[link_id]
            src = nodes[origin]
            if src["type"] == "Reroute":
                link_id = (src.get("inputs") or [{}])[0].get("link")
                continue
            if src.get("mode", 0) == 2:
                return None
            if src["type"] == "PrimitiveNode":
                return ["PRIMITIVE", src]
            return [str(origin), slot]
        return None

    prompt: dict[str, Any] = {}
    for node in sorted(nodes.values(), key=lambda n: n["id"]):
        ntype = node["type"]
        label = f"node {node['id']} ({ntype})"
        if ntype in VIRTUAL_NODES or ntype in ("Reroute", "PrimitiveNode"):
            continue
        mode = node.get("mode", 0)
        if mode == 2:  # muted
            continue
        if mode == 4:
            raise WorkflowError(f"{label} is bypassed; bypass is not supported by this converter")
        info = object_info.get(ntype)
        if info is None:
            problems.append(f"{label}: node type {ntype!r} is not registered on the server")
            continue
        inputs: dict[str, Any] = {}
        values = node.get("widgets_values") or []
        if isinstance(values, dict):
            raise WorkflowError(f"{label}: dict-style widgets_values are not supported")
        defaulted: list[str] = []
        used = _read_widgets(label, widgets_of(info), values, 0, inputs, problems, defaulted)
        if defaulted:
            notes.append(f"{label}: no saved value for {defaulted}: the inputs' defaults")
        if used < len(values):
            notes.append(f"{label}: {len(values) - used} extra widgets_values {values[used:]!r} dropped")
        specs = {name: typ for name, typ, _ in _input_specs(info)}
        for slot in node.get("inputs") or []:
            name = slot.get("name")
            if slot.get("link") is None:
                continue
            if name not in specs:
                problems.append(f"{label}: linked input {name!r} does not exist on the node")
                continue
            source = resolve(slot["link"])
            if source is None:
                inputs.pop(name, None)
            elif source[0] == "PRIMITIVE":
                inputs[name] = (source[1].get("widgets_values") or [None])[0]
            else:
                inputs[name] = source
        required = (info.get("input_order") or {}).get("required", list(info["input"].get("required", {})))
        for name in required:
            if name not in inputs:
                problems.append(f"{label}: required input {name!r} is neither linked nor a widget")
        prompt[str(node["id"])] = {"class_type": ntype, "inputs": inputs, "_meta": {"title": node.get("title", ntype)}}
    if problems:
        raise WorkflowError("workflow does not match /object_info:\n  " + "\n  ".join(problems))
    return prompt
