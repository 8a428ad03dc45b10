"""The fal flow, driven sync and async through the real fal_client against the fal emulator (fal.md §2).

Every test runs the adapter's generators with :func:`run_flow` / :func:`arun_flow` and the adapter's own
performers, so fal_client 1.0.3 speaks real HTTP to the emulator on loopback. The flows never yield plain
HTTP requests, so the transport given to the drivers refuses any.

fal_client's own retries are off (``providers/_fal_client``): every failure reaches the flow after one try, and
the client's retry policy decides (here scaled down to the emulator's pace, ``FAST_RETRY``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import fal_client.client as fal_module
import pytest

from photomaker_bridge import (
    AuthenticationError,
    GenerationFailedError,
    GenerationTimeoutError,
    JobHandle,
    PhotoMakerRequest,
    PhotoMakerResult,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from photomaker_bridge._coordination import Coordinator
from photomaker_bridge._http import Event, Flow, HttpRequest, HttpResponse, arun_flow, run_flow
from photomaker_bridge._retry import RetryPolicy
from photomaker_bridge.emulators import EmulatorHandle, Emulators, Fault, start_emulators
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.providers._fal_flow import JobTracker
from photomaker_bridge.providers.base import FlowContext
from photomaker_bridge.providers.fal import FalProvider

FACES = [render_image(seed=seed, style="face", width=64, height=64) for seed in (1, 2)]
APP_PATH = "/fal-ai/photomaker"
POLL = 0.02
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05)


def context(**fields: Any) -> FlowContext:
    """A flow context whose retries wait at the emulator's pace."""
    return FlowContext(retry=FAST_RETRY, **fields)


async def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait for something the emulator records (generous: a busy machine may be slow, never wrong)."""
    ends = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < ends, "timed out waiting for the emulator"
        await asyncio.sleep(0.01)


class NoHttp:
    """The flows speak only through fal_client: a plain HTTP request is a bug."""

    def send(self, request: HttpRequest) -> HttpResponse:
        raise AssertionError(f"the fal flow yielded an HTTP request: {request!r}")


class AsyncNoHttp:
    async def send(self, request: HttpRequest) -> HttpResponse:
        raise AssertionError(f"the fal flow yielded an HTTP request: {request!r}")


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    with start_emulators(seed=11) as running:
        yield running


@pytest.fixture
def fal(emulators: Emulators) -> EmulatorHandle:
    emulators.fal.reset()
    return emulators.fal


class Driver:
    """Runs flows with one performer, sync or async, the way Bridge / AsyncBridge do."""

    def __init__(self, mode: str, provider: FalProvider) -> None:
        self.mode = mode
        self.provider = provider
        self.sync = provider.sync_performer() if mode == "sync" else None
        self.asynchronous = provider.async_performer() if mode == "async" else None
        self.events: list[Event] = []
        self.context = context()
        self.coordinator = Coordinator()

    async def run(self, flow: Flow[Any], *, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.sync is not None:
            return run_flow(flow, NoHttp(), perform=self.sync.perform, deadline=deadline,
                            on_event=self.events.append, coordinator=self.coordinator)
        assert self.asynchronous is not None
        return await arun_flow(flow, AsyncNoHttp(), perform=self.asynchronous.perform, deadline=deadline,
                               on_event=self.events.append, coordinator=self.coordinator)

    async def generate(self, request: PhotoMakerRequest, *, timeout: float | None = 20.0,
                       context: FlowContext | None = None) -> PhotoMakerResult:
        plan = self.provider.plan(request)
        result: PhotoMakerResult = await self.run(self.provider.generate_flow(plan, context or self.context),
                                                  timeout=timeout)
        return result

    async def close(self) -> None:
        if self.sync is not None:
            self.sync.close()
        if self.asynchronous is not None:
            await self.asynchronous.aclose()

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]


def provider_for(fal: EmulatorHandle, **settings: Any) -> FalProvider:
    return FalProvider(key=settings.pop("key", fal.api_key), base_url=fal.url, poll_interval=POLL, **settings)


@pytest.fixture(params=["sync", "async"])
async def driver(request: pytest.FixtureRequest, fal: EmulatorHandle) -> AsyncIterator[Driver]:
    made = Driver(request.param, provider_for(fal))
    yield made
    await made.close()


def photo_request(**fields: Any) -> PhotoMakerRequest:
    values: dict[str, Any] = {"prompt": "a photo of a man img", "images": FACES}
    values.update(fields)
    return PhotoMakerRequest(**values)


def logged(fal: EmulatorHandle, method: str, suffix: str) -> list[Any]:
    return [entry for entry in fal.log if entry.method == method and entry.path.endswith(suffix)]


def submits(fal: EmulatorHandle) -> list[Any]:
    return [entry for entry in fal.log if entry.method == "POST" and entry.path == APP_PATH]


def cancels(fal: EmulatorHandle) -> list[Any]:
    return logged(fal, "PUT", "/cancel")


def polled_ids(fal: EmulatorHandle) -> list[str]:
    """The request ids the emulator was asked the status of, in first-seen order."""
    ids: list[str] = []
    for entry in logged(fal, "GET", "/status"):
        request_id = entry.path.split("/")[-2]
        if request_id not in ids:
            ids.append(request_id)
    return ids


def cancelled_ids(fal: EmulatorHandle) -> list[str]:
    return [entry.path.split("/")[-2] for entry in cancels(fal)]


# ------------------------------------------------------------------------------------------------- success


async def test_generate_uploads_submits_polls_and_collects(driver: Driver, fal: EmulatorHandle) -> None:
    request = photo_request(num_images=3, seed=5, style="cinematic")
    result = await driver.generate(request)
    assert result.provider == "fal" and len(result.images) == 3 and result.requested_images == 3
    assert len({image.url for image in result.images}) == 3
    for image in result.images:
        assert image.url is not None and image.url.startswith(fal.url)
        assert (image.content_type, image.width, image.height, image.seed) == ("image/png", 1024, 1024, 5)
    assert result.images[0].fetch()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.seed == 5 and len(result.request_ids) == 1 and len(result.raw) == 1
    # What went on the wire: the payload of the plan, with the uploaded archive's URL.
    plan = driver.provider.plan(request)
    [submitted] = submits(fal)
    body = submitted.json()
    assert isinstance(body, dict) and body["image_archive_url"].startswith(fal.url)
    assert {**body, "image_archive_url": plan.uploads[0].placeholder} == plan.payloads[0]
    assert submitted.headers["Authorization"] == f"Key {fal.api_key}"
    assert len(logged(fal, "POST", "/files/upload")) == 1
    # Every status call asks for logs; once one says COMPLETED the result is fetched at once, with no second
    # status call (fal_client.result() would make one, fal.md §1.8).
    flags = [entry.query["logs"] for entry in logged(fal, "GET", "/status")]
    assert set(flags) == {"true"}
    statuses = [index for index, entry in enumerate(fal.log) if entry.path.endswith("/status")]
    fetches = [index for index, entry in enumerate(fal.log) if entry.method == "GET"
               and entry.path.endswith(result.request_ids[0])]
    assert len(fetches) == 1 and fetches[0] == statuses[-1] + 1
    # fal_client's hosts (module constants) were never touched: only this client went to the emulator.
    assert fal_module.QUEUE_URL_FORMAT == "https://queue.fal.run/" and fal_module.REST_URL == "https://rest.fal.ai"


async def test_cost_and_timings(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.queue_time = 0.15
    fal.settings.run_time = 0.1
    result = await driver.generate(photo_request())
    assert result.cost is not None and result.cost.source == "estimated" and result.cost.currency == "USD"
    run_seconds = result.timings.run_seconds
    assert run_seconds is not None and run_seconds == pytest.approx(0.1, abs=0.02)
    assert float(result.cost.amount) == pytest.approx(0.001 * run_seconds, abs=1e-6)
    assert result.timings.queue_seconds is not None and 0.1 <= result.timings.queue_seconds < 1.0
    assert result.timings.upload_seconds is not None and result.timings.upload_seconds > 0
    assert result.timings.total_seconds is not None and result.timings.total_seconds >= 0.25


async def test_progress_events(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.queue_time = 0.1
    fal.settings.run_time = 0.2
    result = await driver.generate(photo_request())
    kinds = driver.kinds()
    assert kinds[:3] == ["uploading", "submitted", "queued"] and kinds[-1] == "completed"
    assert "running" in kinds
    request_id = result.request_ids[0]
    # Said on the submit's answer (IN_QUEUE, fal.md §1.3), not at a status call: the first one is due later.
    # fal_client's submit hands over the request id only, so this event carries no position.
    queued = next(event for event in driver.events if event.kind == "queued")
    assert queued.request_id == request_id and kinds.index("queued") == kinds.index("submitted") + 1
    logs = [event.message for event in driver.events if event.kind == "log"]
    # The emulator answers the whole log at every poll; each line is reported once.
    assert len(logs) == len(set(logs)) and "Downloading image archive" in logs
    assert any(message and message.startswith("Generated 1 image(s)") for message in logs)
    assert all(event.provider == "fal" for event in driver.events)


async def test_more_than_four_images_are_submitted_back_to_back(driver: Driver, fal: EmulatorHandle) -> None:
    result = await driver.generate(photo_request(num_images=6, seed=100))
    bodies = [entry.json() for entry in submits(fal)]
    assert [(body["num_images"], body["seed"]) for body in bodies] == [(4, 100), (2, 104)]
    assert len(result.images) == 6 and len(set(result.request_ids)) == 2
    assert len({image.url for image in result.images}) == 6
    assert [image.seed for image in result.images] == [100] * 4 + [104] * 2
    assert len(logged(fal, "POST", "/files/upload")) == 1  # one archive for both submissions
    # Both were submitted before the first status call.
    first_status = next(index for index, entry in enumerate(fal.log) if entry.path.endswith("/status"))
    assert [index for index, entry in enumerate(fal.log) if entry in submits(fal)] < [first_status] * 2


async def test_partial_result_is_returned_with_a_warning(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.faults.append(Fault("partial", images=1))
    result = await driver.generate(photo_request(num_images=3))
    assert len(result.images) == 1
    [warning] = [warning for warning in result.warnings if warning.field == "num_images"]
    assert (warning.asked, warning.sent, warning.provider) == (3, 1, "fal")
    assert "1 of 3" in warning.reason


async def test_one_failed_submission_of_several_keeps_the_others(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.faults.append(Fault("fail_job", nth=2))
    result = await driver.generate(photo_request(num_images=6))
    assert len(result.images) == 4 and len(result.request_ids) == 2
    [warning] = [warning for warning in result.warnings if warning.field == "num_images"]
    assert warning.sent == 4 and result.request_ids[1] in warning.reason and "failed" in warning.reason
    assert "failed" in driver.kinds()


async def test_upload_is_cached_per_content(driver: Driver, fal: EmulatorHandle) -> None:
    await driver.generate(photo_request())
    assert len(logged(fal, "POST", "/files/upload")) == 1
    plan = driver.provider.plan(photo_request())
    assert set(driver.coordinator.uploads) == {"fal:" + plan.uploads[0].sha256}
    second = await driver.generate(photo_request(prompt="a photo of a man img at night", num_images=2))
    assert len(second.images) == 2
    assert len(logged(fal, "POST", "/files/upload")) == 1  # the second run uploaded nothing
    assert "uploading" not in driver.kinds()[driver.kinds().index("completed"):]
    first_archive, second_archive = (entry.json()["image_archive_url"] for entry in submits(fal))
    assert first_archive == second_archive
    await driver.generate(photo_request(images=FACES[:1]))  # other faces: another upload
    assert len(logged(fal, "POST", "/files/upload")) == 2


async def test_submit_then_result(driver: Driver, fal: EmulatorHandle) -> None:
    flow_context = context(cancel_on_deadline=False)
    plan = driver.provider.plan(photo_request(num_images=5))
    handle: JobHandle = await driver.run(driver.provider.submit_flow(plan, flow_context))
    assert handle.provider == "fal" and len(handle.request_ids) == 2
    assert list(handle.images_per_request) == [4, 1] and handle.requested_images == 5
    assert [entry.path for entry in fal.log if entry.path.endswith("/status")] == []
    stored = JobHandle.from_dict(handle.to_dict())  # e.g. kept in a database meanwhile
    result: PhotoMakerResult = await driver.run(driver.provider.result_flow(stored, flow_context))
    assert len(result.images) == 5 and list(result.request_ids) == list(handle.request_ids)


async def test_resume_after_a_client_side_timeout(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.queue_time = 0.8
    flow_context = context(cancel_on_deadline=False)
    plan = driver.provider.plan(photo_request())
    handle: JobHandle = await driver.run(driver.provider.submit_flow(plan, flow_context))
    with pytest.raises(GenerationTimeoutError) as caught:
        await driver.run(driver.provider.result_flow(handle, flow_context), timeout=0.2)
    error = caught.value
    assert error.handle == handle and error.request_id == handle.request_id and error.provider == "fal"
    assert "resume" in str(error)
    assert cancels(fal) == []  # result() keeps the job for a later try
    resumed: PhotoMakerResult = await driver.run(
        driver.provider.result_flow(driver.provider.handle_for(handle.request_id), flow_context), timeout=10)
    assert len(resumed.images) == 1 and resumed.request_ids == (handle.request_id,)
    assert resumed.timings.queue_seconds is None  # the submit time of a bare id is unknown


# -------------------------------------------------------------------------------------------- deadlines


async def test_generate_cancels_on_deadline(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.faults.append(Fault("stuck_job"))
    started = time.monotonic()
    with pytest.raises(GenerationTimeoutError) as caught:
        await driver.generate(photo_request(), timeout=0.4)
    assert time.monotonic() - started < 2.0
    error = caught.value
    assert error.handle is not None and error.request_id == error.handle.request_id
    assert cancelled_ids(fal) == [error.request_id] == polled_ids(fal)
    assert f"cancel requested (it was running): {error.request_id}" in str(error)  # what fal was told


async def test_deadline_during_upload_raises_without_handle(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.latency = 0.6  # every answer is slower than the whole deadline
    started = time.monotonic()
    with pytest.raises(GenerationTimeoutError) as caught:
        await driver.generate(photo_request(), timeout=0.2)
    assert time.monotonic() - started < 0.5  # fal_client's call did not carry us past the deadline
    assert caught.value.handle is None
    fal.settings.latency = 0.0


async def test_a_status_call_that_keeps_failing_ends_the_call_and_cancels_the_job(driver: Driver,
                                                                                  fal: EmulatorHandle) -> None:
    fal.settings.faults.append(Fault("stuck_job"))
    fal.settings.faults.append(Fault("drop", route="/status$"))
    with pytest.raises(ProviderUnavailableError) as caught:
        await driver.generate(photo_request(), timeout=20)
    assert caught.value.code == "connection_error" and caught.value.request_id == polled_ids(fal)[0]
    assert len(logged(fal, "GET", "/status")) == FAST_RETRY.attempts  # tried again, then given up
    assert cancelled_ids(fal) == polled_ids(fal)  # generate() leaves nothing running
    assert "cancel requested" in str(caught.value)


async def test_a_job_that_finished_while_its_status_calls_failed_is_still_delivered(
        driver: Driver, fal: EmulatorHandle) -> None:
    # Every status call fails; the cancel that follows finds the request completed (billed): its result is
    # fetched after all instead of being lost behind the error.
    fal.settings.run_time = 0.0
    fal.settings.faults.append(Fault("drop", route="/status$"))
    result = await driver.generate(photo_request())
    assert len(result.images) == 1 and len(cancels(fal)) == 1


async def test_no_retry_is_started_that_the_deadline_would_cut(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.faults.append(Fault("stuck_job"))
    fal.settings.faults.append(Fault("status", status=503, retry_after=3, route="/status$"))
    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError) as caught:
        await driver.generate(photo_request(), timeout=1.0)
    assert time.monotonic() - started < 1.0  # the 3 s Retry-After would pass the deadline: not waited for
    assert caught.value.status == 503 and len(cancels(fal)) == 1  # the cleanup still reached fal


async def test_caller_cancellation_still_cancels_the_request(fal: EmulatorHandle) -> None:
    fal.settings.queue_time = 5.0
    provider = provider_for(fal)
    performer = provider.async_performer()
    plan = provider.plan(photo_request(num_images=5))
    task = asyncio.create_task(arun_flow(provider.generate_flow(plan, context()), AsyncNoHttp(),
                                         perform=performer.perform))
    try:
        await until(lambda: fal.counters["status_polls"] >= 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await performer.aclose()
    assert fal.counters["submits"] == 2
    assert len(polled_ids(fal)) == 2
    assert sorted(cancelled_ids(fal)) == sorted(polled_ids(fal))


# ----------------------------------------------------------------------------------------------- faults


async def test_wrong_key(fal: EmulatorHandle, driver: Driver) -> None:
    wrong = Driver(driver.mode, provider_for(fal, key="not-the-key"))
    try:
        with pytest.raises(AuthenticationError) as caught:
            await wrong.generate(photo_request())
    finally:
        await wrong.close()
    error = caught.value
    assert (error.provider, error.status, error.raw) == ("fal", 401, {"detail": "Unauthorized"})
    assert "FAL_KEY" in str(error)


async def test_401_on_submit(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.faults.append(Fault("status", status=401, route=f"^{APP_PATH}$"))
    with pytest.raises(AuthenticationError) as caught:
        await driver.generate(photo_request())
    assert caught.value.status == 401 and caught.value.raw == {"detail": "Unauthorized"}


async def test_a_submit_refused_for_good_is_rate_limited(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.faults.append(Fault("status", status=429, retry_after=0.05, route=f"^{APP_PATH}$"))
    with pytest.raises(RateLimitedError) as caught:
        await driver.generate(photo_request())
    error = caught.value
    assert (error.status, error.retry_after, error.retryable, error.provider) == (429, 0.05, True, "fal")
    assert isinstance(error.raw, dict) and "Too many requests" in error.raw["detail"]
    assert len(submits(fal)) == FAST_RETRY.attempts and fal.counters["submits"] == 0  # a refusal: sent again


async def test_a_single_429_on_submit_is_sent_again(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.faults.append(Fault("status", status=429, retry_after=0, route=f"^{APP_PATH}$", times=1))
    result = await driver.generate(photo_request())
    assert len(result.images) == 1
    assert len(submits(fal)) == 2 and len(result.request_ids) == 1 and fal.counters["submits"] == 1
    assert driver.kinds().count("retrying") == 1  # by the bridge, visibly, not inside fal_client


async def test_5xx_on_a_status_call(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.faults.append(Fault("stuck_job"))  # still running when the reads give up: cancelled
    fal.settings.faults.append(Fault("status", status=503, route="/status$"))
    with pytest.raises(ProviderUnavailableError) as caught:
        await driver.generate(photo_request())
    error = caught.value
    assert (error.status, error.code, error.retryable) == (503, "runner_scheduling_failure", True)
    # The job's id (not the fault answer's own x-fal-request-id); generate() cancels the orphaned job.
    assert [error.request_id] == polled_ids(fal) == cancelled_ids(fal)
    assert isinstance(error.raw, dict) and error.raw["error_type"] == "runner_scheduling_failure"
    assert len(logged(fal, "GET", "/status")) == FAST_RETRY.attempts


async def test_one_5xx_on_a_status_call_does_not_cancel_a_healthy_job(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.faults.append(Fault("status", status=500, route="/status$", times=1))
    result = await driver.generate(photo_request())
    assert len(result.images) == 1 and cancels(fal) == []


@pytest.mark.parametrize("fault", [Fault("status", status=500, route=f"^{APP_PATH}$"),
                                   Fault("drop", route=f"^{APP_PATH}$"),
                                   Fault("malformed", route=f"^{APP_PATH}$")], ids=["500", "drop", "malformed"])
async def test_a_submit_without_a_readable_answer_is_never_sent_twice(driver: Driver, fal: EmulatorHandle,
                                                                      fault: Fault) -> None:
    fal.settings.faults.append(fault)
    with pytest.raises(ProviderUnavailableError) as caught:
        await driver.generate(photo_request())
    error = caught.value
    assert len(submits(fal)) == 1  # fal may have taken it: a second submit could pay twice
    assert "fal may have accepted a request" in error.message and error.provider == "fal"
    if fault.kind == "status":
        assert (error.status, error.code) == (500, "internal_error")
        assert error.request_id is not None  # from the answer's x-fal-request-id
    elif fault.kind == "drop":
        assert error.status is None and error.retryable


async def test_a_single_dropped_connection_is_absorbed(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.faults.append(Fault("drop", route="/status$", times=1))
    assert len((await driver.generate(photo_request())).images) == 1


async def test_malformed_json(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.faults.append(Fault("stuck_job"))  # still running when the reads give up: cancelled
    fal.settings.faults.append(Fault("malformed", route="/status$"))
    with pytest.raises(ProviderUnavailableError) as caught:
        await driver.generate(photo_request())
    error = caught.value
    assert isinstance(error.raw, str) and error.raw.startswith('{"data"')
    assert [error.request_id] == polled_ids(fal) and "cannot read" in error.message


async def test_failed_job(driver: Driver, fal: EmulatorHandle) -> None:
    fal.settings.faults.append(Fault("fail_job", message="CUDA out of memory"))
    with pytest.raises(GenerationFailedError) as caught:
        await driver.generate(photo_request())
    error = caught.value
    assert (error.code, error.message, error.retryable) == ("runner_server_error", "CUDA out of memory", True)
    assert [error.request_id] == polled_ids(fal) and error.status is None
    assert isinstance(error.raw, dict) and error.raw["error_type"] == "runner_server_error"
    assert driver.kinds()[-1] == "failed"


async def test_rejected_input(driver: Driver, fal: EmulatorHandle) -> None:
    # provider_options go in verbatim, so fal (the emulator) is the one to refuse them.
    with pytest.raises(ProviderRejectedError) as caught:
        await driver.generate(photo_request(provider_options={"fal": {"num_images": 7}}))
    error = caught.value
    assert error.status == 422 and error.request_id is not None
    assert [entry["loc"] for entry in error.errors] == [["body", "num_images"]]
    assert "num_images" in error.message and error.raw == {"detail": error.errors}


# --------------------------------------------------------------------------------------------- lifecycle


async def test_clients_for_the_emulator_and_for_fal_itself_can_be_open_together(fal: EmulatorHandle) -> None:
    # Each client points only itself at its base_url: one for fal itself (never used here: no network) opens
    # beside one for the emulator, and the emulator's keeps working.
    for mode in ("sync", "async"):
        emulated = Driver(mode, provider_for(fal))
        real = Driver(mode, FalProvider(key="id:secret"))
        try:
            assert len((await emulated.generate(photo_request())).images) == 1
        finally:
            await emulated.close()
            await real.close()
    assert fal_module.QUEUE_URL_FORMAT == "https://queue.fal.run/"


def test_job_tracker_cancels_outstanding_requests_once() -> None:
    sent: list[Sequence[tuple[str, str]]] = []
    closed: list[bool] = []
    jobs = JobTracker(hook=sent.append, on_close=lambda: closed.append(True))
    jobs.add("fal-ai/photomaker", "a")
    jobs.add("fal-ai/photomaker", "b")
    jobs.finish("a")
    jobs.abandon()
    jobs.abandon()
    assert sent == [[("fal-ai/photomaker", "b")]] and closed == [True]


def test_job_tracker_closed_flow_abandons_nothing() -> None:
    sent: list[Sequence[tuple[str, str]]] = []
    jobs = JobTracker(hook=sent.append)
    jobs.add("fal-ai/photomaker", "a")
    jobs.close()
    jobs.abandon()
    assert sent == []


def test_performers_refuse_foreign_operations(fal: EmulatorHandle) -> None:
    performer = provider_for(fal).sync_performer()
    try:
        with pytest.raises(TypeError):
            performer.perform(object(), None)
    finally:
        performer.close()
