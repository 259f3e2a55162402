"""Test configuration: make the `stereocrafter` library importable from the repository root; never reach a hub."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# Tests build their models locally; a hub download would be a bug (and there is no network in CI).
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Torch on one CPU thread for a module of tiny-model tests (see tests/tiny_models.single_thread)."""
    from tests.tiny_models import single_thread

    with single_thread():
        yield
