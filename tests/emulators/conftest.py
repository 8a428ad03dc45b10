"""Fixtures shared by the emulator tests of the official Runware SDKs (legacy ``runware`` and ``runware-sdk``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from photomaker_bridge.emulators._common import EmulatorSettings, EmulatorState
from photomaker_bridge.emulators.runware import create_app


@pytest.fixture
def runware_state() -> EmulatorState:
    """A Runware emulator's state: fast jobs, a fixed seed."""
    return EmulatorState("runware", EmulatorSettings(run_time=0.02, seed=5))


@pytest.fixture
async def runware_server(runware_state: EmulatorState) -> AsyncIterator[TestServer]:
    """The Runware emulator on a loopback port."""
    server = TestServer(create_app(runware_state), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()
