"""One conversion per output at a time: an exclusive lock on ``OUTPUT.partial.lock`` beside the job's work folder.

The lock is an OS file lock (``flock`` on Linux and macOS, ``msvcrt.locking`` on Windows), so the operating system
drops it when its process ends, however it ends: a lock left by a killed run is stale by construction and the
next run takes it over (and says so, from the PID its file still names). A second run while the first is alive
does not wait: it stops at once with :class:`JobLockedError`, naming the running job (PID, host, start time,
input), so two runs never share the work folder. On network file systems the lock is only as good as their
``flock`` support.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)


class JobLockedError(RuntimeError):
    """Another live process is converting to the same output; the message names it and what to do."""


def lock_path(output: Path) -> Path:
    """The lock file of the job writing ``output``."""
    return output.with_name(output.name + ".partial.lock")


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on the open file ``fd`` without waiting; False when another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "a process that has not written its details yet"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {started}, converting {holder.get('input')}"


class JobLock:
    """``with JobLock(output, input_path):`` holds the lock of the job writing ``output`` for the block.

    Raises :class:`JobLockedError` on entry when a live process holds it. The lock file is removed on exit.
    """

    def __init__(self, output: Path, input_path: Path | str = "") -> None:
        self.path = lock_path(Path(output))
        self.output = Path(output)
        self.input = str(input_path)
        self.fd: int | None = None

    def __enter__(self) -> JobLock:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OSError(f"cannot write next to the output ({self.path.parent}): {exc.strerror or exc}.") from exc
            if not _try_lock(fd):
                os.close(fd)
                raise JobLockedError(
                    f"another conversion is writing {self.output} ({_describe(_holder(self.path))}): wait for it to "
                    "finish, stop it (then rerun this to resume), or choose another output."
                )
            # The previous holder may have removed the file between our open and our lock: then we hold a lock on
            # a file nobody else sees, and must lock the one now at the path instead.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _holder(self.path)
        if previous.get("pid"):
            logger.warning(
                "taking over the lock of a conversion that stopped without finishing (%s).", _describe(previous)
            )
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "input": self.input}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode())
        self.fd = fd
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.fd is None:
            return
        # Remove the file while still holding the lock (a run that opened it meanwhile retries, see __enter__).
        # Windows cannot remove an open file: there it stays, empty, and the next run reuses it.
        try:
            os.ftruncate(self.fd, 0)
            if sys.platform != "win32":
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)  # releases the lock
            self.fd = None
