"""Batch jobs: one request, the provider to send it to, a stable key, and the labels a report groups by.

A job's **key** identifies it across runs: re-running a batch with the same journal skips the keys already
finished and resumes the ones submitted but not collected. By default the key is derived from the request's
content and the provider (so the same job always gets the same key, and a changed prompt gets a new one);
a JSONL line or the caller may give its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import InvalidRequestError
from ..request import PROVIDER_NAMES, PhotoMakerRequest, ReferenceImage

__all__ = ["BatchJob", "JobLabels", "faces_label", "job_key"]

_MAX_KEY_LENGTH = 200


def _image_identity(image: ReferenceImage) -> str:
    """What makes two reference images the same: their bytes (by hash), else their URL or Runware UUID."""
    return image.sha256 or image.url or image.uuid or image.source


def job_key(request: PhotoMakerRequest, provider: str) -> str:
    """The default key of a job: ``<provider>-<16 hex digits>`` from the request's content and the provider.

    Reference images count by content (the same photo given as a path or as bytes is the same job), every
    other field by value, so any change to the request makes a new key.
    """
    data = request.to_dict()
    data["images"] = [_image_identity(image) for image in request.images]
    canonical = json.dumps({"provider": provider, "request": data}, sort_keys=True, separators=(",", ":"),
                           default=str)
    return f"{provider}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


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


def _check_provider(instance: BatchJob, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in PROVIDER_NAMES:
        raise InvalidRequestError("provider", value, "one of " + ", ".join(PROVIDER_NAMES),
                                  reason="unknown provider")


def _check_key(instance: BatchJob, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_KEY_LENGTH or "\n" in value:
        raise InvalidRequestError("key", value, f"a non-empty string of at most {_MAX_KEY_LENGTH} characters "
                                  "on one line")


@attrs.frozen
class BatchJob:
    """One job of a batch: ``request`` sent to ``provider``, known across runs by ``key``.

    Example::

        BatchJob(PhotoMakerRequest(prompt="a man img on a boat", images=["face.jpg"]), provider="fal")
    """

    request: PhotoMakerRequest
    """What to generate."""
    provider: str = attrs.field(validator=_check_provider)
    """Where to send it: ``"runware"``, ``"fal"`` or ``"eachlabs"``. (A route across providers will take its
    place once routing exists; the runner sends a job through one function, :func:`~photomaker_bridge.batch.
    runner.submit_job`, so that is the one place to change.)"""
    key: str = attrs.field(default=attrs.Factory(lambda job: job_key(job.request, job.provider), takes_self=True),
                           validator=_check_key)
    """The job's identity across runs; default :func:`job_key`."""
    labels: JobLabels = attrs.field(default=attrs.Factory(lambda job: JobLabels.of(job.request), takes_self=True))
    """How reports group and caption it."""
