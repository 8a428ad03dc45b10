"""``Bridge(state=...)`` and ``AsyncBridge(state=...)`` against the emulators: two clients with separate states
over one Redis act like two processes — one concurrency cap, one breaker, one budget, one journal — and the
same holds for two clients sharing one ``MemoryState``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import attrs
import helpers_bridge
import pytest
from helpers_bridge import adapters, open_client, photo_request
from helpers_redis import RedisServer
from helpers_routing import accepted, attempted, refuse_submits, requests_seen, trail

from photomaker_bridge import (
    BreakerSettings,
    Bridge,
    ConfigurationError,
    InsufficientCreditsError,
    InvalidRequestError,
    MemoryRouterState,
    Route,
)
from photomaker_bridge.emulators import Emulators
from photomaker_bridge.providers.eachlabs import EachlabsProvider
from photomaker_bridge.state import MemoryState, RedisState, State

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode


@pytest.fixture(params=["memory", "redis"])
def pair(request: pytest.FixtureRequest, namespace: str) -> Iterator[tuple[State, State]]:
    """Two states standing for two processes: one ``MemoryState`` given to both clients, or two ``RedisState``
    objects (each with its own connections) over one server and namespace."""
    if request.param == "memory":
        shared = MemoryState()
        yield shared, shared
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    first, second = RedisState(server.url, namespace=namespace), RedisState(server.url, namespace=namespace)
    try:
        yield first, second
    finally:
        first.clear()
        first.close()
        second.close()


def capped(emu: Emulators, cap: int) -> list[object]:
    """The emulator adapters, Eachlabs capped at ``cap`` jobs in flight."""
    providers = adapters(emu)
    return [attrs.evolve(provider, concurrency=cap) if isinstance(provider, EachlabsProvider) else provider
            for provider in providers]


async def test_two_clients_share_one_concurrency_cap(mode: str, emu: Emulators, pair: tuple[State, State]) -> None:
    emu.eachlabs.settings.run_time = 0.3
    async with open_client(mode, capped(emu, 2), state=pair[0]) as first, \
            open_client(mode, capped(emu, 2), state=pair[1]) as second:
        calls = [client.generate(photo_request(num_images=1), "eachlabs", timeout=60)
                 for client in (first, second) for _ in range(4)]
        results = await asyncio.gather(*calls)
    assert all(len(result.images) == 1 for result in results)
    assert emu.eachlabs.counters["peak_in_flight"] <= 2
    assert emu.eachlabs.counters["predictions_rate_limited"] == 0
    assert accepted(emu, "eachlabs") == 8


async def test_a_breaker_opened_by_one_client_is_open_for_the_other(mode: str, emu: Emulators,
                                                                    pair: tuple[State, State]) -> None:
    refuse_submits(emu, "fal", 503)
    route = Route(["fal", "runware"])
    breaker = BreakerSettings(failures=2, cooldown=600)
    async with open_client(mode, adapters(emu), breaker=breaker, state=pair[0]) as first, \
            open_client(mode, adapters(emu), breaker=breaker, state=pair[1]) as second:
        for _ in range(2):
            assert attempted((await first.generate(photo_request(), route, timeout=30)).attempts) == ["fal", "runware"]
        before = requests_seen(emu)["fal"]
        result = await second.generate(photo_request(), route, timeout=30)
        assert trail(result.attempts) == [("fal", "skipped", None), ("runware", "ok", None)]
        assert requests_seen(emu)["fal"] == before


async def test_an_idempotency_key_pays_once_whichever_client_asks(mode: str, emu: Emulators,
                                                                  pair: tuple[State, State]) -> None:
    async with open_client(mode, adapters(emu), state=pair[0]) as first, \
            open_client(mode, adapters(emu), state=pair[1]) as second:
        one = await first.generate(photo_request(), "eachlabs", timeout=30, idempotency_key="order-42")
        again = await second.generate(photo_request(), "eachlabs", timeout=30, idempotency_key="order-42")
        other = await second.generate(photo_request(), "eachlabs", timeout=30, idempotency_key="order-43")
    assert accepted(emu, "eachlabs") == 2
    assert again.request_ids == one.request_ids != other.request_ids
    assert [image.url for image in again.images] == [image.url for image in one.images]


async def test_an_idempotency_key_without_a_state_is_remembered_by_the_client(mode: str, emu: Emulators) -> None:
    async with open_client(mode, adapters(emu)) as client:
        first = await client.generate(photo_request(), "fal", timeout=30, idempotency_key="k")
        second = await client.generate(photo_request(), "fal", timeout=30, idempotency_key="k")
        assert client.bridge.state is None
    assert first.request_ids == second.request_ids and accepted(emu, "fal") == 1


async def test_a_refused_submission_frees_its_key(mode: str, emu: Emulators, pair: tuple[State, State]) -> None:
    refuse_submits(emu, "eachlabs", 402, times=1)
    async with open_client(mode, adapters(emu), state=pair[0]) as client:
        with pytest.raises(InsufficientCreditsError):
            await client.generate(photo_request(), "eachlabs", timeout=30, idempotency_key="retry-me")
        result = await client.generate(photo_request(), "eachlabs", timeout=30, idempotency_key="retry-me")
    assert len(result.images) == 2 and accepted(emu, "eachlabs") == 1


def test_bad_configuration_is_refused_before_anything_is_sent(namespace: str) -> None:
    with pytest.raises(ConfigurationError, match="state must be a MemoryState or a RedisState"):
        Bridge(state=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not both"):
        Bridge(state=MemoryState(), router_state=MemoryRouterState())
    with pytest.raises(ConfigurationError, match="on_state_error must be 'fail' or 'local'"):
        RedisState(on_state_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timeout must be a finite number"):
        RedisState(timeout=0)
    with pytest.raises(ConfigurationError, match="redis://"):
        RedisState("http://localhost:6379")
    with Bridge(state=MemoryState()) as bridge, pytest.raises(InvalidRequestError, match="idempotency_key"):
        bridge.generate(photo_request(), "fal", idempotency_key="")


def test_the_state_never_shows_a_password() -> None:
    state = RedisState("redis://user:s3cret-password@cache.internal:6380/2")
    assert "s3cret" not in repr(state) and "s3cret" not in state.describe()
    assert state.describe() == "Redis at cache.internal:6380/2"
