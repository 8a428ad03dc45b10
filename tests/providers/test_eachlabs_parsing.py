"""Every Eachlabs body in eachlabs.md (§2.2–§2.11) → the result piece or the typed error it must become.

The bodies are copied from the reference; each row says which section it comes from.
"""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any

import pytest

from photomaker_bridge import (
    AuthenticationError,
    BridgeWarning,
    ContentPolicyError,
    GenerationFailedError,
    InsufficientCreditsError,
    JobHandle,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from photomaker_bridge._http import HttpResponse
from photomaker_bridge.providers._eachlabs_parsing import (
    PredictionSnapshot,
    failure_error,
    parse_create,
    parse_prediction,
    parse_presign,
    upload_error,
)
from photomaker_bridge.providers._eachlabs_result import assemble_result

PREDICTION_ID = "1e44fdd0-a565-4f59-908c-c4625dfe5395"
REQUEST_ID = "req-7d1c"


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status, {"x-request-id": REQUEST_ID, **(headers or {})}, raw)


# ----------------------------------------------------------------------------------------------- create


def test_create_success_gives_the_prediction_id() -> None:  # §2.2
    body = {"status": "success", "message": "Prediction created successfully", "predictionID": PREDICTION_ID}
    assert parse_create(response(200, body)) == PREDICTION_ID


PAYMENT_DETAILS = ("the estimated cost of your in-flight executions exceeds your current balance ($1.00). please "
                   "wait for an active execution to finish or top up your balance")
RATE_DETAILS = ("Account rate limited: accounts with a balance of $10.00 or less are limited to 10 concurrent "
                "executions. Keep your balance above $10.00 for higher concurrency, or wait for an active "
                "execution to finish.")

CREATE_ERRORS: list[tuple[int, dict[str, Any], type[ProviderError], str, bool]] = [
    # status, body (§2.3), error class, text the message must hold, retryable
    (400, {"error": "Invalid input for model"}, ProviderRejectedError, "Invalid input for model", False),
    (400, {"error": "model field is required"}, ProviderRejectedError, "model field is required", False),
    (401, {"error": "Invalid or missing API key"}, AuthenticationError, "Invalid or missing API key", False),
    (402, {"status": 402, "error": "payment required", "details": PAYMENT_DETAILS}, InsufficientCreditsError,
     "top up your balance", False),
    (404, {"error": "Model not found"}, ProviderRejectedError, "Model not found", False),
    (422, {"error": "invalid request body"}, ProviderRejectedError, "invalid request body", False),
    (429, {"status": 429, "error": "too many requests", "details": RATE_DETAILS}, RateLimitedError,
     "limited to 10 concurrent executions", True),
    (429, {"error": "Rate limit exceeded. Please retry after 60 seconds."}, RateLimitedError, "retry after 60",
     True),
    (500, {"error": "Failed to create prediction"}, ProviderUnavailableError, "Failed to create prediction", True),
]


@pytest.mark.parametrize(("status", "body", "error_class", "text", "retryable"), CREATE_ERRORS)
def test_create_errors_become_typed_errors(status: int, body: dict[str, Any], error_class: type[ProviderError],
                                           text: str, retryable: bool) -> None:
    with pytest.raises(error_class) as caught:
        parse_create(response(status, body))
    error = caught.value
    assert type(error) is error_class
    assert text in error.message
    assert error.provider == "eachlabs" and error.status == status
    assert error.request_id == REQUEST_ID  # no prediction exists yet: the API's X-Request-Id
    assert error.raw == body
    assert error.retryable is retryable


def test_rate_limit_carries_retry_after_and_the_details_text() -> None:
    body = {"status": 429, "error": "too many requests", "details": RATE_DETAILS}
    with pytest.raises(RateLimitedError) as caught:
        parse_create(response(429, body, {"retry-after": "7"}))
    assert caught.value.retry_after == 7.0
    assert caught.value.message == "too many requests: " + RATE_DETAILS


def test_rate_limit_without_retry_after_has_no_hint() -> None:
    with pytest.raises(RateLimitedError) as caught:
        parse_create(response(429, {"error": "too many requests"}))
    assert caught.value.retry_after is None


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b""])
def test_create_error_that_is_not_json_keeps_its_text(body: bytes) -> None:
    with pytest.raises(ProviderUnavailableError) as caught:
        parse_create(response(502, body))
    assert caught.value.status == 502 and caught.value.raw == body.decode()


@pytest.mark.parametrize("body", [
    b'{"status": "success", "predictionID": "1e44',  # cut off
    b"not json",
    b"[1, 2]",
    json.dumps({"status": "success", "message": "Prediction created successfully"}).encode(),
    json.dumps({"status": "error", "message": "nope", "predictionID": PREDICTION_ID}).encode(),
])
def test_unreadable_create_answers_are_invalid_response(body: bytes) -> None:
    with pytest.raises(ProviderUnavailableError) as caught:
        parse_create(response(200, body))
    assert caught.value.code == "invalid_response" and caught.value.status == 200
    assert caught.value.request_id == REQUEST_ID


# -------------------------------------------------------------------------------------------------- get

URLS = {"get": f"https://api.eachlabs.ai/v1/prediction/{PREDICTION_ID}",
        "cancel": f"https://api.eachlabs.ai/v1/prediction/{PREDICTION_ID}/cancel"}


def prediction(status: str, output: Any = None, metrics: Any = None, **input_fields: Any) -> dict[str, Any]:
    return {"id": PREDICTION_ID, "input": {"prompt": "a man img", **input_fields}, "logs": None,
            "status": status, "output": output, "metrics": metrics if metrics is not None else {}, "urls": URLS}


@pytest.mark.parametrize(("status", "phase"), [("created", "queued"), ("starting", "queued"),
                                               ("processing", "running"), ("queued", "queued"),
                                               ("in_progress", "queued")])
def test_in_flight_statuses_keep_polling(status: str, phase: str) -> None:  # §2.5
    snapshot = parse_prediction(response(200, prediction(status)), PREDICTION_ID)
    assert snapshot.phase == phase and not snapshot.finished and snapshot.status == status
    assert snapshot.image_urls == ()


def test_in_flight_with_output_and_metrics_absent() -> None:  # §2.4: in-flight shape undocumented
    body = {"id": PREDICTION_ID, "status": "processing"}
    assert parse_prediction(response(200, body), PREDICTION_ID).phase == "running"


def test_documented_success_with_a_single_output_string() -> None:  # §2.4 documented example
    body = {"id": "abc123-def456-ghi789", "input": {"prompt": "…", "aspect_ratio": "16:9"}, "status": "success",
            "output": "https://storage.example.com/predictions/abc123/image.jpg", "logs": None,
            "metrics": {"predict_time": 12.5, "cost": 0.05}, "urls": URLS}
    snapshot = parse_prediction(response(200, body), "abc123-def456-ghi789")
    assert snapshot.finished
    assert snapshot.image_urls == ("https://storage.example.com/predictions/abc123/image.jpg",)
    assert snapshot.cost == Decimal("0.05") and snapshot.predict_time == 12.5
    assert snapshot.seed is None and snapshot.requested_images == 1
    assert snapshot.raw == body


def test_production_success_with_an_output_list() -> None:  # §2.4 production capture
    body = {"id": "1f0fdf4d", "input": {"seed": 42, "num_outputs": 2}, "logs": None, "status": "success",
            "output": ["https://cdn-us.eachlabs.ai/uploads/a.png", "https://cdn-us.eachlabs.ai/uploads/b.png"],
            "metrics": {"predict_time": 194.86, "cost": 0.2865, "tier": "cpu", "billed_seconds": 191,
                        "output_gb": 0.0024}, "urls": URLS}
    snapshot = parse_prediction(response(200, body), "1f0fdf4d")
    assert snapshot.image_urls == ("https://cdn-us.eachlabs.ai/uploads/a.png",
                                   "https://cdn-us.eachlabs.ai/uploads/b.png")
    assert snapshot.cost == Decimal("0.2865")  # exact: from the number's text, not a float
    assert snapshot.seed == 42 and snapshot.requested_images == 2


def test_success_reads_numbers_sent_as_strings_in_the_input_echo() -> None:  # §3.1 seed-page style
    body = prediction("success", ["https://x/0.png"], {"predict_time": 20.1, "cost": 0.021708},
                      seed="17", num_outputs="1", disable_safety_checker=True)
    snapshot = parse_prediction(response(200, body), PREDICTION_ID)
    assert snapshot.seed == 17 and snapshot.requested_images == 1 and snapshot.safety_checker is False


@pytest.mark.parametrize("output", [None, "", []])
def test_success_without_images_gives_an_empty_snapshot(output: Any) -> None:  # §2.4 NSFW drop
    assert parse_prediction(response(200, prediction("success", output)), PREDICTION_ID).image_urls == ()


def test_success_without_metrics_has_no_cost() -> None:
    body = prediction("success", ["https://x/0.png"])
    body.pop("metrics")
    snapshot = parse_prediction(response(200, body), PREDICTION_ID)
    assert snapshot.cost is None and snapshot.predict_time is None


CLASSIFIED_ENVELOPE = {  # §2.6 production capture
    "classification": {"category": "PROVIDER"}, "error": "Execution failed", "error_code": "PROVIDER_FAILED",
    "error_message": "exec_error", "error_step": "poll", "execution_id": "f2762a7e-2362-40cf-be4a-b0cffe2e1177",
    "model_id": "e3b3d84f", "model_slug": "eachlabs-video-api", "provider": "videoapi",
    "provider_error_code": "failed", "retryable": False, "status": "ERROR", "success": False,
}


def envelope(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {**CLASSIFIED_ENVELOPE, "error_code": code, "error_message": message, **extra}


FAILURES: list[tuple[str, Any, type[ProviderError], str | None, str, bool]] = [
    # status, output, error class, code, text the message must hold, retryable
    ("error", CLASSIFIED_ENVELOPE, GenerationFailedError, "PROVIDER_FAILED", "Execution failed: exec_error", False),
    ("failed", CLASSIFIED_ENVELOPE, GenerationFailedError, "PROVIDER_FAILED", "exec_error", False),
    ("error", "This model is temporarily rate limited. Retry shortly.", GenerationFailedError, None,
     "temporarily rate limited", True),  # a plain string that says so is retryable (review finding 6)
    ("error", envelope("PROVIDER_FAILED", "Cannot find the trigger word 'img' in text prompt!"),
     GenerationFailedError, "PROVIDER_FAILED", "Cannot find the trigger word 'img'", False),
    ("error", envelope("INPUT_DOWNLOAD_ERROR", "An input file could not be downloaded"), ProviderRejectedError,
     "INPUT_DOWNLOAD_ERROR", "could not be downloaded", False),
    ("error", envelope("INPUT_VALIDATION_ERROR", "disable_safety_checker: expected boolean, got str"),
     ProviderRejectedError, "INPUT_VALIDATION_ERROR", "expected boolean", False),
    ("error", envelope("PROVIDER_BAD_REQUEST", "bad request"), ProviderRejectedError, "PROVIDER_BAD_REQUEST",
     "bad request", False),
    ("error", envelope("PROVIDER_REJECTED", "input rejected by provider"), ProviderRejectedError,
     "PROVIDER_REJECTED", "rejected", False),
    ("error", envelope("PROVIDER_REJECTED", "NSFW content detected. Try running it again, or try a different "
                       "prompt."), ContentPolicyError, "PROVIDER_REJECTED", "NSFW", False),
    ("error", "NSFW content detected in the output", ContentPolicyError, None, "NSFW", False),
    ("error", envelope("PROVIDER_RATE_LIMIT", "slow down", retryable=None), GenerationFailedError,
     "PROVIDER_RATE_LIMIT", "slow down", True),
    ("error", envelope("PROVIDER_RATE_LIMIT", "slow down", retryable=False), GenerationFailedError,
     "PROVIDER_RATE_LIMIT", "slow down", False),
    ("error", envelope("WORKER_LOST", "worker lost", retryable=True), GenerationFailedError, "WORKER_LOST",
     "worker lost", True),
    ("error", envelope("EXECUTION_TIMEOUT", "timed out", retryable=None), GenerationFailedError,
     "EXECUTION_TIMEOUT", "timed out", True),
    ("error", [{"id": "", "status": "", "output": "", "error": "Error: Model timeout after 30s"}],
     GenerationFailedError, None, "Model timeout after 30s", False),
    ("error", None, GenerationFailedError, None, "the prediction failed", False),
]


@pytest.mark.parametrize(("status", "output", "error_class", "code", "text", "retryable"), FAILURES)
def test_failed_predictions_become_typed_errors(status: str, output: Any, error_class: type[ProviderError],
                                                code: str | None, text: str, retryable: bool) -> None:
    body = prediction(status, output, {"predict_time": 2.691812, "cost": 0})
    with pytest.raises(error_class) as caught:
        parse_prediction(response(200, body), PREDICTION_ID)
    error = caught.value
    assert type(error) is error_class
    assert text in error.message
    assert error.code == code and error.retryable is retryable
    assert error.provider == "eachlabs" and error.request_id == PREDICTION_ID and error.status == 200
    assert error.raw == body


def test_failure_without_output_reads_top_level_error_defensively() -> None:  # §2.6 third-party practice
    error = failure_error({"status": "error", "error": "boom"}, PREDICTION_ID)
    assert isinstance(error, GenerationFailedError) and error.message == "boom"


@pytest.mark.parametrize("status", ["cancelled", "canceled", "CANCELLED"])
def test_cancelled_predictions_fail_with_code_cancelled(status: str) -> None:  # §2.5, §2.8
    with pytest.raises(GenerationFailedError) as caught:
        parse_prediction(response(200, prediction(status, None, {"predict_time": 3.1, "cost": 0})), PREDICTION_ID)
    assert caught.value.code == "cancelled" and PREDICTION_ID in caught.value.message


GET_ERRORS: list[tuple[int, dict[str, Any], type[ProviderError]]] = [  # §2.7
    (404, {"error": "Prediction not found"}, ProviderRejectedError),
    (500, {"error": "Internal server error"}, ProviderUnavailableError),
    (401, {"error": "Invalid or missing API key"}, AuthenticationError),
    (503, {"error": "service unavailable"}, ProviderUnavailableError),
]


@pytest.mark.parametrize(("status", "body", "error_class"), GET_ERRORS)
def test_poll_errors_name_the_prediction(status: int, body: dict[str, Any],
                                         error_class: type[ProviderError]) -> None:
    with pytest.raises(error_class) as caught:
        parse_prediction(response(status, body), PREDICTION_ID)
    assert caught.value.message == body["error"] and caught.value.status == status
    assert caught.value.request_id == PREDICTION_ID and caught.value.raw == body


@pytest.mark.parametrize("body", [
    b'{"id": "x", "status": "succ',
    b"<html></html>",
    json.dumps({"id": PREDICTION_ID, "output": None}).encode(),  # no status
    json.dumps(prediction("success", {"url": "https://x/0.png"})).encode(),  # output not URLs
    json.dumps(prediction("success", [1, 2])).encode(),
    b'"success"',
])
def test_unreadable_poll_answers_are_invalid_response(body: bytes) -> None:
    with pytest.raises(ProviderUnavailableError) as caught:
        parse_prediction(response(200, body), PREDICTION_ID)
    assert caught.value.code == "invalid_response" and caught.value.request_id == PREDICTION_ID
    assert caught.value.retryable is True


# ----------------------------------------------------------------------------------------------- upload


def test_presign_answer() -> None:  # §2.11
    body = {"id": "0dce0f44", "presigned_url": "https://eachlabs-storage.s3.amazonaws.com/uploads/x?X-Amz-Sig=1",
            "public_url": "https://cdn-us.eachlabs.ai/uploads/0dce0f44.png", "expires_at": "2026-12-08T18:15:00Z",
            "required_headers": {"x-amz-meta-file-id": "0dce0f44"}}
    presigned = parse_presign(response(200, body))
    assert presigned.presigned_url == body["presigned_url"]
    assert presigned.public_url == body["public_url"]
    assert presigned.required_headers == {"x-amz-meta-file-id": "0dce0f44"}


@pytest.mark.parametrize(("status", "body", "error_class"), [  # §2.11
    (400, {"error": "content_type is required"}, ProviderRejectedError),
    (401, {"error": "Invalid or missing API key"}, AuthenticationError),
    (500, {"error": "Failed to generate presigned URL"}, ProviderUnavailableError),
])
def test_presign_errors(status: int, body: dict[str, Any], error_class: type[ProviderError]) -> None:
    with pytest.raises(error_class, match=body["error"]) as caught:
        parse_presign(response(status, body))
    assert caught.value.request_id == REQUEST_ID


def test_presign_without_urls_is_invalid_response() -> None:
    with pytest.raises(ProviderUnavailableError) as caught:
        parse_presign(response(200, {"id": "x", "public_url": "https://cdn/x.png"}))
    assert caught.value.code == "invalid_response"


@pytest.mark.parametrize(("status", "code", "error_class"), [
    (403, "SignatureDoesNotMatch", ProviderRejectedError),
    (400, "EntityTooLarge", ProviderRejectedError),
    (503, "SlowDown", ProviderUnavailableError),
])
def test_storage_put_errors(status: int, code: str, error_class: type[ProviderError]) -> None:
    xml = f'<?xml version="1.0"?>\n<Error><Code>{code}</Code><Message>Something about {code}</Message></Error>'
    error = upload_error(HttpResponse(status, {}, xml.encode()))
    assert type(error) is error_class and error.code == code and error.status == status
    assert f"Something about {code}" in error.message and error.raw == xml


# ----------------------------------------------------------------------------------------------- result


def snapshot(prediction_id: str, urls: tuple[str, ...], *, cost: str | None, predict_time: float | None,
             seed: int | None = 5, requested: int = 2, safety_checker: bool = True) -> PredictionSnapshot:
    return PredictionSnapshot(prediction_id=prediction_id, status="success", phase="succeeded", image_urls=urls,
                              cost=None if cost is None else Decimal(cost), predict_time=predict_time, seed=seed,
                              requested_images=requested, safety_checker=safety_checker, raw={"id": prediction_id})


def handle(*ids: str, requested: int | None = None, **details: Any) -> JobHandle:
    translation_warning = BridgeWarning(field="width", asked=512, sent=None, reason="unsupported",
                                        provider="eachlabs")
    return JobHandle(provider="eachlabs", request_ids=ids, submitted_at=datetime.datetime.now(datetime.UTC),
                     requested_images=requested, warnings=(translation_warning,), details=details)


def test_result_from_several_predictions() -> None:
    first = snapshot("p1", ("https://x/p1/0.png", "https://x/p1/1.png"), cost="0.022680", predict_time=21.0,
                     seed=5, requested=2)
    second = snapshot("p2", ("https://x/p2/0.png",), cost="0.0216", predict_time=20.0, seed=7, requested=1)
    result = assemble_result([first, second], handle("p1", "p2", requested=3, upload_seconds=0.25),
                             total_seconds=23.5)
    assert [image.url for image in result.images] == ["https://x/p1/0.png", "https://x/p1/1.png",
                                                      "https://x/p2/0.png"]
    assert [image.seed for image in result.images] == [5, 5, 7]
    assert all(image.content_type == "image/png" for image in result.images)
    assert result.cost is not None and result.cost.amount == Decimal("0.044280")
    assert result.cost.source == "reported" and result.cost.currency == "USD"
    assert result.timings.run_seconds == 21.0 and result.timings.total_seconds == 23.5
    assert result.timings.upload_seconds == 0.25
    assert result.request_ids == ("p1", "p2") and result.seed == 5 and result.requested_images == 3
    assert result.provider == "eachlabs" and [warning.field for warning in result.warnings] == ["width"]
    assert result.raw == ({"id": "p1"}, {"id": "p2"})


def test_fewer_images_than_asked_is_a_partial_result_with_a_warning() -> None:
    partial = snapshot("p1", ("https://x/p1/0.png",), cost="0.02", predict_time=20.0, requested=3)
    result = assemble_result([partial], handle("p1", requested=3))
    assert len(result.images) == 1
    warning = result.warnings[-1]
    assert warning.field == "num_images" and warning.asked == 3 and warning.sent == 1
    assert "safety checker" in warning.reason


def test_cost_is_unknown_unless_every_prediction_reported_one() -> None:
    first = snapshot("p1", ("https://x/0.png",), cost="0.02", predict_time=20.0, requested=1)
    second = snapshot("p2", ("https://x/1.png",), cost=None, predict_time=None, requested=1)
    result = assemble_result([first, second], handle("p1", "p2"))
    assert result.cost is None and result.timings.run_seconds == 20.0


def test_no_image_at_all_with_the_safety_checker_on_is_a_content_policy_error() -> None:
    with pytest.raises(ContentPolicyError) as caught:
        assemble_result([snapshot("p1", (), cost="0.02", predict_time=20.0)], handle("p1"))
    assert caught.value.code == "no_output" and caught.value.request_id == "p1"


def test_no_image_with_the_safety_checker_off_is_a_generation_failure() -> None:
    with pytest.raises(GenerationFailedError) as caught:
        assemble_result([snapshot("p1", (), cost="0.02", predict_time=20.0, safety_checker=False)], handle("p1"))
    assert caught.value.code == "no_output"
