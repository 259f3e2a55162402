"""Downloads never hang: a hub that accepts connections and never answers, or one that cannot be reached, gives one
line naming the hub and where to put the files by hand, within the request timeout (``HF_HUB_ETAG_TIMEOUT``); a
cancel (ComfyUI's interrupt) ends the wait for a download in progress. The hubs are local sockets on 127.0.0.1."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import huggingface_hub.constants
import pytest

import stereocrafter.model_sources as model_sources
from stereocrafter.model_sources import SVD, HubUnreachableError, check_hub_reachable, download_model
from tests.test_video_io import _moving, _ramp_depth, _write

REPO_ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def silent_hub() -> Iterator[str]:
    """A server on 127.0.0.1 that accepts every connection and never sends a byte; closed (and its thread ended) on
    exit, so the test cannot leave it behind."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:  # closed on exit
                return
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        try:
            server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not, on Linux)
        except OSError:
            pass
        server.close()
        for connection in held:
            connection.close()
        thread.join(timeout=30)


def closed_port() -> str:
    """An endpoint on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    # The test configuration turns huggingface_hub's offline mode on (read at its import); these tests need the
    # network path, to local sockets only.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "0.5")
    return monkeypatch


def test_silent_hub_is_reported_not_waited_for(online: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with silent_hub() as endpoint:
        online.setattr(model_sources, "hub_endpoint", lambda: endpoint)
        with pytest.raises(HubUnreachableError) as error:
            download_model(SVD, tmp_path / "svd")
    message = str(error.value)
    assert message.startswith(f"cannot reach the Hugging Face hub at {endpoint} (no answer within 0.5 s)")
    assert f"into {tmp_path / 'svd'} by hand" in message and SVD.repo_id in message
    assert "\n" not in message
    assert not (tmp_path / "svd").exists()  # nothing half-written


def test_unreachable_hub_is_one_line(online: pytest.MonkeyPatch, tmp_path: Path) -> None:
    endpoint = closed_port()
    online.setattr(model_sources, "hub_endpoint", lambda: endpoint)
    with pytest.raises(HubUnreachableError, match=f"^cannot reach the Hugging Face hub at {endpoint} ") as error:
        check_hub_reachable(SVD, tmp_path / "svd")
    assert "\n" not in str(error.value) and "by hand" in str(error.value)


def test_offline_mode_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnreachableError, match="HF_HUB_OFFLINE is set .* by hand"):
        download_model(SVD, tmp_path / "svd")


class _Unauthorized(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:  # noqa: N802 (the standard library's name)
        self.send_response(401)  # a gated repository without a login: the hub is there
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_hub_that_answers_passes_the_check(online: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.handle_request, daemon=True)  # one request, then it returns
    thread.start()
    try:
        online.setattr(model_sources, "hub_endpoint", lambda: f"http://127.0.0.1:{server.server_port}")
        check_hub_reachable(SVD, tmp_path / "svd")  # no error
    finally:
        thread.join(timeout=30)
        server.server_close()


class Cancelled(Exception):
    pass


def test_cancel_ends_the_wait_for_a_download() -> None:
    release = threading.Event()
    calls: list[int] = []

    def interrupt() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        model_sources._run_cancellable(release.wait, interrupt)  # the "download" never ends by itself
    assert len(calls) == 2
    release.set()

    def failing() -> None:
        raise ValueError("from the worker")

    with pytest.raises(ValueError, match="from the worker"):
        model_sources._run_cancellable(failing, lambda: None)


def _cli(tmp_path: Path, endpoint: str) -> subprocess.CompletedProcess:
    source = _write(tmp_path / "in.mp4", _moving(2))
    depth = _write(tmp_path / "depth.mp4", _ramp_depth(2))
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_HUB_ETAG_TIMEOUT": "1",
           "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}  # fmt: skip
    args = [str(source), "-o", str(tmp_path / "out.mp4"), "--depth", str(depth), "--models", str(tmp_path / "m")]
    # The timeout only bounds a failing test: the command itself ends after one 1-second request.
    return subprocess.run(
        [sys.executable, "-m", "stereocrafter", *args, "--download"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("hub", ["silent", "closed"])
def test_cli_download_without_a_hub(tmp_path: Path, hub: str) -> None:
    if hub == "silent":
        with silent_hub() as endpoint:
            done = _cli(tmp_path, endpoint)
        reason = "(no answer within 1 s)"
    else:
        endpoint = closed_port()
        done = _cli(tmp_path, endpoint)
        reason = "("
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"error: cannot reach the Hugging Face hub at {endpoint} {reason}" in errors[0]
    assert f"into {tmp_path / 'm' / 'diffusers' / SVD.default_name} by hand" in errors[0]
