"""Reading fal's answers: every success and error body of fal.md, and what fal_client raises at the seam.

Bodies are copied from docs/protocols/fal.md (§1.3 submit, §1.4 statuses and the D-ERR request-error table,
§1.6 results and validation errors, §1.7 cancel, §1.12 webhook payloads, §5 auth).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import fal_client
import fal_client.auth
import httpx
import pytest

from photomaker_bridge import (
    AuthenticationError,
    ConfigurationError,
    ContentPolicyError,
    Cost,
    GenerationFailedError,
    GenerationTimeoutError,
    InsufficientCreditsError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from photomaker_bridge.pricing import estimate_cost
from photomaker_bridge.providers._fal_client import mapped_errors, status_of
from photomaker_bridge.providers._fal_flow import FalFetch, FalStatusCheck, FalSubmit
from photomaker_bridge.providers._fal_parse import (
    FalLogLine,
    FalStatus,
    error_for_answer,
    error_for_completed,
    parse_logs,
    parse_output,
    parse_status,
    parse_submit,
    total_inference_time,
)
from photomaker_bridge.providers.fal import FalProvider

REQUEST_ID = "80e732af-660e-45cd-bd63-580e4f2a94cc"
BASE = f"https://queue.fal.run/fal-ai/photomaker/requests/{REQUEST_ID}"
URLS = {"response_url": BASE, "status_url": BASE + "/status", "cancel_url": BASE + "/cancel"}

# ------------------------------------------------------------------------------------------------- submit


def test_submit_answer() -> None:
    body = {"status": "IN_QUEUE", "request_id": REQUEST_ID, **URLS, "queue_position": 0}
    submission = parse_submit(body)
    assert (submission.request_id, submission.queue_position) == (REQUEST_ID, 0)


def test_submit_answer_without_position() -> None:
    assert parse_submit({"request_id": REQUEST_ID, **URLS}).queue_position is None


@pytest.mark.parametrize("body", [{}, {"request_id": ""}, {"request_id": 5}, [], "ok", None])
def test_submit_answer_without_request_id_is_unreadable(body: Any) -> None:
    with pytest.raises(ProviderUnavailableError) as caught:
        parse_submit(body)
    assert caught.value.provider == "fal" and caught.value.raw == body


# ------------------------------------------------------------------------------------------------- status

LOG = {"message": "Loading model", "level": "INFO", "source": "USER", "timestamp": "2025-01-01T00:00:00.000000"}

STATUS_CASES: list[tuple[dict[str, Any], FalStatus]] = [
    ({"status": "IN_QUEUE", "queue_position": 3, "request_id": REQUEST_ID, **URLS},
     FalStatus("IN_QUEUE", queue_position=3)),
    ({"status": "IN_PROGRESS", "logs": [LOG], "request_id": REQUEST_ID, **URLS},
     FalStatus("IN_PROGRESS", logs=(FalLogLine("Loading model", "INFO", "2025-01-01T00:00:00.000000"),))),
    ({"status": "IN_PROGRESS", "logs": None, "request_id": REQUEST_ID, **URLS}, FalStatus("IN_PROGRESS")),
    ({"status": "COMPLETED", "logs": None, "metrics": {"inference_time": 14.2}, "request_id": REQUEST_ID, **URLS},
     FalStatus("COMPLETED", metrics={"inference_time": 14.2})),
    ({"status": "COMPLETED", "logs": None, "metrics": {}, "error": "Runner disconnected",
      "error_type": "runner_disconnected", "response_url": BASE},
     FalStatus("COMPLETED", error="Runner disconnected", error_type="runner_disconnected")),
    ({"status": "COMPLETED", "logs": None, "metrics": {}, "error": "Request timed out",
      "error_type": "request_timeout", "response_url": BASE},
     FalStatus("COMPLETED", error="Request timed out", error_type="request_timeout")),
    # "legacy apps might not return metrics" (fal_client _parse_status).
    ({"status": "COMPLETED", "logs": None}, FalStatus("COMPLETED")),
]


@pytest.mark.parametrize(("body", "expected"), STATUS_CASES)
def test_status_bodies(body: dict[str, Any], expected: FalStatus) -> None:
    assert parse_status(body) == expected


def test_completed_status_facts() -> None:
    done = parse_status(STATUS_CASES[3][0])
    assert done.inference_time == 14.2 and not done.failed
    failed = parse_status(STATUS_CASES[4][0])
    assert failed.failed and failed.inference_time is None
    unknown = parse_status({"status": "COMPLETED", "logs": None, "metrics": {"inference_time": None}})
    assert unknown.inference_time is None


@pytest.mark.parametrize("body", [{"status": "FAILED"}, {"status": "CANCELLED"}, {}, [], "COMPLETED"])
def test_undocumented_statuses_are_unreadable(body: Any) -> None:
    # fal never sends FAILED/CANCELLED; fal_client itself raises "Unknown status" (fal.md §1.4).
    with pytest.raises(ProviderUnavailableError):
        parse_status(body, request_id=REQUEST_ID)


def test_logs_are_lenient_and_keyed_for_dedupe() -> None:
    lines = parse_logs([LOG, {"level": "INFO"}, "text", {"message": "step 1/50", "timestamp": None}])
    assert [line.message for line in lines] == ["Loading model", "step 1/50"]
    assert lines[0].key == ("2025-01-01T00:00:00.000000", "Loading model")
    assert parse_logs(None) == () and parse_logs("Loading") == ()


# ------------------------------------------------------------------------------------------------- result

SEED_IMAGE = {"height": 1024, "width": 1024, "file_name": "87374b9db2b74f5792839b19d9b29a9a.png",
              "file_size": 1785567, "content_type": "image/png",
              "url": "https://storage.googleapis.com/falserverless/model_tests/photomaker/elon-output.png"}


def test_result_with_seed() -> None:
    output = parse_output({"images": [SEED_IMAGE, {**SEED_IMAGE, "url": "https://v3.fal.media/files/b.png"}],
                           "seed": 42})
    assert output.seed == 42
    assert [(image.url, image.content_type, image.width, image.height, image.seed) for image in output.images] == [
        (SEED_IMAGE["url"], "image/png", 1024, 1024, 42),
        ("https://v3.fal.media/files/b.png", "image/png", 1024, 1024, 42)]


def test_result_as_in_the_seed_example_without_seed() -> None:
    output = parse_output({"images": [SEED_IMAGE]})
    assert output.seed is None and output.images[0].url == SEED_IMAGE["url"]


def test_result_image_with_only_a_url() -> None:
    image = parse_output({"images": [{"url": "https://v3.fal.media/files/x.png"}], "seed": 1}).images[0]
    assert (image.url, image.content_type, image.width) == ("https://v3.fal.media/files/x.png", None, None)


def test_result_image_inlined_as_data_uri() -> None:
    image = parse_output({"images": [{"url": "data:image/png;base64,iVBORw0KGgo=", "width": 1}], "seed": 1}).images[0]
    assert image.url is None and image.data == b"\x89PNG\r\n\x1a\n" and image.content_type == "image/png"


@pytest.mark.parametrize("body", [{}, {"images": None}, {"images": [{"file_name": "x.png"}]},
                                  {"images": [{"url": "data:image/png;base64,***"}]}, "text", []])
def test_unreadable_results(body: Any) -> None:
    with pytest.raises(ProviderUnavailableError) as caught:
        parse_output(body, request_id=REQUEST_ID)
    assert caught.value.request_id == REQUEST_ID and caught.value.raw == body


def test_empty_images_list_is_read() -> None:
    assert parse_output({"images": [], "seed": 3}).images == ()


# ------------------------------------------------------------------------------------------------- errors

NUM_IMAGES_422 = {"detail": [{"loc": ["body", "num_images"], "msg": "ensure this value is less than or equal to 4",
                              "type": "value_error.number.not_le", "ctx": {"limit_value": 4}}]}


def test_validation_error_names_the_fields() -> None:
    error = error_for_answer(422, NUM_IMAGES_422, {"x-fal-request-id": REQUEST_ID})
    assert isinstance(error, ProviderRejectedError)
    assert error.errors == NUM_IMAGES_422["detail"]
    assert "num_images: ensure this value is less than or equal to 4" in error.message
    assert (error.provider, error.status, error.request_id, error.raw) == ("fal", 422, REQUEST_ID, NUM_IMAGES_422)
    assert not error.retryable


def test_validation_error_with_several_fields() -> None:
    body = {"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "value_error.missing"},
                       {"loc": ["body", "guidance_scale"], "msg": "ensure this value is greater than or equal to 0.1",
                        "type": "value_error.number.not_ge"}]}
    error = error_for_answer(422, body, request_id=REQUEST_ID)
    assert isinstance(error, ProviderRejectedError) and len(error.errors) == 2
    assert "prompt: field required" in error.message and "guidance_scale:" in error.message
    assert error.request_id == REQUEST_ID


def test_webhook_error_payload_shape() -> None:
    # fal.md §1.12: the payload of an ERROR webhook is the same 422 body.
    body = {"detail": [{"loc": ["body", "model_name"], "msg": "field required", "type": "value_error.missing"}]}
    error = error_for_answer(422, body)
    assert isinstance(error, ProviderRejectedError) and "model_name: field required" in error.message


def test_validation_error_with_a_string_detail() -> None:
    error = error_for_answer(422, {"detail": "Invalid archive"})
    assert isinstance(error, ProviderRejectedError) and error.message == "Invalid archive" and error.errors == []


def test_content_policy_detail() -> None:
    body = {"detail": [{"loc": ["body", "prompt"], "msg": "The content could not be processed",
                        "type": "content_policy_violation", "url": "https://docs.fal.ai/errors#content_policy_violation"}]}
    error = error_for_answer(422, body)
    assert isinstance(error, ContentPolicyError) and error.code == "content_policy_violation"


# fal.md §1.4 request errors: (error_type, status) -> (class, retryable).
REQUEST_ERRORS: list[tuple[str, int, type[ProviderError], bool]] = [
    ("request_timeout", 504, GenerationFailedError, True),
    ("startup_timeout", 504, ProviderUnavailableError, True),
    ("runner_scheduling_failure", 503, ProviderUnavailableError, True),
    ("runner_connection_timeout", 503, ProviderUnavailableError, True),
    ("runner_disconnected", 503, GenerationFailedError, True),
    ("runner_connection_refused", 503, ProviderUnavailableError, True),
    ("runner_connection_error", 503, ProviderUnavailableError, True),
    ("runner_incomplete_response", 502, GenerationFailedError, True),
    ("runner_server_error", 500, GenerationFailedError, True),
    ("client_disconnected", 499, GenerationFailedError, True),
    ("client_cancelled", 499, GenerationFailedError, False),
    ("bad_request", 400, ProviderRejectedError, False),
    ("internal_error", 500, ProviderUnavailableError, True),
]


@pytest.mark.parametrize(("error_type", "status", "expected", "retryable"), REQUEST_ERRORS)
def test_request_errors_in_the_body(error_type: str, status: int, expected: type[ProviderError],
                                    retryable: bool) -> None:
    body = {"detail": "Request failed", "error_type": error_type}
    error = error_for_answer(status, body, {"X-Fal-Error-Type": error_type}, request_id=REQUEST_ID)
    assert type(error) is expected
    assert (error.retryable, error.code, error.status, error.message, error.raw) == (
        retryable, error_type, status, "Request failed", body)


@pytest.mark.parametrize(("error_type", "status", "expected", "retryable"), REQUEST_ERRORS)
def test_request_errors_in_a_completed_status(error_type: str, status: int, expected: type[ProviderError],
                                              retryable: bool) -> None:
    error = error_for_completed(FalStatus("COMPLETED", error="Something", error_type=error_type),
                                request_id=REQUEST_ID)
    assert type(error) is expected
    assert (error.retryable, error.code, error.request_id, error.message) == (retryable, error_type, REQUEST_ID,
                                                                              "Something")


def test_completed_with_an_unknown_error_type() -> None:
    error = error_for_completed(FalStatus("COMPLETED", error="Boom", error_type="brand_new"), request_id=REQUEST_ID)
    assert type(error) is GenerationFailedError and error.code == "brand_new"


def test_error_type_from_the_header_only() -> None:
    error = error_for_answer(503, {"detail": "No runner"}, {"X-Fal-Error-Type": "runner_scheduling_failure"})
    assert type(error) is ProviderUnavailableError and error.code == "runner_scheduling_failure"


def test_user_start_timeout_is_not_retryable() -> None:
    headers = {"X-Fal-Error-Type": "request_timeout", "X-Fal-Request-Timeout-Type": "user"}
    error = error_for_answer(504, {"detail": "Request timed out", "error_type": "request_timeout"}, headers)
    assert type(error) is GenerationFailedError and not error.retryable


@pytest.mark.parametrize(("status", "body", "headers", "expected"), [
    (401, {"detail": "Unauthorized"}, {}, AuthenticationError),
    (403, {"detail": "Forbidden"}, {}, AuthenticationError),
    (402, {"detail": "User is locked. Reason: Exhausted balance."}, {}, InsufficientCreditsError),
    (404, {"detail": "Request not found"}, {}, ProviderRejectedError),
    (400, {"status": "ALREADY_COMPLETED"}, {}, ProviderRejectedError),
    (429, {"detail": "Too many requests"}, {"Retry-After": "7"}, RateLimitedError),
    (503, "<html><center>nginx</center></html>", {}, ProviderUnavailableError),
    (500, "", {}, ProviderUnavailableError),
])
def test_http_statuses(status: int, body: Any, headers: dict[str, str], expected: type[ProviderError]) -> None:
    error = error_for_answer(status, body, headers, request_id=REQUEST_ID)
    assert type(error) is expected and error.status == status and error.raw == body


def test_auth_error_says_what_to_do() -> None:
    error = error_for_answer(401, {"detail": "Unauthorized"})
    assert "FAL_KEY" in str(error) and "key=" in str(error)


def test_rate_limit_carries_retry_after() -> None:
    error = error_for_answer(429, {"detail": "Too many requests"}, {"retry-after": "7"})
    assert isinstance(error, RateLimitedError) and error.retry_after == 7.0 and error.retryable


def test_request_id_known_else_from_the_header() -> None:
    # A status/result/cancel call knows its request; a submit learns it from x-fal-request-id, if sent.
    assert error_for_answer(500, {}, {"X-Fal-Request-Id": "from-header"}, request_id="known").request_id == "known"
    assert error_for_answer(500, {}, {"X-Fal-Request-Id": "from-header"}).request_id == "from-header"
    assert error_for_answer(500, {}, {}).request_id is None


# --------------------------------------------------------------------------------------------------- cost


def test_cost_is_estimated_from_inference_time() -> None:
    assert estimate_cost("fal", "fal-ai/photomaker", seconds=[14.2]) == Cost(Decimal("0.014200"), "USD", "estimated")
    assert estimate_cost("fal", "fal-ai/photomaker", seconds=[10.0, 4.5]) == Cost(Decimal("0.014500"),
                                                                                   source="estimated")


def test_cost_is_none_without_inference_time() -> None:
    assert estimate_cost("fal", "fal-ai/photomaker", seconds=[14.2, None]) is None
    assert estimate_cost("fal", "fal-ai/photomaker", seconds=[]) is None
    assert estimate_cost("fal", "someone/else", seconds=[3.0]) is None


def test_total_inference_time() -> None:
    done = FalStatus("COMPLETED", metrics={"inference_time": 2.5})
    assert total_inference_time([done, done]) == 5.0
    assert total_inference_time([done, FalStatus("COMPLETED")]) is None
    assert total_inference_time([done, None]) is None


# ------------------------------------------------------------------------------------ the fal_client seam


def http_error(status: int, body: Any, headers: dict[str, str] | None = None) -> fal_client.FalClientHTTPError:
    """What fal_client's _raise_for_status raises for this answer (fal.md §1.6)."""
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    response = httpx.Response(status, content=content, headers=headers or {},
                              request=httpx.Request("GET", BASE))
    error_type = (body.get("error_type") if isinstance(body, dict) else None) or response.headers.get(
        "x-fal-error-type")
    message = body.get("detail", response.text) if isinstance(body, dict) else response.text
    return fal_client.FalClientHTTPError(message, status, dict(response.headers), response=response,
                                         error_type=error_type)


def mapped(raised: BaseException, operation: Any = None) -> BaseException:
    operation = operation or FalStatusCheck("fal-ai/photomaker", REQUEST_ID, True)
    request_id = getattr(operation, "request_id", None)
    with pytest.raises(Exception) as caught, mapped_errors(request_id, reads=not isinstance(operation, FalSubmit),
                                                           handle_for=FalProvider().handle_for):
        raise raised
    assert caught.value.__cause__ is raised
    return caught.value


def test_seam_maps_a_422_with_its_list_message() -> None:
    error = mapped(http_error(422, NUM_IMAGES_422), FalFetch("fal-ai/photomaker", REQUEST_ID))
    assert isinstance(error, ProviderRejectedError)
    assert (error.status, error.request_id, error.raw, error.errors) == (422, REQUEST_ID, NUM_IMAGES_422,
                                                                         NUM_IMAGES_422["detail"])


def test_seam_maps_429_with_headers() -> None:
    error = mapped(http_error(429, {"detail": "Too many requests"}, {"Retry-After": "2"}),
                   FalSubmit("fal-ai/photomaker", {}))
    assert isinstance(error, RateLimitedError) and error.retry_after == 2.0 and error.request_id is None


def test_seam_maps_a_request_error_with_its_request_id_header() -> None:
    error = mapped(http_error(503, {"detail": "No runner", "error_type": "runner_scheduling_failure"},
                              {"x-fal-request-id": "abc"}), FalSubmit("fal-ai/photomaker", {}))
    assert isinstance(error, ProviderUnavailableError)
    assert (error.code, error.request_id, error.status) == ("runner_scheduling_failure", "abc", 503)


def test_seam_maps_a_non_json_error_body() -> None:
    error = mapped(http_error(502, "<html>bad gateway by nginx</html>"))
    assert isinstance(error, ProviderUnavailableError) and error.raw == "<html>bad gateway by nginx</html>"


def test_seam_maps_the_timeout_error() -> None:
    error = mapped(fal_client.FalClientTimeoutError(timeout=3.0, request_id=REQUEST_ID))
    assert isinstance(error, GenerationTimeoutError)
    assert error.handle is not None and list(error.handle.request_ids) == [REQUEST_ID]


def test_seam_maps_missing_credentials() -> None:
    error = mapped(fal_client.auth.MissingCredentialsError(fal_client.auth.MISSING_CREDENTIALS_MESSAGE))
    assert isinstance(error, ConfigurationError) and "FAL_KEY" in str(error)


@pytest.mark.parametrize("raised", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                    httpx.RemoteProtocolError("Server disconnected without sending a response.")])
def test_seam_maps_raw_httpx_errors(raised: httpx.HTTPError) -> None:
    error = mapped(raised)
    assert isinstance(error, ProviderUnavailableError) and error.retryable
    assert error.provider == "fal" and error.request_id == REQUEST_ID


def test_seam_maps_malformed_json_with_the_raw_text() -> None:
    try:
        json.loads('{"status": "IN_QU')
    except json.JSONDecodeError as decode_error:
        error = mapped(decode_error)
    assert isinstance(error, ProviderUnavailableError) and error.raw == '{"status": "IN_QU'


@pytest.mark.parametrize("raised", [ValueError("Unknown status: FAILED"), KeyError("queue_position")])
def test_seam_maps_fal_client_reading_errors(raised: Exception) -> None:
    assert isinstance(mapped(raised), ProviderUnavailableError)


def test_seam_lets_our_errors_through() -> None:
    ours = ProviderRejectedError("x", provider="fal")
    with pytest.raises(ProviderRejectedError) as caught, mapped_errors(None, reads=True):
        raise ours
    assert caught.value is ours


def test_fal_client_status_objects() -> None:
    assert status_of(fal_client.Queued(position=2)) == FalStatus("IN_QUEUE", queue_position=2)
    assert status_of(fal_client.InProgress(logs=[LOG])).logs[0].message == "Loading model"
    assert status_of(fal_client.InProgress(logs=None)) == FalStatus("IN_PROGRESS")
    done = status_of(fal_client.Completed(logs=None, metrics={"inference_time": 1.5}, error="x",
                                           error_type="runner_disconnected"))
    assert (done.inference_time, done.error, done.error_type) == (1.5, "x", "runner_disconnected")
