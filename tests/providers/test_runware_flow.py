"""Runware flows against the Runware emulator over real loopback HTTP, driven sync and async.

Every test runs twice: ``run_flow`` over :class:`RequestsTransport` and ``arun_flow`` over
:class:`AiohttpTransport`. The emulator's request log shows what went on the wire.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from PIL import Image

from photomaker_bridge._coordination import Coordinator
from photomaker_bridge._http import Event, Flow, arun_flow, run_flow
from photomaker_bridge._retry import RetryPolicy
from photomaker_bridge._transports import AiohttpTransport, RequestsTransport
from photomaker_bridge.emulators import Emulators, EmulatorSettings, Fault, start_emulators
from photomaker_bridge.errors import (
    AuthenticationError,
    GenerationFailedError,
    GenerationTimeoutError,
    InsufficientCreditsError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from photomaker_bridge.jobs import JobHandle
from photomaker_bridge.providers.base import FlowContext
from photomaker_bridge.providers.runware import RunwareProvider, generate_many_flow
from photomaker_bridge.request import PhotoMakerRequest
from photomaker_bridge.result import PhotoMakerResult


def _png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), color).save(buffer, "PNG")
    return buffer.getvalue()


FACE = _png((200, 120, 90))
OTHER_FACE = _png((90, 120, 200))


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    with start_emulators(runware=EmulatorSettings(run_time=0.03), seed=11) as running:
        yield running


@pytest.fixture
def emulator(emulators: Emulators) -> Any:
    emulators.runware.reset()
    return emulators.runware


@pytest.fixture(params=["imageInference", "photoMaker"])
def provider(emulator: Any, request: pytest.FixtureRequest) -> RunwareProvider:
    """The adapter in each task shape: imageInference with photoMaker settings (the default) and the standalone
    photoMaker task."""
    return RunwareProvider(api_key=emulator.api_key, base_url=emulator.rest_url, poll_interval=0.02,
                           max_poll_interval=0.05, task_shape=request.param)


Drive = Callable[..., Any]


FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05)


def _context(**fields: Any) -> FlowContext:
    """A flow context whose retries wait at the emulator's pace."""
    return FlowContext(retry=FAST_RETRY, **fields)


@pytest.fixture
def coordinator() -> Coordinator:
    """What one client's calls share (uploads, limits): one per test, like one client."""
    return Coordinator()


@pytest.fixture(params=["sync", "async"])
def drive(request: pytest.FixtureRequest, coordinator: Coordinator) -> Drive:
    """Run a flow to its end with the sync or the async driver; ``timeout`` sets the deadline from now."""

    def sync(flow: Flow[Any], *, timeout: float | None = None, events: list[Event] | None = None) -> Any:
        transport = RequestsTransport()
        try:
            return run_flow(flow, transport, deadline=None if timeout is None else time.monotonic() + timeout,
                            on_event=None if events is None else events.append, coordinator=coordinator)
        finally:
            transport.close()

    def asynchronous(flow: Flow[Any], *, timeout: float | None = None, events: list[Event] | None = None) -> Any:
        async def main() -> Any:
            transport = AiohttpTransport()
            try:
                return await arun_flow(flow, transport,
                                       deadline=None if timeout is None else time.monotonic() + timeout,
                                       on_event=None if events is None else events.append, coordinator=coordinator)
            finally:
                await transport.aclose()

        return asyncio.run(main())

    return sync if request.param == "sync" else asynchronous


def _tasks_sent(emulator: Any) -> list[list[dict[str, Any]]]:
    return [entry.json() for entry in emulator.log if entry.method == "POST" and entry.path == "/v1"]


def _task_types(emulator: Any) -> list[list[str]]:
    return [[task["taskType"] for task in tasks] for tasks in _tasks_sent(emulator)]


def _images(task: dict[str, Any]) -> list[str]:
    """A task's reference images, wherever its shape keeps them (inputImages, or photoMaker.images)."""
    images: list[str] = task["inputImages"] if "inputImages" in task else task["photoMaker"]["images"]
    return images


def _request(**fields: Any) -> PhotoMakerRequest:
    values: dict[str, Any] = {"prompt": "a photo of a woman img at the beach", "images": [FACE]}
    values.update(fields)
    return PhotoMakerRequest(**values)


def _inline(provider: RunwareProvider) -> RunwareProvider:
    import attrs

    return attrs.evolve(provider, image_transport="inline")


# --- generate -------------------------------------------------------------------------------------------------

def test_generate_multi_image(drive: Drive, provider: RunwareProvider, emulator: Any,
                              coordinator: Coordinator) -> None:
    plan = provider.plan(_request(images=[FACE, OTHER_FACE, FACE], num_images=3, seed=7, output_format="png",
                                  width=512, height=768))
    events: list[Event] = []
    context = _context()
    result: PhotoMakerResult = drive(provider.generate_flow(plan, context), events=events)

    assert result.provider == "runware"
    assert [image.seed for image in result.images] == [7, 8, 9]
    assert result.seed == 7
    assert result.request_ids == (plan.payloads[0][0]["taskUUID"],)
    assert result.requested_images == 3
    assert result.cost is not None and result.cost.amount == Decimal("0.0039")
    assert result.timings.total_seconds is not None and result.timings.upload_seconds is not None
    assert result.timings.upload_seconds <= result.timings.total_seconds
    assert len(result.raw) == 1 and len(result.raw[0]["data"]) == 3
    assert len({image.provider_image_id for image in result.images}) == 3
    for image in result.images:
        assert (image.content_type, image.width, image.height) == ("image/png", 512, 768)
        assert image.url is not None
    fetched = requests.get(result.images[0].url or "", timeout=5)
    assert Image.open(io.BytesIO(fetched.content)).size == (512, 768)
    assert [event.kind for event in events] == ["uploading", "uploading", "submitted", "handle", "completed"]

    (upload, generate) = _tasks_sent(emulator)
    assert [task["taskType"] for task in upload] == ["imageUpload", "imageUpload"]  # one per distinct face
    (task,) = generate
    assert set(_images(task)) == set(coordinator.uploads.values())  # the imageUUIDs Runware returned
    assert _images(task)[0] == _images(task)[2] != _images(task)[1]
    for entry in (entry for entry in emulator.log if entry.method == "POST"):
        assert entry.headers["Authorization"] == f"Bearer {emulator.api_key}"
        assert entry.headers["Content-Type"] == "application/json"


def test_more_than_20_images_go_as_several_tasks_in_one_request(drive: Drive, provider: RunwareProvider,
                                                                emulator: Any) -> None:
    plan = provider.plan(_request(num_images=23, seed=100))
    result: PhotoMakerResult = drive(provider.generate_flow(plan, _context()))

    assert len(result.images) == 23
    assert sorted(image.seed or 0 for image in result.images) == list(range(100, 123))
    assert len(result.request_ids) == 2
    assert result.cost is not None and result.cost.amount == Decimal("0.0299")
    assert _task_types(emulator) == [["imageUpload"], [provider.task_shape] * 2]


def test_uploads_are_cached_per_client(drive: Drive, provider: RunwareProvider, emulator: Any,
                                      coordinator: Coordinator) -> None:
    context = _context()
    drive(provider.generate_flow(provider.plan(_request()), context))
    second: PhotoMakerResult = drive(provider.generate_flow(provider.plan(_request(images=[FACE, FACE])), context))

    assert _task_types(emulator) == [["imageUpload"], [provider.task_shape], [provider.task_shape]]
    assert second.timings.upload_seconds is None  # nothing was uploaded the second time
    first_images = _images(_tasks_sent(emulator)[1][0])
    assert _images(_tasks_sent(emulator)[2][0]) == first_images * 2
    assert list(coordinator.uploads.values()) == first_images


def test_inline_images_need_no_upload(drive: Drive, provider: RunwareProvider, emulator: Any) -> None:
    inline = _inline(provider)
    result: PhotoMakerResult = drive(inline.generate_flow(inline.plan(_request()), _context()))
    assert len(result.images) == 1
    assert _task_types(emulator) == [[provider.task_shape]]
    assert _images(_tasks_sent(emulator)[0][0])[0].startswith("data:image/png;base64,")


def test_partial_job_returns_what_arrived_with_a_warning(drive: Drive, provider: RunwareProvider,
                                                         emulator: Any) -> None:
    emulator.settings.faults.append(Fault("partial", images=1))
    inline = _inline(provider)
    result: PhotoMakerResult = drive(inline.generate_flow(inline.plan(_request(num_images=3)), _context()))
    assert len(result.images) == 1
    (warning,) = [warning for warning in result.warnings if warning.field == "num_images"]
    assert (warning.field, warning.asked, warning.sent) == ("num_images", 3, 1)


def test_partial_success_across_tasks_keeps_the_images(drive: Drive, provider: RunwareProvider,
                                                       emulator: Any) -> None:
    emulator.settings.faults.append(Fault("fail_job", nth=2, message="second task died"))
    inline = _inline(provider)
    plan = inline.plan(_request(num_images=25))
    result: PhotoMakerResult = drive(inline.generate_flow(plan, _context()))

    assert len(result.images) == 20
    (warning,) = [warning for warning in result.warnings if warning.field == "num_images"]
    assert plan.payloads[0][1]["taskUUID"] in warning.reason and "second task died" in warning.reason
    assert result.cost is not None and result.cost.amount == Decimal("0.0260")


def test_generate_many_sends_one_array_and_matches_by_task(drive: Drive, provider: RunwareProvider,
                                                           emulator: Any) -> None:
    good = provider.plan(_request(num_images=2, seed=1))
    other = provider.plan(_request(images=[OTHER_FACE], seed=50))
    refused = provider.plan(_request(provider_options={"runware": {"steps": 1000}}))  # past Runware's 100
    outcomes: list[PhotoMakerResult | ProviderError] = drive(
        generate_many_flow(provider, [good, other, refused], _context()))

    first, second, third = outcomes
    assert isinstance(first, PhotoMakerResult) and [image.seed for image in first.images] == [1, 2]
    assert isinstance(second, PhotoMakerResult) and [image.seed for image in second.images] == [50]
    assert first.request_ids == (good.payloads[0][0]["taskUUID"],)
    assert isinstance(third, ProviderRejectedError)
    assert (third.code, third.request_id) == ("invalidSteps", refused.payloads[0][0]["taskUUID"])
    assert _task_types(emulator) == [["imageUpload", "imageUpload"], [provider.task_shape] * 3]


def test_generate_many_whole_request_failure_is_every_entry(drive: Drive, provider: RunwareProvider,
                                                            emulator: Any) -> None:
    emulator.settings.faults.append(Fault("status", status=401))
    plans = [provider.plan(_request()), provider.plan(_request(images=[OTHER_FACE]))]
    outcomes = drive(generate_many_flow(provider, plans, _context()))
    assert [type(outcome) for outcome in outcomes] == [AuthenticationError, AuthenticationError]


# --- faults ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fault", "error_class", "status", "code"), [
    (Fault("status", status=401), AuthenticationError, 401, "invalidApiKey"),
    (Fault("status", status=402), InsufficientCreditsError, 402, "insufficientCredits"),
    (Fault("status", status=429, retry_after=2), RateLimitedError, 429, "rateLimitExceeded"),
    (Fault("status", status=500), ProviderUnavailableError, 500, "internalServerError"),
    (Fault("status", status=503), ProviderUnavailableError, 503, "serviceUnavailable"),
    (Fault("malformed"), ProviderUnavailableError, 200, "invalid_response"),
    (Fault("drop"), ProviderUnavailableError, None, "connection_error"),
    (Fault("fail_job", message="the GPU caught fire"), GenerationFailedError, 500, "inferenceError"),
])
def test_faults_surface_as_typed_errors(drive: Drive, provider: RunwareProvider, emulator: Any, fault: Fault,
                                        error_class: type[ProviderError], status: int | None,
                                        code: str) -> None:
    emulator.settings.faults.append(fault)
    inline = _inline(provider)
    plan = inline.plan(_request())
    events: list[Event] = []
    with pytest.raises(ProviderError) as caught:
        drive(inline.generate_flow(plan, _context()), events=events)
    error = caught.value

    assert type(error) is error_class
    assert (error.provider, error.status, error.code) == ("runware", status, code)
    assert error.request_id == plan.payloads[0][0]["taskUUID"]
    if fault.kind != "drop":
        assert error.raw is not None
    if fault.kind == "status" and fault.retry_after:
        assert isinstance(error, RateLimitedError) and error.retry_after == 2.0
    if fault.kind == "fail_job":
        assert "the GPU caught fire" in error.message and error.raw["errors"][0]["code"] == "inferenceError"
    kinds = [event.kind for event in events]
    assert kinds[:2] == ["submitted", "handle"] and kinds[-1] == "failed" and set(kinds[2:-1]) <= {"retrying"}
    # A refusal (429, 503) is sent again, up to the policy's 4 tries. A lost answer (500, drop, unreadable) is
    # first looked up with getResponse, which fails here too (the fault hits every POST): the task is never
    # sent a second time. An answer that settles it (401, 402, a failed job) ends the call at once.
    sends = 4 if status in (429, 503) else 1
    shape = [provider.task_shape]
    assert [types for types in _task_types(emulator) if types == shape] == [shape] * sends
    assert emulator.counters["jobs_created"] == (1 if fault.kind == "fail_job" else 0)
    for text in (str(error), repr(error), json.dumps(error.raw, default=str), *(str(e.message) for e in events)):
        assert emulator.api_key not in text


def test_wrong_key_is_an_authentication_error(drive: Drive, provider: RunwareProvider, emulator: Any) -> None:
    import attrs

    wrong = attrs.evolve(_inline(provider), api_key="not-the-key")
    with pytest.raises(AuthenticationError) as caught:
        drive(wrong.generate_flow(wrong.plan(_request()), _context()))
    assert (caught.value.status, caught.value.code) == (401, "invalidApiKey")
    assert "not-the-key" not in str(caught.value) and "not-the-key" not in repr(caught.value)


def test_upload_failure_surfaces_before_anything_is_generated(drive: Drive, provider: RunwareProvider,
                                                              emulator: Any) -> None:
    emulator.settings.faults.append(Fault("status", status=503, body='"imageUpload"'))
    with pytest.raises(ProviderUnavailableError) as caught:
        drive(provider.generate_flow(provider.plan(_request()), _context()))
    assert caught.value.status == 503
    assert _task_types(emulator) == [["imageUpload"]] * FAST_RETRY.attempts  # tried again, then given up


def test_one_failed_upload_is_tried_again(drive: Drive, provider: RunwareProvider, emulator: Any) -> None:
    emulator.settings.faults.append(Fault("status", status=503, nth=1))
    result: PhotoMakerResult = drive(provider.generate_flow(provider.plan(_request()), _context()))
    assert len(result.images) == 1
    assert _task_types(emulator) == [["imageUpload"], ["imageUpload"], [provider.task_shape]]


def test_stuck_sync_job_times_out_with_a_handle_that_resumes(drive: Drive, provider: RunwareProvider,
                                                             emulator: Any) -> None:
    emulator.settings.faults.append(Fault("stuck_job"))
    inline = _inline(provider)
    plan = inline.plan(_request())
    started = time.monotonic()
    with pytest.raises(GenerationTimeoutError) as caught:
        drive(inline.generate_flow(plan, _context()), timeout=0.4)
    assert time.monotonic() - started < 3
    handle = caught.value.handle
    assert isinstance(handle, JobHandle)
    assert handle.request_ids == (plan.payloads[0][0]["taskUUID"],)
    assert caught.value.request_id == handle.request_id and caught.value.provider == "runware"
    # Still stuck: collecting it again times out again, with the same handle.
    with pytest.raises(GenerationTimeoutError) as again:
        drive(inline.result_flow(handle, _context()), timeout=0.2)
    assert again.value.handle == handle


def test_sync_task_cut_by_the_deadline_is_collected_later(drive: Drive, provider: RunwareProvider,
                                                          emulator: Any) -> None:
    # Sync tasks keep running after the client gives up (§4.1); the timeout's handle polls getResponse for them.
    emulator.settings.queue_time = 0.4
    inline = _inline(provider)
    plan = inline.plan(_request(num_images=2, seed=9))
    with pytest.raises(GenerationTimeoutError) as caught:
        drive(inline.generate_flow(plan, _context()), timeout=0.15)
    handle = caught.value.handle
    assert handle is not None and handle.details["delivery"] == "sync"
    result: PhotoMakerResult = drive(inline.result_flow(handle, _context()), timeout=5)
    assert [image.seed for image in result.images] == [9, 10]
    assert _task_types(emulator)[0] == [provider.task_shape] and _task_types(emulator)[-1] == ["getResponse"]


def test_async_delivery_asked_through_provider_options_is_polled(drive: Drive, provider: RunwareProvider,
                                                                 emulator: Any) -> None:
    inline = _inline(provider)
    plan = inline.plan(_request(num_images=2, provider_options={"runware": {"deliveryMethod": "async"}}))
    result: PhotoMakerResult = drive(inline.generate_flow(plan, _context()))
    assert len(result.images) == 2
    assert _tasks_sent(emulator)[0][0]["deliveryMethod"] == "async"
    assert {types[0] for types in _task_types(emulator)[1:]} == {"getResponse"}


# --- submit / result ------------------------------------------------------------------------------------------

def test_submit_then_result(drive: Drive, provider: RunwareProvider, emulator: Any) -> None:
    plan = provider.plan(_request(num_images=22, seed=3))
    context = _context()
    handle: JobHandle = drive(provider.submit_flow(plan, context))

    assert handle.provider == "runware"
    assert handle.request_ids == tuple(task["taskUUID"] for task in plan.payloads[0])
    assert (handle.requested_images, handle.images_per_request) == (22, (20, 2))
    stored = JobHandle.from_dict(json.loads(json.dumps(handle.to_dict())))
    result: PhotoMakerResult = drive(provider.result_flow(stored, context))

    assert sorted(image.seed or 0 for image in result.images) == list(range(3, 25))
    assert result.request_ids == handle.request_ids
    assert result.cost is not None and result.cost.amount == Decimal("0.0286")
    sent = _tasks_sent(emulator)
    assert [task["deliveryMethod"] for task in sent[1]] == ["async", "async"]
    assert all(task["taskType"] == "getResponse" for tasks in sent[2:] for task in tasks)


def test_resume_by_task_uuid_after_a_client_side_timeout(drive: Drive, provider: RunwareProvider,
                                                         emulator: Any) -> None:
    emulator.settings.queue_time = 0.5
    plan = provider.plan(_request(num_images=2))
    handle: JobHandle = drive(provider.submit_flow(plan, _context()))
    with pytest.raises(GenerationTimeoutError) as caught:
        drive(provider.result_flow(handle, _context()), timeout=0.1)
    assert caught.value.handle == handle

    resumed = provider.handle_for(caught.value.handle.request_id)
    result: PhotoMakerResult = drive(provider.result_flow(resumed, _context()), timeout=5)
    assert len(result.images) == 2 and result.request_ids == handle.request_ids


def test_polling_rides_out_a_transient_failure(drive: Drive, provider: RunwareProvider, emulator: Any) -> None:
    inline = _inline(provider)
    handle: JobHandle = drive(inline.submit_flow(inline.plan(_request()), _context()))
    emulator.settings.faults.append(Fault("status", status=503, nth=1))
    emulator.settings.faults.append(Fault("drop", nth=2))
    result: PhotoMakerResult = drive(inline.result_flow(handle, _context()))
    assert len(result.images) == 1
    assert emulator.counters["fault:status"] == 1 and emulator.counters["fault:drop"] == 1


def test_polling_gives_up_after_repeated_failures(drive: Drive, provider: RunwareProvider, emulator: Any) -> None:
    inline = _inline(provider)
    handle: JobHandle = drive(inline.submit_flow(inline.plan(_request()), _context()))
    emulator.settings.faults.append(Fault("status", status=429, retry_after=0.01))
    with pytest.raises(RateLimitedError) as caught:
        drive(inline.result_flow(handle, _context()))
    assert caught.value.request_id == handle.request_id and caught.value.retry_after == 0.01
    assert emulator.counters["fault:status"] == FAST_RETRY.attempts  # the client's retry policy decides


def test_failed_async_job(drive: Drive, provider: RunwareProvider, emulator: Any) -> None:
    emulator.settings.faults.append(Fault("fail_job", message="boom"))
    inline = _inline(provider)
    handle: JobHandle = drive(inline.submit_flow(inline.plan(_request()), _context()))
    with pytest.raises(GenerationFailedError) as caught:
        drive(inline.result_flow(handle, _context()))
    assert (caught.value.code, caught.value.request_id) == ("inferenceError", handle.request_id)
    assert caught.value.retryable and "boom" in caught.value.message


def test_unknown_task_uuid(drive: Drive, provider: RunwareProvider, emulator: Any) -> None:
    handle = provider.handle_for("3b241101-e2bb-4255-8caf-4136c566a962")
    with pytest.raises(ProviderRejectedError) as caught:
        drive(provider.result_flow(handle, _context()))
    assert (caught.value.code, caught.value.request_id) == ("taskNotFound", handle.request_id)


def test_submit_refused(drive: Drive, provider: RunwareProvider, emulator: Any) -> None:
    emulator.settings.faults.append(Fault("status", status=402))
    inline = _inline(provider)
    with pytest.raises(InsufficientCreditsError):
        drive(inline.submit_flow(inline.plan(_request()), _context()))


async def test_async_driver_native(provider: RunwareProvider, emulator: Any) -> None:
    transport = AiohttpTransport()
    try:
        plan = provider.plan(_request(num_images=2))
        context = _context()
        handle = await arun_flow(provider.submit_flow(plan, context), transport)
        result = await arun_flow(provider.result_flow(handle, context), transport)
    finally:
        await transport.aclose()
    assert len(result.images) == 2
