"""Every exception photomaker-bridge raises, in one tree.

::

    BridgeError                       base of everything below
    ├── ConfigurationError            missing key, unknown provider, bad client setup; raised before any request
    │   └── ClientClosedError         the client was used after close() / aclose()
    ├── InvalidRequestError           bad input, caught before anything is sent (names field, value, allowed)
    ├── WebhookVerificationError      a webhook delivery whose signature or timestamp does not check out
    ├── BudgetExceededError           the call's or the client's spend cap would be passed; nothing was sent
    ├── StateUnavailableError         the shared state (Redis) could not be reached; carries any accepted handle
    ├── JobUnknownError               an idempotency key's earlier submission ended unanswered; not sent again
    └── ProviderError                 the provider (or the way to it) failed: provider, status, code, message,
        │                             request_id, retryable, raw
        ├── AuthenticationError       the key was refused (401/403, invalidApiKey)
        ├── InsufficientCreditsError  the account cannot pay (402, insufficientCredits)
        ├── RateLimitedError          too many requests or jobs in flight (429); carries retry_after
        ├── ProviderRejectedError     the provider refused the input (400/422, Runware invalid*/missing*)
        ├── ContentPolicyError        the prompt, an input or an output broke a safety rule
        ├── ProviderUnavailableError  5xx, network failure, timeout talking to the provider, unreadable answer
        ├── GenerationFailedError     the job was accepted and then failed
        └── GenerationTimeoutError    the caller's deadline passed; carries the job handle to resume with

Every error a call raises carries the call's decision trail in ``attempts`` (a tuple of
:class:`~photomaker_bridge.Attempt`: each provider tried or skipped, and what came of it; docs/routing.md).

``retryable`` is true for the failures that a later identical request may not meet: rate limits,
unavailability, and job failures the provider marks as transient. A :class:`ProviderError` never carries an
API key: messages and ``raw`` bodies come from the provider's answer, which does not echo keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .result import Attempt

__all__ = [
    "AuthenticationError",
    "BridgeError",
    "BudgetExceededError",
    "ClientClosedError",
    "ConfigurationError",
    "ContentPolicyError",
    "GenerationFailedError",
    "GenerationTimeoutError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "JobUnknownError",
    "ProviderError",
    "ProviderRejectedError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "StateUnavailableError",
    "WebhookVerificationError",
]


class BridgeError(Exception):
    """Base class of every exception raised by photomaker-bridge."""

    attempts: tuple[Attempt, ...] = ()
    """The decision trail of the call that raised it: every provider tried or skipped, in order, with what came of
    each (empty for errors raised before any provider was considered, such as a bad argument)."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The subclasses take keyword-only fields, which Exception's default reduction (``cls(*args)``) cannot
        # pass back: rebuild from the message and restore every field from ``__dict__``, so that errors survive
        # ``copy.copy`` and pickling (process pools, multiprocessing queues).
        return _restore, (type(self), self.args), dict(self.__dict__)


def _restore(cls: type[BridgeError], args: tuple[Any, ...]) -> BridgeError:
    error = cls.__new__(cls, *args)
    error.args = args
    return error


class BudgetExceededError(BridgeError):
    """An attempt would pass a spend cap, so it was not sent: the call's ``Route(budget=...)`` or the client's
    ``Bridge(budget=...)``. Raised before anything is sent for that attempt (docs/routing.md, "Budgets").

    ``attempts`` lists what the call did before it stopped (earlier attempts, providers skipped for the budget).
    """

    def __init__(self, message: str, *, budget: Decimal, estimate: Decimal | None, spent: Decimal,
                 scope: Literal["call", "client"], provider: str | None = None) -> None:
        self.budget = budget
        """The cap (USD) that would be passed."""
        self.estimate = estimate
        """The estimated cost (USD) of the cheapest attempt refused, or ``None`` when no estimate was possible."""
        self.spent = spent
        """What the call (scope ``call``) or the client (scope ``client``) had spent or reserved before it."""
        self.scope = scope
        """``call`` for a route's ``budget``, ``client`` for the client's ``budget``."""
        self.provider = provider
        """The provider of the refused attempt, when there was one."""
        super().__init__(message)


class StateUnavailableError(BridgeError):
    """The shared state (``RedisState``) did not answer in time and ``on_state_error="fail"`` (docs/scaling.md).

    Raised before anything is sent when a decision needs the shared state (a provider slot, a breaker, the
    budget, the job journal). When a job was already accepted, ``handle`` is its handle: collect it with
    ``result(handle)``, so nothing accepted is lost or paid twice. (The process also writes the handle to the
    journal once the state answers again; until then — or if the process stops first — a later ``generate`` with
    the same ``idempotency_key`` waits out the claim and raises :class:`JobUnknownError`.)"""

    def __init__(self, message: str, *, handle: Any = None, backend: str = "redis") -> None:
        self.handle = handle
        """The ``JobHandle`` of a job the provider accepted before the state failed, else ``None``."""
        self.backend = backend
        """Which state failed (``"redis"``)."""
        super().__init__(message)


class JobUnknownError(BridgeError):
    """``generate(..., idempotency_key=key)`` found ``key`` claimed by a submission that ended without recording
    an answer (its process died while the provider was accepting, or not yet accepting, the job). A provider may
    have accepted it, so it is not sent again: look it up at the provider, or use a new key to pay for a new job
    (docs/scaling.md, "The job journal")."""

    def __init__(self, message: str, *, key: str) -> None:
        self.key = key
        """The idempotency key."""
        super().__init__(message)


class ConfigurationError(BridgeError):
    """The client is not set up to do what was asked: a missing key, an unknown provider name.

    Raised before any request is sent. Its message says how to fix it ("Set RUNWARE_API_KEY or pass
    api_key=").
    """


class ClientClosedError(ConfigurationError):
    """The client was used after ``close()`` / ``aclose()`` (or after leaving its ``with`` block).

    Create a new client, or keep the one you have open for as long as you use it.
    """


class InvalidRequestError(BridgeError, ValueError):
    """The request is invalid; nothing was sent.

    ``field`` names the offending field (``"images[2]"``, ``"prompt"``, ``"style"`` ...), ``value`` the value
    given (shortened when long) and ``allowed`` what would have been accepted.
    """

    def __init__(self, field: str, value: object, allowed: str, *, reason: str | None = None) -> None:
        self.field = field
        """The unified field (or CLI option) at fault, with an index for list items: ``images[1]``."""
        self.value = value
        """The value given."""
        self.allowed = allowed
        """What the field accepts, in words."""
        self.reason = reason
        """Why the value was refused, when that says more than ``allowed``."""
        shown = _shorten(repr(value))
        message = f"{field}: {shown} is not allowed; {allowed}"
        if reason:
            message = f"{field}: {shown} is not allowed ({reason}); {allowed}"
        super().__init__(message)


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class WebhookVerificationError(BridgeError):
    """A webhook body failed verification (:func:`photomaker_bridge.webhooks.verify_fal_signature`): a missing
    header, a signature no published key made, or a timestamp outside the tolerance. Answer the delivery with
    an error status and do not trust its content."""


class ProviderError(BridgeError):
    """The provider answered with an error, or could not be reached.

    Every field is what the provider said, so nothing is lost on the way to the caller.
    """

    default_retryable: bool = False

    may_have_accepted: bool = False
    """Whether the provider may have accepted a (billed) job whose id the bridge never learnt: a job-creating
    request whose answer was lost. Such a job can be neither collected nor cancelled from here, so a route stops
    instead of paying a second provider (docs/routing.md, "Policies")."""

    never_accepted: bool = False
    """Whether the provider says it never had the job: Runware's ``getResponse`` knows none of the taskUUIDs of a
    handle given before its tasks were sent (``Event.accepted`` false) — the request never arrived. Nothing was
    created or billed, so the job may be sent again (the batch runner does, docs/compare-and-batch.md)."""

    handle: Any = None
    """The :class:`~photomaker_bridge.JobHandle` of an accepted job that may still deliver, and be billed, when
    collecting it failed for good: left running (``generate(keep_running=True)``, ``result``, Runware with no
    cancel, a cancel that failed), or completed but its result could not be fetched. Collect it later with
    ``result(handle)``. A route stops on such an error rather than pay a second provider (docs/routing.md).
    ``None`` otherwise, and when the provider says it does not know the job (404, 410).
    (:class:`GenerationTimeoutError` sets its own.)"""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        raw: Any = None,
    ) -> None:
        self.message = message
        """The provider's own message (or ours, for a network failure), followed where it matters by what became
        of the rest of the job ("cancelled: ...", "still running, resume with request id ...")."""
        self.provider = provider
        """``"runware"``, ``"fal"`` or ``"eachlabs"``."""
        self.status = status
        """The HTTP status of the answer, or ``None`` when there was no HTTP answer (network, WebSocket)."""
        self.code = code
        """The provider's error code (``invalidApiKey``, ``request_timeout``, ``INPUT_DOWNLOAD_ERROR`` ...)."""
        self.request_id = request_id
        """The provider's id of the request or job (taskUUID, fal request_id, Eachlabs predictionID)."""
        self.retryable = self.default_retryable if retryable is None else retryable
        """Whether sending the same request again later may succeed."""
        self.raw = raw
        """The provider's answer as received: parsed JSON when it was JSON, else text."""
        super().__init__(message)

    def __str__(self) -> str:
        parts = [f"{self.provider}"]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(self.code)
        head = " ".join(parts)
        suffix = f" (request {self.request_id})" if self.request_id else ""
        return f"{head}: {self.message}{suffix}"

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(provider={self.provider!r}, status={self.status!r}, code={self.code!r}, "
                f"message={_shorten(self.message)!r}, request_id={self.request_id!r}, "
                f"retryable={self.retryable!r})")


class AuthenticationError(ProviderError):
    """The provider refused the API key (missing, wrong, revoked, or without permission)."""


class InsufficientCreditsError(ProviderError):
    """The account's balance cannot pay for the request."""


class RateLimitedError(ProviderError):
    """Too many requests, or too many jobs in flight. ``retry_after`` is the provider's hint in seconds."""

    default_retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **fields: Any) -> None:
        self.retry_after = retry_after
        """Seconds the provider asked to wait (``Retry-After``), or ``None`` when it gave no hint."""
        super().__init__(message, **fields)


class ProviderRejectedError(ProviderError):
    """The provider refused the input (out of range, wrong type, missing field, unusable reference image).

    ``errors`` lists each complaint when the provider gave several (fal's 422 ``detail`` list).
    """

    def __init__(self, message: str, *, errors: Sequence[Any] = (), **fields: Any) -> None:
        self.errors = list(errors)
        """Each individual complaint as the provider sent it (may be empty)."""
        super().__init__(message, **fields)


class ContentPolicyError(ProviderError):
    """A prompt, a reference image or a result broke the provider's content policy."""


class ProviderUnavailableError(ProviderError):
    """The provider could not serve the request: 5xx, a network failure, a timeout, or an unreadable answer."""

    default_retryable = True


class GenerationFailedError(ProviderError):
    """The provider accepted the job and then reported that it failed."""


class GenerationTimeoutError(ProviderError):
    """The caller's deadline passed before the job finished.

    ``handle`` identifies the job so that it can be collected later with ``resume``, paying once. It is
    ``None`` only when the deadline passed before the provider accepted anything.
    """

    default_retryable = True

    def __init__(self, message: str, *, handle: Any = None, **fields: Any) -> None:
        self.handle = handle
        """The :class:`~photomaker_bridge.JobHandle` of the job still running, or ``None``."""
        self.handles: tuple[Any, ...] = () if handle is None else (handle,)
        """The handles of every job the call's providers accepted that may still deliver (a routed call with a
        hedge may have two); ``handle`` is the first of them."""
        super().__init__(message, **fields)
