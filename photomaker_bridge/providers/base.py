"""The contract every provider adapter implements, and the shared translation bookkeeping.

An adapter is a small attrs class holding its settings (key, base URL, model ...) whose :meth:`Provider.plan`
turns a :class:`~photomaker_bridge.PhotoMakerRequest` into a :class:`~photomaker_bridge.Plan`: pure code, no
network. Every adjustment goes through one :class:`Translator`, so that "clamp and warn" and "refuse in
strict mode" behave the same for every provider, and the field-by-field mapping is never forgotten.
"""

from __future__ import annotations

import abc
import email.utils
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol

import attrs

from .._connections import ConnectionLimits
from .._coordination import Limits
from .._http import Flow
from .._retry import RetryPolicy
from ..errors import (
    AuthenticationError,
    ConfigurationError,
    InsufficientCreditsError,
    InvalidRequestError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from ..jobs import CancelOutcome, JobHandle
from ..plan import FieldMapping, Plan
from ..request import PhotoMakerRequest
from ..result import BridgeWarning, PhotoMakerResult
from ..styles import Style

__all__ = [
    "AsyncPerformer",
    "Capability",
    "FlowContext",
    "IdFactory",
    "Provider",
    "SyncPerformer",
    "Translator",
    "check_limit",
    "deep_merge",
    "error_for_status",
    "fill_placeholders",
    "new_uuid",
    "parse_retry_after",
    "size_text",
    "split_count",
    "upload_placeholder",
]

IdFactory = Callable[[], str]
"""Makes a new id (a UUID v4 string by default); tests pass a deterministic one."""


def new_uuid() -> str:
    """A random UUID v4 as a string."""
    return str(uuid.uuid4())


@attrs.frozen
class Capability:
    """One line of a provider's capability table: how a unified field reaches that provider."""

    field: str
    """The unified field."""
    provider_field: str | None
    """The provider's wire field, or ``None`` when the provider has no such field."""
    support: Literal["native", "adjusted", "unsupported"]
    """``native``: sent as given; ``adjusted``: translated, clamped or split; ``unsupported``: left out with a
    warning."""
    detail: str
    """Range, spelling or rule, for the capability matrix in docs/providers.md."""


def split_count(total: int, per_call: int) -> list[int]:
    """Split ``total`` images into calls of at most ``per_call``: ``split_count(9, 4) == [4, 4, 1]``."""
    calls = [per_call] * (total // per_call)
    if total % per_call:
        calls.append(total % per_call)
    return calls


def upload_placeholder(kind: str, sha256: str) -> str:
    """The string standing, in a planned payload, for the URL (or id) an upload of ``sha256`` will return."""
    return _PLACEHOLDER_START + kind + ":" + sha256[:12] + "}}"


_PLACEHOLDER_START = "{{upload:"


def fill_placeholders(value: Any, urls: Mapping[str, str]) -> Any:
    """``value`` (a JSON value) with every upload placeholder replaced by what its upload returned, at any
    depth and inside longer strings. Containers are always copied (the plan's payloads stay as planned)."""
    if isinstance(value, str):
        if _PLACEHOLDER_START not in value:
            return value
        for placeholder, url in urls.items():
            value = value.replace(placeholder, url)
        return value
    if isinstance(value, Mapping):
        return {key: fill_placeholders(item, urls) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [fill_placeholders(item, urls) for item in value]
    return value


def size_text(size: int) -> str:
    """Bytes for people: ``"812 bytes"``, ``"412 KB"``, ``"3.1 MB"``."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def deep_merge(target: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``target`` with ``extra`` merged in: nested mappings merge, anything else replaces."""
    merged = dict(target)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class Translator:
    """Collects a translation's mapping lines and warnings; in strict mode refuses every adjustment."""

    def __init__(self, provider: str, *, strict: bool) -> None:
        self.provider = provider
        self.strict = strict
        self.warnings: list[BridgeWarning] = []
        self.mapping: list[FieldMapping] = []

    def send(self, field: str, provider_field: str, value: Any, note: str = "") -> Any:
        """Record that ``value`` is sent as ``provider_field``; returns ``value``."""
        self.mapping.append(FieldMapping(field, provider_field, value, note))
        return value

    def default(self, field: str, note: str) -> None:
        """Record that nothing is sent for ``field`` so that the provider's default applies."""
        self.mapping.append(FieldMapping(field, None, None, note))

    def adjust(self, field: str, provider_field: str | None, asked: Any, sent: Any, reason: str) -> Any:
        """Record an adjustment (warning; :class:`InvalidRequestError` when strict); returns ``sent``."""
        if self.strict:
            raise InvalidRequestError(field, asked, reason, reason=f"strict mode: {self.provider} cannot take it as is")
        self.warnings.append(BridgeWarning(field=field, asked=asked, sent=sent, reason=reason, provider=self.provider))
        self.mapping.append(FieldMapping(field, provider_field, sent, reason))
        return sent

    def warn(self, warning: BridgeWarning) -> None:
        """Record a warning made elsewhere (trigger insertion ...); refused in strict mode."""
        if self.strict:
            raise InvalidRequestError(warning.field, warning.asked, warning.reason,
                                      reason=f"strict mode: {self.provider} needs an adjustment")
        self.warnings.append(warning)

    def clamp(self, field: str, provider_field: str, value: float, low: float, high: float,
              rule: str) -> float:
        """``value`` limited to ``low``–``high``; out of range is an adjustment. ``rule`` names the range."""
        if low <= value <= high:
            self.send(field, provider_field, value)
            return value
        sent = low if value < low else high
        if isinstance(value, int) and float(sent).is_integer():
            sent = int(sent)
        self.adjust(field, provider_field, value, sent,
                    f"{self.provider} accepts {provider_field} {rule}; sent the nearest allowed value")
        return sent

    def unsupported(self, field: str, asked: Any, reason: str) -> None:
        """Record that ``field`` cannot be sent to this provider (warning; error when strict)."""
        self.adjust(field, None, asked, None, reason)

    def options(self, payload: dict[str, Any], options: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        """Merge ``provider_options`` into a payload verbatim, recording each key."""
        for key, value in options.items():
            self.send(f"provider_options.{key}", prefix + key, value, "passed through verbatim")
        return deep_merge(payload, options)


def check_limit(instance: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    """attrs validator of a provider limit (``concurrency``, ``per_minute``): a positive integer or ``None``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigurationError(f"{attribute.name} must be a positive integer or None (no limit), got {value!r}")


def check_duration_cache(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """An adapter's ``duration_cache`` is ``None``, a bool or a path (``str`` / ``os.PathLike``)."""
    if value is None or isinstance(value, bool | str | os.PathLike):
        return
    raise ConfigurationError(f"{attribute.name} must be True, False, None or a file path, got {value!r}")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` when absent/unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_STATUS_CLASSES: dict[int, type[ProviderError]] = {
    400: ProviderRejectedError, 401: AuthenticationError, 402: InsufficientCreditsError,
    403: AuthenticationError, 404: ProviderRejectedError, 408: ProviderUnavailableError,
    409: ProviderUnavailableError, 413: ProviderRejectedError, 422: ProviderRejectedError,
    429: RateLimitedError,
}


def error_for_status(status: int, message: str, *, provider: str, code: str | None = None,
                     request_id: str | None = None, raw: Any = None, retry_after: str | None = None,
                     retryable: bool | None = None) -> ProviderError:
    """The typed error for an HTTP error status (used when a provider's own code says nothing more).

    401/403 → AuthenticationError, 402 → InsufficientCreditsError, 429 → RateLimitedError (with
    ``Retry-After``), 400/404/413/422 → ProviderRejectedError, 408/409/5xx → ProviderUnavailableError.
    """
    error_class = _STATUS_CLASSES.get(status, ProviderUnavailableError if status >= 500 else ProviderRejectedError)
    fields: dict[str, Any] = {"provider": provider, "status": status, "code": code, "request_id": request_id,
                              "raw": raw, "retryable": retryable}
    if error_class is RateLimitedError:
        return RateLimitedError(message, retry_after=parse_retry_after(retry_after), **fields)
    return error_class(message, **fields)


class SyncPerformer(Protocol):
    """Runs a provider's non-HTTP operations (fal's SDK calls) for the sync driver; owned by a client."""

    def perform(self, operation: Any, remaining: float | None) -> Any: ...

    def close(self) -> None: ...


class AsyncPerformer(Protocol):
    """Runs a provider's non-HTTP operations (fal's SDK calls) for the async driver; owned by a client."""

    def perform(self, operation: Any, remaining: float | None) -> Awaitable[Any]: ...

    async def aclose(self) -> None: ...


@attrs.define
class FlowContext:
    """What a flow may use besides its plan: the client's policies for one call."""

    clock: Callable[[], float] = time.monotonic
    """The clock the driver uses (monotonic seconds)."""
    started_at: float = attrs.field(factory=time.monotonic)
    """``clock()`` when the call began, for ``Timings.total_seconds``."""
    cancel_on_deadline: bool = True
    """Whether a flow that reaches the deadline cancels the job before raising GenerationTimeoutError.
    ``generate`` cancels (nobody will collect it); ``result`` on a handle keeps the job for a later try."""
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    """Which failed steps are tried again, and when (``_retry``)."""
    deadline: float | None = None
    """``clock()`` instant of the caller's deadline (``None``: none); the driver enforces it, flows read it
    to avoid starting a wait that could not end in time."""

    def remaining(self) -> float | None:
        """Seconds left before the deadline (``None``: no deadline)."""
        return None if self.deadline is None else self.deadline - self.clock()


class Provider(abc.ABC):
    """A provider adapter: its settings, the pure translation of a request into its wire payloads, and the
    flows (written once, driven sync or async) that run them."""

    name: ClassVar[str]
    """The lowercase provider name used everywhere: registry, ``provider_options``, errors, results."""
    capabilities: ClassVar[tuple[Capability, ...]]
    """How each unified field reaches this provider (drives docs/providers.md)."""
    style_table: ClassVar[Mapping[Style, str]]
    """This provider's spelling of every style (the adapter's ``_STYLE_TO_<PROVIDER>`` table)."""

    @classmethod
    def style_names(cls) -> dict[Style, str]:
        """This provider's spelling of every style."""
        return dict(cls.style_table)

    @abc.abstractmethod
    def plan(self, request: PhotoMakerRequest, *, strict: bool = False, new_id: IdFactory = new_uuid) -> Plan:
        """The exact payloads, uploads, warnings and field mapping for ``request``. Pure: no network.

        Raises :class:`InvalidRequestError` for what this provider cannot take even adjusted, and (when
        ``strict``) for any adjustment at all.
        """

    @abc.abstractmethod
    def require_key(self) -> None:
        """Raise :class:`ConfigurationError` naming both ways to supply a key when none is configured."""

    def with_webhook(self, plan: Plan, url: str) -> Plan:
        """``plan`` set to have the provider POST the job's outcome to ``url`` (the client checks that it is an
        http(s) URL). By default the provider documents no webhook: :class:`ConfigurationError`."""
        raise ConfigurationError(f"{self.name} documents no webhook for this model; leave webhook_url out and "
                                 "collect the result with result() or generate()")

    def submit_flow(self, plan: Plan, context: FlowContext) -> Flow[JobHandle]:
        """Upload what the plan needs, submit its payloads, and return the job's handle."""
        raise ConfigurationError(f"{self.name} does not support submit()")

    @abc.abstractmethod
    def result_flow(self, handle: JobHandle, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Wait for a submitted job and collect its result (or raise its typed error)."""

    def generate_flow(self, plan: Plan, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Run the plan to a result. By default: submit, then collect."""
        handle = yield from self.submit_flow(plan, context)
        result: PhotoMakerResult = yield from self.result_flow(handle, context)
        return result

    @abc.abstractmethod
    def handle_for(self, request_id: str) -> JobHandle:
        """A handle for a job submitted earlier (possibly by another process), from its id alone."""

    def cancel_flow(self, handle: JobHandle, context: FlowContext) -> Flow[tuple[CancelOutcome, ...]]:
        """Cancel every job of ``handle``; one outcome per request id. By default the provider cannot cancel."""
        yield from ()
        return tuple(CancelOutcome(self.name, request_id, "not_supported", f"{self.name} has no cancel API")
                     for request_id in handle.request_ids)

    def limits(self) -> Limits:
        """The client-side limits of this adapter's account: jobs in flight and job submissions a minute (none
        by default; adapters with documented limits override it)."""
        return Limits()

    def account(self) -> str:
        """How shared state names this adapter's account: the provider name and a hash of its key (never the
        key itself)."""
        return self.name

    supports_batch: ClassVar[bool] = False
    """Whether :meth:`generate_many_flow` sends several requests in one call (Runware's task arrays)."""

    def generate_many_flow(self, plans: Sequence[Plan], context: FlowContext,
                           ) -> Flow[list[PhotoMakerResult | ProviderError]]:
        """Several requests in one call, one result or error per plan (only where ``supports_batch``)."""
        raise ConfigurationError(f"{self.name} cannot send several requests in one call")

    def sync_performer(self, connections: ConnectionLimits | None = None) -> SyncPerformer | None:
        """The runner of this provider's non-HTTP operations for a sync client, or ``None`` (HTTP only);
        ``connections``: the client's pool settings, for an SDK's own connections."""
        return None

    def async_performer(self, connections: ConnectionLimits | None = None) -> AsyncPerformer | None:
        """The runner of this provider's non-HTTP operations for an async client, or ``None`` (HTTP only);
        ``connections``: the client's pool settings, for an SDK's own connections."""
        return None
