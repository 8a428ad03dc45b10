"""A real Redis for the state tests: one server per session, a fresh namespace per test; the parametrized
``state`` fixture gives each test both backends."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_redis import RedisServer

sys.path.insert(0, str(Path(__file__).parent.parent / "clients"))  # the emulator helpers (helpers_bridge)

from photomaker_bridge.state import MemoryState, RedisState, State


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test alone, which it may stop and start again (the session one stays up)."""
    own = RedisServer(tmp_path)
    own.start()
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_state(redis_server: RedisServer, namespace: str) -> Iterator[RedisState]:
    """A ``RedisState`` over the session's server, in this test's namespace (cleared afterwards)."""
    shared = RedisState(redis_server.url, namespace=namespace)
    try:
        yield shared
    finally:
        shared.clear()
        shared.close()


@pytest.fixture(params=["memory", "redis"])
def state(request: pytest.FixtureRequest) -> State:
    """Each backend in turn: the same test must hold for both."""
    if request.param == "memory":
        return MemoryState()
    shared: RedisState = request.getfixturevalue("redis_state")
    return shared
