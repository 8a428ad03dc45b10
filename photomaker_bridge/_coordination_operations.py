"""The questions a flow asks its client's :class:`~photomaker_bridge._coordination.Coordinator` — a slot of a
provider's limits, an upload claimed once per content — and the answers' types. Pure values: any coordinator
(the in-memory one of ``_coordination``, a shared one) answers the same operations.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "AcquireSlot",
    "BindSlot",
    "Busy",
    "ClaimUpload",
    "CoordinationOperation",
    "FinishUpload",
    "ForgetUpload",
    "Lease",
    "Limits",
    "ReleaseSlot",
    "RenewSlot",
    "UploadTicket",
]

DEFAULT_LEASE_SECONDS = 300.0
"""How long a job keeps its slot without being seen (polled, collected, cancelled) before the slot is freed,
when the adapter says nothing better."""


@attrs.frozen
class Limits:
    """One provider account's limits: ``concurrency`` jobs in flight, ``per_minute`` job submissions a minute
    (``None``: no limit), and how long a job nobody sees keeps its slot."""

    concurrency: int | None = None
    per_minute: int | None = None
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    rate_window: float = 60.0
    """Seconds of the window ``per_minute`` counts in: a minute; tests shorten it (whole seconds)."""

    @property
    def active(self) -> bool:
        """Whether anything is limited."""
        return self.concurrency is not None or self.per_minute is not None


class CoordinationOperation:
    """Base of the operations a flow yields to the client's :class:`Coordinator` (not to a provider)."""

    blocking: ClassVar[bool] = False
    """Whether the operation may wait for another call. The others only record something and are answered at
    once, even past the deadline (a flow that learnt a job's id must be able to record it)."""


@attrs.frozen
class ClaimUpload(CoordinationOperation):
    """Ask for the upload of ``key`` (``"<provider>:<sha256>"``). Answers the URL (or id) of an earlier upload,
    an :class:`UploadTicket` when this call must upload it, or — with ``wait=False`` while another call is
    uploading the same content — :class:`Busy`. With ``wait=True`` it waits for that other upload first."""

    key: str
    wait: bool = True
    blocking: ClassVar[bool] = True


@attrs.frozen
class UploadTicket:
    """This call uploads ``key``; every other call asking for it waits until :class:`FinishUpload`."""

    key: str
    number: int = attrs.field(eq=False)


@attrs.frozen
class FinishUpload(CoordinationOperation):
    """The upload of a ticket ended: ``url`` is what the provider returned, or ``None`` when it failed (a waiting
    call then uploads it itself)."""

    ticket: UploadTicket
    url: str | None


@attrs.frozen
class ForgetUpload(CoordinationOperation):
    """The provider could not read the upload ``url`` of ``key``: drop it from the cache (if it is still that one),
    so that the next claim uploads again."""

    key: str
    url: str


@attrs.frozen
class Lease:
    """A slot of a provider account's concurrency (and one hit of its rate)."""

    account: str
    number: int


@attrs.frozen
class Busy:
    """The answer when a slot (or an upload) is not available now. ``reason`` says why, for the progress event;
    ``retry_in`` is the seconds until the per-minute window frees a hit (``None``: wait for a release)."""

    reason: str
    retry_in: float | None = None


@attrs.frozen
class AcquireSlot(CoordinationOperation):
    """Take ``count`` slots of ``account`` (a provider and its key's hash) at once, one per job a call is about to
    create. Answers a tuple of :class:`Lease`, or :class:`Busy` (``wait=False``, or when only the per-minute rate
    still blocks). ``count`` above the account's concurrency can never be granted: the flows split such work."""

    account: str
    limits: Limits
    wait: bool = True
    count: int = 1
    blocking: ClassVar[bool] = True


@attrs.frozen
class BindSlot(CoordinationOperation):
    """The provider accepted the job of ``lease``: it keeps the slot under ``request_id`` until released —
    past the end of the run when ``keep`` (a handle handed over), else only until the run ends."""

    lease: Lease
    request_id: str
    keep: bool = True


@attrs.frozen
class RenewSlot(CoordinationOperation):
    """The job ``request_id`` of ``account`` was seen still running: its lease starts over."""

    account: str
    request_id: str


@attrs.frozen
class ReleaseSlot(CoordinationOperation):
    """Give a slot back: the job ``request_id`` ended (or was cancelled), or ``lease`` created no job."""

    account: str
    request_id: str | None = None
    lease: Lease | None = None
