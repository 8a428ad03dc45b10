"""What a generation gives back, the same from every provider.

All classes are frozen attrs values and round-trip through JSON via the package's one converter
(``result.to_dict()`` / ``PhotoMakerResult.from_dict()``). Images stay URLs until asked for:
:meth:`GeneratedImage.fetch` and friends download them on demand (a failure is a ProviderUnavailableError with
``code="download_failed"``).
"""

from __future__ import annotations

import datetime
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import attrs

__all__ = ["Attempt", "AttemptOutcome", "BridgeWarning", "Cost", "GeneratedImage", "ImageFormatWarning",
           "PhotoMakerResult", "Timings"]


def as_tuple(items: Iterable[Any]) -> tuple[Any, ...]:
    """The converter of every sequence field of our frozen values: whatever iterable is given (a list, most
    often) is kept as a tuple, so the value cannot change under its holder and equals its JSON round trip
    (the converter structures sequences as tuples)."""
    return tuple(items)


def _to_decimal(value: Decimal | int | float | str) -> Decimal:
    """An exact amount: a ``Decimal`` as is, an int or a numeric string exactly, a float by its shortest repr
    (``0.1`` → ``Decimal("0.1")``, not the binary expansion)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise TypeError(f"a cost amount is a Decimal, int, float or numeric string, not {type(value).__name__}")
    return value if isinstance(value, Decimal) else Decimal(str(value))


@attrs.frozen
class BridgeWarning:
    """Something the bridge changed or left out on the way to the provider, and why.

    Example: ``BridgeWarning(field="steps", asked=10, sent=20, reason="fal accepts num_inference_steps
    20–100")``. ``sent`` is ``None`` when the field was left out.
    """

    field: str
    """The unified field concerned (``"steps"``, ``"width"``, ``"prompt"`` ...)."""
    asked: Any
    """The value the request asked for."""
    sent: Any
    """The value sent to the provider, or ``None`` when nothing was sent for the field."""
    reason: str
    """Why, in words, naming the provider's rule."""
    provider: str | None = None
    """The provider the adjustment was made for (``None`` when it applies to all)."""

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        return f"{where}{self.field}: asked {self.asked!r}, sent {self.sent!r} — {self.reason}"


@attrs.frozen
class Cost:
    """What a generation cost (or will cost), in ``currency``."""

    amount: Decimal = attrs.field(converter=_to_decimal)
    """The amount, exact (a ``Decimal``; never a float: an int, float or string given is converted)."""
    currency: str = "USD"
    """ISO 4217 currency code."""
    source: Literal["reported", "estimated"] = "reported"
    """``reported`` when the provider said so in its answer; ``estimated`` when the bridge computed it from a
    price table (see ``photomaker_bridge.pricing``)."""


@attrs.frozen
class Timings:
    """How long each phase took, in seconds; ``None`` when the provider does not report that phase."""

    total_seconds: float | None = None
    """Wall time of the whole call as the client measured it, uploads and polling included."""
    upload_seconds: float | None = None
    """Time spent uploading reference images before submitting."""
    queue_seconds: float | None = None
    """Time the job waited in the provider's queue before running."""
    run_seconds: float | None = None
    """Time the job ran (the provider's inference or predict time where it reports one)."""


@attrs.frozen
class GeneratedImage:
    """One generated image: a URL to fetch later, or the bytes when the provider sent them inline."""

    url: str | None = None
    """Where the provider serves the image (``None`` when it came inline)."""
    data: bytes | None = attrs.field(default=None, repr=lambda data: f"<{len(data)} bytes>" if data else "None")
    """The encoded image when the provider sent it inline (base64 / data URI) or it was downloaded."""
    content_type: str | None = None
    """MIME type, e.g. ``image/png``, when known."""
    width: int | None = None
    """Pixels, when known."""
    height: int | None = None
    """Pixels, when known."""
    seed: int | None = None
    """The seed of this image, when the provider reports one per image (Runware) or for the batch."""
    nsfw: bool | None = None
    """The provider's NSFW flag for this image; ``None`` when it did not check."""
    provider_image_id: str | None = None
    """The provider's id of the image (Runware's imageUUID), reusable with that provider."""

    def fetch(self, *, timeout: float = 60.0) -> bytes:
        """The image's bytes: ``data`` when present, else downloaded from ``url`` (sync)."""
        from ._download import fetch_bytes

        if self.data is not None:
            return self.data
        if self.url is None:
            raise ValueError("this image has neither data nor a URL")
        return fetch_bytes(self.url, timeout=timeout)

    async def afetch(self, *, timeout: float = 60.0) -> bytes:
        """The image's bytes: ``data`` when present, else downloaded from ``url`` (async)."""
        from ._download import afetch_bytes

        if self.data is not None:
            return self.data
        if self.url is None:
            raise ValueError("this image has neither data nor a URL")
        return await afetch_bytes(self.url, timeout=timeout)

    def save(self, path: str | os.PathLike[str], *, timeout: float = 60.0) -> Path:
        """Write the image's bytes to ``path`` (downloading them first if needed); returns the path written.

        When ``path`` has an image extension (``.png``, ``.jpg``/``.jpeg``, ``.webp``) that the bytes are not
        (JPEG bytes for ``out.png``, say: Runware's default output is JPEG), it is replaced by the real one and
        an :class:`ImageFormatWarning` says so; a path without an extension gets the real one silently; any
        other extension is kept as given.
        """
        return _write(Path(path), self.fetch(timeout=timeout))

    async def asave(self, path: str | os.PathLike[str], *, timeout: float = 60.0) -> Path:
        """Async twin of :meth:`save`."""
        data = await self.afetch(timeout=timeout)
        return _write(Path(path), data)


class ImageFormatWarning(UserWarning):
    """:meth:`GeneratedImage.save` wrote to another extension than asked, to match the image's real format."""


_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


def _write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, with the extension of its real format (see :meth:`GeneratedImage.save`)."""
    from .images import extension_of, sniff_format

    real = sniff_format(data)
    asked = _SUFFIXES.get(path.suffix.lower())
    if real is not None and not path.suffix:
        path = path.with_name(f"{path.name}.{extension_of(real)}")
    elif real is not None and asked is not None and asked != real:
        target = path.with_suffix("." + extension_of(real))
        warnings.warn(f"the image is {real.upper()}, not {path.suffix.lstrip('.').upper()}: "
                      f"saved as {target} instead of {path}", ImageFormatWarning, stacklevel=3)
        path = target
    path.write_bytes(data)
    return path


AttemptOutcome = Literal["ok", "error", "skipped", "hedged", "cancelled"]
"""What came of one attempt of a call (docs/routing.md, "The decision trail"):

* ``ok`` — it succeeded: a result's last ``ok`` attempt is the one the result comes from (a routed ``submit``
  marks the attempt whose job was accepted);
* ``error`` — it failed with ``error_type``;
* ``skipped`` — nothing was sent: ``reason`` says why (the provider's circuit breaker is open, it cannot take this
  request, the budget would be passed);
* ``hedged`` — a job that lost a hedge race and ran (or was left running) to its end: it is billed, and its cost
  counts as hedge spend;
* ``cancelled`` — a job that lost a hedge race and was cancelled (free when it was still queued).
"""


@attrs.frozen
class Attempt:
    """One line of a call's decision trail: a provider tried (or skipped), and what came of it.

    ``PhotoMakerResult.attempts`` and the ``attempts`` of every error a call raises list them in order, so that a
    result says which providers were tried, why each one failed or was passed over, what each cost and how long it
    took. Round-trips through JSON with the result.
    """

    provider: str
    """The provider tried (or skipped)."""
    outcome: AttemptOutcome = "error"
    """``ok``, ``error``, ``skipped``, ``hedged`` or ``cancelled`` (see :data:`AttemptOutcome`)."""
    error_type: str | None = None
    """The exception class name when the attempt failed, e.g. ``RateLimitedError``; else ``None``."""
    message: str = ""
    """The error's message (or the skip's or cancel's explanation); empty for a plain success."""
    status: int | None = None
    """The HTTP status of the failure, when there was one."""
    code: str | None = None
    """The provider's error code, when there was one."""
    request_ids: Sequence[str] = attrs.field(default=(), converter=as_tuple)
    """The provider's ids of this attempt: its jobs' ids (taskUUIDs, request ids, predictionIDs), or for a failure
    the id the provider gave its error (fal names even a refused request); empty when there were none."""
    seconds: float | None = None
    """Wall time of the attempt as the client measured it (``None`` for a skip)."""
    cost: Cost | None = None
    """What the attempt cost: the result's cost for a success or a collected hedge loser; an estimate for a job
    cancelled while running; zero for a job cancelled in the queue; ``None`` when unknown or nothing was billed."""
    reason: str | None = None
    """Why the router did what it did: why a provider was skipped, why this attempt was sent (``fallback after
    runware: RateLimitedError``, ``hedge: fal still queued after 2.1 s``), why a job was cancelled."""

    @property
    def request_id(self) -> str | None:
        """The first request id, or ``None``."""
        return self.request_ids[0] if self.request_ids else None

    def __str__(self) -> str:
        parts = [f"{self.provider}: {self.outcome}"]
        if self.error_type:
            parts.append(self.error_type)
        if self.message:
            parts.append(self.message)
        if self.reason:
            parts.append(f"({self.reason})")
        return " ".join(parts)


@attrs.frozen
class PhotoMakerResult:
    """The outcome of one generation, the same shape from every provider."""

    images: Sequence[GeneratedImage] = attrs.field(converter=as_tuple)
    """The images, in the provider's order (across all calls when ``num_images`` was split)."""
    provider: str
    """Who served the request: ``"runware"``, ``"fal"`` or ``"eachlabs"``."""
    request_ids: Sequence[str] = attrs.field(default=(), converter=as_tuple)
    """The provider's ids of the request(s): Runware taskUUIDs, fal request_ids, Eachlabs predictionIDs."""
    seed: int | None = None
    """The seed of the first image (Runware adds 1 per image; fal and Eachlabs report one per call)."""
    cost: Cost | None = None
    """What it cost: reported by the provider, estimated from a price table, or ``None`` when neither."""
    timings: Timings = attrs.field(factory=Timings)
    """Upload, queue, run and total seconds, where known."""
    warnings: Sequence[BridgeWarning] = attrs.field(default=(), converter=as_tuple)
    """Every adjustment made to the request for this provider (and anything the provider's answer implied,
    such as fewer images than asked)."""
    attempts: Sequence[Attempt] = attrs.field(default=(), converter=as_tuple)
    """The decision trail: every attempt of the call in order — skipped providers, failures, hedge losers — ending
    with the ``ok`` attempt this result comes from (docs/routing.md)."""
    raw: Sequence[Any] = attrs.field(default=(), repr=False, converter=as_tuple)
    """The provider's success bodies as received, one per call."""
    requested_images: int | None = None
    """How many images were asked for (``num_images``), to compare with ``len(images)``."""
    created_at: datetime.datetime | None = None
    """When the result was assembled (UTC)."""

    @property
    def request_id(self) -> str | None:
        """The first request id, for the common single-call case."""
        return self.request_ids[0] if self.request_ids else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (bytes as base64, Decimal as string, datetimes as ISO 8601)."""
        from ._convert import converter

        value: dict[str, Any] = converter.unstructure(self)
        return value

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> PhotoMakerResult:
        """Rebuild a result from :meth:`to_dict` output."""
        from ._convert import converter

        return converter.structure(dict(value), cls)
