"""Property: any request either fails construction with InvalidRequestError, or yields for every provider
payloads inside that provider's documented ranges and enums.

The ranges below are written from the reference files (runware.md §5.1, fal.md §4.1, eachlabs.md §3.1–§3.3),
independently of the adapters' tables, so that a wrong table shows up here.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from photomaker_bridge import InvalidRequestError, PhotoMakerRequest
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.providers import PROVIDER_NAMES, explain

RUNWARE_STYLES = {"No style", "Cinematic", "Disney Character", "Digital Art", "Photographic", "Fantasy art",
                  "Neonpunk", "Enhance", "Comic book", "Lowpoly", "Line art"}
FAL_STYLES = (RUNWARE_STYLES - {"No style"}) | {"(No style)"}
EACHLABS_STYLES = {"(No style)", "Cinematic", "Disney Charactor", "Digital Art", "Photographic (Default)",
                   "Fantasy art", "Neonpunk", "Enhance", "Comic book", "Lowpoly", "Line art"}
TRIGGER = re.compile(r"(?<![\w])img(?![\w])", re.IGNORECASE)

FACES = [render_image(seed=seed, style="face", width=64, height=64) for seed in range(3)]

words = st.sampled_from(["a", "photo", "of", "man", "woman", "person", "img", "rwre", "IMG", "in", "space",
                         "portrait", ",", ".", "girl", "boy", "imgur", "sunset", "  "])
prompts = st.lists(words, min_size=0, max_size=40).map(" ".join)
images = st.lists(st.sampled_from([*FACES, "https://example.com/face.jpg"]), min_size=0, max_size=5)
styles = st.sampled_from(["cinematic", "(No style)", "Disney Charactor", "Photographic (Default)", "line-art",
                          "COMIC_BOOK", "Lowpoly", "neonpunk", "Fantasy art", "enhance", "digital art", "bogus"])
maybe_int = st.one_of(st.none(), st.integers(min_value=-10, max_value=3000))


@st.composite
def request_fields(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "prompt": draw(prompts),
        "images": draw(images),
        "style": draw(styles),
        "style_strength": draw(st.integers(min_value=0, max_value=80)),
        "negative_prompt": draw(st.one_of(st.none(), st.just(""), st.just("x"), prompts)),
        "num_images": draw(st.integers(min_value=-1, max_value=45)),
        "steps": draw(maybe_int),
        "guidance_scale": draw(st.one_of(st.none(), st.floats(min_value=-1, max_value=100), st.just(float("nan")))),
        "seed": draw(st.one_of(st.none(), st.integers(min_value=-5, max_value=2**64))),
        "width": draw(maybe_int),
        "height": draw(maybe_int),
        "output_format": draw(st.sampled_from([None, "png", "jpg", "webp", "gif"])),
        "safety_check": draw(st.sampled_from([None, True, False])),
    }


def check_runware(payloads: list[Any]) -> None:
    assert len(payloads) == 1 and isinstance(payloads[0], list)
    for task in payloads[0]:
        assert task["taskType"] == "imageInference"
        uuid.UUID(task["taskUUID"])
        assert isinstance(task["model"], str) and task["model"]
        settings = task["photoMaker"]  # the default task shape: imageInference with photoMaker settings
        assert 1 <= len(settings["images"]) <= 4
        assert settings["style"] in RUNWARE_STYLES
        assert isinstance(settings["strength"], int) and 15 <= settings["strength"] <= 50
        assert 2 <= len(task["positivePrompt"]) <= 300
        if "negativePrompt" in task:
            assert 2 <= len(task["negativePrompt"]) <= 3000
        for side in ("width", "height"):
            assert isinstance(task[side], int) and 128 <= task[side] <= 2048 and task[side] % 64 == 0
        if "steps" in task:
            assert isinstance(task["steps"], int) and 1 <= task["steps"] <= 100
        if "CFGScale" in task:
            assert 0 <= task["CFGScale"] <= 50
        if "seed" in task:
            assert isinstance(task["seed"], int) and 1 <= task["seed"] <= 9223372036854775807
        assert isinstance(task["numberResults"], int) and 1 <= task["numberResults"] <= 20
        assert task.get("outputType", "URL") in {"URL", "base64Data", "dataURI"}
        assert task.get("outputFormat", "JPG") in {"JPG", "PNG", "WEBP"}
        assert task["includeCost"] is True


def check_img_prompt(prompt: str) -> None:
    found = list(TRIGGER.finditer(prompt))
    assert len(found) == 1, prompt
    assert prompt[: found[0].start()].strip(), f"nothing before the trigger: {prompt!r}"


def check_fal(payloads: list[Any]) -> None:
    for arguments in payloads:
        assert isinstance(arguments["image_archive_url"], str)
        check_img_prompt(arguments["prompt"])
        assert arguments.get("base_pipeline", "photomaker") in {"photomaker", "photomaker-style"}
        assert arguments.get("style", "Photographic") in FAL_STYLES
        if "num_inference_steps" in arguments:
            assert isinstance(arguments["num_inference_steps"], int) and 20 <= arguments["num_inference_steps"] <= 100
        if "style_strength" in arguments:
            assert isinstance(arguments["style_strength"], int) and 15 <= arguments["style_strength"] <= 50
        assert 1 <= arguments.get("num_images", 1) <= 4
        if "guidance_scale" in arguments:
            assert 0.1 <= arguments["guidance_scale"] <= 10
        if "negative_prompt" in arguments:
            assert not TRIGGER.search(arguments["negative_prompt"])
        if "seed" in arguments:
            assert isinstance(arguments["seed"], int)


def check_eachlabs(payloads: list[Any]) -> None:
    for body in payloads:
        assert body["model"] in {"photomaker", "photomaker-style"} and body["version"] == "0.0.1"
        model_input = body["input"]
        assert isinstance(model_input["input_image"], str)
        check_img_prompt(model_input["prompt"])
        if "negative_prompt" in model_input:
            assert not TRIGGER.search(model_input["negative_prompt"])
        assert model_input.get("style_name", "(No style)") in EACHLABS_STYLES
        if "num_steps" in model_input:
            assert isinstance(model_input["num_steps"], int) and 1 <= model_input["num_steps"] <= 100
        if "style_strength_ratio" in model_input:
            assert 15 <= model_input["style_strength_ratio"] <= 50
        assert 1 <= model_input.get("num_outputs", 1) <= 4
        if "guidance_scale" in model_input:
            assert 1 <= model_input["guidance_scale"] <= 10
        if model_input.get("seed") is not None:
            assert isinstance(model_input["seed"], int) and 0 <= model_input["seed"] <= 2147483647
        if "disable_safety_checker" in model_input:
            assert isinstance(model_input["disable_safety_checker"], bool)


CHECKS = {"runware": check_runware, "fal": check_fal, "eachlabs": check_eachlabs}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_fields())
def test_any_request_is_refused_or_valid_for_every_provider(fields: dict[str, Any]) -> None:
    try:
        request = PhotoMakerRequest(**fields)
    except InvalidRequestError:
        return
    for provider in PROVIDER_NAMES:
        try:
            plan = explain(request, provider)
        except InvalidRequestError as error:
            # Only what a provider truly cannot take may be refused after construction: Runware's 300-character
            # prompt limit after translation, a word containing 'img' for the img providers, and fal's need
            # for the photos' bytes to build its archive.
            refusable = {("runware", "prompt"), ("fal", "prompt"), ("eachlabs", "prompt"), ("fal", "images")}
            assert (provider, error.field.split("[")[0]) in refusable, (provider, error)
            continue
        CHECKS[provider](list(plan.payloads))
        assert sum(plan.images_per_payload) == request.num_images
