"""fal's status stream (docs/protocols/fal.md §1.5) for a new client: one stream per request instead of polls,
the completion seen as the emulator sends it; bounded listens; at most ``StreamSlots.limit`` at once per adapter;
polling again once a length is known, or when asked to (``poll_interval``, ``status_stream=False``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import attrs
import pytest

from photomaker_bridge import AsyncBridge, Bridge, GenerationTimeoutError, PhotoMakerRequest, ProgressEvent
from photomaker_bridge.emulators import Emulators, EmulatorSettings, start_emulators
from photomaker_bridge.providers import _fal_polling
from photomaker_bridge.providers._fal_operations import StreamSlots
from photomaker_bridge.providers._fal_stream import EventReader
from photomaker_bridge.providers.fal import FalProvider
from photomaker_bridge.samples import sample_faces

REQUEST = PhotoMakerRequest(prompt="a photo of a woman img at the beach", images=[sample_faces()[0]])


@pytest.fixture(scope="module")
def running() -> Iterator[Emulators]:
    with start_emulators(fal=EmulatorSettings(queue_time=0.1, run_time=0.6)) as emulators:
        yield emulators


@pytest.fixture
def emu(running: Emulators) -> Emulators:
    running.reset()
    return running


def new_adapter(emu: Emulators, **options: object) -> FalProvider:
    return FalProvider(key=emu.fal.api_key, base_url=emu.fal.url, **options)  # type: ignore[arg-type]


def test_the_event_reader_joins_data_lines_and_skips_comments() -> None:
    reader = EventReader("r-1")
    lines = [": keep-alive", "", 'data: {"status": "IN_QUEUE",', 'data: "queue_position": 2}', "",
             "event: status", 'data: {"status": "COMPLETED", "metrics": {"inference_time": 1.5}}', ""]
    statuses = [status for line in lines if (status := reader.feed(line)) is not None]
    assert [(status.state, status.queue_position) for status in statuses] == [("IN_QUEUE", 2), ("COMPLETED", None)]
    assert statuses[-1].inference_time == 1.5


def test_a_new_sync_client_follows_the_stream_and_never_polls(emu: Emulators) -> None:
    events: list[ProgressEvent] = []
    with Bridge(providers=[new_adapter(emu)]) as bridge:
        result = bridge.generate(REQUEST, "fal", timeout=30, on_event=events.append)
    # A listen ends at each change of state (queued -> running -> completed), so that the change is reported at once.
    assert result.images and 1 <= emu.fal.counters["status_streams"] <= 2 and emu.fal.counters["status_polls"] == 0
    kinds = [event.kind for event in events]
    assert "running" in kinds and kinds[-1] == "completed"


async def test_a_new_async_client_follows_the_stream_then_polls_once_it_knows_the_length(emu: Emulators) -> None:
    adapter = new_adapter(emu)
    async with AsyncBridge(providers=[adapter]) as bridge:
        await bridge.generate(REQUEST, "fal", timeout=30)
        streams = emu.fal.counters["status_streams"]
        assert streams >= 1 and emu.fal.counters["status_polls"] == 0
        await bridge.generate(REQUEST, "fal", timeout=30)  # the first taught the length: the warm schedule
    assert emu.fal.counters["status_streams"] == streams and emu.fal.counters["status_polls"] >= 1


@pytest.mark.parametrize("options", [{"status_stream": False}, {"poll_interval": 0.05}, {"expected_seconds": 0.7}])
def test_polling_when_asked_or_when_the_length_is_known(emu: Emulators, options: dict[str, object]) -> None:
    with Bridge(providers=[new_adapter(emu, **options)]) as bridge:
        bridge.generate(REQUEST, "fal", timeout=30)
    assert emu.fal.counters["status_streams"] == 0 and emu.fal.counters["status_polls"] >= 1


def test_a_quiet_stream_is_opened_again(emu: Emulators, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.fal.settings.run_time = 1.2
    monkeypatch.setattr(_fal_polling, "LISTEN_SECONDS", 0.3)
    with Bridge(providers=[new_adapter(emu)]) as bridge:
        result = bridge.generate(REQUEST, "fal", timeout=30)
    assert result.images and emu.fal.counters["status_streams"] >= 2 and emu.fal.counters["status_polls"] == 0


class PeakSlots(StreamSlots):
    """Stream slots that remember the most taken at once."""

    peak = 0

    def take(self) -> bool:
        taken = super().take()
        PeakSlots.peak = max(PeakSlots.peak, self.taken)
        return taken


async def test_at_most_the_slots_limit_of_streams_at_once(emu: Emulators) -> None:
    adapter = new_adapter(emu)
    adapter._streams = PeakSlots()
    calls = StreamSlots().limit + 3
    async with AsyncBridge(providers=[adapter]) as bridge:
        results = await asyncio.gather(*(bridge.generate(REQUEST, "fal", timeout=60) for _ in range(calls)))
    assert len(results) == calls
    # Each call decides when its requests are collected: never more followed at once than slots, the others poll.
    assert 1 <= PeakSlots.peak <= StreamSlots().limit
    assert emu.fal.counters["status_streams"] >= 1 and emu.fal.counters["status_polls"] >= 3
    assert adapter._streams.taken == 0  # every slot given back


def test_stream_slots_are_taken_up_to_the_limit_and_given_back() -> None:
    slots = StreamSlots(limit=2)
    assert [slots.take(), slots.take(), slots.take()] == [True, True, False]
    slots.give()
    assert slots.take() and not slots.take()


def test_the_deadline_ends_a_listen_and_cancels_the_request(emu: Emulators) -> None:
    emu.fal.settings.run_time = 5.0
    with Bridge(providers=[new_adapter(emu)]) as bridge, pytest.raises(GenerationTimeoutError):
        bridge.generate(REQUEST, "fal", timeout=0.8)
    assert emu.fal.counters["status_streams"] >= 1 and emu.fal.counters["cancels"] == 1


@pytest.mark.parametrize(("max_connections", "limit"), [(None, 8), (100, 8), (6, 3), (1, 0)])
def test_listens_hold_at_most_half_of_the_clients_pool(emu: Emulators, max_connections: int | None,
                                                       limit: int) -> None:
    adapter = new_adapter(emu)
    with Bridge(providers=[adapter], max_connections=max_connections) as bridge:
        bridge._performer(adapter)  # what the client's first fal call builds
    assert adapter._streams.limit == limit


def test_a_client_with_a_one_connection_pool_polls_instead_of_streaming(emu: Emulators) -> None:
    with Bridge(providers=[new_adapter(emu)], max_connections=1) as bridge:
        result = bridge.generate(REQUEST, "fal", timeout=30)
    # A listen would hold the only connection; the job's own polls need it.
    assert result.images and emu.fal.counters["status_streams"] == 0 and emu.fal.counters["status_polls"] >= 1


async def test_the_requests_not_listened_to_keep_their_concurrency_slots(emu: Emulators,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from photomaker_bridge._coordination import Coordinator

    renewed: list[str] = []
    original = Coordinator.renew

    def renew(self: Coordinator, account: str, request_id: str) -> None:
        renewed.append(request_id)
        original(self, account, request_id)

    monkeypatch.setattr(Coordinator, "renew", renew)
    emu.fal.settings.queue_time = 0.0
    async with AsyncBridge(providers=[new_adapter(emu, concurrency=4)]) as bridge:
        result = await bridge.generate(attrs.evolve(REQUEST, num_images=8), "fal", timeout=30)
    assert len(result.images) == 8 and len(result.request_ids) == 2
    # The stream follows the first request; the second's lease starts over after each listen, as a poll would.
    assert result.request_ids[1] in renewed
