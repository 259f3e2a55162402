"""A real ComfyUI server for end-to-end tests: start it headless on the CPU with only this pack, talk to it.

`ComfyServer` runs ComfyUI's own ``main.py`` in a subprocess with a throw-away base directory; this pack is
made visible through an ``extra_model_paths`` yaml whose ``custom_nodes`` entry points at a folder holding a
symlink to the repository (the trick ComfyUI's own tests/execution uses). `ComfyClient` posts API-format
prompts and waits for them on the websocket, as ComfyUI's script_examples/websockets_api_example.py does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_COMFYUI_DIR = REPO_ROOT / ".cache" / "comfyui"
# The folder name ComfyUI sees for this pack (what a user's git clone is called); also its module name.
PACK_DIR_NAME = "ComfyUI-StereoCrafter3D"
# torch on one CPU thread in the server unless the environment says otherwise. The test models are tiny, so
# their thousands of small ops are overhead-bound: on a small machine shared with other jobs, OpenMP threads
# waiting for each other at every op made a 2-step VideoDepth take 20 s instead of 0.35 s on one thread.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# The websocket handshake's own limit (a prompt's timeout is for the prompt; the handshake on a busy machine
# can take longer than a short one, which made a 0.001 s prompt timeout fail in the handshake instead).
CONNECT_TIMEOUT = 60.0


# Packages a ComfyUI tree needs beyond the shared .venv (scripts/install_test_deps.sh puts 0.33.0's newer frontend,
# templates, torchaudio, ... there): on the server's PYTHONPATH when the folder exists.
SITE_PACKAGES_NAME = ".sc3d-site-packages"


def comfyui_dir() -> Path:
    """Where ComfyUI is installed: $SC3D_COMFYUI_DIR (e.g. .cache/comfyui-0.33), else .cache/comfyui (0.3.75;
    scripts/install_test_deps.sh installs both). A relative path is taken from the repository root."""
    path = Path(os.environ.get("SC3D_COMFYUI_DIR") or DEFAULT_COMFYUI_DIR)
    return path if path.is_absolute() else REPO_ROOT / path


def comfyui_version(comfy_dir: Path | None = None) -> str:
    """The ``__version__`` in the tree's comfyui_version.py ("" if there is none)."""
    path = (comfy_dir or comfyui_dir()) / "comfyui_version.py"
    try:
        text = path.read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip the calling test (locally) or fail it (CI=true) when a dependency of the e2e tests is missing."""
    import pytest

    if not condition:
        if in_ci():
            pytest.fail(f"{reason} (CI=true: the e2e tests must run)", pytrace=False)
        pytest.skip(reason)


class ServerError(RuntimeError):
    pass


class ComfyServer:
    """ComfyUI ``main.py --cpu`` in a subprocess, loading only this pack, with its own base directory."""

    def __init__(
        self,
        base_dir: Path,
        comfy_dir: Path | None = None,
        python: str | None = None,
        extra_args: list[str] | None = None,
    ):
        self.comfy_dir = Path(comfy_dir or comfyui_dir()).resolve()
        self.base_dir = Path(base_dir)
        self.python = python or sys.executable
        self.extra_args = list(extra_args or [])
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path = self.base_dir / "comfyui.log"
        self._log_file = None

    # -- layout -------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    def _prepare_base_dir(self) -> Path:
        for sub in ("custom_nodes", "input", "output", "temp", "models", "user/default"):
            (self.base_dir / sub).mkdir(parents=True, exist_ok=True)
        nodes_root = self.base_dir / "custom_nodes_root"
        nodes_root.mkdir(exist_ok=True)
        link = nodes_root / PACK_DIR_NAME
        if not link.exists():
            try:
                link.symlink_to(REPO_ROOT, target_is_directory=True)
            except OSError:  # no symlinks (e.g. Windows without privileges): copy what the pack needs
                shutil.copytree(
                    REPO_ROOT,
                    link,
                    ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "tests", "bench", "__pycache__", "*.mp4"),
                )
        paths_yaml = self.base_dir / "paths.yaml"
        paths_yaml.write_text(
            f"sc3d_e2e:\n    base_path: {json.dumps(str(self.base_dir))}\n    custom_nodes: custom_nodes_root\n"
        )
        # No first-run template browser and no minimap over the canvas in the browser tests' screenshots.
        settings = self.base_dir / "user" / "default" / "comfy.settings.json"
        if not settings.exists():
            settings.write_text(json.dumps({"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False}))
        return paths_yaml

    def command(self) -> list[str]:
        return [
            self.python,
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--disable-auto-launch",
            "--dont-print-server",
            "--base-directory",
            str(self.base_dir),
            "--extra-model-paths-config",
            str(self.base_dir / "paths.yaml"),
            "--disable-all-custom-nodes",
            "--whitelist-custom-nodes",
            PACK_DIR_NAME,
            "--database-url",
            "sqlite:///:memory:",
            "--disable-api-nodes",
            *self.extra_args,
        ]

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> None:
        if not (self.comfy_dir / "main.py").is_file():
            raise ServerError(f"ComfyUI not found in {self.comfy_dir} (run scripts/install_test_deps.sh)")
        self._prepare_base_dir()
        last_error: Exception | None = None
        for _attempt in range(3):  # a port picked by free_port() can be taken before the server binds it
            self.port = free_port()
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            env = {**THREAD_ENV, **os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
            site = self.comfy_dir / SITE_PACKAGES_NAME
            if site.is_dir():
                env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.comfy_dir,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
            try:
                self._wait_ready(timeout)
                return
            except ServerError as exc:
                last_error = exc
                address_in_use = "address already in use" in self.log_tail(30).lower()
                self.stop()
                if not address_in_use:
                    break
        raise ServerError(f"{last_error}\n--- ComfyUI log ---\n{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ServerError(f"ComfyUI exited with code {code} before it was ready")
            try:
                with urllib.request.urlopen(self.url + "/system_stats", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"ComfyUI did not answer on {self.url} within {timeout:.0f} s")
            time.sleep(delay)  # polling interval, not a synchronisation point
            delay = min(delay * 1.5, 1.0)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 200) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> ComfyServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PromptError(AssertionError):
    """A prompt was rejected by validation or failed while executing; the message carries ComfyUI's report."""

    def __init__(self, message: str, messages: list[dict[str, Any]] | None = None, prompt_id: str | None = None):
        super().__init__(message)
        self.messages = messages or []  # the websocket messages of the prompt received so far
        self.prompt_id = prompt_id  # None when the server rejected it before queueing


class PromptTimeout(PromptError):
    """The prompt had not finished when the caller's timeout ran out (it may still be queued or running)."""


class PromptInterrupted(PromptError):
    """The prompt was stopped by POST /interrupt (ComfyUI sent ``execution_interrupted``)."""


@dataclass
class PromptResult:
    prompt_id: str
    history: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def outputs(self) -> dict[str, Any]:
        return self.history.get("outputs", {})

    def saved_files(self, output_dir: Path) -> list[Path]:
        """Every file an output node reported (SaveImage 'images', SaveVideo 'images'/'animated', ...)."""
        files = []
        for node_output in self.outputs.values():
            for items in node_output.values():
                if not isinstance(items, list):
                    continue
                for item in items:
                    if isinstance(item, dict) and "filename" in item and item.get("type", "output") == "output":
                        files.append(output_dir / item.get("subfolder", "") / item["filename"])
        return files


class ComfyClient:
    """HTTP + websocket client for one ComfyUI server."""

    def __init__(self, url: str, server: ComfyServer | None = None):
        self.url = url.rstrip("/")
        self.server = server
        self.client_id = uuid.uuid4().hex

    def get_json(self, path: str, timeout: float = 60) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return json.loads(resp.read())

    def post_json(self, path: str, body: Any, timeout: float = 60) -> Any:
        req = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = resp.read()
            return json.loads(data) if data else None

    def object_info(self, node_class: str | None = None) -> dict[str, Any]:
        path = "/object_info" + (f"/{urllib.parse.quote(node_class)}" if node_class else "")
        return self.get_json(path)

    def _log_hint(self) -> str:
        return f"\n--- ComfyUI log (tail) ---\n{self.server.log_tail(80)}" if self.server else ""

    def interrupt(self, prompt_id: str | None = None) -> None:
        """POST /interrupt: stops the running prompt (only ``prompt_id`` if given, as the frontend's Cancel)."""
        self.post_json("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    def queue_prompt(self, prompt: dict[str, Any], workflow: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id}
        if workflow is not None:
            body["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        try:
            answer = self.post_json("/prompt", body)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            try:
                detail = json.dumps(json.loads(detail), indent=2)
            except ValueError:
                pass
            raise PromptError(f"ComfyUI rejected the prompt (HTTP {exc.code}):\n{detail}") from None
        if answer.get("node_errors"):
            raise PromptError(f"ComfyUI reported node errors: {json.dumps(answer['node_errors'], indent=2)}")
        return answer["prompt_id"]

    def _connect(self):
        """A websocket for this client's messages. Its handshake has its own timeout, not the prompt's."""
        import websocket  # websocket-client (requirements-dev.txt)

        return websocket.create_connection(
            f"ws://{self.url.split('://', 1)[1]}/ws?clientId={self.client_id}", timeout=CONNECT_TIMEOUT
        )

    def run(
        self,
        prompt: dict[str, Any],
        timeout: float = 300.0,
        workflow: dict[str, Any] | None = None,
        on_message: Callable[[dict[str, Any], str], None] | None = None,
    ) -> PromptResult:
        """Queue ``prompt`` (API format), wait for it to finish and return its history entry.

        ``on_message(message, prompt_id)`` is called for every websocket message of the prompt as it arrives
        (e.g. to POST /interrupt once ``progress`` messages come). Raises `PromptError` with ComfyUI's message
        and traceback on a validation or execution error, `PromptInterrupted` when the prompt was interrupted,
        `PromptTimeout` when it has not finished ``timeout`` seconds after it was queued (0: at once, before any
        message is read; the prompt goes on in the server, `wait` can wait for it).
        """
        ws = self._connect()  # before queueing, so that no message of the prompt is missed
        try:
            prompt_id = self.queue_prompt(prompt, workflow)
            return self._wait(ws, prompt_id, time.monotonic() + timeout, timeout, on_message)
        finally:
            ws.close()

    def wait(self, prompt_id: str, timeout: float = 300.0) -> PromptResult:
        """Waits for an already queued prompt (e.g. after a `PromptTimeout`) and returns its history entry."""
        ws = self._connect()
        try:
            # Connected first, then asked: a prompt that ends before this answer is in the history, one that
            # ends after it sends its last message to this socket.
            if prompt_id in self.get_json(f"/history/{prompt_id}"):
                return self._result(prompt_id, [])
            return self._wait(ws, prompt_id, time.monotonic() + timeout, timeout, None)
        finally:
            ws.close()

    def _wait(
        self,
        ws: Any,
        prompt_id: str,
        deadline: float,
        timeout: float,
        on_message: Callable[[dict[str, Any], str], None] | None,
    ) -> PromptResult:
        import websocket

        messages: list[dict[str, Any]] = []

        def timed_out() -> PromptTimeout:
            queue = self.get_json("/queue")
            return PromptTimeout(
                f"prompt {prompt_id} did not finish within {timeout:g} s; queue: "
                f"{len(queue.get('queue_running', []))} running, "
                f"{len(queue.get('queue_pending', []))} pending{self._log_hint()}",
                messages,
                prompt_id,
            )

        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise timed_out()
            ws.settimeout(remaining)
            try:
                raw = ws.recv()
            except websocket.WebSocketTimeoutException:
                raise timed_out() from None
            except (websocket.WebSocketConnectionClosedException, ConnectionError) as exc:
                raise PromptError(
                    f"lost the websocket while waiting for {prompt_id}: {exc}{self._log_hint()}", messages, prompt_id
                ) from None
            if not isinstance(raw, str):
                continue  # binary preview frames
            msg = json.loads(raw)
            data = msg.get("data") or {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            messages.append(msg)
            if on_message is not None:
                on_message(msg, prompt_id)
            kind = msg.get("type")
            if kind == "execution_error" and data.get("prompt_id") == prompt_id:
                raise PromptError(
                    f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                    f"{data.get('exception_type')}: {data.get('exception_message')}\n"
                    + "".join(data.get("traceback") or []),
                    messages,
                    prompt_id,
                )
            if kind == "execution_interrupted" and data.get("prompt_id") == prompt_id:
                raise PromptInterrupted(
                    f"prompt {prompt_id} was interrupted in node {data.get('node_id')} ({data.get('node_type')})",
                    messages,
                    prompt_id,
                )
            if kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                return self._result(prompt_id, messages)

    def _result(self, prompt_id: str, messages: list[dict[str, Any]]) -> PromptResult:
        history = self.get_json(f"/history/{prompt_id}").get(prompt_id, {})
        status = history.get("status", {})
        if status and status.get("status_str") not in (None, "success"):
            raise PromptError(f"prompt {prompt_id} ended with status {status}", messages, prompt_id)
        return PromptResult(prompt_id, history, messages)
