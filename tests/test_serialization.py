"""Results, job handles and plans round-trip through JSON via the one converter."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any

import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from photomaker_bridge import (
    Attempt,
    BridgeWarning,
    Cost,
    FieldMapping,
    GeneratedImage,
    JobHandle,
    PhotoMakerResult,
    Plan,
    Timings,
    UploadPlaceholder,
)
from photomaker_bridge._convert import converter

UTC = datetime.UTC


def via_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _result() -> PhotoMakerResult:
    return PhotoMakerResult(
        images=[
            GeneratedImage(url="https://im.runware.ai/image/a.png", content_type="image/png", width=1024,
                           height=1024, seed=42, nsfw=False, provider_image_id="a"),
            GeneratedImage(data=b"\x89PNG\r\n\x1a\n\x00\xff", content_type="image/png", seed=43),
        ],
        provider="runware",
        request_ids=["task-1"],
        seed=42,
        cost=Cost(Decimal("0.0130")),
        timings=Timings(total_seconds=3.25, upload_seconds=0.5, queue_seconds=None, run_seconds=2.0),
        warnings=[BridgeWarning(field="steps", asked=150, sent=100, reason="runware accepts steps 1-100",
                                provider="runware")],
        attempts=[Attempt(provider="eachlabs", outcome="skipped", reason="circuit open (5 failures in a row)"),
                  Attempt(provider="fal", error_type="RateLimitedError", message="slow down", status=429,
                          code="rate_limited", request_ids=["req-1"], seconds=0.25, reason="first choice"),
                  Attempt(provider="runware", outcome="ok", request_ids=["task-1"], seconds=3.25,
                          cost=Cost(Decimal("0.0130")), reason="fallback after fal: RateLimitedError")],
        raw=[{"data": [{"taskType": "photoMaker", "cost": 0.013}]}],
        requested_images=2,
        created_at=datetime.datetime(2024, 6, 1, 12, 30, 5, 123456, tzinfo=UTC),
    )


def test_result_to_dict_exact() -> None:
    assert _result().to_dict() == {
        "images": [
            {"url": "https://im.runware.ai/image/a.png", "data": None, "content_type": "image/png", "width": 1024,
             "height": 1024, "seed": 42, "nsfw": False, "provider_image_id": "a"},
            {"url": None, "data": "iVBORw0KGgoA/w==", "content_type": "image/png", "width": None, "height": None,
             "seed": 43, "nsfw": None, "provider_image_id": None},
        ],
        "provider": "runware",
        "request_ids": ["task-1"],
        "seed": 42,
        "cost": {"amount": "0.0130", "currency": "USD", "source": "reported"},
        "timings": {"total_seconds": 3.25, "upload_seconds": 0.5, "queue_seconds": None, "run_seconds": 2.0},
        "warnings": [{"field": "steps", "asked": 150, "sent": 100, "reason": "runware accepts steps 1-100",
                      "provider": "runware"}],
        "attempts": [
            {"provider": "eachlabs", "outcome": "skipped", "error_type": None, "message": "", "status": None,
             "code": None, "request_ids": [], "seconds": None, "cost": None,
             "reason": "circuit open (5 failures in a row)"},
            {"provider": "fal", "outcome": "error", "error_type": "RateLimitedError", "message": "slow down",
             "status": 429, "code": "rate_limited", "request_ids": ["req-1"], "seconds": 0.25, "cost": None,
             "reason": "first choice"},
            {"provider": "runware", "outcome": "ok", "error_type": None, "message": "", "status": None, "code": None,
             "request_ids": ["task-1"], "seconds": 3.25,
             "cost": {"amount": "0.0130", "currency": "USD", "source": "reported"},
             "reason": "fallback after fal: RateLimitedError"},
        ],
        "raw": [{"data": [{"taskType": "photoMaker", "cost": 0.013}]}],
        "requested_images": 2,
        "created_at": "2024-06-01T12:30:05.123456+00:00",
    }


def test_result_round_trip() -> None:
    original = _result()
    again = PhotoMakerResult.from_dict(via_json(original.to_dict()))
    assert again == original
    assert again.cost is not None and again.cost.amount == Decimal("0.0130")
    assert str(again.cost.amount) == "0.0130"  # exact, not a float
    assert again.images[1].data == b"\x89PNG\r\n\x1a\n\x00\xff"
    assert again.created_at is not None and again.created_at.tzinfo is not None


def test_sequences_are_kept_as_tuples() -> None:
    # Lists given at construction become tuples, so a value equals its own round trip and cannot change.
    result = _result()
    for name in ("images", "request_ids", "warnings", "attempts", "raw"):
        assert isinstance(getattr(result, name), tuple), name
    handle = JobHandle(provider="fal", request_ids=["a", "b"], submitted_at=datetime.datetime(2024, 1, 1),
                       images_per_request=[4, 1])
    assert handle.request_ids == ("a", "b") and handle.images_per_request == (4, 1)


def test_minimal_result_round_trip_and_defaults() -> None:
    result = PhotoMakerResult(images=[GeneratedImage(url="https://x/y.png")], provider="fal")
    assert (result.request_ids, result.warnings, result.attempts, result.raw) == ((), (), (), ())
    assert result.timings == Timings()
    assert result.request_id is None
    assert PhotoMakerResult.from_dict(via_json(result.to_dict())) == result


def test_request_id_is_the_first() -> None:
    assert PhotoMakerResult(images=[], provider="fal", request_ids=["r1", "r2"]).request_id == "r1"


@pytest.mark.parametrize("amount", ["0.01", "0.10", "0.0065", "12345678901234567890.123456789", "0"])
def test_cost_decimals_are_exact(amount: str) -> None:
    cost = Cost(Decimal(amount), currency="EUR", source="estimated")
    data = converter.unstructure(cost)
    assert data == {"amount": amount, "currency": "EUR", "source": "estimated"}
    assert converter.structure(via_json(data), Cost) == cost


@pytest.mark.parametrize(("given", "exact"), [(0.1, "0.1"), (3, "3"), ("0.0130", "0.0130"),
                                            (Decimal("1.50"), "1.50"), (1e-7, "1E-7")])
def test_a_cost_amount_is_always_an_exact_decimal(given: Any, exact: str) -> None:
    amount = Cost(given).amount
    assert type(amount) is Decimal and str(amount) == exact


@pytest.mark.parametrize("given", [None, True, [1]])
def test_a_cost_amount_must_be_a_number(given: Any) -> None:
    with pytest.raises(TypeError, match="a cost amount is a Decimal, int, float or numeric string"):
        Cost(given)


def test_a_cost_amount_given_as_a_json_number_is_read_exactly() -> None:
    assert converter.structure({"amount": 0.1}, Cost).amount == Decimal("0.1")


def test_result_from_dict_refuses_unknown_keys() -> None:
    data = PhotoMakerResult(images=[], provider="fal").to_dict()
    data["bogus"] = 1
    with pytest.raises(cattrs.errors.ClassValidationError) as caught:
        PhotoMakerResult.from_dict(data)
    (inner,) = caught.value.exceptions
    assert isinstance(inner, cattrs.errors.ForbiddenExtraKeysError)
    assert inner.extra_fields == {"bogus"}


def test_generated_image_repr_hides_bytes() -> None:
    image = GeneratedImage(data=b"\x00" * 5000)
    assert "data=<5000 bytes>" in repr(image) and "\\x00" not in repr(image)
    assert "data=None" in repr(GeneratedImage(url="u"))


def test_bridge_warning_str() -> None:
    warning = BridgeWarning(field="steps", asked=10, sent=20, reason="fal accepts 20-100", provider="fal")
    assert str(warning) == "fal: steps: asked 10, sent 20 — fal accepts 20-100"
    assert str(BridgeWarning("width", 640, None, "not supported")) == \
        "width: asked 640, sent None — not supported"


# --- JobHandle ----------------------------------------------------------------------------------------------


def test_job_handle_round_trip() -> None:
    handle = JobHandle(
        provider="eachlabs", request_ids=["p-1", "p-2"],
        submitted_at=datetime.datetime(2024, 3, 2, 1, 0, tzinfo=UTC), requested_images=5,
        images_per_request=[4, 1],
        warnings=[BridgeWarning("num_images", 5, 4, "split into 2 calls", "eachlabs")],
        details={"model": "photomaker", "urls": ["https://x"], "n": 1.5, "flag": None},
    )
    data = via_json(handle.to_dict())
    assert data["submitted_at"] == "2024-03-02T01:00:00+00:00"
    assert data["request_ids"] == ["p-1", "p-2"]
    again = JobHandle.from_dict(data)
    assert again == handle
    assert again.request_id == "p-1"


def test_job_handles_can_key_a_dict() -> None:
    when = datetime.datetime(2024, 3, 2, tzinfo=UTC)
    first = JobHandle(provider="fal", request_ids=["r"], submitted_at=when, details={"endpoint": "fal-ai/x"})
    second = JobHandle(provider="fal", request_ids=("r",), submitted_at=when, details={"endpoint": "fal-ai/x"})
    assert first == second and hash(first) == hash(second)
    assert {first: "pending"}[second] == "pending"
    assert first != JobHandle(provider="fal", request_ids=["r"], submitted_at=when, details={"endpoint": "other"})


def test_naive_datetimes_stay_naive() -> None:
    handle = JobHandle(provider="fal", request_ids=["r"], submitted_at=datetime.datetime(2024, 1, 1, 8, 0))
    again = JobHandle.from_dict(via_json(handle.to_dict()))
    assert again == handle and again.submitted_at.tzinfo is None


# --- Plan ---------------------------------------------------------------------------------------------------


def _plan() -> Plan:
    upload = UploadPlaceholder(kind="zip", placeholder="<upload:0>", description="zip of 2 images, 1 KB",
                               image_indices=[0, 1], size=4, sha256="ab" * 32, content_type="application/zip",
                               file_name="images.zip", data=b"PK\x03\x04")
    return Plan(
        provider="fal", target="fal-ai/photomaker (queue)",
        payloads=[{"prompt": "a man img", "image_archive_url": "<upload:0>", "num_images": 4},
                  {"prompt": "a man img", "image_archive_url": "<upload:0>", "num_images": 1}],
        uploads=[upload],
        warnings=[BridgeWarning("width", 768, None, "fal does not take a size", "fal")],
        mapping=[FieldMapping("prompt", "prompt", "a man img"), FieldMapping("width", None, None, "left out")],
        images_per_payload=[4, 1],
    )


def test_plan_round_trips_through_the_converter() -> None:
    plan = _plan()
    data = via_json(converter.unstructure(plan))
    assert data["uploads"][0]["data"] == "UEsDBA=="
    again = converter.structure(data, Plan)
    assert again == plan
    assert again.uploads[0].data == b"PK\x03\x04"
    assert again.uploads[0].image_indices == (0, 1)


def test_plan_to_dict_is_json_and_leaves_out_upload_bytes() -> None:
    data = _plan().to_dict()
    assert via_json(data) == data
    assert data["uploads"] == [{
        "kind": "zip", "placeholder": "<upload:0>", "description": "zip of 2 images, 1 KB",
        "image_indices": [0, 1], "size": 4, "sha256": "ab" * 32, "content_type": "application/zip",
        "file_name": "images.zip",
    }]
    assert data["mapping"][1] == {"unified_field": "width", "provider_field": None, "value": None,
                                  "note": "left out"}
    assert data["warnings"] == [{"field": "width", "asked": 768, "sent": None, "reason": "fal does not take a size",
                                 "provider": "fal"}]
    assert data["images_per_payload"] == [4, 1]
    assert data["payloads"] == list(_plan().payloads)


def test_upload_bytes_do_not_count_for_equality_or_repr() -> None:
    plan = _plan()
    upload = plan.uploads[0]
    assert "PK" not in repr(upload)
    same_hash_other_bytes = UploadPlaceholder(**{**converter.unstructure(upload), "data": b"other",
                                                 "image_indices": (0, 1)})
    assert same_hash_other_bytes == upload


# --- properties ---------------------------------------------------------------------------------------------

_json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10) | st.floats(
    allow_nan=False, allow_infinity=False)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_datetimes = st.datetimes(timezones=st.sampled_from([UTC, datetime.timezone(datetime.timedelta(hours=-5))]))
_opt_int = st.none() | st.integers(0, 2**31)
_opt_float = st.none() | st.floats(0, 1e6, allow_nan=False)

_images = st.builds(GeneratedImage, url=st.none() | st.text(max_size=20), data=st.none() | st.binary(max_size=40),
                    content_type=st.none() | st.sampled_from(["image/png", "image/jpeg"]), width=_opt_int,
                    height=_opt_int, seed=_opt_int, nsfw=st.none() | st.booleans(),
                    provider_image_id=st.none() | st.text(max_size=10))
_warnings = st.builds(BridgeWarning, field=st.text(max_size=10), asked=_json, sent=_json, reason=st.text(max_size=20),
                      provider=st.none() | st.sampled_from(["fal", "runware", "eachlabs"]))
_costs = st.builds(Cost, amount=st.decimals(allow_nan=False, allow_infinity=False, places=6),
                   currency=st.sampled_from(["USD", "EUR"]), source=st.sampled_from(["reported", "estimated"]))
_attempts = st.builds(Attempt, provider=st.text(max_size=8),
                      outcome=st.sampled_from(["ok", "error", "skipped", "hedged", "cancelled"]),
                      error_type=st.none() | st.text(max_size=8), message=st.text(max_size=20),
                      status=st.none() | st.integers(100, 599), code=st.none() | st.text(max_size=8),
                      request_ids=st.lists(st.text(max_size=8), max_size=2), seconds=_opt_float,
                      cost=st.none() | _costs, reason=st.none() | st.text(max_size=12))
_results = st.builds(
    PhotoMakerResult, images=st.lists(_images, max_size=3), provider=st.sampled_from(["fal", "runware", "eachlabs"]),
    request_ids=st.lists(st.text(max_size=8), max_size=3), seed=_opt_int, cost=st.none() | _costs,
    timings=st.builds(Timings, total_seconds=_opt_float, upload_seconds=_opt_float, queue_seconds=_opt_float,
                      run_seconds=_opt_float),
    warnings=st.lists(_warnings, max_size=2), attempts=st.lists(_attempts, max_size=2),
    raw=st.lists(_json, max_size=2), requested_images=_opt_int, created_at=st.none() | _datetimes,
)


@given(result=_results)
def test_any_result_round_trips_through_json(result: PhotoMakerResult) -> None:
    assert PhotoMakerResult.from_dict(via_json(result.to_dict())) == result


@given(
    handle=st.builds(JobHandle, provider=st.sampled_from(["fal", "runware", "eachlabs"]),
                     request_ids=st.lists(st.text(max_size=8), min_size=1, max_size=3), submitted_at=_datetimes,
                     requested_images=_opt_int, images_per_request=st.lists(st.integers(1, 4), max_size=3),
                     warnings=st.lists(_warnings, max_size=2),
                     details=st.dictionaries(st.text(max_size=5), _json, max_size=3),
                     attempts=st.lists(_attempts, max_size=2)),
)
def test_any_job_handle_round_trips_through_json(handle: JobHandle) -> None:
    assert JobHandle.from_dict(via_json(handle.to_dict())) == handle


@given(payloads=st.lists(st.dictionaries(st.text(max_size=5), _json, max_size=3), max_size=3),
       warnings=st.lists(_warnings, max_size=2))
def test_any_plan_round_trips_through_the_converter(payloads: list[dict[str, Any]],
                                                    warnings: list[BridgeWarning]) -> None:
    plan = Plan(provider="runware", target="POST https://api.runware.ai/v1", payloads=payloads, warnings=warnings,
                images_per_payload=[1] * len(payloads))
    assert converter.structure(via_json(converter.unstructure(plan)), Plan) == plan
