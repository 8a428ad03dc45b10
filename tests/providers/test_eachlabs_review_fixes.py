"""Review findings on the Eachlabs adapter, each pinned by a test that failed before its fix.

1. a create in flight when the deadline passes is let finish, then cancelled or handed over (reviewer #1);
2. an abandoned call (task cancelled, ``on_event`` raising) cancels its predictions (reviewer #8);
3. polls failing for good under ``generate`` cancel the job, and the error names every prediction (#9);
4. a 3xx answer is refused as ``unexpected_redirect``, never parsed or followed (#5);
5. ``width``/``height`` of 1024, what the model makes anyway, need no adjustment (as for fal);
6. a plain-string failure that says "temporarily" / "retry" / "rate limit" is retryable (eachlabs.md §2.6).

Against the Eachlabs emulator on loopback (or a scripted transport for the redirects); about 4 s in all.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest

from photomaker_bridge import (
    GenerationFailedError,
    GenerationTimeoutError,
    InvalidRequestError,
    PhotoMakerRequest,
    ProviderError,
    ProviderUnavailableError,
)
from photomaker_bridge._http import Event, Flow, HttpRequest, HttpResponse, arun_flow, run_flow
from photomaker_bridge._transports import AiohttpTransport, RequestsTransport
from photomaker_bridge.emulators import EmulatorHandle, EmulatorSettings, Fault, start_emulators
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.providers._eachlabs_parsing import (
    failure_error,
    parse_create,
    parse_prediction,
    parse_presign,
    upload_error,
)
from photomaker_bridge.providers._polling import PollPolicy
from photomaker_bridge.providers.base import FlowContext
from photomaker_bridge.providers.eachlabs import EachlabsProvider

RUN_TIME = 0.15
POLICY = PollPolicy(first_check=0.03, min_interval=0.02, max_interval=0.1, request_timeout=5.0)
FACE = render_image(seed=1, style="face", width=64, height=64)
URL_IMAGE = "https://example.com/face.jpg"
"""A reference the emulator refuses only when the job runs: with a stuck job nothing is uploaded or fetched."""
POLL_ROUTE = r"^/v1/prediction/[^/]+$"
CANCEL_ROUTE = r"^/v1/prediction/[^/]+/cancel$"

Mode = Literal["sync", "async"]
MODES: list[Mode] = ["sync", "async"]


class Abandon(BaseException):
    """What an ``on_event`` that abandons the call raises (like KeyboardInterrupt, without being one)."""


@pytest.fixture(scope="module")
def emulators() -> Iterator[Any]:
    with start_emulators(eachlabs=EmulatorSettings(run_time=RUN_TIME), seed=5) as running:
        yield running


@pytest.fixture
def eachlabs(emulators: Any) -> EmulatorHandle:
    handle: EmulatorHandle = emulators.eachlabs
    handle.reset()
    return handle


def provider_for(emulator: EmulatorHandle, **settings: Any) -> EachlabsProvider:
    values: dict[str, Any] = {"api_key": emulator.api_key, "base_url": emulator.url, "polling": POLICY,
                              "expected_seconds": RUN_TIME}
    values.update(settings)
    return EachlabsProvider(**values)


def request(**fields: Any) -> PhotoMakerRequest:
    values: dict[str, Any] = {"prompt": "a photo of a man img", "images": [URL_IMAGE], "seed": 11}
    values.update(fields)
    return PhotoMakerRequest(**values)


def drive(flow: Flow[Any], mode: Mode, *, deadline_in: float | None = None,
          on_event: Callable[[Event], None] | None = None) -> Any:
    if mode == "sync":
        transport = RequestsTransport()
        try:
            deadline = None if deadline_in is None else time.monotonic() + deadline_in
            return run_flow(flow, transport, deadline=deadline, on_event=on_event)
        finally:
            transport.close()

    async def main() -> Any:
        async_transport = AiohttpTransport()
        try:
            deadline = None if deadline_in is None else time.monotonic() + deadline_in
            return await arun_flow(flow, async_transport, deadline=deadline, on_event=on_event)
        finally:
            await async_transport.aclose()

    return asyncio.run(main())


def logged(emulator: EmulatorHandle, method: str, pattern: str) -> list[Any]:
    return [entry for entry in emulator.log if entry.method == method and re.search(pattern, entry.path)]


def header(entry: Any, name: str) -> str | None:
    return next((value for key, value in entry.headers.items() if key.lower() == name.lower()), None)


def wait_for_cancels(emulator: EmulatorHandle, count: int, within: float = 3.0) -> None:
    """Background cancels arrive a little after the call ended."""
    ends = time.monotonic() + within
    while emulator.counters["cancels"] < count and time.monotonic() < ends:
        time.sleep(0.02)
    assert emulator.counters["cancels"] == count


def on_kind(kind: str, error: BaseException) -> Callable[[Event], None]:
    def handler(event: Event) -> None:
        if event.kind == kind:
            raise error
    return handler


# ------------------------------------------------------------------ 1. a create in flight at the deadline


@pytest.mark.parametrize("mode", MODES)
def test_a_create_answered_after_the_deadline_is_cancelled_and_reported(eachlabs: EmulatorHandle,
                                                                        mode: Mode) -> None:
    eachlabs.settings.faults.append(Fault("stuck_job"))
    eachlabs.settings.latency = 0.25  # the create is answered after the deadline, well within the grace
    provider = provider_for(eachlabs)
    with pytest.raises(GenerationTimeoutError) as caught:
        drive(provider.generate_flow(provider.plan(request()), FlowContext()), mode, deadline_in=0.1)
    error = caught.value
    assert eachlabs.counters["predictions_created"] == 1
    assert error.handle is not None and error.request_id == error.handle.request_id  # reported ...
    assert logged(eachlabs, "POST", f"/v1/prediction/{error.request_id}/cancel")  # ... and cancelled
    assert eachlabs.counters["cancels"] == 1


def test_a_create_answered_after_the_deadline_of_submit_is_handed_over(eachlabs: EmulatorHandle) -> None:
    eachlabs.settings.faults.append(Fault("stuck_job"))
    eachlabs.settings.latency = 0.25
    provider = provider_for(eachlabs)
    context = FlowContext(cancel_on_deadline=False)
    # The only create was answered: submit has its handle to return, late rather than lost.
    handle = drive(provider.submit_flow(provider.plan(request()), context), "sync", deadline_in=0.1)
    assert len(handle.request_ids) == 1
    # A second create is not started after the deadline: the first one's handle comes with the timeout.
    with pytest.raises(GenerationTimeoutError) as caught:
        drive(provider.submit_flow(provider.plan(request(num_images=8)), context), "sync", deadline_in=0.1)
    assert caught.value.handle is not None and len(caught.value.handle.request_ids) == 1
    assert eachlabs.counters["predictions_created"] == 2 and eachlabs.counters["cancels"] == 0


# ------------------------------------------------------------------------------- 2. an abandoned call


async def test_cancelling_the_async_task_cancels_the_prediction(eachlabs: EmulatorHandle) -> None:
    eachlabs.settings.faults.append(Fault("stuck_job"))
    provider = provider_for(eachlabs)
    transport = AiohttpTransport()
    try:
        with pytest.raises(TimeoutError):  # wait_for cancels the task running the flow (reviewer's t14)
            await asyncio.wait_for(arun_flow(provider.generate_flow(provider.plan(request()), FlowContext()),
                                             transport), 0.3)
        await asyncio.to_thread(wait_for_cancels, eachlabs, 1)
    finally:
        await transport.aclose()
    cancel = logged(eachlabs, "POST", CANCEL_ROUTE)[0]
    assert header(cancel, "Authorization") == f"Bearer {eachlabs.api_key}" and header(cancel, "X-API-Key") is None


def test_an_on_event_that_abandons_a_sync_generate_cancels_in_the_background(eachlabs: EmulatorHandle) -> None:
    eachlabs.settings.faults.append(Fault("stuck_job"))
    provider = provider_for(eachlabs)
    with pytest.raises(Abandon):
        drive(provider.generate_flow(provider.plan(request(num_images=6)), FlowContext()), "sync",
              on_event=on_kind("running", Abandon()))
    wait_for_cancels(eachlabs, 2)  # both predictions of the split


def test_an_on_event_that_raises_cancels_before_the_error_surfaces(eachlabs: EmulatorHandle) -> None:
    eachlabs.settings.faults.append(Fault("stuck_job"))
    provider = provider_for(eachlabs)
    with pytest.raises(ZeroDivisionError):
        drive(provider.generate_flow(provider.plan(request()), FlowContext()), "sync",
              on_event=on_kind("running", ZeroDivisionError()))
    assert eachlabs.counters["cancels"] == 1


def test_abandoning_submit_midway_cancels_what_it_created(eachlabs: EmulatorHandle) -> None:
    # submit() returns no handle when abandoned, so nobody could collect the first prediction.
    eachlabs.settings.faults.append(Fault("stuck_job"))
    provider = provider_for(eachlabs)
    with pytest.raises(Abandon):
        drive(provider.submit_flow(provider.plan(request(num_images=8)), FlowContext(cancel_on_deadline=False)),
              "sync", on_event=on_kind("submitted", Abandon()))
    assert eachlabs.counters["predictions_created"] == 1
    wait_for_cancels(eachlabs, 1)


def test_abandoning_result_on_a_handle_leaves_the_prediction_running(eachlabs: EmulatorHandle) -> None:
    eachlabs.settings.faults.append(Fault("stuck_job"))
    provider = provider_for(eachlabs)
    handle = drive(provider.submit_flow(provider.plan(request()), FlowContext()), "sync")
    with pytest.raises(Abandon):  # result()/resume(): the caller holds the handle
        drive(provider.result_flow(handle, FlowContext(cancel_on_deadline=False)), "sync",
              on_event=on_kind("running", Abandon()))
    time.sleep(0.2)
    assert eachlabs.counters["cancels"] == 0


# ------------------------------------------------------------------------- 3. polls failing for good


@pytest.mark.parametrize("mode", MODES)
def test_polls_failing_for_good_under_generate_cancel_and_name_every_prediction(eachlabs: EmulatorHandle,
                                                                                mode: Mode) -> None:
    eachlabs.settings.faults.append(Fault("status", status=503, route=POLL_ROUTE, method="GET"))
    eachlabs.settings.faults.append(Fault("stuck_job"))
    provider = provider_for(eachlabs)
    with pytest.raises(ProviderUnavailableError) as caught:
        drive(provider.generate_flow(provider.plan(request(num_images=8)), FlowContext()), mode)
    error = caught.value
    cancelled = [entry.path.split("/")[-2] for entry in logged(eachlabs, "POST", CANCEL_ROUTE)]
    assert len(cancelled) == 2 and eachlabs.counters["cancels"] == 2
    assert error.request_id in cancelled
    assert error.message == f"service unavailable (cancelled: {', '.join(cancelled)})"


def test_polls_failing_for_good_under_result_say_how_to_resume(eachlabs: EmulatorHandle) -> None:
    poll_fault = Fault("status", status=503, route=POLL_ROUTE, method="GET")
    eachlabs.settings.faults.append(poll_fault)
    provider = provider_for(eachlabs)
    photo_request = request(images=[FACE], num_images=8)
    handle = drive(provider.submit_flow(provider.plan(photo_request), FlowContext()), "sync")
    with pytest.raises(ProviderUnavailableError) as caught:
        drive(provider.result_flow(handle, FlowContext(cancel_on_deadline=False)), "sync")
    assert eachlabs.counters["cancels"] == 0
    found = re.search(r"resume with request id (\S+)\)$", caught.value.message)
    assert found is not None and found.group(1) == ",".join(handle.request_ids)
    eachlabs.settings.faults.remove(poll_fault)
    result = drive(provider.result_flow(provider.handle_for(found.group(1)), FlowContext()), "sync")
    assert len(result.images) == 8


def test_a_refused_second_create_names_the_cancelled_first(eachlabs: EmulatorHandle) -> None:
    eachlabs.settings.faults.append(Fault("stuck_job"))
    eachlabs.settings.faults.append(Fault("status", status=500, route=r"^/v1/prediction/?$", method="POST", nth=2))
    with pytest.raises(ProviderUnavailableError) as caught:
        drive(provider_for(eachlabs).generate_flow(provider_for(eachlabs).plan(request(num_images=8)),
                                                   FlowContext()), "sync")
    cancelled = logged(eachlabs, "POST", CANCEL_ROUTE)[0].path.split("/")[-2]
    assert f"(cancelled: {cancelled}; " in caught.value.message
    assert "may have accepted a prediction" in caught.value.message  # a 500 on a create proves nothing


# ------------------------------------------------------------------------------------- 4. redirects


def redirect(status: int = 307) -> HttpResponse:
    return HttpResponse(status, {"location": "https://elsewhere.example/v1/prediction/"}, b"", "")


@pytest.mark.parametrize("parse", [parse_create, parse_presign, lambda answer: parse_prediction(answer, "p-1")],
                         ids=["create", "presign", "poll"])
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_unexpected_not_parsed(parse: Callable[[HttpResponse], Any], status: int) -> None:
    with pytest.raises(ProviderUnavailableError) as caught:
        parse(redirect(status))
    error = caught.value
    assert error.code == "unexpected_redirect" and error.status == status and error.retryable is False
    assert "https://elsewhere.example/v1/prediction/" in error.message and "base_url" in error.message


def test_a_redirected_upload_is_unexpected() -> None:
    error = upload_error(redirect())
    assert isinstance(error, ProviderUnavailableError) and error.code == "unexpected_redirect"


class ScriptedTransport:
    """Answers create with a prediction and every poll with ``poll_status``; records what was sent."""

    def __init__(self, poll_status: int) -> None:
        self.poll_status = poll_status
        self.sent: list[HttpRequest] = []

    def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        if request.url.endswith("/v1/prediction/"):
            return HttpResponse(200, {}, b'{"status": "success", "predictionID": "p-1"}')
        if request.url.endswith("/cancel"):
            return HttpResponse(200, {}, b'{"status": "success"}')
        return redirect(self.poll_status)


def test_a_redirected_poll_is_not_retried_and_the_prediction_is_cancelled() -> None:
    provider = EachlabsProvider(api_key="k", base_url="http://127.0.0.1:9", polling=POLICY, expected_seconds=0.01)
    transport = ScriptedTransport(poll_status=302)
    with pytest.raises(ProviderUnavailableError) as caught:
        run_flow(provider.generate_flow(provider.plan(request()), FlowContext()), transport)
    assert caught.value.code == "unexpected_redirect" and caught.value.request_id == "p-1"
    assert [(sent.method, sent.url.rsplit("/", 2)[-2:]) for sent in transport.sent] == [
        ("POST", ["prediction", ""]), ("GET", ["prediction", "p-1"]), ("POST", ["p-1", "cancel"])]


# ------------------------------------------------------------------------------ 5. width/height 1024


def test_width_and_height_of_1024_need_no_adjustment_even_when_strict() -> None:
    made = EachlabsProvider().plan(request(width=1024, height=1024), strict=True)
    assert made.warnings == ()
    notes = {line.unified_field: line for line in made.mapping if line.unified_field in ("width", "height")}
    assert set(notes) == {"width", "height"} and all(line.provider_field is None for line in notes.values())
    assert not {"width", "height"} & set(made.payloads[0]["input"])


@pytest.mark.parametrize("fields", [{"width": 1024, "height": 768}, {"width": 512}, {"height": 1152}])
def test_any_other_size_is_still_warned_and_refused_when_strict(fields: dict[str, Any]) -> None:
    made = EachlabsProvider().plan(request(**fields))
    assert [warning.field for warning in made.warnings] == [key for key, value in fields.items() if value != 1024]
    with pytest.raises(InvalidRequestError, match="strict mode"):
        EachlabsProvider().plan(request(**fields), strict=True)


# -------------------------------------------------------------------- 6. plain-string failures retryable


@pytest.mark.parametrize(("output", "retryable"), [
    ("This model is temporarily rate limited. Retry shortly.", True),  # eachlabs.md §2.6, verbatim
    ("The service is temporarily unavailable", True),
    ("Rate limit exceeded", True),
    ("GPU busy, retrying did not help; please retry later", True),
    ("CUDA out of memory", False),
    ("Cannot find the trigger word 'img' in text prompt!", False),
])
def test_plain_string_failures_that_say_try_later_are_retryable(output: str, retryable: bool) -> None:
    error: ProviderError = failure_error({"status": "error", "output": output}, "p-1")
    assert isinstance(error, GenerationFailedError) and error.retryable is retryable and error.message == output
