"""Handles of submitted jobs: enough to collect a job later, in this process or another."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .result import BridgeWarning, as_tuple

__all__ = ["JobHandle"]


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
