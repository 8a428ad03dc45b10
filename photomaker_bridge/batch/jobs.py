"""Batch jobs: one request, the provider (or route across providers) to send it to, a stable key, and the labels
a report groups by.

A job's **key** identifies it across runs: re-running a batch with the same journal skips the keys already
finished and resumes the ones submitted but not collected. By default the key is derived from the request's
content and the provider — for a route, the route's canonical form (:func:`~photomaker_bridge.batch.routes.
canonical_route`) — so the same job always gets the same key, and a changed prompt or route gets a new one; a
JSONL line or the caller may give its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import InvalidRequestError
from ..request import PhotoMakerRequest, ReferenceImage
from ..routing import Route
from .routes import ROUTE_LABEL, JobProvider, canonical_route, job_provider, label_of

__all__ = ["ROUTE_LABEL", "BatchJob", "JobLabels", "faces_label", "job_key"]

_MAX_KEY_LENGTH = 200


def _image_identity(image: ReferenceImage) -> str:
    """What makes two reference images the same: their bytes (by hash), else their URL or Runware UUID."""
    return image.sha256 or image.url or image.uuid or image.source


def job_key(request: PhotoMakerRequest, provider: str | Route) -> str:
    """The default key of a job: ``<provider>-<16 hex digits>`` from the request's content and the provider, or
    ``route-<16 hex digits>`` from the request's content and the route's canonical form.

    Reference images count by content (the same photo given as a path or as bytes is the same job), every
    other field by value, so any change to the request makes a new key; so does any change to a route (its
    providers, their order, strategy, weights, attempts, budget, policies).
    """
    data = request.to_dict()
    data["images"] = [_image_identity(image) for image in request.images]
    where: dict[str, Any] = ({"provider": provider} if isinstance(provider, str) else
                             {"route": canonical_route(provider)})
    canonical = json.dumps({**where, "request": data}, sort_keys=True, separators=(",", ":"), default=str)
    return f"{label_of(provider)}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def faces_label(request: PhotoMakerRequest) -> str:
    """A short name of a request's reference set for reports: the file names joined by ``+``, or for images
    that are not files, a digest of their content."""
    names = []
    for image in request.images:
        if image.kind == "path":
            names.append(image.source.replace("\\", "/").rsplit("/", 1)[-1])
        elif image.kind == "url" and image.url:
            names.append(image.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or image.url)
        else:
            names.append(_image_identity(image)[:8])
    return "+".join(names)


@attrs.frozen
class JobLabels:
    """What a report groups and captions a job by (rows of the contact sheet are prompt × style)."""

    prompt: str
    """The prompt as the request gives it."""
    style: str
    """The style's readable name (``"Cinematic"``)."""
    faces: str
    """The reference set's name (``"faces 1"`` in a compare, file names in a batch)."""
    seed: int | None = None
    """The seed asked for, ``None`` for random."""

    @classmethod
    def of(cls, request: PhotoMakerRequest, faces: str | None = None) -> JobLabels:
        """The labels of ``request``; ``faces`` overrides the name of its reference set."""
        return cls(prompt=request.prompt, style=request.style.label, faces=faces or faces_label(request),
                   seed=request.seed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None) -> JobLabels:
        """Labels read back from a journal (missing fields become empty)."""
        value = value or {}
        seed = value.get("seed")
        return cls(prompt=str(value.get("prompt", "")), style=str(value.get("style", "")),
                   faces=str(value.get("faces", "")), seed=seed if isinstance(seed, int) else None)


def _check_key(instance: BatchJob, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_KEY_LENGTH or "\n" in value:
        raise InvalidRequestError("key", value, f"a non-empty string of at most {_MAX_KEY_LENGTH} characters "
                                  "on one line")


@attrs.frozen
class BatchJob:
    """One job of a batch: ``request`` sent to ``provider`` (a name or a route), known across runs by ``key``.

    Example::

        BatchJob(PhotoMakerRequest(prompt="a man img on a boat", images=["face.jpg"]), provider="fal")
        BatchJob(request, provider=Route(["runware", "fal"], max_attempts=2))   # or provider=["runware", "fal"]
    """

    request: PhotoMakerRequest
    """What to generate."""
    provider: JobProvider = attrs.field(converter=job_provider)
    """Where to send it: ``"runware"``, ``"fal"`` or ``"eachlabs"``, or a :class:`~photomaker_bridge.Route` (a list
    of names is an ordered route) without ``hedge``; the runner submits it through :func:`~photomaker_bridge.batch.
    runner.submit_job` and journals the job under the provider that accepted it (docs/compare-and-batch.md)."""
    key: str = attrs.field(default=attrs.Factory(lambda job: job_key(job.request, job.provider), takes_self=True),
                           validator=_check_key)
    """The job's identity across runs; default :func:`job_key`."""
    labels: JobLabels = attrs.field(default=attrs.Factory(lambda job: JobLabels.of(job.request), takes_self=True))
    """How reports group and caption it."""

    @property
    def route(self) -> Route | None:
        """The route, or ``None`` for a job sent to one provider."""
        return self.provider if isinstance(self.provider, Route) else None

    @property
    def label(self) -> str:
        """What the job counts under until a provider accepts it: its provider's name, or ``"route"``."""
        return label_of(self.provider)

    @property
    def candidates(self) -> tuple[str, ...]:
        """Every provider the job may go to."""
        return (self.provider,) if isinstance(self.provider, str) else self.provider.providers

    def route_record(self) -> dict[str, Any] | None:
        """The route's canonical form for the journal, or ``None`` for a job sent to one provider."""
        return None if self.route is None else canonical_route(self.route)
