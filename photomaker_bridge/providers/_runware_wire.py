"""Runware's wire classes: the task objects we send, as attrs classes with one converter.

They never leave the Runware adapter as anything but JSON dicts. Fields without a default are always sent;
optional ones are left out when ``None`` (cattrs ``omit_if_default``).
"""

from __future__ import annotations

from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

__all__ = ["ImageInferenceTask", "PhotoMakerSettings", "PhotoMakerTask", "Safety", "get_response_task",
           "image_upload_task", "unstructure_task"]


@attrs.frozen(kw_only=True)
class Safety:
    """``safety`` (§5.1): ``checkContent`` turns the content check on (results then carry NSFWContent)."""

    check_content: bool


@attrs.frozen(kw_only=True)
class _ImageTask:
    """What both PhotoMaker task shapes share (§5.1, §5.3). Fields without a default are always sent; ``None``
    ones are left out."""

    task_type: str
    task_uuid: str
    model: str
    positive_prompt: str
    negative_prompt: str | None = None
    width: int
    height: int
    steps: int | None = None
    cfg_scale: float | None = None
    seed: int | None = None
    number_results: int
    output_type: str
    output_format: str | None = None
    include_cost: bool
    safety: Safety | None = None


@attrs.frozen(kw_only=True)
class PhotoMakerTask(_ImageTask):
    """The standalone ``photoMaker`` task (§5.1): the reference images under ``inputImages``."""

    input_images: list[str]
    style: str
    strength: int


@attrs.frozen(kw_only=True)
class PhotoMakerSettings:
    """``photoMaker`` inside ``imageInference`` (§5.3): the reference images under ``images``."""

    images: list[str]
    style: str
    strength: int


@attrs.frozen(kw_only=True)
class ImageInferenceTask(_ImageTask):
    """``imageInference`` with PhotoMaker settings (§5.3): the only PhotoMaker shape of the current SDK."""

    photo_maker: PhotoMakerSettings


@attrs.frozen(kw_only=True)
class _ImageUploadTask:
    """``imageUpload`` (§5.4): ``image`` is a data URI; the answer's ``imageUUID`` is reusable in inputImages."""

    task_type: str
    task_uuid: str
    image: str


@attrs.frozen(kw_only=True)
class _GetResponseTask:
    """``getResponse`` (§4.2): the state of an async task, by its original taskUUID."""

    task_type: str
    task_uuid: str


def _make_converter() -> cattrs.Converter:
    made = cattrs.Converter()

    def ids() -> dict[str, Any]:
        return {"task_type": override(rename="taskType"), "task_uuid": override(rename="taskUUID")}

    made.register_unstructure_hook(Safety, make_dict_unstructure_fn(
        Safety, made, check_content=override(rename="checkContent")))
    def image_task() -> dict[str, Any]:
        return {**ids(), "positive_prompt": override(rename="positivePrompt"),
                "negative_prompt": override(rename="negativePrompt"), "cfg_scale": override(rename="CFGScale"),
                "number_results": override(rename="numberResults"), "output_type": override(rename="outputType"),
                "output_format": override(rename="outputFormat"), "include_cost": override(rename="includeCost")}

    made.register_unstructure_hook(PhotoMakerTask, make_dict_unstructure_fn(
        PhotoMakerTask, made, _cattrs_omit_if_default=True, **image_task(),
        input_images=override(rename="inputImages")))
    made.register_unstructure_hook(ImageInferenceTask, make_dict_unstructure_fn(
        ImageInferenceTask, made, _cattrs_omit_if_default=True, **image_task(),
        photo_maker=override(rename="photoMaker")))
    made.register_unstructure_hook(_ImageUploadTask, make_dict_unstructure_fn(_ImageUploadTask, made, **ids()))
    made.register_unstructure_hook(_GetResponseTask, make_dict_unstructure_fn(_GetResponseTask, made, **ids()))
    return made


_converter = _make_converter()


def image_upload_task(task_uuid: str, data_uri: str) -> dict[str, Any]:
    """The wire form of one ``imageUpload`` task."""
    value: dict[str, Any] = _converter.unstructure(
        _ImageUploadTask(task_type="imageUpload", task_uuid=task_uuid, image=data_uri))
    return value


def get_response_task(task_uuid: str) -> dict[str, Any]:
    """The wire form of one ``getResponse`` task."""
    value: dict[str, Any] = _converter.unstructure(_GetResponseTask(task_type="getResponse", task_uuid=task_uuid))
    return value


def unstructure_task(task: PhotoMakerTask | ImageInferenceTask) -> dict[str, Any]:
    """The wire form (a JSON dict) of one PhotoMaker task, in either shape."""
    value: dict[str, Any] = _converter.unstructure(task)
    return value
