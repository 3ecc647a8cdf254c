from __future__ import annotations

from pathlib import Path

import pytest

from market_assets.memory import connect
from market_assets.memory.connection import close
from tests.conftest import FrozenClock


@pytest.fixture
def memory(memory_path: Path, clock: FrozenClock) -> Path:
    """An empty memory at the current schema, created by a writer: the API only ever reads one."""
    close(connect(memory_path, clock=clock))
    return memory_path
