"""When Runware's async tasks are polled, and what is learned from them (docs/architecture.md, "Polling").

Collected by handle (``submit`` + ``result``, what the batch runner does), a Runware task used to be polled on the
SDK's cadence (at once, then 0.5 s ×1.5), noticing it up to half its length late. It is now polled on the learned
schedule. The assertions count what the emulator received: a slow machine makes polls later, never earlier, so
the counts below hold at any speed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from photomaker_bridge import AsyncBridge, ConfigurationError, PhotoMakerRequest
from photomaker_bridge.emulators import EmulatorHandle, EmulatorSettings, start_emulators
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.providers.runware import RUNWARE_POLLING, RunwareProvider

FACE = render_image(seed=3, style="face", width=64, height=64)
RUN_SECONDS = 1.0


def request() -> PhotoMakerRequest:
    return PhotoMakerRequest(prompt="a photo of a man rwre", images=[FACE])


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with start_emulators(runware=EmulatorSettings(run_time=RUN_SECONDS), seed=7) as running:
        yield running.runware


@pytest.fixture
def runware(emulator: EmulatorHandle) -> EmulatorHandle:
    emulator.reset()
    return emulator


def provider_for(emulator: EmulatorHandle, **settings: Any) -> RunwareProvider:
    return RunwareProvider(api_key=emulator.api_key, base_url=emulator.url + "/v1", **settings)


def polls(emulator: EmulatorHandle) -> int:
    """getResponse requests the emulator received."""
    return sum(1 for entry in emulator.log if entry.method == "POST" and entry.body
               and any(task.get("taskType") == "getResponse" for task in entry.json()))  # type: ignore[union-attr]


async def collect(provider: RunwareProvider) -> None:
    async with AsyncBridge(providers=[provider]) as bridge:
        handle = await bridge.submit(request(), "runware")
        result = await bridge.result(handle, timeout=60)
    assert result.images


async def test_a_known_length_is_polled_around_not_from_the_start(runware: EmulatorHandle) -> None:
    # Expected at 5 s: an early check at 0.5 s finds the 1 s task running, the next (half the time left) finds
    # it done. The SDK's cadence polled at 0, 0.5 and 1.25 s.
    provider = provider_for(runware, expected_seconds=5.0)
    await collect(provider)
    assert polls(runware) == 2


async def test_the_fixed_cadence_polls_at_once_and_keeps_growing(runware: EmulatorHandle) -> None:
    provider = provider_for(runware, expected_seconds=5.0, poll_interval=0.02, max_poll_interval=0.05)
    await collect(provider)
    assert polls(runware) >= 4  # every 0.05 s at most for a 1 s task, whatever the machine's speed


async def test_the_length_is_learned_and_kept_between_adapters(runware: EmulatorHandle, tmp_path: Path) -> None:
    path = tmp_path / "lengths.json"
    first = provider_for(runware, duration_cache=path)
    assert not first.estimate().known  # Runware publishes no typical time: the cold schedule
    await collect(first)
    learned = first.estimate()
    assert learned.known and learned.samples == 1
    # The task ran 1 s from its acceptance; learned as the middle of the last two polls of the cold schedule
    # (0.5 s apart at that point), so within a poll gap of it. A busy machine only moves the last poll later.
    assert learned.seconds >= RUN_SECONDS - 0.5
    second = provider_for(runware, duration_cache=path)
    assert second.estimate().known and second.estimate().seconds == pytest.approx(learned.seconds, abs=1e-3)


async def test_a_handle_rebuilt_from_ids_is_polled_at_once_and_teaches_nothing(runware: EmulatorHandle) -> None:
    provider = provider_for(runware, expected_seconds=30.0)
    async with AsyncBridge(providers=[provider]) as bridge:
        handle = await bridge.submit(request(), "runware")
        rebuilt = provider.handle_for(",".join(handle.request_ids))
        result = await bridge.result(rebuilt, timeout=60)
    assert result.images
    assert provider.estimate().samples == 0  # its age was unknown: no sample


def test_settings_are_checked() -> None:
    for field in ("poll_interval", "expected_seconds", "max_poll_interval"):
        for value in (0, -1, float("nan"), float("inf"), "1", True):
            with pytest.raises(ConfigurationError, match=field):
                RunwareProvider(**{field: value})
    assert RunwareProvider().polling == RUNWARE_POLLING and RunwareProvider().poll_interval is None
