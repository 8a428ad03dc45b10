"""``on_event`` through ``Bridge`` and ``AsyncBridge``: typed progress events with provider, request id and time.

What each provider can report differs (Runware's sync answer has no queue or running phase; fal streams log
lines; Eachlabs reports queued and running states), so the expected kinds are per provider; together they
cover every kind: uploading, submitted, queued, running, log, completed and failed.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Sequence

import helpers_bridge
import pytest
from helpers_bridge import JOB_COUNTER, Client, event_kinds, job_ids, photo_request

from photomaker_bridge import GenerationFailedError, ProgressEvent
from photomaker_bridge.emulators import Emulators, Fault

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode
provider = helpers_bridge.provider
client = helpers_bridge.client

GENERATE_KINDS = {
    "runware": {"uploading", "submitted", "handle", "completed"},
    "fal": {"uploading", "submitted", "handle", "queued", "running", "log", "completed"},
    "eachlabs": {"uploading", "submitted", "handle", "queued", "running", "completed"},
}
"""The kinds ``generate`` reports, per provider, for a job that waits in the queue and then runs."""

RESULT_KINDS = {
    "runware": {"submitted", "running", "completed"},  # submit() uses async delivery, then getResponse polls
    "fal": {"submitted", "queued", "running", "log", "completed"},
    "eachlabs": {"submitted", "queued", "running", "completed"},
}
ALL_KINDS = {"uploading", "submitted", "handle", "queued", "running", "log", "completed", "failed"}


def _slow_jobs(emu: Emulators, provider: str) -> None:
    """Jobs that sit in the queue, then run, long enough for a poll to see each phase."""
    emu[provider].settings.queue_time = 0.2
    emu[provider].settings.run_time = 0.15


def _check_common(events: Sequence[ProgressEvent], provider: str, request_ids: Sequence[str],
                  started: datetime.datetime, ended: datetime.datetime) -> None:
    assert events, "no event was reported"
    assert all(type(event) is ProgressEvent for event in events)
    assert {event.provider for event in events} == {provider}
    times = [event.at for event in events]
    assert all(at.tzinfo is not None and started <= at <= ended for at in times)
    assert times == sorted(times)
    for event in events:
        if event.kind == "uploading":
            assert event.request_id is None and event.message  # nothing submitted yet; says what goes up
        else:
            assert event.request_id in request_ids
        if event.kind == "log":
            assert event.message


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def test_generate_reports_each_phase(client: Client, emu: Emulators, provider: str) -> None:
    _slow_jobs(emu, provider)
    events: list[ProgressEvent] = []

    started = _now()
    result = await client.generate(photo_request(), provider, timeout=20, on_event=events.append)
    ended = _now()

    kinds = event_kinds(events)
    assert set(kinds) == GENERATE_KINDS[provider]
    assert kinds[0] == "uploading" and kinds[-1] == "completed"
    assert kinds.index("submitted") < kinds.index("completed")
    if "queued" in kinds:
        assert kinds.index("submitted") < kinds.index("queued") < kinds.index("running")
    _check_common(events, provider, result.request_ids, started, ended)
    assert [event.request_id for event in events if event.kind == "submitted"] == list(result.request_ids)
    # The handle comes once, before the images: Runware's with the sync POST, before any answer (the bridge chose
    # the taskUUIDs), the others once the provider accepted the job.
    (given,) = [event for event in events if event.kind == "handle"]
    assert given.handle is not None and list(given.handle.request_ids) == list(result.request_ids)
    assert given.accepted is (provider != "runware")
    assert kinds.index("submitted") < kinds.index("handle") < kinds.index("completed")


async def test_submit_and_result_report_their_phases(client: Client, emu: Emulators, provider: str) -> None:
    _slow_jobs(emu, provider)
    submitted: list[ProgressEvent] = []
    collected: list[ProgressEvent] = []

    started = _now()
    handle = await client.submit(photo_request(), provider, timeout=20, on_event=submitted.append)
    result = await client.result(handle, timeout=20, on_event=collected.append)
    ended = _now()

    # fal's submit answers IN_QUEUE with a position (fal.md §1.3): said at once, not at the first status call.
    assert set(event_kinds(submitted)) == {"uploading", "submitted", "handle"} | (
        {"queued"} if provider == "fal" else set())
    (given,) = [event for event in submitted if event.kind == "handle"]
    # submit's handle (before the route adds its trail): the provider accepted the job
    assert given.handle is not None and given.handle.request_ids == handle.request_ids and given.accepted is True
    assert set(event_kinds(collected)) <= RESULT_KINDS[provider] - {"submitted"}
    assert set(event_kinds(collected)) >= RESULT_KINDS[provider] - {"submitted", "queued"}
    assert event_kinds(collected)[-1] == "completed"
    _check_common([*submitted, *collected], provider, result.request_ids, started, ended)


async def test_a_failed_job_reports_failed(client: Client, emu: Emulators, provider: str) -> None:
    emu[provider].settings.faults.append(Fault("fail_job", message="emulated failure"))
    events: list[ProgressEvent] = []

    started = _now()
    with pytest.raises(GenerationFailedError) as caught:
        await client.generate(photo_request(), provider, timeout=20, on_event=events.append)
    ended = _now()

    kinds = event_kinds(events)
    assert kinds[-1] == "failed" and "completed" not in kinds
    failed = events[-1]
    assert failed.request_id == caught.value.request_id == job_ids(emu[provider])[0]
    assert failed.message and "emulated failure" in failed.message
    _check_common(events, provider, [caught.value.request_id], started, ended)
    assert emu[provider].counters[JOB_COUNTER[provider]] == 1


async def test_every_kind_is_reported(client: Client, emu: Emulators) -> None:
    """fal reports every phase of a job, logs included; a failed job adds ``failed``."""
    seen: set[str] = set()
    _slow_jobs(emu, "fal")
    await client.generate(photo_request(), "fal", timeout=20, on_event=lambda event: seen.add(event.kind))
    emu.fal.settings.faults.append(Fault("fail_job"))
    with pytest.raises(GenerationFailedError):
        await client.generate(photo_request(), "fal", timeout=20, on_event=lambda event: seen.add(event.kind))
    assert seen == ALL_KINDS


@pytest.mark.parametrize("mode", ["async"])
async def test_async_bridge_awaits_a_coroutine_handler(client: Client, emu: Emulators, provider: str) -> None:
    """AsyncBridge awaits a coroutine ``on_event`` before going on: its events arrive complete and in order."""
    _slow_jobs(emu, provider)
    events: list[ProgressEvent] = []
    plain: list[ProgressEvent] = []
    handler_running = False

    async def handler(event: ProgressEvent) -> None:
        nonlocal handler_running
        assert not handler_running  # never two at once: each is awaited before the flow goes on
        handler_running = True
        await asyncio.sleep(0.001)
        events.append(event)
        handler_running = False

    result = await client.generate(photo_request(), provider, timeout=20, on_event=handler)
    await client.generate(photo_request(seed=43), provider, timeout=20, on_event=plain.append)

    assert set(event_kinds(events)) == GENERATE_KINDS[provider]
    assert set(event_kinds(plain)) == GENERATE_KINDS[provider] - {"uploading"}  # the faces are cached by now
    assert event_kinds(events)[-1] == "completed"
    assert [event.request_id for event in events if event.kind == "submitted"] == list(result.request_ids)
