"""Which failed steps are tried again, and after how long: one pure policy for every provider and both clients.

A call is made of *steps*: an upload, a presign, a storage token, a submit, a status poll, a result fetch, a
cancel. The rule (docs/architecture.md, "Retries"):

* a step that creates nothing billable is **safe to repeat**: it is tried again after a rate limit (429, honouring
  ``Retry-After``), an unavailable provider (408, 409, 5xx), a dropped or refused connection, a timeout, or an
  answer that cannot be read;
* a step that **creates a paid job** (Runware's task POST, fal's submit, Eachlabs' create) is tried again only when
  the provider provably did not accept it: an explicit refusal (429, 503) or a connection refused before anything
  was sent. Any other failure may hide an accepted job, so repeating it could pay twice; the flow recovers the job
  where the protocol allows it (Runware: ``getResponse`` by the taskUUID the bridge chose) or reports that a job
  may exist.

Waits grow exponentially with full jitter (a uniform draw between 0 and the exponential cap: "Exponential
Backoff And Jitter", AWS Architecture Blog, 2015), so that many clients failing together do not come back
together. A ``Retry-After`` hint replaces the draw. No wait is started that would end past the caller's deadline:
the step's error is raised at once instead, so a call never sleeps only to time out.

Why not stamina or tenacity: both wrap a callable and own the sleeping, while here a step is a value yielded by a
generator flow, driven by a sync or an async driver whose injected clock and sleep enforce the deadline
(``_http.py``). The decision below is the part those libraries would add; it is a dozen lines.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import attrs

from .errors import ConfigurationError, ProviderError, ProviderUnavailableError, RateLimitedError

__all__ = ["RetryPolicy", "is_provably_refused", "is_transient", "may_have_created"]

REFUSAL_STATUSES = frozenset({429, 503})
"""Statuses that say the provider did not take the request: it is safe to send a job-creating step again."""

CONNECTION_REFUSED = "connection_refused"
"""The ``code`` of a :class:`ProviderUnavailableError` raised when no connection could be opened (nothing was
sent)."""


def _positive_number(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"RetryPolicy.{attribute.name} must be a finite number >= 0, got {value!r}")


def _attempts(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"RetryPolicy.attempts must be an integer >= 1 (1 turns retries off), got {value!r}")


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a failure a later identical step may not meet: a rate limit, an unavailable or
    unreachable provider, a timeout, an unreadable answer."""
    return isinstance(error, ProviderUnavailableError | RateLimitedError) and error.retryable


def is_provably_refused(error: BaseException) -> bool:
    """Whether ``error`` proves the provider did not accept the request: an explicit 429/503 answer, or a
    connection refused before anything was sent."""
    if not isinstance(error, ProviderError):
        return False
    return error.status in REFUSAL_STATUSES or error.code == CONNECTION_REFUSED


def may_have_created(error: BaseException) -> bool:
    """Whether a job-creating request that failed with ``error`` may still have created the job: no answer came
    back (a dropped connection, a timeout), the answer could not be read, a server error (5xx other than 503) came
    from somewhere between us and the provider, or a 408/409 that a gateway may give while the request goes on. Any
    other 4xx answer is the provider's own refusal (a bad key, no credit, a rejected input): nothing was created."""
    if not isinstance(error, ProviderError) or is_provably_refused(error):
        return False
    return error.status is None or error.status >= 500 or error.status < 400 or error.status in (408, 409)


@attrs.frozen
class RetryPolicy:
    """How a client tries a failed step again (``Bridge(retry=RetryPolicy(...))``).

    Applies to every provider and to both clients. ``RetryPolicy(attempts=1)`` turns retries off.
    """

    attempts: int = attrs.field(default=4, validator=_attempts)
    """Tries of one step in all, the first included."""
    base_delay: float = attrs.field(default=0.5, validator=_positive_number)
    """Seconds: the cap of the first wait; it doubles with each further failure (full jitter draws below it)."""
    max_delay: float = attrs.field(default=8.0, validator=_positive_number)
    """Seconds: the largest cap of a drawn wait."""
    max_retry_after: float = attrs.field(default=60.0, validator=_positive_number)
    """Seconds: the longest ``Retry-After`` the client waits for; a longer one ends the step with its error."""
    random: Callable[[], float] = attrs.field(default=random.random, eq=False, repr=False)
    """The source of jitter (a number in [0, 1)); tests pass a seeded generator's ``random``."""

    def delay(self, error: BaseException, attempt: int, *, creates_job: bool,
              remaining: float | None = None) -> float | None:
        """Seconds to wait before try ``attempt + 1`` after try ``attempt`` failed with ``error``, or ``None``
        when the step must not be tried again (the error is then the step's outcome).

        ``creates_job``: the step makes the provider accept a billed job. ``remaining``: seconds left before the
        caller's deadline (``None``: no deadline); a wait that would not end before it is not started.
        """
        if attempt >= self.attempts:
            return None
        if creates_job and not is_provably_refused(error):
            return None
        if not creates_job and not is_transient(error) and not is_provably_refused(error):
            return None
        hint = error.retry_after if isinstance(error, RateLimitedError) else None
        if hint is not None:
            if hint > self.max_retry_after:
                return None
            wait = hint
        else:
            cap = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
            wait = cap * self.random()
        if remaining is not None and wait >= remaining:
            return None
        return wait
