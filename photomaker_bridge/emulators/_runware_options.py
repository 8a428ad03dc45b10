"""The Runware emulator's own knobs: every choice the reference leaves open, in one place.

Each field is a behaviour that runware.md marks [UNVERIFIED] or [CONFLICT]; the default is the most likely
answer, and the docstring cites the section that explains the doubt. Pass an instance to
``create_app(state, options=...)`` to reproduce another reading.
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["RunwareOptions"]


@attrs.define
class RunwareOptions:
    """Behaviour of the Runware emulator where the public sources disagree or say nothing."""

    photomaker_prompt_max_length: int = 300
    """PhotoMaker ``positivePrompt`` upper bound. [CONFLICT] The current docs page (runware.md SEED) says 2–300
    characters ("limit of 77 tokens"); the older HTML copy (runware.md SEED-OLD) says 2–2000 (runware.md §5.1)."""
    plain_prompt_max_length: int = 3000
    """``positivePrompt`` upper bound of an ``imageInference`` without PhotoMaker. [UNVERIFIED]: taken to be
    the negative prompt's documented 3000 (runware.md §5.1)."""
    reject_unknown_parameters: bool = True
    """Answer ``unknownParameter`` for a key the task does not document. [UNVERIFIED]: the code exists in
    the SDKs' error tables (runware.md §6) and the docs' schemas use ``additionalProperties: false``; being
    strict makes a mistranslated request fail here instead of silently doing something else."""
    require_uuid_version_4: bool = True
    """``taskUUID`` must be a UUID *v4* ("you must include a random UUID v4 string", runware.md §5.1)."""
    non_sdxl_models: frozenset[str] = frozenset({"runware:100@1", "runware:101@1"})
    """Models PhotoMaker refuses because they are not SDXL-based (runware.md §5.1: "must be SDXL-based").
    The emulator cannot know every model's architecture, so any other well-formed AIR is taken to be SDXL
    [UNVERIFIED]; these two are Runware's FLUX.1 schnell and dev, the models the docs' own examples use."""
    session_buffer_seconds: float = 120.0
    """How long a disconnected WebSocket session keeps undelivered results for a resume with
    ``connectionSessionUUID`` (docs/protocols/runware.md §3.4, from the legacy SDK's repository docs)."""
    idle_timeout: float | None = 120.0
    """Close a WebSocket after this many seconds without a message either way ("kept open for 120 seconds
    from the last message exchanged", runware.md §3.3); ``None`` never closes."""
    close_after_auth_failure: bool = False
    """Close the WebSocket after a failed authentication. [UNVERIFIED] (runware.md §3.1, §10); by default the
    socket stays open so the client can retry on it, as the legacy SDK's auth circuit breaker expects."""
    reject_reused_task_uuid: bool = False
    """Answer ``conflictTaskUUID`` also for a taskUUID whose task already finished. [UNVERIFIED]: the docs
    only say a taskUUID must be unique (runware.md §5.1); the SDK resend path (runware.md §3.4) only shows
    the conflict for a task still in flight."""
    webhook_body: Literal["flat", "wrapped"] = "flat"
    """Webhook POST body: the flat result object (SKILLS) or ``{"data": [item]}`` (SDKREPO README).
    [CONFLICT] runware.md §4.3; the newer official source favours the flat object."""
    webhook_max_attempts: int = 5
    """Webhook deliveries tried per result before giving up (backoff 250 ms doubling, capped at 8 s,
    runware.md §4.3)."""
    upload_max_attempts: int = 5
    """``uploadEndpoint`` PUTs tried per image before giving up. Runware documents no retry for uploads
    [UNVERIFIED]; the emulator retries like its webhooks (250 ms doubling, capped at 8 s, runware.md §4.3)."""
    ttl_scale: float = 1.0
    """Emulator seconds per second of a task's ``ttl`` before its image URLs answer 404. ``ttl`` is at least 60
    (runware.md SEED), so tests that want to see an expiry set e.g. 0.001 instead of waiting a minute."""
