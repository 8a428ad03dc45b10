"""Why an accepted Eachlabs prediction fails, and the ``output`` envelope a failed prediction carries.

Failures of an accepted prediction are not HTTP errors on Eachlabs: the create call answers 200 and a later
poll shows ``status: "error"`` with the detail in ``output`` (eachlabs.md §2.6). The envelope mirrors the one
captured in production (MD ``video/billing-limits.mdx``); its keys are alphabetical because Eachlabs'
backend marshals it from a Go map, which sorts keys.
"""

from __future__ import annotations

import re

import attrs

__all__ = [
    "DEFAULT_JOB_FAILURE_MESSAGE",
    "FAILURE_ERROR_TEXT",
    "PROVIDER_NAME",
    "TRIGGER_PATTERN",
    "TRIGGER_WORD",
    "Failure",
    "download_failure",
    "failure_output",
    "not_an_image_failure",
    "provider_failure",
    "trigger_word_error",
    "validation_failure",
]

TRIGGER_WORD = "img"
"""The PhotoMaker trigger word (eachlabs.md §3.3)."""

TRIGGER_PATTERN = re.compile(r"\bimg\b")
"""How the emulator finds the trigger word. Upstream matches CLIP tokens; a case-sensitive whole-word regex
is the approximation the reference recommends (§3.3). Replace it to model token matching differently."""

PROVIDER_NAME = "replicate"
"""``provider`` in failure envelopes. [UNVERIFIED] that Eachlabs proxies Replicate's PhotoMaker (§3 table)."""

FAILURE_ERROR_TEXT = "Execution failed"
"""The envelope's top-level ``error`` text in the production capture (eachlabs.md §2.6)."""

DEFAULT_JOB_FAILURE_MESSAGE = "exec_error"
"""``error_message`` of an injected ``fail_job`` without its own message: the production capture's (§2.6)."""


@attrs.frozen
class Failure:
    """Why a prediction ends in ``status: "error"``."""

    error_code: str
    """One of the V1 ``error_code`` values (eachlabs.md §2.6), e.g. ``PROVIDER_FAILED``."""
    category: str
    """``classification.category``: VALIDATION, PROVIDER, NETWORK, ..."""
    message: str
    """``error_message``: the human-readable cause."""
    step: str
    """``error_step``: where in Eachlabs' pipeline it failed."""
    provider_error_code: str = ""
    """What the upstream provider called it (``failed`` for a model-side exception)."""
    retryable: bool = False


def provider_failure(message: str) -> Failure:
    """The model itself raised ``message`` while running (trigger-word errors, injected job failures)."""
    return Failure(error_code="PROVIDER_FAILED", category="PROVIDER", message=message, step="poll",
                   provider_error_code="failed")


def download_failure(field: str, url: str) -> Failure:
    """An input file could not be fetched (MD-BR ``INPUT_DOWNLOAD_ERROR``, eachlabs.md §2.6, §3.1).

    [UNVERIFIED] category, step and message wording: the reference documents only the code and its meaning.
    """
    return Failure(error_code="INPUT_DOWNLOAD_ERROR", category="VALIDATION",
                   message=f"An input file could not be downloaded: {field} ({url})", step="prepare")


def not_an_image_failure(field: str, url: str) -> Failure:
    """An input file was fetched but is not a JPEG, PNG or WEBP image.

    [UNVERIFIED] Eachlabs detects image types from the file bytes (changelog 2026-07-16, eachlabs.md §3.1);
    what it reports for a file that is no image is not documented, so this uses ``INPUT_VALIDATION_ERROR``.
    """
    return Failure(error_code="INPUT_VALIDATION_ERROR", category="VALIDATION",
                   message=f"{field}: the file at {url} is not a supported image (jpeg, png, webp)",
                   step="prepare")


def validation_failure(details: str) -> Failure:
    """The input broke the model schema and the emulator is set to report that asynchronously (§3.1)."""
    return Failure(error_code="INPUT_VALIDATION_ERROR", category="VALIDATION", message=details,
                   step="prepare")


def trigger_word_error(prompt: str, negative_prompt: str) -> str | None:
    """The message the PhotoMaker predictor raises for this prompt pair, or ``None`` when it accepts it.

    Same checks and order as TencentARC ``predict.py`` (eachlabs.md §3.3): trigger word absent, then present
    more than once, then present in the negative prompt. The check runs on the caller's own prompt, before
    any style template is applied.
    """
    count = len(TRIGGER_PATTERN.findall(prompt))
    if count == 0:
        return f"Cannot find the trigger word '{TRIGGER_WORD}' in text prompt!"
    if count > 1:
        return f"Cannot use multiple trigger words '{TRIGGER_WORD}' in text prompt!"
    if negative_prompt and TRIGGER_PATTERN.search(negative_prompt):
        return f"Cannot use trigger word '{TRIGGER_WORD}' in negative prompt!"
    return None


def failure_output(failure: Failure, *, prediction_id: str, model_slug: str,
                   model_id: str) -> dict[str, object]:
    """The classified envelope a failed prediction carries in ``output`` (eachlabs.md §2.6)."""
    return {
        "classification": {"category": failure.category},
        "error": FAILURE_ERROR_TEXT,
        "error_code": failure.error_code,
        "error_message": failure.message,
        "error_step": failure.step,
        "execution_id": prediction_id,
        "model_id": model_id,
        "model_slug": model_slug,
        "provider": PROVIDER_NAME,
        "provider_error_code": failure.provider_error_code,
        "retryable": failure.retryable,
        "status": "ERROR",
        "success": False,
    }
