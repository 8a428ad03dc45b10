"""One accepted image-generation task: its schedule, its fate, and the result items Runware would send.

A job's progress is never driven by a background loop: it is computed from ``time.monotonic()`` timestamps
fixed when the job is accepted. The job waits ``queue_time``, then runs ``run_time``; its images come out in
parallel, image ``i`` of ``n`` ready at ``started_at + run_time * (i + 1) / n`` ("images are generated in
parallel, and generation time varies", runware.md §2.2).
"""

from __future__ import annotations

import base64
import math
import time
from typing import Any, Literal

import attrs

from ._images import render_image
from ._runware_errors import error_item
from ._runware_media import MediaStore
from ._runware_validation import InferenceSpec

__all__ = ["Job", "JobFate"]

JobFate = Literal["success", "fail", "stuck", "partial"]

_RENDER_FORMATS: dict[str, Literal["PNG", "JPEG", "WEBP"]] = {"JPG": "JPEG", "PNG": "PNG", "WEBP": "WEBP"}
_MIME_TYPES: dict[str, str] = {"JPG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@attrs.define(eq=False)
class Job:
    """An accepted ``photoMaker`` / ``imageInference`` task and everything needed to answer for it."""

    spec: InferenceSpec
    origin: str
    """Scheme and host the task arrived on; image URLs are built on it."""
    input_uuids: tuple[str, ...]
    """imageUUIDs of the inputs, echoed as ``inputImagesUUID``."""
    image_uuids: tuple[str, ...]
    """imageUUIDs of the images this job will deliver: fewer than asked for a ``partial`` fault, none for a
    job that fails or never finishes."""
    seeds: tuple[int, ...]
    accepted_at: float
    started_at: float
    run_seconds: float
    fate: JobFate
    failure_message: str
    cost_per_image: float
    ttl_scale: float = 1.0
    """Emulator seconds per second of ``ttl`` (``RunwareOptions.ttl_scale``)."""
    counted: bool = False
    """Whether the job's end has been counted in the emulator's counters."""

    @property
    def finished_at(self) -> float:
        """When the job ends (successfully or not); infinity for a stuck job."""
        return math.inf if self.fate == "stuck" else self.started_at + self.run_seconds

    def image_ready_at(self, index: int) -> float:
        """When image ``index`` is ready."""
        return self.started_at + self.run_seconds * (index + 1) / self.spec.number_results

    def is_finished(self, now: float | None = None) -> bool:
        """Whether the job has ended."""
        return (time.monotonic() if now is None else now) >= self.finished_at

    def has_failed(self, now: float | None = None) -> bool:
        """Whether the job has ended in an error."""
        return self.fate == "fail" and self.is_finished(now)

    def ready_count(self, now: float | None = None) -> int:
        """How many images are ready."""
        moment = time.monotonic() if now is None else now
        return sum(1 for index in range(len(self.image_uuids)) if self.image_ready_at(index) <= moment)

    def progress(self, now: float) -> int:
        """Percent of the run elapsed (0 while queued), as ``getResponse`` reports it."""
        if now < self.started_at or self.run_seconds <= 0:
            return 0
        return min(99, int(100 * (now - self.started_at) / self.run_seconds))

    def result_item(self, index: int, media: MediaStore) -> dict[str, Any]:
        """The ``data`` item of image ``index`` (rendered and stored on first use)."""
        spec = self.spec
        image_uuid = self.image_uuids[index]
        stored = media.get(image_uuid)
        if stored is None:
            # outputQuality is the JPG/WEBP compression quality (20-99, runware.md SEED): it changes the bytes.
            data = render_image(seed=self.seeds[index], style=spec.style, width=spec.width, height=spec.height,
                                image_format=_RENDER_FORMATS[spec.output_format], quality=spec.output_quality)
            # "ttl: how long the generated content will be available at the provided URL before being
            # automatically deleted ... only when outputType is URL" (runware.md SEED, runware.md §5.1).
            expires_at = None
            if spec.ttl is not None and "URL" in spec.output_types:
                expires_at = self.image_ready_at(index) + spec.ttl * self.ttl_scale
            stored = media.put(image_uuid, data, _RENDER_FORMATS[spec.output_format], expires_at=expires_at)
        item: dict[str, Any] = {"taskType": spec.task_type, "taskUUID": spec.task_uuid, "imageUUID": image_uuid}
        # One field per output type: URL → imageURL, base64Data → imageBase64Data, dataURI → imageDataURI
        # (runware.md §2.2).
        if "URL" in spec.output_types:
            item["imageURL"] = media.url(image_uuid, self.origin)
        if "base64Data" in spec.output_types:
            item["imageBase64Data"] = base64.b64encode(stored.data).decode("ascii")
        if "dataURI" in spec.output_types:
            encoded = base64.b64encode(stored.data).decode("ascii")
            item["imageDataURI"] = f"data:{_MIME_TYPES[spec.output_format]};base64,{encoded}"
        item["seed"] = self.seeds[index]
        if self.input_uuids:
            item["inputImagesUUID"] = list(self.input_uuids)
        if spec.check_nsfw:
            # NSFWContent is present only when a check was asked for (runware.md §2.2); the emulator's
            # pictures are stripes, never flagged.
            item["NSFWContent"] = False
        if spec.include_cost:
            item["cost"] = self.cost_per_image
        return item

    def error(self) -> dict[str, Any]:
        """The ``errors`` item of a failed job."""
        return error_item("inferenceError", self.failure_message, task_type=self.spec.task_type,
                          task_uuid=self.spec.task_uuid)

    def image_data(self, index: int, media: MediaStore) -> tuple[bytes, str]:
        """The encoded bytes of image ``index`` and their MIME type (for ``uploadEndpoint``)."""
        self.result_item(index, media)
        stored = media.get(self.image_uuids[index])
        assert stored is not None
        return stored.data, stored.content_type

    def acknowledgement(self) -> dict[str, Any]:
        """The immediate answer to an async or webhook task: ``taskType`` and ``taskUUID`` only.

        The exact ACK body is [UNVERIFIED] (runware.md §4.1); without ``imageUUID`` or ``status`` it is taken
        as an ACK by the legacy SDK and by the new one alike.
        """
        return {"taskType": self.spec.task_type, "taskUUID": self.spec.task_uuid}

    def final_items(self, media: MediaStore) -> list[dict[str, Any]]:
        """Every image item of a job that finished successfully."""
        return [self.result_item(index, media) for index in range(len(self.image_uuids))]

    def poll_items(self, media: MediaStore, now: float | None = None) -> list[dict[str, Any]]:
        """What ``getResponse`` answers now: cumulative items with ``status`` (runware.md §4.2).

        Ready images are ``success`` items, the rest ``processing`` with a ``progress`` percentage; a failed
        job is one ``error`` item carrying ``error: {code, message}``, the per-item error shape of the new
        SDK's polling tests (runware.md §2.5). Items echo the original ``taskType`` (runware.md §4.2, the
        suggested choice where the reference is [UNVERIFIED]).
        """
        moment = time.monotonic() if now is None else now
        spec = self.spec
        if self.has_failed(moment):
            error = self.error()
            return [{"taskType": spec.task_type, "taskUUID": spec.task_uuid, "status": "error",
                     "error": {"code": error["code"], "message": error["message"]}}]
        ready = self.ready_count(moment)
        items = [{**self.result_item(index, media), "status": "success"} for index in range(ready)]
        if not self.is_finished(moment):
            pending = {"taskType": spec.task_type, "taskUUID": spec.task_uuid, "status": "processing",
                       "progress": self.progress(moment)}
            items.extend(dict(pending) for _ in range(spec.number_results - ready))
        return items
