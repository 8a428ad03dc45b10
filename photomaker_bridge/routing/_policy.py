"""What each kind of failure does to a routed call: the policy table (docs/routing.md, "Policies").

One table, at the top: the typed error an attempt ended with → what the route does next, and whether the failure
counts against the provider's circuit breaker. A route may override the action per error class
(``Route(policies={"ContentPolicyError": "fallback"})``). Step-level retries (a 429 on an upload, a 503 on a
submit the provider provably refused) already happened inside the attempt (``_retry``), so ``retry`` here means a
whole new attempt on the same provider, counted by ``max_attempts`` like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, get_args

import attrs

__all__ = ["ACTIONS", "POLICIES", "POLICY_KEYS", "Action", "Policy", "policy_for"]

Action = Literal["retry", "fallback", "cooldown", "stop"]
"""``retry``: a new attempt on the same provider; ``fallback``: the next candidate; ``cooldown``: the next candidate,
and this provider is skipped by every later route of the client until ``reset_provider()`` (its key or its account
needs a person); ``stop``: the call ends with this error."""

ACTIONS: Final[tuple[str, ...]] = get_args(Action)


@attrs.frozen
class Policy:
    """One line of the table."""

    action: Action
    """What the route does next."""
    breaker: bool
    """Whether the failure counts against the provider's circuit breaker (a sign that the provider is unwell, as
    opposed to a problem with this request, this key or this call's deadline)."""


POLICIES: Final[Mapping[str, Policy]] = {
    # The request itself is at fault: no other vendor should see it (a safety refusal routed elsewhere is LiteLLM
    # #40406's complaint); a route may opt in per class.
    "InvalidRequestError": Policy("stop", breaker=False),
    "ContentPolicyError": Policy("stop", breaker=False),
    "ProviderRejectedError": Policy("stop", breaker=False),
    # This key or this account cannot be used until a person acts: skip the provider from now on.
    "AuthenticationError": Policy("cooldown", breaker=False),
    "InsufficientCreditsError": Policy("cooldown", breaker=False),
    # The provider is unwell, busy or lost the job: another one may do it (after the in-place step retries).
    "RateLimitedError": Policy("fallback", breaker=True),
    "ProviderUnavailableError": Policy("fallback", breaker=True),
    "GenerationFailedError": Policy("fallback", breaker=True),
    # The caller's deadline bounds the whole route: once it passed there is no time for anything else.
    "GenerationTimeoutError": Policy("stop", breaker=False),
    # A job-creating request whose answer was lost: the provider may have accepted a billed job nobody can collect
    # or cancel from here. Sending the request elsewhere could pay twice for one image set, so the route stops and
    # the error says so; a route that prefers paying twice to failing opts in with {"may_have_accepted": "fallback"}.
    "may_have_accepted": Policy("stop", breaker=True),
    # Any other provider failure (a subclass we do not know): treat it as the provider being unwell.
    "ProviderError": Policy("fallback", breaker=True),
}
"""The defaults: error class name (or ``may_have_accepted``) → :class:`Policy`."""

POLICY_KEYS: Final[frozenset[str]] = frozenset(POLICIES)


def policy_for(error: BaseException, overrides: Mapping[str, Action] | None = None) -> Policy:
    """The policy for ``error`` (the most specific class in the table, ``may_have_accepted`` first), with the
    route's override of its action when it has one. An error outside the table (a bug, an interrupt) stops."""
    names = [cls.__name__ for cls in type(error).__mro__]
    # A deadline that cut a create on the wire also sets may_have_accepted (the idempotency journal keeps its key
    # claimed), but the deadline is the caller's, not a sign the provider is unwell: its own policy applies.
    unanswered = getattr(error, "may_have_accepted", False) and "GenerationTimeoutError" not in names
    keys = ["may_have_accepted", *names] if unanswered else names
    for key in keys:
        if key in POLICIES:
            policy = POLICIES[key]
            action = (overrides or {}).get(key, policy.action)
            return attrs.evolve(policy, action=action)
    return Policy("stop", breaker=False)
