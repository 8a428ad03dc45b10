"""Review findings on the fal adapter, each pinned by a test that failed before its fix.

1. a submit in flight when the deadline passes is let finish (``FalSubmit.creates_job``), then cancelled by
   ``generate`` or handed over by ``submit``; one cut short even so is cancelled once fal answers (#1);
2. calls cut short by the deadline, still retrying inside fal_client, no longer starve later calls and
   cancels of the sync performer's threads, nor hold up ``close()`` (#2);
3. (#6, #7: fal_client's process-wide hosts and a second event loop are gone with their causes: each client
   now points only itself at its base_url, and an AsyncBridge keeps to one event loop — tests/clients);
5. a fetch of a completed request's result that keeps failing names that request and does not claim to have
   cancelled it (#12).

Against the fal emulator on loopback through the real fal_client; about 8 s in all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal

import pytest

from photomaker_bridge import (
    CancelOutcome,
    GenerationTimeoutError,
    JobHandle,
    PhotoMakerRequest,
    PhotoMakerResult,
    ProviderUnavailableError,
)
from photomaker_bridge._coordination import Coordinator
from photomaker_bridge._http import Flow, HttpRequest, HttpResponse, arun_flow, run_flow
from photomaker_bridge._retry import RetryPolicy
from photomaker_bridge.emulators import EmulatorHandle, Emulators, Fault, start_emulators
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.providers._fal_async_performer import FalAsyncPerformer
from photomaker_bridge.providers._fal_flow import (
    FalCancel,
    FalFetch,
    FalStatusCheck,
    FalSubmit,
    FalUpload,
)
from photomaker_bridge.providers._fal_parse import FalStatus
from photomaker_bridge.providers._fal_progress import RequestProgress
from photomaker_bridge.providers._fal_result import deadline_message
from photomaker_bridge.providers._fal_sync_performer import FalSyncPerformer
from photomaker_bridge.providers.base import FlowContext
from photomaker_bridge.providers.fal import FalProvider

FACE = render_image(seed=3, style="face", width=64, height=64)
APP = "fal-ai/photomaker"
APP_PATH = "/fal-ai/photomaker"
POLL = 0.02
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05)

Mode = Literal["sync", "async"]
MODES: list[Mode] = ["sync", "async"]


async def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait for something the emulator records (generous: a busy machine may be slow, never wrong)."""
    ends = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < ends, "timed out waiting for the emulator"
        await asyncio.sleep(0.01)


class NoHttp:
    def send(self, request: HttpRequest) -> HttpResponse:
        raise AssertionError(f"the fal flow yielded an HTTP request: {request!r}")


class AsyncNoHttp:
    async def send(self, request: HttpRequest) -> HttpResponse:
        raise AssertionError(f"the fal flow yielded an HTTP request: {request!r}")


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    with start_emulators(seed=23) as running:
        yield running


@pytest.fixture
def fal(emulators: Emulators) -> Iterator[EmulatorHandle]:
    emulators.fal.reset()
    yield emulators.fal
    emulators.fal.reset()  # calls cut short and still retrying meet a healthy emulator


def provider_for(fal: EmulatorHandle) -> FalProvider:
    return FalProvider(key=fal.api_key, base_url=fal.url, poll_interval=POLL)


def photo_request(**fields: Any) -> PhotoMakerRequest:
    return PhotoMakerRequest(**{"prompt": "a photo of a man img", "images": [FACE], **fields})


def cancelled_ids(fal: EmulatorHandle) -> list[str]:
    return [entry.path.split("/")[-2] for entry in fal.log if entry.method == "PUT" and entry.path.endswith("/cancel")]


def submit_count(fal: EmulatorHandle) -> int:
    return sum(1 for entry in fal.log if entry.method == "POST" and entry.path == APP_PATH)


def wait_until(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    ends = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < ends, "timed out waiting"
        time.sleep(0.01)


class Runner:
    """One performer, driving flows sync or async the way Bridge / AsyncBridge do."""

    def __init__(self, mode: Mode, provider: FalProvider) -> None:
        self.mode = mode
        self.provider = provider
        self.sync: FalSyncPerformer | None = provider.sync_performer() if mode == "sync" else None
        self.asynchronous: FalAsyncPerformer | None = provider.async_performer() if mode == "async" else None
        self.context = FlowContext(retry=FAST_RETRY)
        self.coordinator = Coordinator()

    async def run(self, flow: Flow[Any], timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.sync is not None:
            return run_flow(flow, NoHttp(), perform=self.sync.perform, deadline=deadline,
                            coordinator=self.coordinator)
        assert self.asynchronous is not None
        return await arun_flow(flow, AsyncNoHttp(), perform=self.asynchronous.perform, deadline=deadline,
                               coordinator=self.coordinator)

    async def perform(self, operation: Any, remaining: float | None) -> Any:
        if self.sync is not None:
            return self.sync.perform(operation, remaining)
        assert self.asynchronous is not None
        return await self.asynchronous.perform(operation, remaining)

    async def warm_up(self) -> dict[str, Any]:
        """Upload the archive (known to the coordinator, so later flows go straight to the submit) and return
        a submittable payload."""
        plan = self.provider.plan(photo_request())
        [upload] = plan.uploads
        url = await self.perform(FalUpload(upload.data, upload.content_type, upload.file_name), None)
        self.coordinator.uploads[f"fal:{upload.sha256}"] = url
        return {**plan.payloads[0], "image_archive_url": url}

    async def close(self) -> None:
        if self.sync is not None:
            self.sync.close()
        if self.asynchronous is not None:
            await self.asynchronous.aclose()


@pytest.fixture(params=MODES)
async def runner(request: pytest.FixtureRequest, fal: EmulatorHandle) -> AsyncIterator[Runner]:
    made = Runner(request.param, provider_for(fal))
    yield made
    await made.close()


# ------------------------------------------------------------------ 1. a submit is never dropped at the deadline


def test_only_the_submit_creates_a_job() -> None:
    assert FalSubmit(APP, {}).creates_job is True  # read by the drivers (_http._Stepper._limit)
    others = [FalUpload(b"", "application/zip", "a.zip"), FalStatusCheck(APP, "r", False), FalFetch(APP, "r"),
              FalCancel(APP, "r")]
    assert [getattr(operation, "creates_job", False) for operation in others] == [False] * 4


async def test_generate_cancels_a_submit_that_fal_accepts_after_the_deadline(runner: Runner,
                                                                             fal: EmulatorHandle) -> None:
    await runner.warm_up()
    fal.settings.faults.append(Fault("stuck_job"))  # (a job that finished meanwhile would be collected instead)
    fal.settings.latency = 0.3  # the submit is answered after the 0.15 s deadline, well within the grace
    plan = runner.provider.plan(photo_request())
    with pytest.raises(GenerationTimeoutError) as caught:
        await runner.run(runner.provider.generate_flow(plan, runner.context), timeout=0.15)
    error = caught.value
    assert error.handle is not None and error.request_id == error.handle.request_id
    assert submit_count(fal) == 1 and cancelled_ids(fal) == [error.request_id]
    assert f"cancelled: {error.request_id}" in str(error) or "cancel requested" in str(error)


async def test_submit_hands_over_a_submit_that_fal_accepts_after_the_deadline(runner: Runner,
                                                                              fal: EmulatorHandle) -> None:
    await runner.warm_up()
    fal.settings.latency = 0.3
    plan = runner.provider.plan(photo_request())
    context = FlowContext(retry=FAST_RETRY, cancel_on_deadline=False)
    handle: JobHandle = await runner.run(runner.provider.submit_flow(plan, context), timeout=0.15)
    assert len(handle.request_ids) == 1 and submit_count(fal) == 1
    assert cancelled_ids(fal) == []  # the caller has its handle: the job is theirs to collect


async def test_a_submit_cut_short_even_so_is_cancelled_once_fal_answers(runner: Runner,
                                                                        fal: EmulatorHandle) -> None:
    payload = await runner.warm_up()
    fal.settings.latency = 0.3
    with pytest.raises(ProviderUnavailableError, match="FalSubmit"):
        await runner.perform(FalSubmit(APP, payload), 0.05)
    await runner.close()  # waits for the submit (and its cancel) within the clean-up grace
    assert fal.counters["submits"] == 1 and len(cancelled_ids(fal)) == 1


async def test_caller_cancellation_during_the_submit_cancels_the_request(fal: EmulatorHandle) -> None:
    runner = Runner("async", provider_for(fal))
    await runner.warm_up()
    fal.settings.latency = 0.3
    plan = runner.provider.plan(photo_request())
    task = asyncio.create_task(runner.run(runner.provider.generate_flow(plan, runner.context), timeout=None))
    await until(lambda: submit_count(fal) >= 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await runner.close()
    assert fal.counters["submits"] == 1 and len(cancelled_ids(fal)) == 1


async def test_caller_cancellation_with_a_deadline_still_cancels_the_requests(fal: EmulatorHandle) -> None:
    # On Python 3.11 asyncio.wait_for runs the call in a task of its own: the caller's task must be watched.
    fal.settings.queue_time = 5.0
    runner = Runner("async", provider_for(fal))
    plan = runner.provider.plan(photo_request(num_images=5))
    task = asyncio.create_task(runner.run(runner.provider.generate_flow(plan, runner.context), timeout=30))
    await until(lambda: fal.counters["status_polls"] >= 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await runner.close()
    assert fal.counters["submits"] == 2 and len(set(cancelled_ids(fal))) == 2


# ------------------------------------------------------------------------- 2. no starvation in the sync performer


def test_calls_cut_short_do_not_starve_later_calls(fal: EmulatorHandle) -> None:
    performer = provider_for(fal).sync_performer()
    try:
        payload = _warm(performer, fal)
        fal.settings.faults.append(Fault("stuck_job"))  # still running at the end, so that it can be cancelled
        submission = performer.perform(FalSubmit(APP, payload), None)
        fal.settings.latency = 1.0  # ten status calls, each cut short and still waiting for its answer
        for _ in range(10):
            with pytest.raises(ProviderUnavailableError):
                performer.perform(FalStatusCheck(APP, submission.request_id, False), 0.01)
        # A fixed pool of 8 threads would hold the rest back until the first answers, a second from now.
        wait_until(lambda: _status_calls(fal) >= 8)
        fal.settings.latency = 0.0
        started = time.monotonic()
        status = performer.perform(FalStatusCheck(APP, submission.request_id, False), 0.5)
        performer.perform(FalCancel(APP, submission.request_id), 0.5)
        assert status.state in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED") and time.monotonic() - started < 0.5
    finally:
        performer.close()


def _status_calls(fal: EmulatorHandle) -> int:
    return sum(1 for entry in fal.log if entry.method == "GET" and entry.path.endswith("/status"))


def _warm(performer: FalSyncPerformer, fal: EmulatorHandle) -> dict[str, Any]:
    plan = provider_for(fal).plan(photo_request())
    [upload] = plan.uploads
    url = performer.perform(FalUpload(upload.data, upload.content_type, upload.file_name), None)
    return {**plan.payloads[0], "image_archive_url": url}


def test_close_does_not_wait_for_calls_retrying_inside_fal_client(fal: EmulatorHandle) -> None:
    performer = provider_for(fal).sync_performer()
    payload = _warm(performer, fal)
    submission = performer.perform(FalSubmit(APP, payload), None)
    fal.settings.latency = 3.0  # like a call deep in fal_client's retries (~50 s, fal.md §1.9)
    for _ in range(3):
        with pytest.raises(ProviderUnavailableError):
            performer.perform(FalStatusCheck(APP, submission.request_id, False), 0.05)
    started = time.monotonic()
    performer.close()  # a later attempt would fail at once on the closed pool: nothing to wait for
    assert time.monotonic() - started < 1.0


# ------------------------------------------------------------- 5. a deadline during the fetch names the request


async def test_a_fetch_that_keeps_failing_names_the_completed_request(runner: Runner, fal: EmulatorHandle) -> None:
    # Status calls work; every result GET is dropped, and the retries give up.
    fal.settings.faults.append(Fault("drop", route=r"/requests/[^/]+$", method="GET"))
    plan = runner.provider.plan(photo_request())
    with pytest.raises(ProviderUnavailableError) as caught:
        await runner.run(runner.provider.generate_flow(plan, runner.context), timeout=10)
    error = caught.value
    assert error.request_id is not None and f"resume({error.request_id!r})" in str(error)
    assert "completed, but its result could not be fetched" in str(error)
    assert cancelled_ids(fal) == []  # it had completed: nothing to cancel


def test_the_deadline_message_tells_running_from_finished_requests() -> None:
    running, finished = RequestProgress("a", 1), RequestProgress("b", 1, final=FalStatus("COMPLETED"))
    message = deadline_message([running, finished], (), FlowContext(cancel_on_deadline=True))
    assert message.startswith("fal request(s) a did not finish before the deadline (cancelled)")
    assert "b finished, but the deadline passed while fetching the result (not cancelled" in message
    kept = deadline_message([running], (), FlowContext(cancel_on_deadline=False))
    assert "still running" in kept and "resume()" in kept
    told = deadline_message([running], (CancelOutcome("fal", "a", "cancel_requested"),),
                            FlowContext(cancel_on_deadline=True))
    assert "(cancel requested (it was running): a)" in told


async def test_a_job_that_finished_by_the_deadline_is_collected_not_lost(runner: Runner, fal: EmulatorHandle) -> None:
    # The submit is answered after the deadline; the cancel then finds the request completed (billed): its
    # result is fetched within the clean-up grace and returned.
    await runner.warm_up()
    fal.settings.latency = 0.3
    plan = runner.provider.plan(photo_request())
    result: PhotoMakerResult = await runner.run(runner.provider.generate_flow(plan, runner.context), timeout=0.15)
    assert len(result.images) == 1 and len(cancelled_ids(fal)) == 1 and fal.counters["submits"] == 1
