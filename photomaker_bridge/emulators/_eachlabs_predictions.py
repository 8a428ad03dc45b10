"""One Eachlabs prediction: its lifecycle, computed from monotonic timestamps, and its GET body.

No background task drives a prediction. Its status is worked out whenever someone asks: ``created`` for its
queue time, then ``processing`` for its run time, then ``success`` or ``error``; a cancel freezes it as
``cancelled`` (eachlabs.md §2.5, §6.5). ``starting`` never appears: Eachlabs folds it into ``created`` for
REST callers (MD ``video/quickstart.mdx``, eachlabs.md §2.5).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import attrs

from ._eachlabs_failures import Failure, failure_output
from ._eachlabs_schema import ModelSpec
from ._eachlabs_storage import PUBLIC_PATH_PREFIX

__all__ = ["OUTPUT_NAME", "TERMINAL_STATUSES", "Prediction"]

TERMINAL_STATUSES: frozenset[str] = frozenset({"success", "error", "cancelled"})
"""Statuses a prediction never leaves (eachlabs.md §2.5; ``cancelled`` with a double l)."""

OUTPUT_NAME = re.compile(r"image_(\d+)\.png")
"""Output file names: the Cog predictor saves ``image_{i}.png`` (eachlabs.md §3.3)."""


@attrs.define
class Prediction:
    """A prediction accepted by the emulator."""

    id: str
    model: ModelSpec
    input: Mapping[str, object]
    """The ``input`` object exactly as the caller sent it; GET echoes it."""
    api_key: str
    """The key that created it: the concurrency cap counts per key (eachlabs.md §2.3)."""
    seed: int
    """The input seed, or the one drawn for it; output ``i`` is rendered with ``seed + i``."""
    style_name: str
    """The style the images are rendered in (the model's default when none was sent)."""
    image_count: int
    """How many images a success delivers (``num_outputs``, fewer under a ``partial`` fault)."""
    queue_seconds: float
    run_seconds: float
    created_at: float
    """``time.monotonic()`` at creation."""
    stuck: bool = False
    """Never leaves ``processing`` (a ``stuck_job`` fault) until cancelled."""
    failure: Failure | None = None
    """Why it ends in ``error``; ``None`` for a prediction that succeeds."""
    cancelled_at: float | None = None

    @property
    def started_at(self) -> float:
        """When it leaves ``created`` for ``processing``."""
        return self.created_at + self.queue_seconds

    @property
    def finished_at(self) -> float:
        """When it reaches ``success`` or ``error`` (infinity when stuck)."""
        return math.inf if self.stuck else self.started_at + self.run_seconds

    def status(self, now: float) -> str:
        """The status a poll at monotonic time ``now`` sees."""
        if self.cancelled_at is not None:
            return "cancelled"
        if now < self.started_at:
            return "created"
        if now < self.finished_at:
            return "processing"
        return "error" if self.failure is not None else "success"

    def is_terminal(self, now: float) -> bool:
        """Whether the prediction has finished (and no longer counts toward the concurrency cap)."""
        return self.status(now) in TERMINAL_STATUSES

    def cancel(self, now: float) -> bool:
        """Cancel it if it has not finished; ``False`` when it already had (eachlabs.md §2.8)."""
        if self.is_terminal(now):
            return False
        self.cancelled_at = now
        return True

    def output_urls(self, origin: str) -> list[str]:
        """Absolute URLs of the images a success delivers, served by the emulator itself."""
        prefix = f"{origin}{PUBLIC_PATH_PREFIX}{self.id}"
        return [f"{prefix}/image_{index}.png" for index in range(self.image_count)]

    def output_index(self, file_name: str, now: float) -> int | None:
        """The output number ``file_name`` names, if that image exists now (only after a success)."""
        match = OUTPUT_NAME.fullmatch(file_name)
        if match is None or self.status(now) != "success":
            return None
        index = int(match.group(1))
        return index if index < self.image_count else None

    def body(self, now: float, origin: str, *, cost_per_second: float, single_output_as_string: bool = False,
             failure_output_as_string: bool = False) -> dict[str, object]:
        """The GET ``/v1/prediction/{id}`` body, keys in production order (eachlabs.md §2.4, §6.5)."""
        status = self.status(now)
        output: object = None
        metrics: dict[str, object] = {}
        # [UNVERIFIED] In flight Eachlabs' shape is undocumented (eachlabs.md §2.4, §7): the emulator keeps
        # every key and sends `output: null` and `metrics: {}` until the prediction finishes.
        if status == "success":
            urls = self.output_urls(origin)
            # The documented example has a single string, production captures a list; photomaker's output
            # type is "array" (eachlabs.md §2.4), so a list unless the option asks for the string form.
            output = (urls[0] if urls else "") if single_output_as_string else urls
            predict_time = round(self.run_seconds, 6)
            metrics = {"predict_time": predict_time, "cost": round(predict_time * cost_per_second, 6)}
        elif status == "error":
            assert self.failure is not None
            # V1 allows either a plain string or a classified object in `output` (eachlabs.md §2.6).
            if failure_output_as_string:
                output = self.failure.message
            else:
                output = failure_output(self.failure, prediction_id=self.id, model_slug=self.model.slug,
                                        model_id=self.model.model_id)
            # Failed predictions are not billed (production capture, eachlabs.md §2.6).
            metrics = {"predict_time": round(self.run_seconds, 6), "cost": 0}
        elif status == "cancelled":
            assert self.cancelled_at is not None
            # A cancelled prediction polls with cost 0 (eachlabs.md §2.8); predict_time is the time it had
            # spent processing [UNVERIFIED].
            ran = max(0.0, self.cancelled_at - self.started_at)
            metrics = {"predict_time": round(ran, 6), "cost": 0}
        get_url = f"{origin}/v1/prediction/{self.id}"
        return {
            "id": self.id,
            "input": dict(self.input),
            "logs": None,  # "present on every poll and is null today" (eachlabs.md §2.4)
            "status": status,
            "output": output,
            "metrics": metrics,
            "urls": {"get": get_url, "cancel": f"{get_url}/cancel"},
        }

    def run_answer(self, now: float, origin: str, *, single_output_as_string: bool = False) -> dict[str, object]:
        """The ``/v1/prediction/run`` answer for a finished prediction (MD-OAS ``RunPredictionResponse``,
        eachlabs.md §2.9): ``status`` ``success``/``failed``/``cancelled``, ``output`` and an ``error`` text."""
        status = self.status(now)
        output: object = None
        error = ""
        if status == "success":
            urls = self.output_urls(origin)
            output = (urls[0] if urls else "") if single_output_as_string else urls
        elif status == "error":
            assert self.failure is not None
            error = self.failure.message
        # The run answer spells a failure "failed" (the spec's enum), where a poll says "error" (§2.5).
        wire_status = {"success": "success", "error": "failed"}.get(status, "cancelled")
        messages = {"success": "Prediction completed successfully", "failed": "Prediction failed",
                    "cancelled": "Prediction was cancelled"}
        return {"status": wire_status, "message": messages[wire_status], "predictionID": self.id,
                "output": output, "error": error}
