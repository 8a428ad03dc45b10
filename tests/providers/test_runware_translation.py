"""Runware translation: the exact task array for representative requests (runware.md §5.1), pure."""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from photomaker_bridge.errors import ConfigurationError, InvalidRequestError
from photomaker_bridge.images import build_data_uri
from photomaker_bridge.plan import Plan
from photomaker_bridge.providers import explain, provider_class
from photomaker_bridge.providers.runware import RunwareProvider
from photomaker_bridge.request import PhotoMakerRequest
from photomaker_bridge.styles import Style

URL = "https://example.com/face.jpg"
RUNWARE_IMAGE_UUID = "8a7f2c3e-1d4b-4f6a-9c2e-3b5d7e9f1a2c"


def _png(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


FACE = _png((200, 120, 90))
OTHER_FACE = _png((90, 120, 200))


def _ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(counter):012d}"


LEGACY = {"task_shape": "photoMaker"}
"""Most tests here read the standalone photoMaker task (§5.1), whose fields sit at the top of each task; the
imageInference shape (the default, §5.3) has golden tests of its own below."""


def _plan(request: PhotoMakerRequest, provider: RunwareProvider | None = None, *, strict: bool = False) -> Plan:
    return (provider or RunwareProvider(**LEGACY)).plan(request, strict=strict, new_id=_ids())


def _tasks(plan: Plan) -> list[dict[str, Any]]:
    assert len(plan.payloads) == 1, "Runware sends one task array"
    tasks: list[dict[str, Any]] = plan.payloads[0]
    return tasks


def _request(**fields: Any) -> PhotoMakerRequest:
    values: dict[str, Any] = {"prompt": "a photo of a man rwre in a spacesuit", "images": [URL]}
    values.update(fields)
    return PhotoMakerRequest(**values)


def test_minimal_request_golden() -> None:
    plan = _plan(_request())

    assert _tasks(plan) == [{
        "taskType": "photoMaker",
        "taskUUID": "00000000-0000-4000-8000-000000000001",
        "model": "civitai:139562@344487",
        "positivePrompt": "a photo of a man rwre in a spacesuit",
        "inputImages": [URL],
        "style": "No style",
        "strength": 20,
        "width": 1024,
        "height": 1024,
        "numberResults": 1,
        "outputType": "URL",
        "includeCost": True,
    }]
    assert plan.provider == "runware"
    assert plan.target == "POST https://api.runware.ai/v1"
    assert plan.images_per_payload == (1,)
    assert plan.uploads == ()
    assert plan.warnings == ()


def test_minimal_request_golden_in_the_default_image_inference_shape() -> None:
    # The current SDK's only PhotoMaker shape (§5.3): imageInference with photoMaker {images, style, strength}.
    plan = RunwareProvider().plan(_request(), new_id=_ids())
    assert _tasks(plan) == [{
        "taskType": "imageInference",
        "taskUUID": "00000000-0000-4000-8000-000000000001",
        "model": "civitai:139562@344487",
        "positivePrompt": "a photo of a man rwre in a spacesuit",
        "width": 1024,
        "height": 1024,
        "numberResults": 1,
        "outputType": "URL",
        "includeCost": True,
        "photoMaker": {"images": [URL], "style": "No style", "strength": 20},
    }]
    assert plan.warnings == ()
    sent = {line.unified_field: line.provider_field for line in plan.mapping}
    assert (sent["images[0]"], sent["style"], sent["style_strength"]) == (
        "photoMaker.images[0]", "photoMaker.style", "photoMaker.strength")


def test_full_request_golden_in_the_default_image_inference_shape() -> None:
    request = _request(
        prompt="a woman rwre on a beach, golden hour", images=[URL, FACE], style="cinematic", style_strength=35,
        negative_prompt="blurry", num_images=22, steps=30, guidance_scale=5.5, seed=42, width=768, height=1280,
        output_format="webp", safety_check=False)
    plan = RunwareProvider().plan(request, new_id=_ids())
    common = {"model": "civitai:139562@344487", "positivePrompt": "a woman rwre on a beach, golden hour",
              "negativePrompt": "blurry", "width": 768, "height": 1280, "steps": 30, "CFGScale": 5.5,
              "outputType": "URL", "outputFormat": "WEBP", "includeCost": True, "safety": {"checkContent": False}}
    settings = {"images": [URL, plan.uploads[0].placeholder], "style": "Cinematic", "strength": 35}
    assert _tasks(plan) == [
        {"taskType": "imageInference", "taskUUID": "00000000-0000-4000-8000-000000000001", **common, "seed": 42,
         "numberResults": 20, "photoMaker": settings},
        {"taskType": "imageInference", "taskUUID": "00000000-0000-4000-8000-000000000002", **common, "seed": 62,
         "numberResults": 2, "photoMaker": settings},
    ]
    assert plan.warnings == ()


def test_the_task_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="task_shape"):
        RunwareProvider(task_shape="inference")  # type: ignore[arg-type]


def test_full_request_golden() -> None:
    request = _request(
        prompt="a woman img on a beach, golden hour", images=[URL, RUNWARE_IMAGE_UUID.upper()],
        style="Photographic (Default)", style_strength=35, negative_prompt="  blurry, lowres ", num_images=3,
        steps=30, guidance_scale=5.5, seed=42, width=768, height=1280, output_format="png", safety_check=True,
    )
    plan = _plan(request, RunwareProvider(model="civitai:133005@782002", base_url="http://127.0.0.1:9/v1", **LEGACY))

    assert _tasks(plan) == [{
        "taskType": "photoMaker",
        "taskUUID": "00000000-0000-4000-8000-000000000001",
        "model": "civitai:133005@782002",
        "positivePrompt": "a woman rwre on a beach, golden hour",
        "negativePrompt": "blurry, lowres",
        "inputImages": [URL, RUNWARE_IMAGE_UUID],
        "style": "Photographic",
        "strength": 35,
        "width": 768,
        "height": 1280,
        "steps": 30,
        "CFGScale": 5.5,
        "seed": 42,
        "numberResults": 3,
        "outputType": "URL",
        "outputFormat": "PNG",
        "includeCost": True,
        "safety": {"checkContent": True},
    }]
    assert plan.target == "POST http://127.0.0.1:9/v1"
    assert [(warning.field, warning.sent) for warning in plan.warnings] == [
        ("prompt", "a woman rwre on a beach, golden hour")]  # TencentARC's 'img' renamed: a change, so warned
    sent = {line.unified_field: (line.provider_field, line.value) for line in plan.mapping}
    assert sent["guidance_scale"] == ("CFGScale", 5.5)
    assert sent["safety_check"] == ("safety.checkContent", True)
    assert sent["images[1]"] == ("inputImages[1]", RUNWARE_IMAGE_UUID)


# The spellings exactly as Runware's PhotoMaker page lists them (runware.md SEED, runware.md §5.1).
RUNWARE_STYLES: dict[Style, str] = {
    Style.NO_STYLE: "No style", Style.CINEMATIC: "Cinematic", Style.DISNEY_CHARACTER: "Disney Character",
    Style.DIGITAL_ART: "Digital Art", Style.PHOTOGRAPHIC: "Photographic", Style.FANTASY_ART: "Fantasy art",
    Style.NEONPUNK: "Neonpunk", Style.ENHANCE: "Enhance", Style.COMIC_BOOK: "Comic book",
    Style.LOWPOLY: "Lowpoly", Style.LINE_ART: "Line art",
}


@pytest.mark.parametrize(("style", "spelling"), [(style, RUNWARE_STYLES[style]) for style in Style])
def test_every_style_has_runware_spelling(style: Style, spelling: str) -> None:
    assert len(RUNWARE_STYLES) == len(Style) == 11
    plan = _plan(_request(style=style))
    assert _tasks(plan)[0]["style"] == spelling


@pytest.mark.parametrize("spelling", ["(Disney Charactor)", "disney-character", "DISNEY_CHARACTER"])
def test_other_providers_style_spellings_reach_runware_spelling(spelling: str) -> None:
    assert _tasks(_plan(_request(style=spelling)))[0]["style"] == "Disney Character"


@pytest.mark.parametrize(("prompt", "sent", "warned"), [
    # Runware's rules (runware.md §5.1): its trigger is kept where written, TencentARC's renamed (a change: warned),
    # a missing one leads the prompt as "rwre, ", what Runware itself would run.
    ("a photo of a man img in a spacesuit", "a photo of a man rwre in a spacesuit", True),
    ("a photo of a man rwre in a spacesuit", "a photo of a man rwre in a spacesuit", False),
    ("rwre, wearing a suit, professional photo", "rwre, wearing a suit, professional photo", False),
    ("a woman in a garden", "rwre, a woman in a garden", True),
    ("portrait, studio light", "rwre, portrait, studio light", True),
])
def test_trigger_word(prompt: str, sent: str, warned: bool) -> None:
    plan = _plan(_request(prompt=prompt))
    assert _tasks(plan)[0]["positivePrompt"] == sent
    assert [warning.field for warning in plan.warnings] == (["prompt"] if warned else [])
    if warned:
        assert plan.warnings[0].sent == sent
        assert plan.warnings[0].provider == "runware"


def test_img_rename_is_recorded_in_mapping_with_its_warning() -> None:
    plan = _plan(_request(prompt="a man img"))
    line = next(line for line in plan.mapping if line.unified_field == "prompt")
    assert line.value == "a man rwre"
    assert "renamed" in line.note and "renamed" in plan.warnings[0].reason


def test_missing_trigger_is_refused_in_strict_mode() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _plan(_request(prompt="a woman in a garden"), strict=True)
    assert caught.value.field == "prompt"


def test_prompt_of_300_characters_after_trigger_passes() -> None:
    prompt = "a man rwre " + "x" * (300 - len("a man rwre "))
    assert len(_tasks(_plan(_request(prompt=prompt)))[0]["positivePrompt"]) == 300


def test_prompt_over_300_characters_is_refused_naming_length_and_limit() -> None:
    # 297 characters without a trigger: the "rwre, " Runware prepends pushes it over its 300.
    prompt = "a man " + "y" * 291
    with pytest.raises(InvalidRequestError) as caught:
        _plan(_request(prompt=prompt))
    assert caught.value.field == "prompt"
    message = str(caught.value)
    assert "303 characters" in message
    assert "300" in message


def test_num_images_above_20_become_tasks_in_one_array_with_continuing_seeds() -> None:
    plan = _plan(_request(num_images=45, seed=42))
    tasks = _tasks(plan)

    assert [task["numberResults"] for task in tasks] == [20, 20, 5]
    # Runware numbers a task's images seed, seed+1, ... (§2.2); the next task starts after the last one.
    assert [task["seed"] for task in tasks] == [42, 62, 82]
    assert [task["taskUUID"] for task in tasks] == [f"00000000-0000-4000-8000-{index:012d}" for index in (1, 2, 3)]
    assert plan.images_per_payload == (45,)
    for task in tasks[1:]:
        assert {key: value for key, value in task.items() if key not in ("taskUUID", "seed", "numberResults")} == {
            key: value for key, value in tasks[0].items() if key not in ("taskUUID", "seed", "numberResults")}
    assert plan.warnings == ()


def test_split_without_seed_sends_no_seed() -> None:
    tasks = _tasks(_plan(_request(num_images=21)))
    assert [task["numberResults"] for task in tasks] == [20, 1]
    assert all("seed" not in task for task in tasks)


def test_continuing_seeds_wrap_inside_runware_range() -> None:
    tasks = _tasks(_plan(_request(num_images=40, seed=2**63 - 5)))
    assert [task["seed"] for task in tasks] == [2**63 - 5, 16]


@pytest.mark.parametrize(("field", "value", "wire", "sent"), [
    ("steps", 150, "steps", 100),
    ("guidance_scale", 75.0, "CFGScale", 50),
])
def test_out_of_range_values_are_clamped_with_a_warning(field: str, value: Any, wire: str, sent: Any) -> None:
    plan = _plan(_request(**{field: value}))
    assert _tasks(plan)[0][wire] == sent
    (warning,) = plan.warnings
    assert (warning.field, warning.asked, warning.sent, warning.provider) == (field, value, sent, "runware")
    assert wire in warning.reason


@pytest.mark.parametrize(("field", "value"), [("steps", 150), ("guidance_scale", 75.0), ("seed", 0)])
def test_strict_mode_refuses_every_adjustment(field: str, value: Any) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _plan(_request(**{field: value}), strict=True)
    assert caught.value.field == field


def test_strict_mode_passes_a_request_needing_no_adjustment() -> None:
    plan = _plan(_request(steps=100, guidance_scale=0, seed=1), strict=True)
    assert (_tasks(plan)[0]["steps"], _tasks(plan)[0]["CFGScale"], _tasks(plan)[0]["seed"]) == (100, 0, 1)


def test_seed_zero_is_sent_as_one_with_a_warning() -> None:
    plan = _plan(_request(seed=0, num_images=25))
    assert [task["seed"] for task in _tasks(plan)] == [1, 21]
    (warning,) = plan.warnings
    assert (warning.field, warning.asked, warning.sent) == ("seed", 0, 1)


@pytest.mark.parametrize(("width", "height"), [(128, 2048), (512, 768), (2048, 128)])
def test_width_and_height_are_sent(width: int, height: int) -> None:
    task = _tasks(_plan(_request(width=width, height=height)))[0]
    assert (task["width"], task["height"]) == (width, height)


def test_width_and_height_default_to_1024() -> None:
    plan = _plan(_request(width=512))
    task = _tasks(plan)[0]
    assert (task["width"], task["height"]) == (512, 1024)
    line = next(line for line in plan.mapping if line.unified_field == "height")
    assert line.value == 1024 and "default" in line.note


@pytest.mark.parametrize(("output_format", "wire"), [("png", "PNG"), ("jpeg", "JPG"), ("jpg", "JPG"),
                                                     ("webp", "WEBP")])
def test_output_format(output_format: str, wire: str) -> None:
    assert _tasks(_plan(_request(output_format=output_format)))[0]["outputFormat"] == wire


@pytest.mark.parametrize("check", [True, False])
def test_safety_check(check: bool) -> None:
    assert _tasks(_plan(_request(safety_check=check)))[0]["safety"] == {"checkContent": check}


def test_negative_prompt_too_short_is_left_out_with_a_warning() -> None:
    plan = _plan(_request(negative_prompt="x"))
    assert "negativePrompt" not in _tasks(plan)[0]
    (warning,) = plan.warnings
    assert (warning.field, warning.asked, warning.sent) == ("negative_prompt", "x", None)
    with pytest.raises(InvalidRequestError):
        _plan(_request(negative_prompt="x"), strict=True)


def test_negative_prompt_too_long_is_cut_to_3000_with_a_warning() -> None:
    plan = _plan(_request(negative_prompt="z" * 3005))
    assert _tasks(plan)[0]["negativePrompt"] == "z" * 3000
    (warning,) = plan.warnings
    assert warning.field == "negative_prompt" and "3000" in warning.reason


def test_provider_options_are_merged_verbatim_into_every_task() -> None:
    options = {"scheduler": "DPM++ 2M Karras", "outputQuality": 80, "safety": {"mode": "full"},
               "outputType": "base64Data"}
    plan = _plan(_request(num_images=22, safety_check=True, provider_options={"runware": options}))
    for task in _tasks(plan):
        assert task["scheduler"] == "DPM++ 2M Karras"
        assert task["outputQuality"] == 80
        assert task["outputType"] == "base64Data"
        assert task["safety"] == {"checkContent": True, "mode": "full"}
    passed = [line for line in plan.mapping if line.unified_field.startswith("provider_options.")]
    assert [(line.unified_field, line.provider_field) for line in passed] == [
        ("provider_options.scheduler", "scheduler"), ("provider_options.outputQuality", "outputQuality"),
        ("provider_options.safety", "safety"), ("provider_options.outputType", "outputType")]


def test_other_providers_options_are_ignored() -> None:
    plan = _plan(_request(provider_options={"fal": {"scheduler": "x"}}))
    assert "scheduler" not in _tasks(plan)[0]


def test_fixed_task_uuid_cannot_serve_several_tasks() -> None:
    options = {"runware": {"taskUUID": "11111111-1111-4111-8111-111111111111"}}
    assert _tasks(_plan(_request(provider_options=options)))[0]["taskUUID"] == options["runware"]["taskUUID"]
    with pytest.raises(InvalidRequestError) as caught:
        _plan(_request(num_images=21, provider_options=options))
    assert caught.value.field == "provider_options"


def _placeholder(data: bytes) -> str:
    return "{{upload:image:" + hashlib.sha256(data).hexdigest()[:12] + "}}"


def test_local_images_are_uploaded_once_per_content() -> None:
    plan = _plan(_request(images=[FACE, URL, FACE, OTHER_FACE]))
    assert _tasks(plan)[0]["inputImages"] == [_placeholder(FACE), URL, _placeholder(FACE), _placeholder(OTHER_FACE)]
    first, second = plan.uploads
    assert (first.kind, first.placeholder, first.image_indices, first.sha256, first.content_type, first.size) == (
        "image", _placeholder(FACE), (0, 2), hashlib.sha256(FACE).hexdigest(), "image/png", len(FACE))
    assert first.data == FACE
    assert first.file_name.endswith(".png")
    assert (second.placeholder, second.image_indices, second.data) == (_placeholder(OTHER_FACE), (3,), OTHER_FACE)


def test_local_images_inline_as_data_uris() -> None:
    plan = _plan(_request(images=[FACE, URL]), RunwareProvider(image_transport="inline", **LEGACY))
    assert _tasks(plan)[0]["inputImages"] == [build_data_uri(FACE, "image/png"), URL]
    assert plan.uploads == ()


def test_runware_image_uuid_is_sent_as_is_whatever_the_transport() -> None:
    for transport in ("upload", "inline"):
        plan = _plan(_request(images=[RUNWARE_IMAGE_UUID]), RunwareProvider(image_transport=transport, **LEGACY))
        assert _tasks(plan)[0]["inputImages"] == [RUNWARE_IMAGE_UUID]
        assert plan.uploads == ()


def test_image_transport_is_checked() -> None:
    with pytest.raises(ValueError):
        RunwareProvider(image_transport="zip")  # type: ignore[arg-type]


def test_explain_reaches_the_adapter_through_the_registry() -> None:
    assert provider_class("runware") is RunwareProvider
    plan = explain(_request(), "runware")
    assert _tasks(plan)[0]["taskType"] == "imageInference"  # the default shape (§5.3)


def test_every_request_field_has_a_capability() -> None:
    import attrs

    fields = {field.name for field in attrs.fields(PhotoMakerRequest)}
    assert {capability.field for capability in RunwareProvider.capabilities} == fields


def test_key_comes_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNWARE_API_KEY", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        RunwareProvider().require_key()
    assert "RUNWARE_API_KEY" in str(caught.value) and "api_key=" in str(caught.value)
    monkeypatch.setenv("RUNWARE_API_KEY", "from-env")
    assert RunwareProvider().headers()["Authorization"] == "Bearer from-env"
    assert RunwareProvider(api_key="given").headers() == {"Authorization": "Bearer given",
                                                           "Content-Type": "application/json"}


def test_key_is_not_in_repr() -> None:
    assert "sekrit" not in repr(RunwareProvider(api_key="sekrit-key"))


def test_planning_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNWARE_API_KEY", raising=False)
    assert _tasks(_plan(_request()))


@settings(max_examples=150, deadline=None)
@given(
    prompt=st.text(alphabet="abcdefghij ,", min_size=1, max_size=200).filter(lambda text: text.strip()),
    num_images=st.integers(1, 100), steps=st.none() | st.integers(1, 10_000),
    guidance_scale=st.none() | st.floats(0, 1000, allow_nan=False), seed=st.none() | st.integers(0, 2**63 - 1),
    size=st.none() | st.integers(2, 32).map(lambda value: value * 64), strength=st.integers(15, 50),
    negative=st.none() | st.text(alphabet="xyz ", max_size=40),
    style=st.sampled_from(list(Style)),
)
def test_no_payload_breaks_a_documented_rule(prompt: str, num_images: int, steps: int | None,
                                             guidance_scale: float | None, seed: int | None, size: int | None,
                                             strength: int, negative: str | None, style: Style) -> None:
    try:
        request = PhotoMakerRequest(prompt=prompt, images=[URL], num_images=num_images, steps=steps,
                                    guidance_scale=guidance_scale, seed=seed, width=size, height=size,
                                    style_strength=strength, negative_prompt=negative, style=style)
    except InvalidRequestError:
        return  # refused before any provider (e.g. a trigger in the prompt twice)
    tasks = _tasks(_plan(request))
    assert sum(task["numberResults"] for task in tasks) == num_images
    seeds: list[int] = []
    for task in tasks:  # runware.md §5.1
        assert 2 <= len(task["positivePrompt"]) <= 300
        assert "rwre" in task["positivePrompt"].split() or "rwre," in task["positivePrompt"].split()
        assert 2 <= len(task.get("negativePrompt", "ok")) <= 3000
        assert 1 <= len(task["inputImages"]) <= 4
        assert task["style"] in RUNWARE_STYLES.values()
        assert isinstance(task["strength"], int) and 15 <= task["strength"] <= 50
        assert 1 <= task["numberResults"] <= 20
        assert 1 <= task.get("steps", 1) <= 100
        assert 0 <= task.get("CFGScale", 0) <= 50
        for dimension in ("width", "height"):
            assert 128 <= task[dimension] <= 2048 and task[dimension] % 64 == 0
        if "seed" in task:
            assert 1 <= task["seed"] <= 2**63 - 1
            seeds.extend(task["seed"] + index for index in range(task["numberResults"]))
        assert task["outputType"] in ("URL", "base64Data", "dataURI")
        assert task["includeCost"] is True
    assert len(set(seeds)) == len(seeds)


def test_initial_image_is_left_out_with_a_warning_and_refused_when_strict() -> None:
    start = "https://example.com/start.png"
    made = RunwareProvider().plan(PhotoMakerRequest(prompt="rwre, a man", images=[URL], initial_image=start,
                                                    initial_image_strength=0.5))
    assert [warning.field for warning in made.warnings] == ["initial_image", "initial_image_strength"]
    assert "seedImage" in made.warnings[0].reason
    assert not {"seedImage", "strength"} & set(made.payloads[0][0])
    with pytest.raises(InvalidRequestError) as caught:
        RunwareProvider().plan(PhotoMakerRequest(prompt="rwre, a man", images=[URL], initial_image=start),
                               strict=True)
    assert caught.value.field == "initial_image"


@pytest.mark.parametrize("shape", ["imageInference", "photoMaker"])
def test_a_webhook_goes_into_every_task_as_webhook_url(shape: str) -> None:
    adapter = RunwareProvider(task_shape=shape)  # type: ignore[arg-type]
    made = adapter.with_webhook(adapter.plan(PhotoMakerRequest(prompt="rwre, a man", images=[URL],
                                                               num_images=25)), "https://hooks.example.com/rw")
    assert [task["webhookURL"] for task in made.payloads[0]] == ["https://hooks.example.com/rw"] * 2
