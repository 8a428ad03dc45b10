"""Jobs from a JSONL file: one ``PhotoMakerRequest.to_dict()`` object per line, plus optional ``provider`` (a
name, or a list of names: an ordered route), ``route`` (a route object: :func:`~photomaker_bridge.batch.routes.
route_from_line`) and ``key``.

Bad lines (not JSON, not an object, an invalid request, an unknown provider, a missing image, a key used
twice) are reported by line number and skipped; they never stop the good lines from running. The file is
read as a stream, line by line, every time it is iterated: a batch of any size costs the memory of one line.

Relative image paths are looked up beside the JSONL file first, then in the current directory, so a folder
holding the file and its photos can be moved as a whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from ..errors import BridgeError, InvalidRequestError
from ..request import PhotoMakerRequest
from .jobs import BatchJob
from .routes import JobProvider, route_from_line

__all__ = ["JobFile", "LineProblem"]

_NOT_PATHS = ("http://", "https://", "data:")


@attrs.frozen
class LineProblem:
    """A line of the input that cannot run, and why."""

    where: str
    """``"line 7"`` for a JSONL file, or the job's key for other sources."""
    message: str
    """What is wrong, naming the field."""

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@attrs.frozen
class JobFile:
    """A JSONL file of jobs, read lazily; iterate :meth:`numbered` for ``(where, job or problem)`` pairs."""

    path: Path = attrs.field(converter=Path)
    """The file."""
    default_provider: JobProvider | None = None
    """The provider or route of lines that name none (the CLI's ``--provider`` or ``--route``)."""

    def numbered(self) -> Iterator[tuple[str, BatchJob | LineProblem]]:
        """Every non-blank line as ``("line N", job)`` or ``("line N", problem)``, in file order."""
        with self.path.open("r", encoding="utf-8") as stream:
            for number, text in enumerate(stream, start=1):
                if not text.strip():
                    continue
                where = f"line {number}"
                try:
                    yield where, self._job(text)
                except (BridgeError, ValueError, TypeError) as error:
                    yield where, LineProblem(where, _describe(error))

    def __iter__(self) -> Iterator[BatchJob]:
        """The good lines' jobs (bad lines skipped; :meth:`numbered` says which and why)."""
        for _, item in self.numbered():
            if isinstance(item, BatchJob):
                yield item

    def _job(self, text: str) -> BatchJob:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidRequestError("line", _clip(text), "one JSON object per line",
                                      reason=f"not JSON: {error.msg} at column {error.colno}") from None
        if not isinstance(value, dict):
            raise InvalidRequestError("line", _clip(text), "a JSON object (a request's fields)")
        fields = dict(value)
        named, route, key = fields.pop("provider", None), fields.pop("route", None), fields.pop("key", None)
        if named is not None and route is not None:
            raise InvalidRequestError("route", route, 'either "provider" or "route" on a line, not both')
        provider = route_from_line(route) if route is not None else named or self.default_provider
        if provider is None:
            raise InvalidRequestError("provider", None, 'a "provider" or "route" on the line, or --provider or '
                                      "--route for every line")
        if "images" in fields:
            fields["images"] = self._resolve_images(fields["images"])
        request = PhotoMakerRequest.from_dict(fields)
        if key is None:
            return BatchJob(request, provider=provider)
        return BatchJob(request, provider=provider, key=key)

    def _resolve_images(self, images: Any) -> Any:
        if isinstance(images, str):
            return self._resolve_image(images)
        if isinstance(images, list):
            return [self._resolve_image(image) for image in images]
        return images

    def _resolve_image(self, image: Any) -> Any:
        if not isinstance(image, str) or image.lower().startswith(_NOT_PATHS) or len(image) > 4096:
            return image
        candidate = Path(image).expanduser()
        if candidate.is_absolute():
            return image
        beside = self.path.parent / candidate
        try:
            return str(beside) if beside.is_file() else image
        except OSError:  # a name the OS refuses (base64 text, say): leave it to the request's own checks
            return image


def _clip(text: str, limit: int = 60) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(error: Exception) -> str:
    return str(error) if str(error) else type(error).__name__
