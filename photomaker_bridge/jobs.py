"""Handles of submitted jobs: enough to collect a job later, in this process or another."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from .result import Attempt, BridgeWarning, as_tuple

__all__ = ["CancelOutcome", "CancelState", "JobHandle"]


@attrs.frozen
class JobHandle:
    """A job the provider accepted: pass it to ``result()`` (or its ids to ``resume()``) to collect it.

    JSON-round-trippable (``to_dict`` / ``from_dict``), so it can be stored and collected elsewhere.
    """

    provider: str
    """``"runware"``, ``"fal"`` or ``"eachlabs"``."""
    request_ids: Sequence[str] = attrs.field(converter=as_tuple)
    """The provider's ids: Runware taskUUIDs, fal request_ids, Eachlabs predictionIDs (one per call)."""
    submitted_at: datetime.datetime
    """When the provider accepted the job (UTC)."""
    requested_images: int | None = None
    """How many images were asked for in all, when known."""
    images_per_request: Sequence[int] = attrs.field(default=(), converter=as_tuple)
    """How many images each id was asked for, when known."""
    warnings: Sequence[BridgeWarning] = attrs.field(default=(), converter=as_tuple)
    """The translation's warnings, carried to the result."""
    details: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    """Provider-specific facts needed to collect the job (JSON values only). Left out of ``hash()``, which a dict
    cannot take, so that handles can key a dict or a set."""
    attempts: Sequence[Attempt] = attrs.field(default=(), converter=as_tuple)
    """The decision trail of the ``submit`` that made the handle, ending with the ``ok`` attempt whose job this is
    (docs/routing.md): ``result()`` carries it onto the result (or the error)."""

    @property
    def request_id(self) -> str:
        """The first id."""
        return self.request_ids[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        from ._convert import converter

        value: dict[str, Any] = converter.unstructure(self)
        return value

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> JobHandle:
        """Rebuild a handle from :meth:`to_dict` output."""
        from ._convert import converter

        return converter.structure(dict(value), cls)


CancelState = Literal["cancelled", "cancel_requested", "already_finished", "not_found", "not_supported", "failed"]
"""What became of one job when it was cancelled:

* ``cancelled`` — it was waiting in the queue and the provider removed it (or the provider confirmed it stopped);
* ``cancel_requested`` — it was running; the provider passed the cancel on to its worker;
* ``already_finished`` — it had finished before the cancel arrived (it is billed; collect its result);
* ``not_found`` — the provider does not know the id;
* ``not_supported`` — the provider has no way to cancel (Runware): it keeps running;
* ``failed`` — the cancel itself failed (network, provider error); the job may still be running.
"""


@attrs.frozen
class CancelOutcome:
    """The outcome of cancelling one job (one request id) at its provider."""

    provider: str
    """``"runware"``, ``"fal"`` or ``"eachlabs"``."""
    request_id: str
    """The provider's id of the job."""
    state: CancelState
    """What became of it (see :data:`CancelState`)."""
    message: str = ""
    """The provider's answer or our explanation, in words."""
