"""Runware parsing: every success and error body of runware.md, as result pieces or typed errors. Pure."""

from __future__ import annotations

import base64
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from PIL import Image

from photomaker_bridge._http import HttpResponse
from photomaker_bridge.errors import (
    AuthenticationError,
    ContentPolicyError,
    GenerationFailedError,
    InsufficientCreditsError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from photomaker_bridge.providers._runware_parsing import error_from_item, parse_answer
from photomaker_bridge.providers._runware_tasks import TaskCollector, TaskInfo, summarize

TASK = "a770f077-f413-47de-9dac-be0b26a35da6"
OTHER_TASK = "6bb2cc2c-0000-4000-8000-000000000002"


def _response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status, {key.lower(): value for key, value in (headers or {}).items()}, raw)


def _collect(body: Any, *infos: TaskInfo, status: int = 200) -> list[TaskCollector]:
    answer = parse_answer(_response(body, status), request_id=infos[0].task_uuid)
    collectors = [TaskCollector(info) for info in infos]
    for collector in collectors:
        collector.add(answer)
    return collectors


def _image(task_uuid: str, index: int, **extra: Any) -> dict[str, Any]:
    image_uuid = f"77da2d99-a6d3-44d9-b8c0-{index:012d}"
    return {"taskType": "photoMaker", "taskUUID": task_uuid, "imageUUID": image_uuid,
            "imageURL": f"https://im.runware.ai/image/ws/0.5/ii/{image_uuid}.jpg", "seed": 100 + index,
            "cost": 0.0013, **extra}


# --- success bodies -------------------------------------------------------------------------------------------

def test_seed_page_success_body() -> None:
    # runware.md §2.2 / runware.md SEED "Response", verbatim.
    body = {"data": [{"taskType": "photoMaker", "taskUUID": TASK, "imageUUID": "77da2d99-a6d3-44d9-b8c0-be0b26a35da6",
                      "imageURL": "https://im.runware.ai/image/ws/0.5/ii/a770f077-f413-47de-9dac-be0b26a35da6.jpg",
                      "inputImagesUUID": ["x"], "seed": 7532114250969985124, "cost": 0.0013}]}
    (collector,) = _collect(body, TaskInfo(TASK, number_results=1, width=1024, height=768))
    summary = summarize([collector], requested=1)

    assert summary.error is None
    (image,) = summary.images
    assert image.url == body["data"][0]["imageURL"]
    assert image.provider_image_id == "77da2d99-a6d3-44d9-b8c0-be0b26a35da6"
    assert image.seed == 7532114250969985124
    assert image.content_type == "image/jpeg"  # outputFormat defaults to JPG (§5.1)
    assert (image.width, image.height) == (1024, 768)
    assert image.nsfw is None and image.data is None
    assert summary.cost is not None
    assert (summary.cost.amount, summary.cost.currency, summary.cost.source) == (Decimal("0.0013"), "USD", "reported")
    assert summary.warnings == ()
    assert collector.done


def test_multiple_images_costs_sum_exactly_and_duplicates_are_dropped() -> None:
    # §3.2: images may arrive several per message and twice; the legacy SDK dedups by imageUUID.
    body = {"data": [_image(TASK, 1), _image(TASK, 2), _image(TASK, 1), _image(TASK, 3)]}
    (collector,) = _collect(body, TaskInfo(TASK, number_results=3, output_format="PNG"))
    summary = summarize([collector], requested=3)

    assert [image.seed for image in summary.images] == [101, 102, 103]
    assert all(image.content_type == "image/png" for image in summary.images)
    assert summary.cost is not None and summary.cost.amount == Decimal("0.0039")


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("field", ["imageBase64Data", "imageDataURI"])
def test_inline_outputs_become_bytes(field: str) -> None:
    data = _png(40, 24)
    encoded = base64.b64encode(data).decode()
    value = encoded if field == "imageBase64Data" else f"data:image/png;base64,{encoded}"
    body = {"data": [{"taskType": "photoMaker", "taskUUID": TASK, "imageUUID": "u-1", field: value, "seed": 5}]}
    (collector,) = _collect(body, TaskInfo(TASK, number_results=1, output_format="JPG", width=1024, height=1024))
    (image,) = summarize([collector], requested=1).images

    assert image.data == data and image.url is None
    assert image.content_type == "image/png"  # what the bytes are, whatever was asked
    assert (image.width, image.height) == (40, 24)  # measured from the bytes


def test_nsfw_flag_is_kept_on_the_image_and_reported() -> None:
    body = {"data": [_image(TASK, 1, NSFWContent=True), _image(TASK, 2, NSFWContent=False)]}
    (collector,) = _collect(body, TaskInfo(TASK, number_results=2))
    summary = summarize([collector], requested=2)

    assert [image.nsfw for image in summary.images] == [True, False]
    (warning,) = summary.warnings
    assert warning.field == "safety_check" and "[0]" in warning.reason


def test_fewer_images_than_asked_is_a_warning() -> None:
    (collector,) = _collect({"data": [_image(TASK, 1)]}, TaskInfo(TASK, number_results=3))
    summary = summarize([collector], requested=3)
    (warning,) = summary.warnings
    assert (warning.field, warning.asked, warning.sent) == ("num_images", 3, 1)


def test_image_upload_answer_array_and_object_forms() -> None:
    # §5.4: the SDK docs answer with an array item holding imageURL; one docs version with a bare object.
    item = {"taskType": "imageUpload", "taskUUID": TASK, "imageUUID": "989ba605-1111-4111-8111-111111111111",
            "imageURL": "https://im.runware.ai/image/ws/0.5/ii/989ba605.jpg"}
    for body in ({"data": [item]}, {"data": {key: value for key, value in item.items() if key != "imageURL"}}):
        answer = parse_answer(_response(body), request_id=TASK)
        assert [found.image_uuid for found in answer.items_for(TASK)] == [item["imageUUID"]]
        assert answer.failures == ()


def test_async_acknowledgement_carries_no_image() -> None:
    # §4.1: the recommended ACK is {taskType, taskUUID}; the new SDK's mocks answer {"data": []}.
    bodies: list[dict[str, Any]] = [{"data": [{"taskType": "photoMaker", "taskUUID": TASK}]}, {"data": []}]
    for body in bodies:
        (collector,) = _collect(body, TaskInfo(TASK, number_results=2))
        assert collector.images == {} and collector.failures == [] and not collector.done


def test_get_response_processing_then_success_is_cumulative() -> None:
    # §4.2: every poll returns the task's whole state; images are deduplicated across polls.
    collector = TaskCollector(TaskInfo(TASK, number_results=2))
    first = {"data": [{**_image(TASK, 1), "status": "success"},
                      {"taskType": "photoMaker", "taskUUID": TASK, "status": "processing", "progress": 40}]}
    collector.add(parse_answer(_response(first)))
    assert (len(collector.images), collector.pending, collector.done) == (1, 1, False)
    second = {"data": [{**_image(TASK, 1), "status": "success"}, {**_image(TASK, 2), "status": "success"}]}
    collector.add(parse_answer(_response(second)))
    assert (len(collector.images), collector.pending, collector.done) == (2, 0, True)


@pytest.mark.parametrize("status", ["pending", "queued", "scheduled", "waiting"])
def test_other_pending_spellings(status: str) -> None:
    collector = TaskCollector(TaskInfo(TASK, number_results=1))
    collector.add(parse_answer(_response({"data": [{"taskUUID": TASK, "status": status}]})))
    assert collector.pending == 1 and not collector.done


def test_task_known_only_by_id_is_done_when_nothing_is_processing() -> None:
    collector = TaskCollector(TaskInfo.from_details(TASK, None))
    collector.add(parse_answer(_response({"data": [{**_image(TASK, 1), "status": "success"}]})))
    assert collector.done
    (image,) = collector.images.values()
    assert image.content_type == "image/jpeg"  # from the URL's extension when the task is unknown
    assert image.width is None


# --- error bodies ---------------------------------------------------------------------------------------------

INVALID_API_KEY = {"errors": [{"code": "invalidApiKey",
                               "message": "Invalid API key. Get one at https://my.runware.ai/signup",
                               "parameter": "apiKey", "taskType": "authentication"}]}  # §2.3 D-ERR, verbatim
POSITIVE_PROMPT_CAPTURE = {"errors": [{
    "code": "invalidPositivePrompt",
    "message": "Invalid value for positivePrompt parameter. Positive prompt must be a string value.",
    "parameter": "positivePrompt", "type": "string",
    "documentation": "https://docs.runware.ai/en/image-inference#positiveprompt", "taskUUID": TASK}]}  # ISS #26
CUSTOM_HEIGHT = {"data": [], "errors": [{"code": "invalidCustomHeight", "message": "Invalid height.",
                                         "parameter": "height", "type": "integer", "min": 128, "max": 2048,
                                         "multiplier": 64, "taskUUID": TASK}]}  # §2.3 CLI fixture
PARAMETER_ARRAY = {"errors": [{"code": "incompatibleParameters", "message": "These cannot go together.",
                               "parameter": ["positivePrompt", "model"], "taskUUID": TASK}]}
LEGACY_WS_AUTH = {"error": True, "errorMessageContentId": 1212, "errorId": 19, "errorMessage": "Invalid api key"}
SINGULAR_ERROR = {"error": {"code": "insufficientCredits", "message": "Not enough credits", "taskUUID": TASK}}
ERROR_IN_DATA = {"data": [{"code": "invalidWidth", "message": "Invalid width.", "parameter": "width",
                           "taskType": "photoMaker", "taskUUID": TASK}]}
PER_ITEM_ERROR = {"data": [{"taskUUID": TASK, "imageUUID": "fail-2", "status": "error",
                            "error": {"code": "inferenceError", "message": "one of N failed"}}]}  # §2.5 NEWPY


@pytest.mark.parametrize(("body", "status", "error_class", "code", "request_id", "in_message"), [
    (INVALID_API_KEY, 401, AuthenticationError, "invalidApiKey", TASK, "Invalid API key"),
    (POSITIVE_PROMPT_CAPTURE, 400, ProviderRejectedError, "invalidPositivePrompt", TASK, "positivePrompt"),
    (CUSTOM_HEIGHT, 400, ProviderRejectedError, "invalidCustomHeight", TASK, "parameter: height"),
    (PARAMETER_ARRAY, 400, ProviderRejectedError, "incompatibleParameters", TASK, "positivePrompt, model"),
    (LEGACY_WS_AUTH, 200, AuthenticationError, "19", TASK, "Invalid api key"),
    (SINGULAR_ERROR, 402, InsufficientCreditsError, "insufficientCredits", TASK, "Not enough credits"),
    (ERROR_IN_DATA, 400, ProviderRejectedError, "invalidWidth", TASK, "Invalid width."),
    (PER_ITEM_ERROR, 200, GenerationFailedError, "inferenceError", TASK, "one of N failed"),
])
def test_error_shapes(body: dict[str, Any], status: int, error_class: type[ProviderError], code: str,
                      request_id: str, in_message: str) -> None:
    (collector,) = _collect(body, TaskInfo(TASK, number_results=1), status=status)
    summary = summarize([collector], requested=1)
    error = summary.error

    assert type(error) is error_class
    assert error.provider == "runware"
    assert error.status == status
    assert error.code == code
    assert error.request_id == request_id
    assert in_message in error.message
    assert error.raw == body


def test_rejected_error_lists_every_complaint() -> None:
    body = {"errors": [{"code": "invalidWidth", "message": "w", "taskUUID": TASK},
                       {"code": "invalidHeight", "message": "h", "taskUUID": TASK}]}
    answer = parse_answer(_response(body, 400), request_id=TASK)
    error = answer.failures_for(TASK)[0]
    assert isinstance(error, ProviderRejectedError)
    assert [item["code"] for item in error.errors] == ["invalidWidth", "invalidHeight"]


# Every code of runware.md §6, with the class and retryability the adapter gives it.
CODE_TABLE: list[tuple[str, type[ProviderError], bool]] = [
    ("invalidApiKey", AuthenticationError, False),
    ("missingApiKey", AuthenticationError, False),
    ("invalidPositivePromptLength", ProviderRejectedError, False),
    ("missingPositivePrompt", ProviderRejectedError, False),
    ("invalidCustomWidth", ProviderRejectedError, False),
    ("insufficientCredits", InsufficientCreditsError, False),
    ("conflictTaskUUID", ProviderRejectedError, False),
    ("unknownParameter", ProviderRejectedError, False),
    ("unsupportedParameter", ProviderRejectedError, False),
    ("incompatibleParameters", ProviderRejectedError, False),
    ("valueTooLarge", ProviderRejectedError, False),
    ("arrayTooSmall", ProviderRejectedError, False),
    ("rateLimitExceeded", RateLimitedError, True),
    ("inferenceRateLimitExceeded", RateLimitedError, True),
    ("nsfwContentDetected", ContentPolicyError, False),
    ("contentPolicyViolation", ContentPolicyError, False),
    ("promptBlocked", ContentPolicyError, False),
    ("imageBlocked", ContentPolicyError, False),
    ("timeoutProvider", GenerationFailedError, True),
    ("inferenceError", GenerationFailedError, True),
    ("taskFailed", GenerationFailedError, False),
    ("noAvailableServer", GenerationFailedError, True),
    ("modelUnavailable", GenerationFailedError, True),
    ("modelNotFound", ProviderRejectedError, False),
    ("taskNotFound", ProviderRejectedError, False),
    ("taskExpired", ProviderRejectedError, False),
    ("taskFailedOrNotFound", GenerationFailedError, False),
    ("mediaNotFound", ProviderRejectedError, False),
    ("internalServerError", ProviderUnavailableError, True),
    ("serviceUnavailable", ProviderUnavailableError, True),
    ("unknownError", ProviderUnavailableError, True),
]


@pytest.mark.parametrize(("code", "error_class", "retryable"), CODE_TABLE)
def test_error_code_table(code: str, error_class: type[ProviderError], retryable: bool) -> None:
    body = {"errors": [{"code": code, "message": f"about {code}", "taskUUID": OTHER_TASK}]}
    error = error_from_item(body["errors"][0], status=200, raw=body, request_id=TASK)
    assert type(error) is error_class
    assert (error.code, error.retryable, error.request_id, error.raw) == (code, retryable, OTHER_TASK, body)
    assert error.message == f"about {code}"


def test_rate_limit_carries_retry_after() -> None:
    body = {"errors": [{"code": "rateLimitExceeded", "message": "Too many requests"}]}
    answer = parse_answer(_response(body, 429, {"Retry-After": "7"}), request_id=TASK)
    (error,) = answer.failures_for(TASK)
    assert isinstance(error, RateLimitedError)
    assert (error.retry_after, error.status, error.request_id) == (7.0, 429, TASK)


@pytest.mark.parametrize(("code", "status", "error_class"), [
    ("somethingNew", 200, GenerationFailedError),  # accepted task reported failed
    ("somethingNew", 403, AuthenticationError),  # unknown code: the status decides
    ("somethingNew", 503, ProviderUnavailableError),
    ("invalidSomethingNew", 400, ProviderRejectedError),
    ("notEnoughCreditsLeft", 400, InsufficientCreditsError),
    ("accountBalanceTooLow", 200, InsufficientCreditsError),
])
def test_unknown_codes(code: str, status: int, error_class: type[ProviderError]) -> None:
    error = error_from_item({"code": code, "message": "m"}, status=status, raw={}, request_id=TASK)
    assert type(error) is error_class and error.code == code


# --- partial success ------------------------------------------------------------------------------------------

def test_mixed_body_keeps_the_images_and_turns_errors_into_warnings() -> None:
    # §2.5: errors are scoped to the task that failed, other tasks in the same request may succeed.
    body = {"data": [_image(TASK, 1), _image(TASK, 2)],
            "errors": [{"code": "inferenceError", "message": "GPU fell over", "taskUUID": OTHER_TASK}]}
    collectors = _collect(body, TaskInfo(TASK, number_results=2), TaskInfo(OTHER_TASK, number_results=2))
    summary = summarize(collectors, requested=4)

    assert summary.error is None
    assert len(summary.images) == 2
    (warning,) = summary.warnings
    assert (warning.field, warning.asked, warning.sent) == ("num_images", 4, 2)
    assert OTHER_TASK in warning.reason and "inferenceError" in warning.reason
    assert summary.cost is not None and summary.cost.amount == Decimal("0.0026")


def test_same_task_success_and_error_items() -> None:
    # NEWTS rest-polling: data [success, success] with errors [{code, message, taskUUID}] for the same task.
    body = {"data": [_image(TASK, 1), _image(TASK, 2)],
            "errors": [{"code": "inferenceError", "message": "third failed", "taskUUID": TASK}]}
    (collector,) = _collect(body, TaskInfo(TASK, number_results=3))
    summary = summarize([collector], requested=3)
    assert len(summary.images) == 2 and len(summary.warnings) == 1 and collector.done


def test_all_tasks_failed_gives_the_first_error_in_task_order() -> None:
    body = {"errors": [{"code": "imageBlocked", "message": "second", "taskUUID": OTHER_TASK},
                       {"code": "promptBlocked", "message": "first", "taskUUID": TASK}]}
    collectors = _collect(body, TaskInfo(TASK), TaskInfo(OTHER_TASK), status=400)
    error = summarize(collectors, requested=2).error
    assert isinstance(error, ContentPolicyError) and error.code == "promptBlocked"


def test_error_without_task_concerns_every_task() -> None:
    collectors = _collect(INVALID_API_KEY, TaskInfo(TASK), TaskInfo(OTHER_TASK), status=401)
    assert all(isinstance(collector.failures[0], AuthenticationError) for collector in collectors)


def test_no_image_and_no_error_is_a_failed_generation() -> None:
    (collector,) = _collect({"data": []}, TaskInfo(TASK, number_results=1))
    error = summarize([collector], requested=1).error
    assert isinstance(error, GenerationFailedError) and error.retryable and error.request_id == TASK


# --- unreadable answers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "status", "error_class", "code"), [
    (b"<html>oops</html>", 200, ProviderUnavailableError, "invalid_response"),
    (b'{"data": [', 200, ProviderUnavailableError, "invalid_response"),
    (b"", 200, ProviderUnavailableError, "invalid_response"),
    (b"[1, 2]", 200, ProviderUnavailableError, "invalid_response"),
    (b"{}", 200, ProviderUnavailableError, "invalid_response"),
    (b'{"data": ["not an object"]}', 200, ProviderUnavailableError, "invalid_response"),
    (b'{"data": [{"taskUUID": "t", "seed": "abc"}]}', 200, ProviderUnavailableError, "invalid_response"),
    (b'{"data": [{"taskUUID": "t", "NSFWContent": "maybe"}]}', 200, ProviderUnavailableError, "invalid_response"),
    (b"Unauthorized", 401, AuthenticationError, None),
    (b"<html>Bad Gateway</html>", 502, ProviderUnavailableError, None),
    (b"{}", 500, ProviderUnavailableError, None),
])
def test_unreadable_answers(body: bytes, status: int, error_class: type[ProviderError], code: str | None) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_answer(_response(body, status), request_id=TASK)
    error = caught.value
    assert type(error) is error_class
    assert (error.provider, error.status, error.code, error.request_id) == ("runware", status, code, TASK)
    assert error.raw is not None


def test_non_json_429_still_carries_retry_after() -> None:
    with pytest.raises(RateLimitedError) as caught:
        parse_answer(_response(b"slow down", 429, {"Retry-After": "3"}), request_id=TASK)
    assert caught.value.retry_after == 3.0 and caught.value.raw == "slow down"


def test_invalid_base64_image_is_an_invalid_response() -> None:
    body = {"data": [{"taskUUID": TASK, "imageUUID": "u", "imageBase64Data": "!!!not base64!!!"}]}
    collector = TaskCollector(TaskInfo(TASK))
    with pytest.raises(ProviderUnavailableError) as caught:
        collector.add(parse_answer(_response(body)))
    assert caught.value.code == "invalid_response" and caught.value.request_id == TASK


def test_numbers_sent_as_strings_are_read() -> None:
    # The legacy SDK coerces int/float fields sent as strings (§5.2).
    body = {"data": [{**_image(TASK, 1), "seed": "12", "cost": "0.0040"}]}
    (collector,) = _collect(body, TaskInfo(TASK, number_results=1))
    summary = summarize([collector], requested=1)
    assert summary.images[0].seed == 12
    assert summary.cost is not None and summary.cost.amount == Decimal("0.0040")


def test_task_info_round_trips_through_handle_details() -> None:
    task = {"taskUUID": TASK, "numberResults": 3, "outputFormat": "WEBP", "width": 512, "height": 768}
    info = TaskInfo.from_task(task)
    assert TaskInfo.from_details(TASK, json.loads(json.dumps(info.to_details()))) == info
