"""The error tree: shape, fields, messages, copy/pickle, and no API key in any str or repr."""

from __future__ import annotations

import copy
import datetime
import pickle

import pytest

from photomaker_bridge import (
    AuthenticationError,
    BridgeError,
    BudgetExceededError,
    ClientClosedError,
    ConfigurationError,
    ContentPolicyError,
    GenerationFailedError,
    GenerationTimeoutError,
    InsufficientCreditsError,
    InvalidRequestError,
    JobHandle,
    JobUnknownError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
    StateUnavailableError,
    WebhookVerificationError,
    errors,
)
from photomaker_bridge._http import HttpRequest, HttpResponse

KEY = "sk-live-Zq9X7vT2mN4pL8rK3wY6"

PARENTS = {
    BudgetExceededError: BridgeError,
    ConfigurationError: BridgeError,
    ClientClosedError: ConfigurationError,
    InvalidRequestError: BridgeError,
    WebhookVerificationError: BridgeError,
    StateUnavailableError: BridgeError,
    JobUnknownError: BridgeError,
    ProviderError: BridgeError,
    AuthenticationError: ProviderError,
    InsufficientCreditsError: ProviderError,
    RateLimitedError: ProviderError,
    ProviderRejectedError: ProviderError,
    ContentPolicyError: ProviderError,
    ProviderUnavailableError: ProviderError,
    GenerationFailedError: ProviderError,
    GenerationTimeoutError: ProviderError,
}
PROVIDER_ERRORS = [cls for cls, parent in PARENTS.items() if parent is ProviderError]


def test_the_tree_is_as_drawn() -> None:
    assert set(errors.__all__) == {cls.__name__ for cls in PARENTS} | {"BridgeError"}
    assert BridgeError.__bases__ == (Exception,)
    for cls, parent in PARENTS.items():
        assert cls.__bases__[0] is parent, cls
    assert issubclass(InvalidRequestError, ValueError)


def test_the_docstring_draws_every_class_under_its_parent() -> None:
    doc = errors.__doc__ or ""
    lines = doc.splitlines()
    for name in errors.__all__:
        assert any(line.strip().lstrip("│├└─ ").startswith(name) for line in lines), name
    # Subclasses of ProviderError are drawn one level deeper than ProviderError itself.
    provider_column = next(line.index("ProviderError") for line in lines if "└── ProviderError" in line)
    for cls in PROVIDER_ERRORS:
        line = next(line for line in lines if f"── {cls.__name__} " in line)
        assert line.index(cls.__name__) > provider_column, cls


# --- InvalidRequestError ------------------------------------------------------------------------------------


def test_invalid_request_error_fields_and_message() -> None:
    error = InvalidRequestError("seed", -1, "an integer from 0 to 2**63-1, or None")
    assert (error.field, error.value, error.allowed, error.reason) == (
        "seed", -1, "an integer from 0 to 2**63-1, or None", None)
    assert str(error) == "seed: -1 is not allowed; an integer from 0 to 2**63-1, or None"


def test_invalid_request_error_with_a_reason() -> None:
    error = InvalidRequestError("images[2]", "face.gif", "a PNG, JPEG or WEBP image", reason="it is a GIF")
    assert str(error) == "images[2]: 'face.gif' is not allowed (it is a GIF); a PNG, JPEG or WEBP image"


def test_a_long_value_is_shortened_in_the_message_but_kept_whole() -> None:
    value = "x" * 500
    error = InvalidRequestError("prompt", value, "at most 300 characters")
    assert error.value == value
    shown = str(error).split(" is not allowed")[0].removeprefix("prompt: ")
    assert len(shown) == 120 and shown.endswith("...")


def test_invalid_request_error_is_caught_as_value_error_and_bridge_error() -> None:
    for catch in (ValueError, BridgeError):
        with pytest.raises(catch):
            raise InvalidRequestError("steps", 0, "at least 1")


# --- ProviderError ------------------------------------------------------------------------------------------


def test_provider_error_carries_everything_the_provider_said() -> None:
    raw = {"errors": [{"code": "invalidPositivePrompt", "message": "too short"}]}
    error = ProviderRejectedError("too short", provider="runware", status=400, code="invalidPositivePrompt",
                                  request_id="task-1", raw=raw, errors=raw["errors"])
    assert (error.provider, error.status, error.code, error.message, error.request_id, error.retryable) == (
        "runware", 400, "invalidPositivePrompt", "too short", "task-1", False)
    assert error.raw is raw
    assert error.errors == raw["errors"]
    assert str(error) == "runware HTTP 400 invalidPositivePrompt: too short (request task-1)"


def test_provider_error_str_leaves_out_what_is_unknown() -> None:
    assert str(ProviderUnavailableError("connection reset", provider="fal")) == "fal: connection reset"
    assert str(ProviderError("x", provider="eachlabs", status=500)) == "eachlabs HTTP 500: x"


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [(ProviderError, False), (AuthenticationError, False), (InsufficientCreditsError, False),
     (RateLimitedError, True), (ProviderRejectedError, False), (ContentPolicyError, False),
     (ProviderUnavailableError, True), (GenerationFailedError, False), (GenerationTimeoutError, True)],
)
def test_default_retryability(cls: type[ProviderError], retryable: bool) -> None:
    assert cls("m", provider="fal").retryable is retryable
    assert cls("m", provider="fal", retryable=not retryable).retryable is (not retryable)


def test_rate_limit_timeout_and_rejection_extras() -> None:
    assert RateLimitedError("slow down", provider="fal", retry_after=2.5).retry_after == 2.5
    assert RateLimitedError("slow down", provider="fal").retry_after is None
    assert ProviderRejectedError("bad", provider="fal").errors == []
    handle = JobHandle(provider="fal", request_ids=["req-1"],
                       submitted_at=datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC))
    timeout = GenerationTimeoutError("deadline passed", provider="fal", handle=handle, request_id="req-1")
    assert timeout.handle is handle
    assert GenerationTimeoutError("deadline passed", provider="fal").handle is None


def test_provider_error_repr_names_the_fields_and_not_raw() -> None:
    error = AuthenticationError("Invalid API key", provider="runware", status=401, code="invalidApiKey",
                                request_id="t-9", raw={"echo": KEY})
    assert repr(error) == ("AuthenticationError(provider='runware', status=401, code='invalidApiKey', "
                           "message='Invalid API key', request_id='t-9', retryable=False)")
    assert KEY not in repr(error) and KEY not in str(error)


def test_a_long_provider_message_is_shortened_in_repr() -> None:
    error = ProviderError("m" * 400, provider="fal")
    assert "m" * 118 not in repr(error) and "m" * 117 + "..." in repr(error)
    assert str(error) == "fal: " + "m" * 400


# --- copy and pickle ----------------------------------------------------------------------------------------

_SAMPLES: list[BridgeError] = [
    ConfigurationError("Set RUNWARE_API_KEY or pass api_key="),
    InvalidRequestError("images[1]", "<12 bytes>", "a PNG, JPEG or WEBP image", reason="it is empty"),
    ProviderError("boom", provider="fal", status=500, code="x", request_id="r", raw={"a": [1]}),
    RateLimitedError("slow", provider="eachlabs", status=429, retry_after=3.0),
    ProviderRejectedError("bad", provider="fal", status=422, errors=[{"loc": ["body", "seed"]}]),
    GenerationTimeoutError("late", provider="fal", handle=JobHandle(
        provider="fal", request_ids=["r1"], submitted_at=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))),
]


@pytest.mark.parametrize("error", _SAMPLES, ids=lambda error: type(error).__name__)
@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_errors_survive_copy_and_pickle(error: BridgeError, how: str) -> None:
    if how == "pickle":
        clone = pickle.loads(pickle.dumps(error))
    else:
        clone = copy.copy(error) if how == "copy" else copy.deepcopy(error)
    assert type(clone) is type(error)
    assert str(clone) == str(error) and repr(clone) == repr(error)
    assert clone.args == error.args
    assert vars(clone) == vars(error)


def test_notes_survive_pickle() -> None:
    error = InvalidRequestError("seed", -1, "at least 0")
    error.add_note("while loading request.json")
    assert pickle.loads(pickle.dumps(error)).__notes__ == ["while loading request.json"]


# --- no key anywhere ----------------------------------------------------------------------------------------


def test_http_request_repr_hides_headers_and_body_holding_the_key() -> None:
    request = HttpRequest.json("POST", "https://api.runware.ai/v1", "runware",
                               [{"taskType": "authentication", "apiKey": KEY}],
                               headers={"Authorization": f"Bearer {KEY}"})
    assert KEY.encode() in (request.body or b"") and KEY in request.headers["Authorization"]
    for text in (repr(request), str(request), repr(request.with_timeout(3.0))):
        assert KEY not in text
        assert "https://api.runware.ai/v1" in text


def test_http_response_repr_hides_headers_and_body() -> None:
    response = HttpResponse(status=401, headers={"x-echo": KEY}, body=KEY.encode(), url="https://x/")
    assert KEY not in repr(response) and "401" in repr(response)


@pytest.mark.parametrize(("module", "name", "argument"), [("runware", "RunwareProvider", "api_key"),
                                                         ("fal", "FalProvider", "key"),
                                                         ("eachlabs", "EachlabsProvider", "api_key")])
def test_an_adapter_holding_a_key_does_not_show_it(module: str, name: str, argument: str) -> None:
    adapter_module = pytest.importorskip(f"photomaker_bridge.providers.{module}")
    adapter = getattr(adapter_module, name)(**{argument: KEY})
    assert getattr(adapter, argument) == KEY  # it does hold the key...
    assert KEY not in repr(adapter) and KEY not in str(adapter)  # ...and never shows it
