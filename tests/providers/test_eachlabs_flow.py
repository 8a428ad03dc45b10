"""The Eachlabs flows, driven sync (requests) and async (aiohttp) against the Eachlabs emulator on loopback,
and the pure polling schedule they use.

Emulator jobs run for a fraction of a second and the schedule is scaled down to match (``POLICY``), so the
whole file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, Literal

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from photomaker_bridge import (
    AuthenticationError,
    ConfigurationError,
    GenerationFailedError,
    GenerationTimeoutError,
    InsufficientCreditsError,
    JobHandle,
    PhotoMakerRequest,
    PhotoMakerResult,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from photomaker_bridge._coordination import Coordinator
from photomaker_bridge._http import Event, Flow, arun_flow, run_flow
from photomaker_bridge._retry import RetryPolicy
from photomaker_bridge._transports import AiohttpTransport, RequestsTransport
from photomaker_bridge.emulators import EmulatorHandle, EmulatorSettings, Fault, start_emulators
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.providers._polling import (
    DurationEstimate,
    PollPolicy,
    PollTimer,
    duration_sample,
    next_poll_at,
)
from photomaker_bridge.providers.base import FlowContext
from photomaker_bridge.providers.eachlabs import EachlabsProvider

RUN_TIME = 0.15
EMULATOR_COST = Decimal(str(round(RUN_TIME * 0.00108, 6)))
"""What the emulator reports as ``metrics.cost`` for one prediction of RUN_TIME seconds."""
POLICY = PollPolicy(first_check=0.03, min_interval=0.02, max_interval=0.1, request_timeout=5.0)
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05)
"""The default number of tries, waiting at the emulator's pace."""
FACE = render_image(seed=1, style="face", width=64, height=64)
OTHER_FACE = render_image(seed=2, style="face", width=64, height=48)
CREATE_ROUTE = r"^/v1/prediction/?$"
POLL_ROUTE = r"^/v1/prediction/[^/]+$"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

Mode = Literal["sync", "async"]
MODES: list[Mode] = ["sync", "async"]


@pytest.fixture(scope="module")
def emulators() -> Iterator[Any]:
    with start_emulators(eachlabs=EmulatorSettings(run_time=RUN_TIME), seed=3) as running:
        yield running


@pytest.fixture
def eachlabs(emulators: Any) -> EmulatorHandle:
    """The Eachlabs emulator, back to its initial settings with an empty log."""
    handle: EmulatorHandle = emulators.eachlabs
    handle.reset()
    return handle


def provider_for(emulator: EmulatorHandle, **settings: Any) -> EachlabsProvider:
    values: dict[str, Any] = {"api_key": emulator.api_key, "base_url": emulator.url, "polling": POLICY,
                              "expected_seconds": RUN_TIME}
    values.update(settings)
    return EachlabsProvider(**values)


def request(**fields: Any) -> PhotoMakerRequest:
    values: dict[str, Any] = {"prompt": "a photo of a man img", "images": [FACE], "seed": 11}
    values.update(fields)
    return PhotoMakerRequest(**values)


def context(**fields: Any) -> FlowContext:
    """A flow context whose retries wait at the emulator's pace."""
    return FlowContext(retry=FAST_RETRY, **fields)


def drive(flow: Flow[Any], mode: Mode, *, deadline_in: float | None = None,
          events: list[Event] | None = None, coordinator: Coordinator | None = None) -> Any:
    """Run ``flow`` with the real sync or async transport (and driver) against the emulator; ``coordinator`` is
    the shared state of one client (uploads, limits), a fresh one by default."""
    on_event: Callable[[Event], None] | None = events.append if events is not None else None
    if mode == "sync":
        transport = RequestsTransport()
        try:
            deadline = None if deadline_in is None else time.monotonic() + deadline_in
            return run_flow(flow, transport, deadline=deadline, on_event=on_event, coordinator=coordinator)
        finally:
            transport.close()

    async def main() -> Any:
        async_transport = AiohttpTransport()
        try:
            deadline = None if deadline_in is None else time.monotonic() + deadline_in
            return await arun_flow(flow, async_transport, deadline=deadline, on_event=on_event,
                                   coordinator=coordinator)
        finally:
            await async_transport.aclose()

    return asyncio.run(main())


def generate(provider: EachlabsProvider, photo_request: PhotoMakerRequest, mode: Mode, *,
             flow_context: FlowContext | None = None, **options: Any) -> PhotoMakerResult:
    result: PhotoMakerResult = drive(provider.generate_flow(provider.plan(photo_request), flow_context or context()),
                                     mode, **options)
    return result


def logged(emulator: EmulatorHandle, method: str, pattern: str) -> list[Any]:
    return [entry for entry in emulator.log if entry.method == method and re.search(pattern, entry.path)]


def header(entry: Any, name: str) -> str | None:
    return next((value for key, value in entry.headers.items() if key.lower() == name.lower()), None)


# ------------------------------------------------------------------------------------------------ success


@pytest.mark.parametrize("mode", MODES)
def test_generate_returns_every_image_with_cost_and_timings(eachlabs: EmulatorHandle, mode: Mode) -> None:
    events: list[Event] = []
    result = generate(provider_for(eachlabs), request(num_images=3), mode, events=events)
    assert result.provider == "eachlabs" and len(result.images) == 3 and result.requested_images == 3
    assert all(image.content_type == "image/png" and image.seed == 11 for image in result.images)
    downloaded = requests.get(str(result.images[2].url), timeout=5)
    assert downloaded.content.startswith(b"\x89PNG")
    assert result.cost is not None and result.cost.source == "reported"
    assert result.cost.amount == EMULATOR_COST  # exactly what the emulator reported
    assert result.timings.run_seconds == pytest.approx(RUN_TIME)
    assert result.timings.upload_seconds is not None and result.timings.total_seconds is not None
    assert [event.kind for event in events] == ["uploading", "submitted", "handle", "running", "completed"]
    assert result.request_ids[0] == events[1].request_id


@pytest.mark.parametrize("mode", MODES)
def test_the_key_goes_as_a_bearer_token_to_the_api_only(eachlabs: EmulatorHandle, mode: Mode) -> None:
    generate(provider_for(eachlabs), request(images=[FACE, OTHER_FACE]), mode)
    assert eachlabs.log
    for entry in eachlabs.log:
        assert header(entry, "X-API-Key") is None  # the documented form only (docs/protocols/eachlabs.md §1)
        assert eachlabs.api_key not in entry.path + str(entry.query) + entry.body.decode("latin-1")
        if entry.path.startswith("/v1/"):
            assert header(entry, "Authorization") == f"Bearer {eachlabs.api_key}"
            assert header(entry, "Content-Type") == "application/json"
        else:  # the presigned storage PUT: signed by its URL and headers, never by the key (§2.11)
            assert entry.method == "PUT" and header(entry, "Authorization") is None


def test_num_images_above_four_is_split_into_predictions_created_back_to_back(eachlabs: EmulatorHandle) -> None:
    result = generate(provider_for(eachlabs), request(num_images=6), "sync")
    creates = [entry.json() for entry in logged(eachlabs, "POST", CREATE_ROUTE)]
    assert [body["input"]["num_outputs"] for body in creates] == [4, 2]
    assert [body["input"]["seed"] for body in creates] == [11, 15]
    assert all(body["input"]["input_image"].startswith(eachlabs.url + "/uploads/") for body in creates)
    assert len(result.images) == 6 and len(result.request_ids) == 2
    assert [image.seed for image in result.images] == [11] * 4 + [15] * 2
    assert result.cost is not None and result.cost.amount == 2 * EMULATOR_COST
    assert len(set(image.url for image in result.images)) == 6


def test_partial_result_keeps_the_images_and_warns(eachlabs: EmulatorHandle) -> None:
    eachlabs.settings.faults.append(Fault("partial", images=1))
    result = generate(provider_for(eachlabs), request(num_images=3, width=512), "sync")
    assert len(result.images) == 1 and result.requested_images == 3
    assert [warning.field for warning in result.warnings] == ["width", "num_images"]
    assert result.warnings[1].asked == 3 and result.warnings[1].sent == 1


@pytest.mark.parametrize("mode", MODES)
def test_uploads_are_cached_per_content_for_the_life_of_the_client(eachlabs: EmulatorHandle, mode: Mode) -> None:
    provider = provider_for(eachlabs)
    shared = Coordinator()
    photo_request = request(images=[FACE, OTHER_FACE, FACE])
    generate(provider, photo_request, mode, coordinator=shared)
    assert eachlabs.counters["presigns"] == 2 and eachlabs.counters["uploads"] == 2  # FACE once
    assert len(shared.uploads) == 2 and all(key.startswith("eachlabs:") for key in shared.uploads)
    eachlabs.reset()
    events: list[Event] = []
    generate(provider, photo_request, mode, coordinator=shared, events=events)
    assert logged(eachlabs, "POST", "presign") == [] and logged(eachlabs, "PUT", ".") == []
    assert "uploading" not in [event.kind for event in events]
    generate(provider, photo_request, mode, coordinator=Coordinator())  # a new client uploads again
    assert eachlabs.counters["presigns"] == 2


@pytest.mark.parametrize("mode", MODES)
def test_submit_then_result_through_a_json_handle(eachlabs: EmulatorHandle, mode: Mode) -> None:
    provider = provider_for(eachlabs)
    handle = drive(provider.submit_flow(provider.plan(request(num_images=5, width=512)), context()), mode)
    assert isinstance(handle, JobHandle) and len(handle.request_ids) == 2
    assert handle.requested_images == 5 and tuple(handle.images_per_request) == (4, 1)
    assert [warning.field for warning in handle.warnings] == ["width"]
    stored = JobHandle.from_dict(handle.to_dict())
    result = drive(provider.result_flow(stored, context()), mode)
    assert len(result.images) == 5 and tuple(result.request_ids) == tuple(handle.request_ids)
    assert [warning.field for warning in result.warnings] == ["width"]


def test_queued_then_running_events(eachlabs: EmulatorHandle) -> None:
    eachlabs.settings.queue_time = 0.1
    events: list[Event] = []
    generate(provider_for(eachlabs), request(), "sync", events=events)
    assert [event.kind for event in events] == ["uploading", "submitted", "handle", "queued", "running", "completed"]


def test_the_expected_duration_is_learned_from_completed_jobs(eachlabs: EmulatorHandle) -> None:
    provider = provider_for(eachlabs, expected_seconds=1.0)
    assert provider.estimate().seconds == 1.0 and provider.estimate().samples == 0
    generate(provider, request(), "sync")
    learned = provider.estimate()
    assert learned.samples == 1 and RUN_TIME <= learned.seconds < 0.5


# -------------------------------------------------------------------------------------- deadline, resume


@pytest.mark.parametrize("mode", MODES)
def test_deadline_cancels_the_prediction_and_carries_the_handle(eachlabs: EmulatorHandle, mode: Mode) -> None:
    eachlabs.settings.faults.append(Fault("stuck_job"))
    provider = provider_for(eachlabs)
    with pytest.raises(GenerationTimeoutError) as caught:
        generate(provider, request(), mode, deadline_in=0.4)
    error = caught.value
    assert error.provider == "eachlabs" and error.handle is not None
    assert error.request_id == error.handle.request_id and UUID.match(str(error.request_id))
    assert eachlabs.counters["cancels"] == 1
    assert logged(eachlabs, "POST", f"/v1/prediction/{error.request_id}/cancel")
    with pytest.raises(GenerationFailedError) as cancelled:  # the emulator now reports it cancelled
        drive(provider.result_flow(error.handle, context()), mode)
    assert cancelled.value.code == "cancelled"


@pytest.mark.parametrize("mode", MODES)
def test_resume_with_handle_for_after_a_client_side_timeout(eachlabs: EmulatorHandle, mode: Mode) -> None:
    eachlabs.settings.run_time = 2.0  # far longer than the deadline, however slow this machine is today
    provider = provider_for(eachlabs)
    handle = drive(provider.submit_flow(provider.plan(request(num_images=2)), context()), mode)
    with pytest.raises(GenerationTimeoutError) as caught:
        drive(provider.result_flow(handle, context(cancel_on_deadline=False)), mode, deadline_in=0.2)
    assert caught.value.handle is not None and eachlabs.counters["cancels"] == 0
    prediction_id = caught.value.handle.request_id
    resumed = provider.handle_for(prediction_id)
    assert tuple(resumed.request_ids) == (prediction_id,)
    result = drive(provider.result_flow(resumed, context()), mode)
    assert len(result.images) == 2 and result.request_id == prediction_id
    assert result.seed == 11  # read from the input echo, though the handle knew nothing


def test_handle_for_takes_several_ids(eachlabs: EmulatorHandle) -> None:
    provider = provider_for(eachlabs)
    handle = drive(provider.submit_flow(provider.plan(request(num_images=6)), context()), "sync")
    resumed = provider.handle_for(",".join(handle.request_ids))
    assert len(drive(provider.result_flow(resumed, context()), "sync").images) == 6
    with pytest.raises(ValueError, match="predictionID"):
        provider.handle_for(" , ")


def test_deadline_while_uploading_has_no_handle(eachlabs: EmulatorHandle) -> None:
    eachlabs.settings.latency = 0.5
    with pytest.raises(GenerationTimeoutError) as caught:
        generate(provider_for(eachlabs), request(), "sync", deadline_in=0.15)
    assert caught.value.handle is None and "uploading" in caught.value.message
    assert eachlabs.counters["predictions_created"] == 0


# -------------------------------------------------------------------------------------------- HTTP faults


@pytest.mark.parametrize("mode", MODES)
def test_wrong_key_is_an_authentication_error(eachlabs: EmulatorHandle, mode: Mode) -> None:
    with pytest.raises(AuthenticationError) as caught:
        generate(provider_for(eachlabs, api_key="wrong-key"), request(), mode)
    error = caught.value
    assert error.status == 401 and error.message == "Invalid or missing API key"
    assert error.raw == {"error": "Invalid or missing API key"} and UUID.match(str(error.request_id))
    assert "wrong-key" not in str(error) + repr(error)


@pytest.mark.parametrize("mode", MODES)
def test_payment_required_on_create(eachlabs: EmulatorHandle, mode: Mode) -> None:
    eachlabs.settings.faults.append(Fault("status", status=402, route=CREATE_ROUTE, method="POST"))
    with pytest.raises(InsufficientCreditsError) as caught:
        generate(provider_for(eachlabs), request(), mode)
    assert caught.value.status == 402 and "top up your balance" in caught.value.message
    assert caught.value.raw["status"] == 402 and UUID.match(str(caught.value.request_id))


@pytest.mark.parametrize("mode", MODES)
def test_a_create_refused_for_good_is_rate_limited_with_retry_after(eachlabs: EmulatorHandle, mode: Mode) -> None:
    eachlabs.settings.faults.append(Fault("status", status=429, retry_after=0.05, route=CREATE_ROUTE,
                                          method="POST"))
    with pytest.raises(RateLimitedError) as caught:
        generate(provider_for(eachlabs), request(), mode)
    error = caught.value
    assert error.status == 429 and error.retry_after == 0.05 and error.retryable
    assert "concurrent executions" in error.message and error.raw["error"] == "too many requests"
    # A 429 proves nothing was created: the create is sent again, as often as the retry policy allows.
    assert len(logged(eachlabs, "POST", CREATE_ROUTE)) == FAST_RETRY.attempts
    assert eachlabs.counters["predictions_created"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_one_refused_create_is_sent_again(eachlabs: EmulatorHandle, mode: Mode) -> None:
    eachlabs.settings.faults.append(Fault("status", status=429, retry_after=0.05, route=CREATE_ROUTE,
                                          method="POST", nth=1))
    events: list[Event] = []
    result = generate(provider_for(eachlabs), request(), mode, events=events)
    assert len(result.images) == 1 and eachlabs.counters["predictions_created"] == 1
    assert [event.kind for event in events].count("retrying") == 1


def test_a_retry_after_longer_than_the_policy_waits_for_is_not_waited_for(eachlabs: EmulatorHandle) -> None:
    eachlabs.settings.faults.append(Fault("status", status=429, retry_after=600, route=CREATE_ROUTE, method="POST"))
    with pytest.raises(RateLimitedError) as caught:
        generate(provider_for(eachlabs), request(), "sync")
    assert caught.value.retry_after == 600.0 and len(logged(eachlabs, "POST", CREATE_ROUTE)) == 1


def test_the_emulators_concurrency_cap_is_waited_out(eachlabs: EmulatorHandle) -> None:
    # Eachlabs refuses the second prediction (its cap is 1 here) with a Retry-After: the create is sent again.
    eachlabs.settings.max_in_flight = 1
    result = generate(provider_for(eachlabs), request(num_images=8), "sync")
    assert len(result.images) == 8 and eachlabs.counters["predictions_created"] == 2
    assert eachlabs.counters["predictions_rate_limited"] >= 1 and eachlabs.counters["peak_in_flight"] == 1


def test_the_clients_own_limit_runs_a_large_request_in_waves(eachlabs: EmulatorHandle) -> None:
    eachlabs.settings.max_in_flight = 1
    result = generate(provider_for(eachlabs, concurrency=1), request(num_images=8), "sync")
    assert len(result.images) == 8 and len(result.request_ids) == 2
    assert [image.seed for image in result.images] == [11] * 4 + [15] * 4
    assert eachlabs.counters["predictions_rate_limited"] == 0 and eachlabs.counters["peak_in_flight"] == 1
    assert result.cost is not None and result.cost.amount == 2 * EMULATOR_COST


def test_submit_refuses_more_predictions_than_the_limit_before_sending(eachlabs: EmulatorHandle) -> None:
    provider = provider_for(eachlabs, concurrency=1)
    with pytest.raises(ConfigurationError, match="needs 2 eachlabs jobs at once"):
        drive(provider.submit_flow(provider.plan(request(num_images=8)), context()), "sync")
    assert eachlabs.log == []


def test_calls_beyond_the_limit_wait_for_a_slot(eachlabs: EmulatorHandle) -> None:
    provider = provider_for(eachlabs, concurrency=1)
    shared = Coordinator()
    outcomes: list[Any] = []
    events: list[Event] = []

    async def main() -> None:
        async def one(seed: int) -> Any:
            transport = AiohttpTransport()
            try:
                return await arun_flow(provider.generate_flow(provider.plan(request(seed=seed)), context()),
                                       transport, coordinator=shared, on_event=events.append)
            finally:
                await transport.aclose()

        outcomes.extend(await asyncio.gather(*(one(seed) for seed in (1, 2, 3))))

    asyncio.run(main())
    assert [len(outcome.images) for outcome in outcomes] == [1, 1, 1]
    assert eachlabs.counters["peak_in_flight"] == 1 and eachlabs.counters["predictions_rate_limited"] == 0
    assert len([event for event in events if event.kind == "waiting" and "in flight" in str(event.message)]) == 2
    assert shared.peak_in_flight[provider.account()] == 1 and shared.in_flight(provider.account()) == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", [500, 503])
def test_server_error_on_create(eachlabs: EmulatorHandle, mode: Mode, status: int) -> None:
    eachlabs.settings.faults.append(Fault("status", status=status, route=CREATE_ROUTE, method="POST"))
    with pytest.raises(ProviderUnavailableError) as caught:
        generate(provider_for(eachlabs), request(), mode)
    assert caught.value.status == status and caught.value.retryable
    expected = "Failed to create prediction" if status == 500 else "service unavailable"
    assert caught.value.message.startswith(expected) and caught.value.raw == {"error": expected}
    if status == 503:  # a refusal: sent again
        assert len(logged(eachlabs, "POST", CREATE_ROUTE)) == FAST_RETRY.attempts
    else:  # the prediction may exist: never sent twice, and the message says so
        assert len(logged(eachlabs, "POST", CREATE_ROUTE)) == 1
        assert "may have accepted a prediction" in caught.value.message


@pytest.mark.parametrize("mode", MODES)
def test_dropped_connection_on_create(eachlabs: EmulatorHandle, mode: Mode) -> None:
    eachlabs.settings.faults.append(Fault("drop", route=CREATE_ROUTE, method="POST"))
    with pytest.raises(ProviderUnavailableError) as caught:
        generate(provider_for(eachlabs), request(), mode)
    assert caught.value.code == "connection_error" and caught.value.provider == "eachlabs"
    assert caught.value.status is None and "may have accepted a prediction" in caught.value.message
    assert len(logged(eachlabs, "POST", CREATE_ROUTE)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_malformed_json_on_create(eachlabs: EmulatorHandle, mode: Mode) -> None:
    eachlabs.settings.faults.append(Fault("malformed", route=CREATE_ROUTE, method="POST"))
    with pytest.raises(ProviderUnavailableError) as caught:
        generate(provider_for(eachlabs), request(), mode)
    error = caught.value
    assert error.code == "invalid_response" and error.status == 200
    assert isinstance(error.raw, str) and error.raw.startswith('{"data"') and UUID.match(str(error.request_id))
    assert len(logged(eachlabs, "POST", CREATE_ROUTE)) == 1


@pytest.mark.parametrize("fault", [
    Fault("status", status=500, route=POLL_ROUTE, method="GET", nth=1),
    Fault("status", status=503, route=POLL_ROUTE, method="GET", times=2),
    Fault("drop", route=POLL_ROUTE, method="GET", nth=1),
    Fault("malformed", route=POLL_ROUTE, method="GET", nth=1),
], ids=["500", "503-twice", "drop", "malformed"])
@pytest.mark.parametrize("mode", MODES)
def test_transient_poll_failures_are_retried(eachlabs: EmulatorHandle, mode: Mode, fault: Fault) -> None:
    eachlabs.settings.faults.append(fault)
    result = generate(provider_for(eachlabs), request(), mode)
    assert len(result.images) == 1
    assert eachlabs.counters[f"fault:{fault.kind}"] >= 1


def test_a_poll_rate_limit_waits_for_retry_after(eachlabs: EmulatorHandle) -> None:
    eachlabs.settings.faults.append(Fault("status", status=429, retry_after=0.2, route=POLL_ROUTE, method="GET",
                                          nth=1))
    generate(provider_for(eachlabs), request(), "sync")
    polls = logged(eachlabs, "GET", POLL_ROUTE)
    assert polls[1].received_at - polls[0].received_at >= 0.19


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cancel_on_deadline", [True, False], ids=["generate", "result"])
def test_a_poll_that_keeps_failing_surfaces(eachlabs: EmulatorHandle, mode: Mode, cancel_on_deadline: bool) -> None:
    eachlabs.settings.faults.append(Fault("status", status=500, route=POLL_ROUTE, method="GET"))
    events: list[Event] = []
    with pytest.raises(ProviderUnavailableError) as caught:
        generate(provider_for(eachlabs), request(), mode, events=events,
                 flow_context=context(cancel_on_deadline=cancel_on_deadline))
    error = caught.value
    assert error.status == 500 and error.message.startswith("Internal server error (")
    assert error.raw == {"error": "Internal server error"} and UUID.match(str(error.request_id))
    assert len(logged(eachlabs, "GET", POLL_ROUTE)) == FAST_RETRY.attempts
    assert events[-1].kind == "failed"
    if cancel_on_deadline:  # under generate nobody will collect the prediction: cancelled (review finding 3)
        assert eachlabs.counters["cancels"] == 1 and f"cancelled: {error.request_id}" in error.message
    else:  # result()/resume(): left running for a later try, and the message says how to resume
        assert eachlabs.counters["cancels"] == 0
        assert f"still running, resume with request id {error.request_id}" in error.message


# --------------------------------------------------------------------------------------------- job faults


@pytest.mark.parametrize("mode", MODES)
def test_failed_job_is_a_generation_failure_with_the_providers_message(eachlabs: EmulatorHandle,
                                                                       mode: Mode) -> None:
    eachlabs.settings.faults.append(Fault("fail_job", message="CUDA out of memory"))
    events: list[Event] = []
    with pytest.raises(GenerationFailedError) as caught:
        generate(provider_for(eachlabs), request(), mode, events=events)
    error = caught.value
    assert "CUDA out of memory" in error.message and error.code == "PROVIDER_FAILED"
    assert error.status == 200 and error.retryable is False and UUID.match(str(error.request_id))
    assert error.raw["status"] == "error" and error.raw["output"]["error_code"] == "PROVIDER_FAILED"
    assert events[-1].kind == "failed" and events[-1].request_id == error.request_id


def test_a_failed_prediction_cancels_its_unfinished_sibling(eachlabs: EmulatorHandle) -> None:
    eachlabs.settings.faults.append(Fault("fail_job", nth=1))
    # Rules are tried in order and the first that fires wins: the stuck rule first sees the second job.
    eachlabs.settings.faults.append(Fault("stuck_job", nth=1))
    with pytest.raises(GenerationFailedError) as caught:
        generate(provider_for(eachlabs), request(num_images=8), "sync")
    creates = [entry for entry in eachlabs.log if entry.method == "POST" and re.search(CREATE_ROUTE, entry.path)]
    cancels = logged(eachlabs, "POST", r"/cancel$")
    assert len(creates) == 2 and len(cancels) == 1 and eachlabs.counters["cancels"] == 1
    sibling = cancels[0].path.split("/")[-2]
    assert sibling != caught.value.request_id
    # ProviderError has no handle: the message names the cancelled sibling (review finding 3).
    assert caught.value.message == f"Execution failed: exec_error (cancelled: {sibling})"


def test_an_unreachable_image_url_is_a_rejected_input(eachlabs: EmulatorHandle) -> None:
    with pytest.raises(ProviderRejectedError) as caught:
        generate(provider_for(eachlabs), request(images=["https://example.com/face.jpg"]), "sync")
    assert caught.value.code == "INPUT_DOWNLOAD_ERROR" and "could not be downloaded" in caught.value.message


def test_a_prompt_without_trigger_forced_through_provider_options_fails_at_the_model(
        eachlabs: EmulatorHandle) -> None:
    photo_request = request(provider_options={"eachlabs": {"prompt": "a portrait"}})
    with pytest.raises(GenerationFailedError, match="Cannot find the trigger word 'img'"):
        generate(provider_for(eachlabs), photo_request, "sync")


def test_no_key_fails_before_anything_is_sent(eachlabs: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EACHLABS_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="EACHLABS_API_KEY"):
        generate(provider_for(eachlabs, api_key=None), request(), "sync")
    assert eachlabs.log == []


# --------------------------------------------------------------------------------- the schedule (pure)


def detect(duration: float, expected: float, policy: PollPolicy | None = None) -> tuple[int, float]:
    """Polls made, and lag, for a job of ``duration`` seconds on the pure schedule (ideal network)."""
    timer = PollTimer(policy or PollPolicy(), expected)
    polls = 0
    while True:
        at = timer.next_at
        polls += 1
        if at >= duration:
            return polls, at - duration
        timer.pending(at, started=True)


def test_documented_schedule_for_a_21_second_job() -> None:
    timer = PollTimer(PollPolicy(), 21.0)
    times = []
    for _ in range(8):
        times.append(timer.next_at)
        timer.pending(timer.next_at, started=True)
    assert times == pytest.approx([2, 10, 15.5, 18.25, 19.5, 20, 20.5, 21])


def test_a_21_second_job_takes_at_most_half_the_polls_of_a_one_second_loop() -> None:
    one_second_loop_polls = 22  # 0, 1, ..., 21
    polls, lag = detect(21.0, 21.0)
    assert polls <= one_second_loop_polls // 2 and lag == 0.0  # one poll lands on the expected end
    for duration in (20.4, 20.9, 21.2, 21.6):  # around the expected end, every min_interval at most
        polls, lag = detect(duration, 21.0)
        assert polls <= one_second_loop_polls // 2 and lag <= PollPolicy().min_interval


def test_the_first_poll_is_early_to_catch_fast_failures() -> None:
    assert next_poll_at(0.0, 21.0, PollPolicy()) == 2.0
    assert next_poll_at(0.0, 73.0, PollPolicy(first_check=1.0)) == 1.0


def test_a_job_expected_sooner_than_the_first_check_is_polled_when_expected() -> None:
    timer = PollTimer(PollPolicy(), 0.3)
    assert timer.next_at == 0.3
    timer.pending(0.3, started=True)
    assert timer.next_at == pytest.approx(0.8)  # then every min_interval, not back to the first check


@given(elapsed=st.floats(min_value=2.0, max_value=1000.0), expected=st.floats(min_value=0.1, max_value=500.0))
def test_gaps_stay_within_min_and_max_interval(elapsed: float, expected: float) -> None:
    policy = PollPolicy()
    at = next_poll_at(elapsed, expected, policy)
    gap = at - elapsed
    assert policy.min_interval / 2 - 1e-9 <= gap <= max(policy.max_interval, 5 * policy.min_interval) + 1e-9
    if gap <= 2 * policy.min_interval:  # near the expected end: on the grid expected + k·min_interval
        steps = (at - expected) / policy.min_interval
        assert steps == pytest.approx(round(steps), abs=1e-6)


def test_polls_near_the_expected_end_stay_on_its_grid_despite_round_trips() -> None:
    timer = PollTimer(PollPolicy(), 21.0)
    times = []
    while timer.next_at < 23:
        times.append(timer.next_at)
        timer.pending(timer.next_at + 0.07, started=True)  # each answer arrives 70 ms after the poll
    assert times[-6:] == pytest.approx([20.0, 20.5, 21.0, 21.5, 22.0, 22.5])


def test_past_the_expected_end_the_schedule_backs_off() -> None:
    policy = PollPolicy()
    gaps = [next_poll_at(at, 21.0, policy) - at for at in (21.5, 24.0, 30.0, 60.0)]
    assert gaps == sorted(gaps) and gaps[0] == policy.min_interval and gaps[-1] == policy.max_interval


def test_a_wrong_estimate_costs_at_most_max_interval_of_lag() -> None:
    for duration in (5.0, 9.0, 40.0, 120.0):
        _, lag = detect(duration, 21.0)
        assert lag <= PollPolicy().max_interval


def test_a_job_still_waiting_for_a_worker_moves_the_expected_end() -> None:
    timer = PollTimer(PollPolicy(), 21.0)
    timer.pending(2.0, started=False)
    assert timer.expected == 21.0  # a worker by the first check is the typical case
    timer.pending(10.0, started=False)
    assert timer.expected == 29.0  # still created at 10 s: about 19 s of run are still ahead
    timer.pending(12.0, started=True)
    timer.pending(14.0, started=False)  # a later "created" after "processing" changes nothing
    assert timer.expected == 29.0 and timer.polls == 4 and timer.last_pending == 14.0


def test_duration_samples_prefer_predict_time_within_the_detection_interval() -> None:
    assert duration_sample(20.8, 21.3, 21.0) == 21.0
    assert duration_sample(20.8, 21.3, 12.0) == 20.8
    assert duration_sample(20.8, 21.3, 30.0) == 21.3
    assert duration_sample(20.0, 21.0, None) == 20.5


def test_the_estimate_is_an_exponentially_weighted_average() -> None:
    estimate = DurationEstimate(21.0)
    estimate.update(30.0)
    assert estimate.seconds == 30.0  # the first real sample replaces the published figure
    estimate.update(20.0)
    assert estimate.seconds == pytest.approx(27.0)
    estimate.update(-1.0)
    assert estimate.samples == 2


@pytest.mark.parametrize("fields", [{"first_check": 0}, {"min_interval": 2.0, "max_interval": 1.0},
                                    {"approach": -0.5}])
def test_nonsense_policies_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PollPolicy(**fields)


def test_handle_submitted_at_is_utc_and_created_after_is_recorded(eachlabs: EmulatorHandle) -> None:
    provider = provider_for(eachlabs)
    handle = drive(provider.submit_flow(provider.plan(request(num_images=5)), context()), "sync")
    assert handle.submitted_at.tzinfo == datetime.UTC
    offsets = handle.details["created_after"]
    assert offsets[0] == 0.0 and offsets[1] >= 0.0 and handle.details["model"] == "photomaker-style"
