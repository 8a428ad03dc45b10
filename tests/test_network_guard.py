"""The suite's network guard (tests/conftest.py) really keeps tests off the providers' real hosts.

``Bridge()`` and ``AsyncBridge()`` with a dummy key and the adapters' default base URLs (fal: fal_client's own
hosts) try to reach the real providers; the guard refuses the name lookup with ``RealNetworkBlocked``, which
must surface (as is, or as the cause of a ProviderError). Each such attempt is also recorded in conftest's
``_blocked`` list, and the autouse fixture ``_no_real_network`` fails any test during which an attempt was
recorded. These tests make attempts on purpose: they check that the attempt was recorded, then remove their
own records so that the fixture stays quiet.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from photomaker_bridge import AsyncBridge, Bridge, PhotoMakerRequest, ProviderError
from photomaker_bridge.emulators import start_emulators
from photomaker_bridge.emulators._images import render_image

FACE = render_image(seed=1, style="face", width=64, height=64)
REAL_HOSTS = {"runware": "api.runware.ai", "eachlabs": "api.eachlabs.ai", "fal": "rest.fal.ai"}
KEY_VARIABLES = {"runware": "RUNWARE_API_KEY", "eachlabs": "EACHLABS_API_KEY", "fal": "FAL_KEY"}


def _root_conftest(config: pytest.Config) -> ModuleType:
    """tests/conftest.py as pytest loaded it (the module whose functions guard ``socket``).

    Looked up among pytest's plugins rather than imported by name: with several ``conftest.py`` files in the
    tree, ``sys.modules["conftest"]`` is whichever was imported last.
    """
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, ModuleType) and hasattr(plugin, "_blocked") and hasattr(plugin, "RealNetworkBlocked"):
            return plugin
    raise AssertionError("tests/conftest.py with its network guard is not loaded")


@pytest.fixture
def guard(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The guard's module, with the attempts this test makes taken back off its record at the end."""
    module = _root_conftest(request.config)
    start = len(module._blocked)
    yield module
    # The test asserted on its own attempts; the autouse fixture must not fail it for them.
    del module._blocked[start:]


def _chain(error: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _request() -> PhotoMakerRequest:
    return PhotoMakerRequest(prompt="a photo of a man img", images=[FACE])


@pytest.mark.parametrize("provider", ["runware", "eachlabs", "fal"])
@pytest.mark.parametrize("client_class", [Bridge, AsyncBridge])
async def test_default_clients_cannot_reach_the_real_providers(guard: Any, provider: str, client_class: type,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    key = guard.register_secret(f"{provider}-dummy-key-0123456789abcdef")
    monkeypatch.setenv(KEY_VARIABLES[provider], key)
    start = len(guard._blocked)

    with pytest.raises(Exception) as caught:  # which one is asserted below
        if client_class is Bridge:
            with Bridge() as bridge:
                bridge.generate(_request(), provider, timeout=10)
        else:
            async with AsyncBridge() as async_bridge:
                await async_bridge.generate(_request(), provider, timeout=10)

    error = caught.value
    chain = _chain(error)
    assert isinstance(error, guard.RealNetworkBlocked | ProviderError)
    assert any(isinstance(link, guard.RealNetworkBlocked) for link in chain)
    attempts = guard._blocked[start:]
    assert attempts and all(REAL_HOSTS[provider] in attempt for attempt in attempts)  # (a bytes name is repr'd)
    for link in chain:
        assert guard.leaked_secrets(str(link) + repr(link)) == []


def test_a_direct_connection_to_a_real_host_is_refused(guard: Any) -> None:
    start = len(guard._blocked)
    with pytest.raises(guard.RealNetworkBlocked):
        socket.create_connection(("api.runware.ai", 443), timeout=1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as raw, pytest.raises(guard.RealNetworkBlocked):
        raw.connect(("93.184.216.34", 443))  # an address, no name lookup: the connect itself is refused
    assert guard._blocked[start:] == ["api.runware.ai", "93.184.216.34"]
    assert issubclass(guard.RealNetworkBlocked, RuntimeError)  # not an OSError: HTTP clients do not retry it
    assert not issubclass(guard.RealNetworkBlocked, OSError)


def test_loopback_stays_reachable(guard: Any) -> None:
    start = len(guard._blocked)
    with start_emulators() as emulators:
        host, port = emulators.runware.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    assert guard._blocked[start:] == []


def test_an_attempt_is_recorded_even_when_swallowed(guard: Any) -> None:
    """The guard records refused attempts, so the autouse fixture can fail a test whose code swallowed them."""
    start = len(guard._blocked)
    with contextlib.suppress(RuntimeError):  # as code under test might
        socket.getaddrinfo("api.eachlabs.ai", 443)
    assert guard._blocked[start:] == ["api.eachlabs.ai"]
