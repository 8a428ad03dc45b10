"""The fal-ai/photomaker app itself, as a runner executes one request: checks, downloads, images.

Called once per request when the queue hands it to a runner (:meth:`Job.settle`). The order follows the
app: the FastAPI/pydantic schema first (all field errors at once), then the archive download, the optional
initial image, and the TencentARC pipeline's trigger-word check; only then are images generated.
"""

from __future__ import annotations

import hashlib
import json
import math

import attrs

from ._common import EmulatorState
from ._fal_archive import ArchiveProblem, inspect_archive
from ._fal_http import ERROR_TYPE_HEADER
from ._fal_jobs import Job, LogLine, Outcome
from ._fal_options import FalOptions
from ._fal_schema import PhotoMakerInput, ValidationIssue, json_decode_issue, trigger_word_issue, validate_input
from ._fal_storage import DownloadProblem, FileStore
from ._images import render_image, sniff_format

__all__ = ["FAIL_JOB_DETAIL", "IMAGE_SIZE", "PhotoMakerRunner"]

IMAGE_SIZE = (1024, 1024)
"""fal-ai/photomaker always answers 1024×1024 PNGs (fal.md SEED3 example output)."""
FAIL_JOB_DETAIL = "Runner encountered an internal server error"
"""Default message of an injected ``fail_job`` (error type ``runner_server_error``, fal.md §1.4)."""

# fal's documented error types for file inputs (docs.fal.ai/errors, fal.md §1.6: newer apps add a "url").
# Whether the PhotoMaker app uses them for its archive is [UNVERIFIED] (fal.md §4.2: "probably 422 or 500").
_DOWNLOAD_ERROR = "file_download_error"
_IMAGE_LOAD_ERROR = "image_load_error"
_ERRORS_URL = "https://docs.fal.ai/errors#"


def _file_issue(field: str, message: str, error_type: str) -> ValidationIssue:
    return {"loc": ["body", field], "msg": message, "type": error_type, "url": _ERRORS_URL + error_type}


def _image_key(request_id: str, index: int) -> str:
    """A stable 32-hex-digit file name, like the names fal gives generated images (fal.md SEED3)."""
    return hashlib.sha256(f"{request_id}|{index}".encode()).hexdigest()[:32]


def _progress_bar(step: int, steps: int, elapsed: float, total: float) -> str:
    """A diffusers/tqdm progress line, as PhotoMaker apps print on stderr."""
    filled = step * 10 // steps
    rate = step / elapsed if elapsed > 0 else 0.0
    remaining = max(0.0, total - elapsed)
    return (f"{step * 100 // steps:3d}%|{'█' * filled}{' ' * (10 - filled)}| {step}/{steps} "
            f"[00:{int(elapsed):02d}<00:{int(remaining):02d}, {rate:.2f}it/s]")


@attrs.frozen
class PhotoMakerRunner:
    """Decides the :class:`Outcome` of a request when a runner takes it (the ``decide`` of ``Job.settle``)."""

    state: EmulatorState
    options: FalOptions
    store: FileStore

    def __call__(self, job: Job) -> Outcome:
        """Run the app on ``job``'s input."""
        if job.fault is not None and job.fault.kind == "stuck_job":
            return Outcome(200, None, math.inf, logs=(LogLine(0.0, "INFO", "Loading PhotoMaker pipeline"),))
        if job.fault is not None and job.fault.kind == "fail_job":
            detail = job.fault.message or FAIL_JOB_DETAIL
            return Outcome(500, {"detail": detail, "error_type": "runner_server_error"}, job.run_seconds,
                           error=detail, error_type="runner_server_error",
                           headers={ERROR_TYPE_HEADER: "runner_server_error"},
                           logs=(LogLine(0.0, "INFO", "Loading PhotoMaker pipeline"),
                                 LogLine(job.run_seconds, "ERROR", f"RuntimeError: {detail}")))
        if job.subpath not in self.options.app_subpaths:
            return self._reject(job, 404, {"detail": "Not Found"})
        decode_issue = json_decode_issue(job.body)
        if decode_issue is not None:
            return self._reject(job, 422, {"detail": [decode_issue]})
        checked = validate_input(json.loads(job.body), strict=self.options.strict_types,
                                 forbid_extra=self.options.forbid_extra_fields)
        if isinstance(checked, list):
            return self._reject(job, 422, {"detail": checked})
        archive_problem, image_count = self._check_archive(checked.image_archive_url)
        if archive_problem is not None:
            return self._reject(job, 422, {"detail": [archive_problem]}, logged=archive_problem["msg"])
        initial_problem = self._check_initial_image(checked.initial_image_url)
        if initial_problem is not None:
            return self._reject(job, 422, {"detail": [initial_problem]}, logged=initial_problem["msg"])
        if self.options.trigger_rule:
            trigger_problem = trigger_word_issue(checked.prompt)
            if trigger_problem is not None:
                status = self.options.trigger_status
                body = {"detail": [trigger_problem]} if status == 422 else {"detail": trigger_problem["msg"]}
                return self._reject(job, status, body, logged=f"ValueError: {trigger_problem['msg']}")
        return self._generate(job, checked, image_count)

    def _reject(self, job: Job, status: int, body: object, logged: str | None = None) -> Outcome:
        seconds = min(job.run_seconds, self.options.rejection_seconds)
        logs = (LogLine(0.0, "ERROR", logged),) if logged is not None else ()
        return Outcome(status, body, seconds, logs=logs)

    def _check_archive(self, url: str) -> tuple[ValidationIssue | None, int]:
        settings = self.state.settings
        try:
            data = self.store.fetch(url, allow_data_uris=settings.allow_data_uris,
                                    external_urls_reachable=settings.external_urls_reachable)
        except DownloadProblem as error:
            return _file_issue("image_archive_url", str(error), _DOWNLOAD_ERROR), 0
        if data is None:
            return None, 1  # a reachable external archive: its content is unknown, taken as one face
        try:
            return None, len(inspect_archive(data))
        except ArchiveProblem as error:
            return _file_issue("image_archive_url", str(error), "value_error"), 0

    def _check_initial_image(self, url: str | None) -> ValidationIssue | None:
        if not url:
            return None
        try:
            # Data URIs are the documented generic way to pass a file (fal.md SEED4 "Files"); only the archive is
            # reported to refuse them, so allow_data_uris does not apply here.
            data = self.store.fetch(url, allow_data_uris=True,
                                    external_urls_reachable=self.state.settings.external_urls_reachable)
        except DownloadProblem as error:
            return _file_issue("initial_image_url", str(error), _DOWNLOAD_ERROR)
        if data is not None and sniff_format(data) is None:
            return _file_issue("initial_image_url", "Failed to load the image: not a PNG, JPEG or WEBP file.",
                               _IMAGE_LOAD_ERROR)
        return None

    def _generate(self, job: Job, checked: PhotoMakerInput, reference_count: int) -> Outcome:
        seed = checked.seed if checked.seed is not None else job.seed
        count = checked.num_images
        if job.fault is not None and job.fault.kind == "partial":
            delivered = job.fault.images if job.fault.images is not None else count - 1
            count = max(0, min(count, delivered))
        width, height = IMAGE_SIZE
        images = []
        for index in range(count):
            png = render_image(seed=seed + index, style=checked.style, width=width, height=height)
            name = _image_key(job.request_id, index) + ".png"
            images.append(self.store.add(png, "image/png", name, key=name))
        run = job.run_seconds
        steps = checked.num_inference_steps
        logs = [LogLine(0.0, "INFO", "Downloading image archive"),
                LogLine(run * 0.05, "INFO", f"Loaded {reference_count} reference image(s) from the archive"),
                LogLine(run * 0.1, "INFO", f"Running {checked.base_pipeline} with style {checked.style!r}: "
                                           f"{checked.num_images} image(s), {steps} steps")]
        for tenth in range(1, 10):
            step = steps * tenth // 10
            elapsed = run * (0.1 + 0.08 * tenth)
            logs.append(LogLine(elapsed, "STDERR", _progress_bar(step, steps, elapsed, run)))
        logs.append(LogLine(run, "INFO", f"Generated {count} image(s) with seed {seed}"))
        return Outcome(200, None, run, images=tuple(images), image_size=IMAGE_SIZE, seed=seed, logs=tuple(logs))
