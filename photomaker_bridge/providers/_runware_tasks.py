"""Collecting Runware tasks from its answers: images deduplicated by imageUUID, costs, per-task failures, and the
summary a result is made of (docs/protocols/runware.md §3.2, §2.5: errors are scoped to the task that failed,
the others may still succeed). Pure: the flows feed it the answers :func:`parse_answer` read."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import attrs

from ..errors import GenerationFailedError, ProviderError
from ..images import image_size, parse_data_uri, sniff_format
from ..result import BridgeWarning, Cost, GeneratedImage
from ._runware_parsing import PROVIDER, ResponseItem, RunwareAnswer, invalid_response

__all__ = ["Summary", "TaskCollector", "TaskInfo", "summarize"]

_RUNWARE_FORMAT_TO_CONTENT_TYPE: Final[Mapping[str, str]] = {
    "JPG": "image/jpeg", "JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
}
_EXTENSION_TO_CONTENT_TYPE: Final[Mapping[str, str]] = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp",
}
_DEFAULT_OUTPUT_FORMAT: Final = "JPG"  # runware.md §5.1: outputFormat defaults to JPG


@attrs.frozen
class TaskInfo:
    """What parsing needs to know about one task sent: its id and the output it asked for."""

    task_uuid: str
    number_results: int | None = None
    """Images asked for; ``None`` when unknown (a handle rebuilt from an id alone)."""
    output_format: str | None = None
    """``JPG``/``PNG``/``WEBP`` as sent; ``None`` for Runware's default (JPG) or unknown."""
    width: int | None = None
    height: int | None = None
    known: bool = True
    """Whether the fields above come from the task sent (``False``: rebuilt from an id alone)."""

    @classmethod
    def from_task(cls, task: Mapping[str, Any]) -> TaskInfo:
        """From a task object as sent (after ``provider_options`` were merged in)."""
        def integer(name: str) -> int | None:
            value = task.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        output_format = task.get("outputFormat")
        return cls(task_uuid=str(task["taskUUID"]), number_results=integer("numberResults"),
                   output_format=output_format if isinstance(output_format, str) else None,
                   width=integer("width"), height=integer("height"))

    def to_details(self) -> dict[str, Any]:
        """JSON values for ``JobHandle.details``."""
        return {"numberResults": self.number_results, "outputFormat": self.output_format, "width": self.width,
                "height": self.height}

    @classmethod
    def from_details(cls, task_uuid: str, details: Mapping[str, Any] | None) -> TaskInfo:
        """From :meth:`to_details` output; ``details=None`` for a task known by its id only."""
        if details is None:
            return cls(task_uuid=task_uuid, known=False)
        return cls(task_uuid=task_uuid, number_results=details.get("numberResults"),
                   output_format=details.get("outputFormat"), width=details.get("width"),
                   height=details.get("height"))


def _decode_base64(text: str, *, status: int, body: Any, request_id: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise invalid_response(f"Runware sent image data that is not valid base64: {error}", status=status,
                                raw=body, request_id=request_id) from error


def _content_type(info: TaskInfo, url: str | None, data: bytes | None) -> str | None:
    if data is not None:
        sniffed = sniff_format(data)
        if sniffed is not None:
            return {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}[sniffed]
    if info.known:
        return _RUNWARE_FORMAT_TO_CONTENT_TYPE.get((info.output_format or _DEFAULT_OUTPUT_FORMAT).upper())
    if url:
        extension = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
        return _EXTENSION_TO_CONTENT_TYPE.get(extension)
    return None


class TaskCollector:
    """One task's outcome as answers arrive: images deduplicated by imageUUID (runware.md §3.2; getResponse is
    cumulative, §4.2), their costs, the task's errors, and how many images are still processing."""

    def __init__(self, info: TaskInfo) -> None:
        self.info = info
        self.images: dict[str, GeneratedImage] = {}
        self.costs: dict[str, Decimal] = {}
        self.failures: list[ProviderError] = []
        self.pending = 0
        self.answered = False
        """Whether any answer mentioned this task (an item, an ACK, an error)."""

    def add(self, answer: RunwareAnswer, *, include_unscoped: bool = True) -> None:
        """Take in one answer: new images, errors, and (for a poll) the current count of pending images."""
        items = answer.items_for(self.info.task_uuid)
        failures = (answer.failures_for(self.info.task_uuid) if include_unscoped
                    else [error for uuid, error in answer.failures if uuid == self.info.task_uuid])
        self.answered = self.answered or bool(items) or bool(failures)
        self.pending = sum(1 for item in items if item.is_pending)
        for error in failures:
            if not any(error is known for known in self.failures):
                self.failures.append(error)
        for item in items:
            if item.is_pending or not item.has_output:
                continue  # an ACK ({taskType, taskUUID}) or an image still processing
            self._add_image(item, answer)

    def _add_image(self, item: ResponseItem, answer: RunwareAnswer) -> None:
        data: bytes | None = None
        content_type: str | None = None
        if item.image_data_uri:
            try:
                content_type, data = parse_data_uri(item.image_data_uri)
            except ValueError as error:
                raise invalid_response(f"Runware sent an imageDataURI the bridge cannot read: {error}",
                                        status=answer.status, raw=answer.body,
                                        request_id=self.info.task_uuid) from error
        elif item.image_base64_data:
            data = _decode_base64(item.image_base64_data, status=answer.status, body=answer.body,
                                  request_id=self.info.task_uuid)
        key = item.image_uuid or item.image_url or f"data:{len(self.images)}"
        if key in self.images:
            return
        width, height = self.info.width, self.info.height
        if data is not None and (size := image_size(data)) is not None:
            width, height = size
        self.images[key] = GeneratedImage(
            url=item.image_url, data=data, content_type=content_type or _content_type(self.info, item.image_url, data),
            width=width, height=height, seed=item.seed, nsfw=item.nsfw_content, provider_image_id=item.image_uuid,
        )
        if item.cost is not None:
            self.costs[key] = item.cost

    @property
    def done(self) -> bool:
        """Whether nothing more will come for this task: every image asked for is in, or the task failed, or
        Runware reports nothing still processing (a task that delivered fewer images than asked)."""
        if self.failures:
            return self.pending == 0
        expected = self.info.number_results
        if expected is not None and len(self.images) >= expected:
            return True
        return self.answered and self.pending == 0 and bool(self.images)


@attrs.frozen
class Summary:
    """The images, cost and warnings of several tasks together, or the error to raise when none succeeded."""

    images: tuple[GeneratedImage, ...]
    cost: Cost | None
    warnings: tuple[BridgeWarning, ...]
    error: ProviderError | None
    """The first typed error, in task order, when no task delivered an image; else ``None``."""


def summarize(collectors: Sequence[TaskCollector], *, requested: int | None) -> Summary:
    """Put tasks' outcomes together. Partial success is never lost: when some images arrived, every error
    becomes a warning on the result; when none did, the first error (in task order) is the one to raise."""
    images = [image for collector in collectors for image in collector.images.values()]
    costs = [cost for collector in collectors for cost in collector.costs.values()]
    errors: list[ProviderError] = []
    for collector in collectors:
        for error in collector.failures:
            if not any(error is seen for seen in errors):
                errors.append(error)
    if not images:
        first = errors[0] if errors else GenerationFailedError(
            "Runware answered without any image and without an error", provider=PROVIDER,
            request_id=collectors[0].info.task_uuid if collectors else None, retryable=True,
            raw=None)
        return Summary(images=(), cost=None, warnings=(), error=first)
    warnings: list[BridgeWarning] = []
    for error in errors:
        warnings.append(BridgeWarning(
            field="num_images", asked=requested, sent=len(images), provider=PROVIDER,
            reason=f"task {error.request_id} failed ({type(error).__name__}, {error.code}): {error.message}; "
                   f"the images of the other tasks are returned",
        ))
    if requested is not None and len(images) < requested and not errors:
        warnings.append(BridgeWarning(field="num_images", asked=requested, sent=len(images), provider=PROVIDER,
                                      reason=f"Runware returned {len(images)} of the {requested} images asked for"))
    flagged = [index for index, image in enumerate(images) if image.nsfw]
    if flagged:
        # NSFWContent flags an image "as potentially sensitive" and still returns it (runware.md §2.2, runware.md SEED
        # "NSFWContent"): the image is kept with nsfw=True, and the flag is reported here too.
        warnings.append(BridgeWarning(field="safety_check", asked=True, sent=True, provider=PROVIDER,
                                      reason=f"Runware flagged image(s) {flagged} as potentially sensitive "
                                             f"(NSFWContent); they are returned with nsfw=True"))
    cost = Cost(sum(costs, Decimal(0)), source="reported") if costs else None
    return Summary(images=tuple(images), cost=cost, warnings=tuple(warnings), error=None)
