"""The real ComfyUI server with this pack on a GPU: how our nodes load, run, offload and free GPU memory through
ComfyUI's memory manager, and what an interrupt leaves behind (issues 12 and 18).

Starts ComfyUI's ``main.py`` (a given source tree; 0.3.75 or 0.33.0) with only this pack and the tiny random models
of the e2e tests (tests/e2e/comfy_harness.py, model_dirs.py), then records GPU memory at each point, from ComfyUI's
``GET /system_stats`` (devices[0]) and from ``nvidia-smi`` for the server's pid when it exists:

1. idle after the start;
2. after the full example workflow (example_workflows/full_pipeline.json, converted through /object_info,
   lighter model settings as the e2e test uses);
3. after ``POST /free`` (unload_models + free_memory);
4. after the streaming node ``Convert Video to 3D (streaming)`` was interrupted (``POST /interrupt`` once the
   websocket shows its progress past the depth pass);
5. after the same prompt queued again (it resumes and completes);
6. after a second, different prompt (the next prompt runs);
7. after a final ``POST /free``.

Prints a markdown table and writes everything (memory, wall times, the server log's model load/offload lines and
its tail) to ``--out``. Exits 1 naming the failed step, after writing what was measured so far.

    python bench/comfy_gpu.py --comfy .cache/comfyui --work /tmp/cg75 --out /tmp/cg75.json
    python bench/comfy_gpu.py --comfy .cache/comfyui-0.33 --work /tmp/cg33 --out /tmp/cg33.json

(``--cpu`` runs it on a machine without a GPU, to test the script; the figures are then not GPU figures.)
Needs, in this Python: torch, diffusers, transformers, safetensors, av, numpy, Pillow (the tiny models and clips);
websocket-client is used when installed, else a minimal built-in websocket client.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import traceback
import types
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
E2E_DIR = REPO_ROOT / "tests" / "e2e"
for _path in (str(E2E_DIR), str(REPO_ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

GIB = 1024**3
LOG_PATTERN = re.compile(r"requested to load|loaded|unload|offload", re.IGNORECASE)
# The e2e example test's lighter settings for the tiny models (tests/e2e/test_example_workflows.py FAST_WIDGETS;
# not imported: that module needs pytest, which the GPU machine may not have).
FAST_WIDGETS = {
    "SC3D_VideoDepth": {"steps": 2, "window_size": 6, "overlap": 2, "max_res": 128},
    "SC3D_StereoInpaint": {"steps": 2, "tile_num": 1},
}
EXAMPLE_OUTPUTS = ("stereo_full_sbs", "stereo_full_anaglyph")  # its SaveVideo prefixes, in output/video/
EXAMPLE_CLIP = ("input_video.mp4", 8, (256, 144))  # the e2e tests' clip for the examples: name, frames, (W, H)
STREAM_CLIP = ("sc3d_bench_stream.mp4", 24, (128, 80))  # 8 chunks of 3 frames per pass
STREAM_PREFIX = "sc3d_bench/stream"
OTHER_PREFIX = "sc3d_bench/other"
# Modules the server needs (ComfyUI core + this pack); checked up front so that a missing one is named at once.
SERVER_MODULES = (
    "torch", "torchvision", "torchaudio", "numpy", "PIL", "safetensors", "transformers", "diffusers", "av",
    "aiohttp", "yarl", "yaml", "scipy", "einops", "psutil", "tqdm", "torchsde", "spandrel", "kornia", "pydantic",
    "sqlalchemy", "alembic", "huggingface_hub", "comfyui_frontend_package",
)  # fmt: skip


# -- a minimal websocket client (RFC 6455, text/binary, ping/pong) for machines without websocket-client --------
class WebSocketTimeoutException(TimeoutError):
    pass


class WebSocketConnectionClosedException(ConnectionError):
    pass


class MiniWebSocket:
    """What comfy_harness uses of websocket-client's ``WebSocket``: ``recv``, ``settimeout``, ``close``."""

    def __init__(self, url: str, timeout: float | None = None):
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        self._buf = bytearray()
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        while b"\r\n\r\n" not in self._buf:
            self._fill()
        head, _, rest = bytes(self._buf).partition(b"\r\n\r\n")
        self._buf = bytearray(rest)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError(f"websocket handshake with {url} failed: {status.decode(errors='replace')}")

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def _fill(self) -> None:
        try:
            data = self.sock.recv(65536)
        except TimeoutError:  # socket.timeout: what has arrived stays in the buffer
            raise WebSocketTimeoutException("websocket recv timed out") from None
        except OSError as exc:
            raise WebSocketConnectionClosedException(str(exc)) from None
        if not data:
            raise WebSocketConnectionClosedException("the server closed the websocket")
        self._buf += data

    def _frame(self) -> tuple[bool, int, bytes] | None:
        """One whole frame from the buffer (consumed), or None if it has not all arrived yet."""
        buf = self._buf
        if len(buf) < 2:
            return None
        fin, opcode, masked, length = buf[0] & 0x80, buf[0] & 0x0F, buf[1] & 0x80, buf[1] & 0x7F
        pos = 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, pos = struct.unpack(">H", buf[2:4])[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, pos = struct.unpack(">Q", buf[2:10])[0], 10
        mask = b""
        if masked:
            mask, pos = bytes(buf[pos : pos + 4]), pos + 4
        if len(buf) < pos + length:
            return None
        payload = bytes(buf[pos : pos + length])
        if masked:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        del buf[: pos + length]
        return bool(fin), opcode, payload

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self) -> str | bytes:
        parts: list[bytes] = []
        kind = 0
        while True:
            frame = self._frame()
            if frame is None:
                self._fill()
                continue
            fin, opcode, payload = frame
            if opcode == 0x8:
                raise WebSocketConnectionClosedException("the server closed the websocket")
            if opcode == 0x9:
                self._send(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode in (0x1, 0x2):
                kind, parts = opcode, []
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                return data.decode("utf-8") if kind == 0x1 else data

    def close(self) -> None:
        try:
            self._send(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()


def install_websocket_shim(force: bool = False) -> str:
    """Makes ``import websocket`` (comfy_harness) work: websocket-client if installed, else MiniWebSocket."""
    if not force:
        try:
            import websocket  # noqa: F401

            return "websocket-client"
        except ImportError:
            pass
    shim = types.ModuleType("websocket")
    shim.create_connection = lambda url, timeout=None, **_: MiniWebSocket(url, timeout)
    shim.WebSocketTimeoutException = WebSocketTimeoutException
    shim.WebSocketConnectionClosedException = WebSocketConnectionClosedException
    sys.modules["websocket"] = shim
    return "built-in MiniWebSocket"


# -- the bench --------------------------------------------------------------------------------------------------
class StepFailed(RuntimeError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


def poll(what: str, probe: Callable[[], Any], deadline_s: float, interval: float = 0.25) -> Any:
    """Calls ``probe`` until it returns something truthy (returned) or ``deadline_s`` passes (StepFailed)."""
    end = time.monotonic() + deadline_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > end:
            raise StepFailed(f"{what}: not seen within {deadline_s:.0f} s")
        time.sleep(interval)  # polling interval with a deadline, not a synchronisation point


def nvidia_smi_used(pid: int) -> tuple[float | None, str]:
    """(MiB the process ``pid`` uses per nvidia-smi, raw output); (None, reason) without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None, "no nvidia-smi"
    try:
        out = subprocess.run(
            [exe, "--query-compute-apps=pid,used_memory", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=False,
        ).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"nvidia-smi failed: {exc}"
    used = None
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 2 and fields[0] == str(pid):
            number = re.match(r"[\d.]+", fields[1])
            if number:
                used = (used or 0.0) + float(number.group())
    return (used if used is not None else 0.0), out.strip()


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.points: list[dict[str, Any]] = []
        self.prompts: dict[str, dict[str, Any]] = {}
        self.result: dict[str, Any] = {
            "comfy_dir": str(Path(args.comfy).resolve()),
            "cpu": args.cpu,
            "points": self.points,
            "prompts": self.prompts,
            "ok": False,
        }
        self.server = None
        self.client = None

    # -- measuring ----------------------------------------------------------------------------------------------
    def record(self, point: str, notes: str = "") -> dict[str, Any]:
        stats = self.client.get_json("/system_stats")
        dev = (stats.get("devices") or [{}])[0]
        used, smi_raw = nvidia_smi_used(self.server.proc.pid)
        entry = {
            "point": point,
            "time": time.time(),
            "device": dev.get("name"),
            "vram_total": dev.get("vram_total"),
            "vram_free": dev.get("vram_free"),
            "torch_vram_total": dev.get("torch_vram_total"),
            "torch_vram_free": dev.get("torch_vram_free"),
            "nvidia_smi_used_mib": used,
            "nvidia_smi_raw": smi_raw,
            "notes": notes,
        }
        self.points.append(entry)
        print(f"[{point}] vram_free={_gib(entry['vram_free'])} GiB torch_vram_free={_gib(entry['torch_vram_free'])} "
              f"GiB nvidia-smi={used} MiB {notes}", flush=True)  # fmt: skip
        return entry

    def run_prompt(self, name: str, prompt: dict, workflow: dict | None = None, on_message=None):
        """Runs ``prompt``; stores its wall time and outcome under ``name``; returns the PromptResult."""
        from comfy_harness import PromptInterrupted

        info: dict[str, Any] = {"queued_at": time.time()}
        self.prompts[name] = info
        start = time.monotonic()
        try:
            result = self.client.run(prompt, timeout=self.args.prompt_timeout, workflow=workflow, on_message=on_message)
        except PromptInterrupted as exc:
            info.update(wall_s=round(time.monotonic() - start, 3), outcome="interrupted", prompt_id=exc.prompt_id)
            raise
        except Exception as exc:
            info.update(wall_s=round(time.monotonic() - start, 3), outcome=f"error: {exc}"[:4000])
            raise
        info.update(wall_s=round(time.monotonic() - start, 3), outcome="success", prompt_id=result.prompt_id)
        progress = [m["data"] for m in result.messages if m.get("type") == "progress"]
        if progress:
            info["progress_first"] = progress[0].get("value")
            info["progress_last"] = f"{progress[-1].get('value')}/{progress[-1].get('max')}"
            info["progress_values"] = [p.get("value") for p in progress][:200]
        return result

    def wait_idle(self, deadline_s: float = 120.0) -> None:
        def idle() -> bool:
            queue = self.client.get_json("/queue")
            return not queue.get("queue_running") and not queue.get("queue_pending")

        poll("an empty queue", idle, deadline_s)

    def free(self) -> str:
        """POST /free (unload models, free memory); waits for the queue to be empty and /system_stats to settle."""
        before = self.client.get_json("/system_stats")["devices"][0]
        self.client.post_json("/free", {"unload_models": True, "free_memory": True})
        self.wait_idle()
        # The prompt worker applies the flags when it wakes (at once on an idle queue). torch_vram_total is the
        # server's own torch reserved memory on a GPU (system RAM, constant, with --cpu), so unlike vram_free it
        # does not move with other processes: on a GPU wait for it to drop (it stays if nothing was cached),
        # then for three equal readings in a row; each within a deadline.
        reserved_before = before.get("torch_vram_total") or 0
        note = ""
        if not self.args.cpu and reserved_before > 0:

            def dropped() -> bool:
                return (
                    self.client.get_json("/system_stats")["devices"][0].get("torch_vram_total") or 0
                ) < reserved_before

            try:
                poll("torch reserved memory dropping after /free", dropped, 20.0)
            except StepFailed as exc:
                note = f"; {exc}"
        readings: list[Any] = []

        def settled() -> bool:
            readings.append(self.client.get_json("/system_stats")["devices"][0])
            return len(readings) >= 3 and len({r.get("torch_vram_total") for r in readings[-3:]}) == 1

        poll("/system_stats settling after /free", settled, 60.0, interval=0.5)
        after = readings[-1]
        return (f"vram_free {_gib(before.get('vram_free'))} -> {_gib(after.get('vram_free'))} GiB, torch reserved "
                f"{_gib(reserved_before)} -> {_gib(after.get('torch_vram_total'))} GiB{note}")  # fmt: skip

    # -- setup --------------------------------------------------------------------------------------------------
    def preflight(self) -> None:
        env = self.server_env()
        code = (
            "import importlib.util, json; "
            f"print(json.dumps([m for m in {list(SERVER_MODULES)!r} if importlib.util.find_spec(m) is None]))"
        )
        try:
            out = subprocess.run([self.args.python, "-c", code], capture_output=True, text=True, env=env, timeout=120)
            missing = json.loads(out.stdout.strip().splitlines()[-1])
        except Exception as exc:  # noqa: BLE001 - only a report: the server start tells the rest
            missing = [f"(check failed: {exc})"]
        self.result["server_python_missing_modules"] = missing
        if missing:
            print(f"warning: the server's Python lacks {missing} (ComfyUI or the pack may fail to start)", flush=True)

    def server_env(self) -> dict[str, str]:
        from comfy_harness import SITE_PACKAGES_NAME

        parts = [str(Path(self.args.comfy).resolve() / SITE_PACKAGES_NAME), os.environ.get("PYTHONPATH", "")]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in parts if p)}

    def make_clips(self, input_dir: Path) -> None:
        import numpy as np
        from media import SOURCE_VIDEO, _encode, make_source_clip

        for name, frames, size in (EXAMPLE_CLIP, STREAM_CLIP):
            if SOURCE_VIDEO.is_file():
                make_source_clip(input_dir / name, frames=frames, size=size, tone_hz=440.0)
            else:  # the DAVIS footage is not on this machine: a moving colour pattern does for memory figures
                w, h = size
                y, x = np.mgrid[0:h, 0:w]
                clip = np.stack(
                    [np.stack([(x * 2 + 9 * t) % 256, (y * 3 + 5 * t) % 256, ((x + y) + 7 * t) % 256], -1)
                     for t in range(frames)]
                ).astype(np.uint8)  # fmt: skip
                _encode(input_dir / name, clip, 24, tone_hz=440.0)

    def start(self) -> None:
        from comfy_harness import ComfyClient, ComfyServer
        from model_dirs import install_tiny_models

        args = self.args
        if args.extra_pythonpath:  # the harness passes os.environ on; it prepends the tree's own site-packages
            os.environ["PYTHONPATH"] = os.pathsep.join(
                p for p in (args.extra_pythonpath, os.environ.get("PYTHONPATH")) if p
            )
        extra = []
        if args.front_end_root:
            extra += ["--front-end-root", str(Path(args.front_end_root).resolve())]
        extra += args.extra_server_args.split() if args.extra_server_args else []
        use_cpu = args.cpu

        class Server(ComfyServer):
            def command(self) -> list[str]:
                cmd = super().command()
                return cmd if use_cpu else [c for c in cmd if c != "--cpu"]

        work = Path(args.work).resolve()
        base = work / "comfyui-base"
        if base.exists():  # a fresh base each run: no outputs or partial jobs of an earlier run
            shutil.rmtree(base)
        base.mkdir(parents=True)
        self.server = Server(base, comfy_dir=Path(args.comfy), python=args.python, extra_args=extra)
        self.result["server_command"] = self.server.command()
        self.preflight()
        t0 = time.monotonic()
        install_tiny_models(base / "models")
        self.make_clips(self.server.input_dir)
        self.result["setup_s"] = round(time.monotonic() - t0, 3)
        t0 = time.monotonic()
        self.server.start(timeout=args.start_timeout)
        self.result["server_start_s"] = round(time.monotonic() - t0, 3)
        self.result["server_pid"] = self.server.proc.pid
        self.client = ComfyClient(self.server.url, self.server)
        self.result["system_stats"] = self.client.get_json("/system_stats")

    # -- prompts ------------------------------------------------------------------------------------------------
    def stream_prompt(self, prefix: str, **inputs: Any) -> dict:
        """LoadVideo → Convert Video to 3D (streaming) with the tiny DepthCrafter and StereoCrafter (cf.
        tests/e2e/test_convert_node.py convert(); small steps, 3-frame chunks)."""
        from model_dirs import DEPTHCRAFTER_NAME, STEREOCRAFTER_NAME, SVD_NAME

        loader = {"precision": "auto", "download_missing": False, "compile": False, "svd": SVD_NAME}
        settings = {
            "video": ["src", 0], "video_path": "", "depth_video_path": "", "layout": "full SBS",
            "anaglyph_method": "dubois", "max_disparity": 12.0, "disparity_unit": "pixels", "convergence": 0.5,
            "invert_depth": False, "depth_steps": 1, "inpaint_steps": 1, "seed": 42, "codec": "h264", "crf": 18,
            "chunk_frames": 3, "filename_prefix": prefix,
            "depthcrafter": ["load_dc", 0], "stereocrafter": ["load_sc", 0],
        }  # fmt: skip
        settings.update(inputs)
        return {
            "src": {"class_type": "LoadVideo", "inputs": {"file": STREAM_CLIP[0]}},
            "load_dc": {"class_type": "SC3D_LoadDepthCrafter", "inputs": {"depthcrafter": DEPTHCRAFTER_NAME, **loader}},
            "load_sc": {
                "class_type": "SC3D_LoadStereoCrafter",
                "inputs": {"stereocrafter": STEREOCRAFTER_NAME, **loader},
            },
            "convert": {"class_type": "SC3D_ConvertVideoTo3D", "inputs": settings},
        }

    def mp4_outputs(self, result) -> list[Path]:
        files = [f for f in result.saved_files(self.server.output_dir) if f.suffix == ".mp4"]
        for f in files:
            check(f.is_file() and f.stat().st_size > 0, f"output {f} is missing or empty")
        return files

    def partial_dirs(self, prefix: str) -> list[Path]:
        folder, name = prefix.rsplit("/", 1)
        return sorted((self.server.output_dir / folder).glob(f"{name}_*.partial.d"))

    # -- steps --------------------------------------------------------------------------------------------------
    def step_idle(self) -> None:
        self.record("1 idle after start")

    def step_example(self) -> None:
        from workflow_convert import ui_to_api

        workflow = json.loads((REPO_ROOT / "example_workflows" / "full_pipeline.json").read_text())
        notes: list[str] = []
        prompt = ui_to_api(workflow, self.client.object_info(), notes)
        self.result["example_convert_notes"] = notes
        for node in prompt.values():
            node["inputs"].update(FAST_WIDGETS.get(node["class_type"], {}))
        result = self.run_prompt("full_pipeline", prompt, workflow=workflow)
        files = self.mp4_outputs(result)
        found = sorted({re.sub(r"_\d+_?$", "", f.stem) for f in files})
        check(found == sorted(EXAMPLE_OUTPUTS), f"full_pipeline saved {found}, expected {sorted(EXAMPLE_OUTPUTS)}")
        self.prompts["full_pipeline"]["outputs"] = [str(f) for f in files]
        self.record("2 after full example", f"{self.prompts['full_pipeline']['wall_s']} s; saved {len(files)} videos")

    def step_free(self, point: str) -> None:
        self.record(point, self.free())

    def step_interrupt(self) -> None:
        from comfy_harness import PromptInterrupted

        prompt = self.stream_prompt(STREAM_PREFIX)
        sent: list[dict] = []

        def interrupt_in_stereo_pass(message: dict, prompt_id: str) -> None:
            data = message.get("data") or {}
            # The bar counts frames over both passes (depth, then stereo): past half, a stereo chunk is written.
            if (message.get("type") == "progress" and str(data.get("node")) == "convert" and not sent
                    and data.get("value", 0) > data.get("max", 1) / 2):  # fmt: skip
                sent.append({"value": data.get("value"), "max": data.get("max")})
                self.client.interrupt(prompt_id)

        try:
            self.run_prompt("stream_interrupted", prompt, on_message=interrupt_in_stereo_pass)
        except PromptInterrupted as exc:
            prompt_id = exc.prompt_id
        else:
            raise StepFailed(f"the streaming prompt finished although /interrupt was sent at {sent}")
        check(bool(sent), "interrupted without our /interrupt (?)")
        self.prompts["stream_interrupted"]["interrupted_at"] = sent[0]
        entry = poll(
            f"history of {prompt_id}", lambda: self.client.get_json(f"/history/{prompt_id}").get(prompt_id), 60
        )
        status = entry.get("status") or {}
        kinds = [m[0] for m in status.get("messages", []) if isinstance(m, list) and m]
        self.prompts["stream_interrupted"]["history_status"] = {
            "status_str": status.get("status_str"),
            "messages": kinds,
        }
        check("execution_interrupted" in kinds, f"the history does not show the interruption: {status}")
        self.wait_idle()
        partial = self.partial_dirs(STREAM_PREFIX)
        check(len(partial) == 1, f"expected one resumable job folder after the interrupt, found {partial}")
        self.prompts["stream_interrupted"]["partial_dir"] = str(partial[0])
        self.record("4 after interrupted stream", f"interrupted at {sent[0]['value']}/{sent[0]['max']} frames; "
                    f"{self.prompts['stream_interrupted']['wall_s']} s")  # fmt: skip

    def step_resume(self) -> None:
        partial = self.partial_dirs(STREAM_PREFIX)
        result = self.run_prompt("stream_resumed", self.stream_prompt(STREAM_PREFIX))
        files = self.mp4_outputs(result)
        check(len(files) == 1, f"the resumed prompt saved {files}")
        check(not any(p.exists() for p in partial), f"the job folder {partial} is still there after the resume")
        info = self.prompts["stream_resumed"]
        info["outputs"] = [str(f) for f in files]
        self.record("5 after resumed stream", f"{info['wall_s']} s; progress started at {info.get('progress_first')}")

    def step_next(self) -> None:
        prompt = self.stream_prompt(OTHER_PREFIX, layout="anaglyph", chunk_frames=6, seed=7)
        result = self.run_prompt("next_prompt", prompt)
        files = self.mp4_outputs(result)
        check(len(files) == 1, f"the next prompt saved {files}")
        self.prompts["next_prompt"]["outputs"] = [str(f) for f in files]
        self.record("6 after next prompt", f"{self.prompts['next_prompt']['wall_s']} s")

    def run(self) -> None:
        steps = [
            ("start server", self.start),
            ("1 idle", self.step_idle),
            ("2 full example", self.step_example),
            ("3 free", lambda: self.step_free("3 after /free")),
            ("4 interrupt stream", self.step_interrupt),
            ("5 resume stream", self.step_resume),
            ("6 next prompt", self.step_next),
            ("7 final free", lambda: self.step_free("7 after final /free")),
        ]
        for name, fn in steps:
            print(f"== {name}", flush=True)
            try:
                fn()
            except Exception as exc:
                self.result["failed_step"] = name
                self.result["error"] = f"{type(exc).__name__}: {exc}"
                self.result["traceback"] = traceback.format_exc()
                raise
        self.result["ok"] = True

    def finish(self) -> None:
        if self.server is not None:
            log = self.server.log_text()
            self.result["log_model_lines"] = [line for line in log.splitlines() if LOG_PATTERN.search(line)][-300:]
            self.result["log_shows_model_loading"] = any("requested to load" in x.lower() for x in
                                                         self.result["log_model_lines"])  # fmt: skip
            self.result["log_tail"] = self.server.log_tail(200)
            self.server.stop()
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.result, indent=2, default=str))
        print(markdown_table(self.points, self.prompts))
        print(f"\nwritten to {out}")


def _gib(value: Any) -> str:
    return f"{value / GIB:.3f}" if isinstance(value, (int, float)) else "-"


def markdown_table(points: list[dict], prompts: dict[str, dict]) -> str:
    lines = [
        "| point | ComfyUI vram_free GiB | torch_vram_free GiB | nvidia-smi used MiB | notes |",
        "|---|---|---|---|---|",
    ]
    for p in points:
        smi = p["nvidia_smi_used_mib"]
        lines.append(f"| {p['point']} | {_gib(p['vram_free'])} | {_gib(p['torch_vram_free'])} | "
                     f"{'-' if smi is None else f'{smi:.0f}'} | {p['notes']} |")  # fmt: skip
    lines += ["", "| prompt | outcome | wall s |", "|---|---|---|"]
    for name, info in prompts.items():
        lines.append(f"| {name} | {str(info.get('outcome', '?'))[:80]} | {info.get('wall_s', '-')} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--comfy", required=True, help="a ComfyUI source tree (main.py inside)")
    p.add_argument("--python", default=sys.executable, help="the server's Python (default: this one)")
    p.add_argument("--extra-pythonpath", default="", help="os.pathsep-separated paths prepended to its PYTHONPATH")
    p.add_argument("--work", required=True, help="a work folder (the server's base directory goes inside)")
    p.add_argument("--cpu", action="store_true", help="pass --cpu to the server (to test this script)")
    p.add_argument("--front-end-root", default="", help="a built frontend folder (no frontend package needed)")
    p.add_argument("--out", required=True, help="the JSON report")
    p.add_argument("--extra-server-args", default="", help="more arguments for main.py (split on spaces)")
    p.add_argument("--prompt-timeout", type=float, default=900.0, help="seconds per prompt (default 900)")
    p.add_argument("--start-timeout", type=float, default=300.0, help="seconds for the server to answer")
    p.add_argument("--builtin-websocket", action="store_true", help="use the built-in websocket client")
    args = p.parse_args(argv)
    if not (Path(args.comfy) / "main.py").is_file():
        p.error(f"--comfy {args.comfy}: no main.py there (give a ComfyUI source tree)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    bench.result["websocket"] = install_websocket_shim(force=args.builtin_websocket)
    code = 0
    try:
        bench.run()
    except Exception as exc:  # noqa: BLE001 - reported, then the exit code says it
        code = 1
        print(f"\nFAILED at step {bench.result.get('failed_step')!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
        bench.result["error"] = "KeyboardInterrupt"
    finally:
        try:
            bench.finish()
        except Exception as exc:  # noqa: BLE001
            print(f"could not finish the report: {exc}", file=sys.stderr)
            code = code or 1
    if code == 0:
        print("OK: every step passed")
    return code


if __name__ == "__main__":
    sys.exit(main())
