"""Debian's chromium, headless, driven by Playwright, on the real ComfyUI frontend served by the test server."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("SC3D_CHROMIUM", "/usr/bin/chromium")
# As root, in a sandbox with no outside network: no sandbox, no GPU, and no background connections.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 900}
# What the frontend uses to tell the user something is wrong, across versions: PrimeVue dialogs and toasts
# (1.32), the error overlay's notices (1.49+; data-testid="error-overlay"), alerts.
NOTICE_SELECTOR = ", ".join(
    [
        ".p-dialog",
        "[role=dialog]",
        "[role=alertdialog]",
        "[role=alert]",
        ".comfy-modal",
        ".p-toast-message-error",
        ".p-toast-message-warn",
        "[data-testid=error-overlay]",
    ]
)
# The texts of the visible elements matching `selector` (a JS expression).
NOTICES_JS = """[...document.querySelectorAll(selector)]
    .filter(e => e.offsetParent !== null || getComputedStyle(e).display !== 'none' && e.getClientRects().length > 0)
    .map(e => (e.innerText || '').trim().slice(0, 500))
    .filter(text => text.length > 0)"""
EMPTY_WORKFLOW = {"last_node_id": 0, "last_link_id": 0, "nodes": [], "links": [], "groups": [], "version": 0.4}
# Resolves after the page has rendered twice (Vue's updates after a graph change are on screen): an event, not a delay.
NEXT_FRAMES = "await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));"
APP_READY = (
    "() => !!(window.app && window.app.graph && window.app.canvas && window.LiteGraph"
    " && Object.keys(window.LiteGraph.registered_node_types).length > 50)"
)


def browser_available() -> tuple[bool, str]:
    """Whether playwright (python) and a chromium executable are installed, and if not, why."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False, "the playwright python package is missing (pip install -r requirements-dev.txt)"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return False, f"{CHROMIUM} is missing (apt-get install chromium, or set SC3D_CHROMIUM)"
    return True, ""


@dataclass
class ComfyPage:
    """A loaded ComfyUI frontend tab plus what it reported on its console."""

    page: Any  # playwright.sync_api.Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def load_workflow(self, workflow: dict[str, Any]) -> None:
        """Loads a UI-format workflow the way File → Open does (app.loadGraphData, dialogs enabled), after an
        empty graph has cleared every notice of the previous one (frontend 1.49+ keeps its "issues found" notice
        for the old graph until the new one has loaded: it would be read as this workflow's)."""
        self.clear()
        self.page.evaluate(f"async (wf) => {{ await window.app.loadGraphData(wf); {NEXT_FRAMES} }}", workflow)

    def clear(self, timeout_ms: int = 20_000) -> None:
        """Loads an empty graph and waits until no dialog or notice is shown (closing dialogs left open)."""
        self.page.keyboard.press("Escape")  # a missing-nodes dialog (frontend 1.32) stays until closed
        self.page.evaluate(f"async (wf) => {{ await window.app.loadGraphData(wf); {NEXT_FRAMES} }}", EMPTY_WORKFLOW)
        self.page.wait_for_function(f"(selector) => {NOTICES_JS}.length === 0", arg=NOTICE_SELECTOR, timeout=timeout_ms)

    def fit_view(self, timeout_s: float = 10.0) -> None:
        """Fits the whole graph in the canvas and waits until the (animated) zoom has settled."""
        self.page.evaluate("async () => { await app.extensionManager.command.execute('Comfy.Canvas.FitView'); }")
        settled = """() => new Promise(resolve => {
            const view = () => JSON.stringify([app.canvas.ds.scale, ...app.canvas.ds.offset]);
            const before = view();
            requestAnimationFrame(() => requestAnimationFrame(() => requestAnimationFrame(
                () => resolve(before === view()))));
        })"""
        deadline = time.monotonic() + timeout_s
        while not self.page.evaluate(settled):
            if time.monotonic() > deadline:
                raise TimeoutError("the canvas view did not settle after Fit View")
        self.page.evaluate("() => { app.canvas.setDirty(true, true); app.canvas.draw(true, true); }")

    def graph_nodes(self) -> list[dict[str, Any]]:
        """id, type, whether the type is registered, and whether the frontend flagged the node as broken."""
        return self.page.evaluate(
            """() => app.graph._nodes.map(n => ({id: n.id, type: n.type,
                 registered: n.type in LiteGraph.registered_node_types, has_errors: !!n.has_errors}))"""
        )

    def serialize(self) -> dict[str, Any]:
        """The UI-format JSON exactly as the frontend writes it (File → Save serialises app.graph)."""
        return json.loads(self.page.evaluate("() => JSON.stringify(app.graph.serialize())"))

    def graph_to_prompt(self) -> dict[str, Any]:
        """The API-format prompt the frontend would queue (File → Export (API))."""
        return json.loads(self.page.evaluate("async () => JSON.stringify((await app.graphToPrompt()).output)"))

    def visible_dialogs(self) -> list[str]:
        """Text of every visible dialog, error/warning toast and error overlay: missing nodes, load errors, ...
        (frontend 1.32: a missing-nodes dialog; 1.49+: a "Missing node: …" notice, role=status, in the error
        overlay at the top right)."""
        return self.page.evaluate(f"(selector) => {NOTICES_JS}", NOTICE_SELECTOR)

    def queue_and_wait(self, output_type: str = "SaveVideo", timeout_ms: int = 240_000) -> list[dict[str, Any]]:
        """Presses Run (app.queuePrompt), waits until every ``output_type`` node has its output, and returns
        those outputs (what the server sent in its ``executed`` messages)."""
        self.page.evaluate("async () => { await app.queuePrompt(0, 1); }")
        self.page.wait_for_function(
            """(t) => { const ns = app.graph._nodes.filter(n => n.type === t);
                        return ns.length > 0 && ns.every(n => app.nodeOutputs && app.nodeOutputs[String(n.id)]); }""",
            arg=output_type,
            timeout=timeout_ms,
        )
        # Output previews are created when the node is next drawn; nothing else marks the canvas dirty here.
        self.page.evaluate("() => { app.canvas.setDirty(true, true); app.canvas.draw(true, true); }")
        return self.page.evaluate(
            """(t) => app.graph._nodes.filter(n => n.type === t).map(n => app.nodeOutputs[String(n.id)])""", output_type
        )

    def wait_for_videos(self, urls_containing: str = "", count: int = 1, timeout_ms: int = 60_000) -> None:
        """Waits until ``count`` <video> previews whose src contains ``urls_containing`` show a frame."""
        self.page.wait_for_function(
            """([part, k]) => { const v = [...document.querySelectorAll('video')].filter(e => e.src.includes(part));
                                return v.length >= k && v.every(e => e.readyState >= 2); }""",
            arg=[urls_containing, count],
            timeout=timeout_ms,
        )

    def graph_bounds(self, margin: int = 0) -> dict[str, float]:
        """The on-screen box (CSS pixels, clipped to the viewport) around every node, titles included."""
        box = self.page.evaluate(
            """() => {
              const ds = app.canvas.ds, rect = app.canvas.canvas.getBoundingClientRect();
              let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
              for (const n of app.graph._nodes) {
                const title = LiteGraph.NODE_TITLE_HEIGHT;
                x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - title);
                x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
              }
              const sx = v => rect.left + (v + ds.offset[0]) * ds.scale;
              const sy = v => rect.top + (v + ds.offset[1]) * ds.scale;
              return {x0: sx(x0), y0: sy(y0), x1: sx(x1), y1: sy(y1)};
            }"""
        )
        x0, y0 = max(0, box["x0"] - margin), max(0, box["y0"] - margin)
        x1, y1 = min(VIEWPORT["width"], box["x1"] + margin), min(VIEWPORT["height"], box["y1"] + margin)
        return {"x": x0, "y": y0, "width": max(1, x1 - x0), "height": max(1, y1 - y0)}

    def screenshot(self, path: Path, clip: dict[str, float] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), clip=clip)


@contextmanager
def comfy_frontend(url: str, user_data_dir: Path, timeout_ms: int = 120_000) -> Iterator[ComfyPage]:
    """Opens ``url`` in a fresh headless chromium profile and waits until the ComfyUI app is ready."""
    from playwright.sync_api import sync_playwright

    user_data_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS, viewport=VIEWPORT
        )
        try:
            # The "Nodes 2.0" banner would cover the top of every screenshot.
            context.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")
            page = context.pages[0] if context.pages else context.new_page()
            cp = ComfyPage(page)
            page.on("console", lambda m: cp.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: cp.page_errors.append(str(e)))
            page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
            page.wait_for_function(APP_READY, timeout=timeout_ms)
            yield cp
        finally:
            context.close()
