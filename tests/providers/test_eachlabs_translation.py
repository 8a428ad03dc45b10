"""Golden payloads of the Eachlabs adapter: PhotoMakerRequest → create bodies, uploads, warnings.

Expected bodies are written from eachlabs.md §2.1/§3 by hand. Every payload built here is also checked with
the Eachlabs emulator's schema validator (written from the same reference, independently of the adapter), so
a payload outside a documented range or enum fails even where no golden body pins it.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest

from photomaker_bridge import ConfigurationError, InvalidRequestError, PhotoMakerRequest, Plan, Style
from photomaker_bridge.emulators._eachlabs_schema import MODELS, STYLE_NAMES, validate_input
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.providers import explain, provider_class
from photomaker_bridge.providers.eachlabs import EachlabsProvider

FACE_URL = "https://example.com/face.jpg"
FACE = render_image(seed=1, style="face", width=64, height=64)
OTHER_FACE = render_image(seed=2, style="face", width=48, height=64)
RUNWARE_UUID = "0b9a2c4e-1f3d-4a5b-8c7d-9e0f1a2b3c4d"


def plan(request: PhotoMakerRequest, *, strict: bool = False, **settings: Any) -> Plan:
    """The plan, after checking every payload against the emulator's copy of Eachlabs' schema."""
    made = EachlabsProvider(**settings).plan(request, strict=strict)
    for payload in made.payloads:
        model_input = {key: ("https://cdn.example.com/u.png" if str(value).startswith("{{upload:") else value)
                       for key, value in payload["input"].items()}
        validate_input(MODELS[payload["model"]], model_input)  # raises InputRejected listing what is wrong
    json.dumps(made.to_dict())  # the plan is JSON-ready
    return made


def request(**fields: Any) -> PhotoMakerRequest:
    values: dict[str, Any] = {"prompt": "a photo of a man img", "images": [FACE_URL]}
    values.update(fields)
    return PhotoMakerRequest(**values)


def warned_fields(made: Plan) -> list[str]:
    return [warning.field for warning in made.warnings]


# ----------------------------------------------------------------------------------------------- golden


def test_golden_full_request_with_url_image() -> None:
    made = plan(request(prompt="a woman img in a garden", style="cinematic", style_strength=30,
                        negative_prompt="blurry", num_images=2, steps=40, guidance_scale=7.5, seed=42,
                        safety_check=True))
    assert list(made.payloads) == [{
        "model": "photomaker-style",
        "version": "0.0.1",
        "input": {
            "input_image": FACE_URL,
            "prompt": "a woman img in a garden",
            "style_name": "Cinematic",
            "style_strength_ratio": 30,
            "negative_prompt": "blurry",
            "disable_safety_checker": False,
            "num_steps": 40,
            "guidance_scale": 7.5,
            "num_outputs": 2,
            "seed": 42,
        },
    }]
    assert made.provider == "eachlabs"
    assert made.target == "POST https://api.eachlabs.ai/v1/prediction/"
    assert made.images_per_payload == (2,)
    assert made.uploads == ()
    assert made.warnings == ()


def test_golden_minimal_request_leaves_defaults_to_eachlabs() -> None:
    made = plan(request())
    assert list(made.payloads) == [{
        "model": "photomaker-style",
        "version": "0.0.1",
        "input": {"input_image": FACE_URL, "prompt": "a photo of a man img", "style_name": "(No style)",
                  "style_strength_ratio": 20, "num_outputs": 1},
    }]
    defaults = {line.unified_field for line in made.mapping if line.provider_field is None}
    assert defaults == {"negative_prompt", "safety_check", "steps", "guidance_scale", "output_format", "seed",
                        "initial_image", "initial_image_strength"}


def test_numbers_are_json_numbers_not_strings() -> None:
    body = json.loads(json.dumps(plan(request(steps=30, guidance_scale=4, seed=9)).payloads[0]))
    for field in ("num_steps", "guidance_scale", "seed", "num_outputs", "style_strength_ratio"):
        assert isinstance(body["input"][field], int | float) and not isinstance(body["input"][field], bool)


@pytest.mark.parametrize(("style", "expected"), [
    (Style.NO_STYLE, "(No style)"),
    (Style.CINEMATIC, "Cinematic"),
    (Style.DISNEY_CHARACTER, "Disney Charactor"),
    (Style.DIGITAL_ART, "Digital Art"),
    (Style.PHOTOGRAPHIC, "Photographic (Default)"),
    (Style.FANTASY_ART, "Fantasy art"),
    (Style.NEONPUNK, "Neonpunk"),
    (Style.ENHANCE, "Enhance"),
    (Style.COMIC_BOOK, "Comic book"),
    (Style.LOWPOLY, "Lowpoly"),
    (Style.LINE_ART, "Line art"),
])
def test_every_style_gets_the_exact_eachlabs_name(style: Style, expected: str) -> None:
    made = plan(request(style=style))
    assert made.payloads[0]["input"]["style_name"] == expected
    assert expected in STYLE_NAMES


def test_the_eleven_styles_map_onto_the_eleven_eachlabs_names() -> None:
    sent = {plan(request(style=style)).payloads[0]["input"]["style_name"] for style in Style}
    assert sent == set(STYLE_NAMES) and len(sent) == 11


@pytest.mark.parametrize("spelling", ["Disney Charactor", "disney-character", "Photographic (Default)",
                                      "(No style)", "comic_book"])
def test_any_spelling_round_trips_to_the_eachlabs_enum(spelling: str) -> None:
    assert plan(request(style=spelling)).payloads[0]["input"]["style_name"] in STYLE_NAMES


@pytest.mark.parametrize("model", ["photomaker-style", "photomaker"])
def test_both_models(model: str) -> None:
    made = plan(request(style="photographic"), model=model)
    assert made.payloads[0]["model"] == model
    assert made.payloads[0]["version"] == "0.0.1"
    # The bridge always sends the style, so photomaker's different default style never applies.
    assert made.payloads[0]["input"]["style_name"] == "Photographic (Default)"


def test_no_style_is_sent_explicitly_to_photomaker_whose_default_is_photographic() -> None:
    assert plan(request(), model="photomaker").payloads[0]["input"]["style_name"] == "(No style)"


def test_unknown_model_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="photomaker-style"):
        EachlabsProvider(model="photomaker-xl")  # type: ignore[arg-type]


def test_base_url_sets_the_target() -> None:
    assert plan(request(), base_url="http://127.0.0.1:8123/").target == "POST http://127.0.0.1:8123/v1/prediction/"


# ---------------------------------------------------------------------------------------------- trigger


def test_trigger_img_is_kept_without_warning() -> None:
    made = plan(request(prompt="portrait of a girl img, oil painting"))
    assert made.payloads[0]["input"]["prompt"] == "portrait of a girl img, oil painting"
    assert made.warnings == ()


def test_trigger_rwre_becomes_img_in_place_with_a_warning() -> None:
    made = plan(request(prompt="a photo of a woman rwre at the beach"))
    assert made.payloads[0]["input"]["prompt"] == "a photo of a woman img at the beach"
    assert warned_fields(made) == ["prompt"]
    assert made.warnings[0].sent == "a photo of a woman img at the beach" and "rwre" in made.warnings[0].reason


def test_missing_trigger_is_inserted_after_the_class_word_with_a_warning() -> None:
    made = plan(request(prompt="a smiling man on a boat"))
    assert made.payloads[0]["input"]["prompt"] == "a smiling man img on a boat"
    assert warned_fields(made) == ["prompt"]
    assert made.warnings[0].provider == "eachlabs" and made.warnings[0].asked == "a smiling man on a boat"


def test_missing_trigger_without_class_word_leads_with_a_person() -> None:
    made = plan(request(prompt="astronaut on the moon"))
    assert made.payloads[0]["input"]["prompt"] == "a photo of a person img, astronaut on the moon"
    assert warned_fields(made) == ["prompt"]


def test_trigger_without_class_word_before_it_is_moved() -> None:
    made = plan(request(prompt="img as a knight"))
    assert made.payloads[0]["input"]["prompt"].startswith("a photo of a person img")
    assert warned_fields(made) == ["prompt"]


def test_strict_mode_refuses_an_inserted_trigger() -> None:
    with pytest.raises(InvalidRequestError, match="strict"):
        plan(request(prompt="a smiling man on a boat"), strict=True)


def test_a_word_containing_img_is_refused_before_it_can_fail_at_the_model() -> None:
    with pytest.raises(InvalidRequestError, match="imgur"):
        plan(request(prompt="a man img posting on imgur"))


def test_negative_prompt_is_sent_as_given() -> None:
    made = plan(request(negative_prompt="lowres, watermark"))
    assert made.payloads[0]["input"]["negative_prompt"] == "lowres, watermark"


def test_negative_prompt_with_a_trigger_never_reaches_the_adapter() -> None:
    with pytest.raises(InvalidRequestError, match="negative_prompt"):
        request(negative_prompt="img, blurry")


# ------------------------------------------------------------------------------------------- num_images


def test_more_than_four_images_split_into_predictions_with_offset_seeds() -> None:
    made = plan(request(num_images=9, seed=100))
    assert [payload["input"]["num_outputs"] for payload in made.payloads] == [4, 4, 1]
    assert [payload["input"]["seed"] for payload in made.payloads] == [100, 104, 108]
    assert made.images_per_payload == (4, 4, 1)
    first, second = made.payloads[0]["input"], made.payloads[1]["input"]
    assert {key: value for key, value in first.items() if key not in ("num_outputs", "seed")} == \
        {key: value for key, value in second.items() if key not in ("num_outputs", "seed")}
    assert made.warnings == ()  # a split loses nothing: not an adjustment


def test_split_without_seed_sends_no_seed() -> None:
    made = plan(request(num_images=5))
    assert [payload["input"]["num_outputs"] for payload in made.payloads] == [4, 1]
    assert all("seed" not in payload["input"] for payload in made.payloads)


def test_split_is_allowed_in_strict_mode() -> None:
    assert len(plan(request(num_images=12, seed=1), strict=True).payloads) == 3


def test_split_seed_near_the_maximum_wraps_into_range() -> None:
    made = plan(request(num_images=8, seed=2_147_483_646))
    assert [payload["input"]["seed"] for payload in made.payloads] == [2_147_483_646, 2]


def test_hundred_images_make_twenty_five_predictions() -> None:
    made = plan(request(num_images=100))
    assert len(made.payloads) == 25 and sum(made.images_per_payload) == 100


# ------------------------------------------------------------------------------------- ranges and clamps


@pytest.mark.parametrize(("steps", "sent"), [(1, 1), (100, 100), (150, 100), (10_000, 100)])
def test_steps_are_clamped_to_1_100(steps: int, sent: int) -> None:
    made = plan(request(steps=steps))
    assert made.payloads[0]["input"]["num_steps"] == sent
    assert warned_fields(made) == ([] if steps == sent else ["steps"])


@pytest.mark.parametrize(("scale", "sent"), [(0, 1), (0.5, 1), (1, 1), (5.5, 5.5), (10, 10), (12.5, 10)])
def test_guidance_scale_is_clamped_to_1_10(scale: float, sent: float) -> None:
    made = plan(request(guidance_scale=scale))
    assert made.payloads[0]["input"]["guidance_scale"] == sent
    assert warned_fields(made) == ([] if scale == sent else ["guidance_scale"])
    if scale != sent:
        assert made.warnings[0].asked == scale and made.warnings[0].sent == sent
        assert "1–10" in made.warnings[0].reason


@pytest.mark.parametrize("fields", [{"steps": 150}, {"guidance_scale": 0.5}, {"guidance_scale": 11},
                                    {"seed": 2**40}, {"width": 512}, {"height": 768},
                                    {"output_format": "jpeg"}])
def test_strict_mode_refuses_every_adjustment(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError, match="strict mode"):
        plan(request(**fields), strict=True)


def test_strict_mode_accepts_a_request_that_needs_no_adjustment() -> None:
    made = plan(request(steps=50, guidance_scale=5, seed=3, output_format="png", safety_check=False), strict=True)
    assert made.warnings == ()


def test_seed_range_edges() -> None:
    assert plan(request(seed=0)).payloads[0]["input"]["seed"] == 0
    assert plan(request(seed=2_147_483_647)).payloads[0]["input"]["seed"] == 2_147_483_647


def test_seed_above_int32_wraps_with_a_warning() -> None:
    made = plan(request(seed=2**40 + 5))
    assert made.payloads[0]["input"]["seed"] == (2**40 + 5) % 2**31
    assert warned_fields(made) == ["seed"]


def test_width_and_height_are_unsupported_and_warned() -> None:
    made = plan(request(width=512, height=768))
    assert warned_fields(made) == ["width", "height"]
    assert all(warning.sent is None for warning in made.warnings)
    assert not {"width", "height"} & set(made.payloads[0]["input"])


@pytest.mark.parametrize(("output_format", "warned"), [("png", False), ("jpeg", True), ("webp", True)])
def test_output_format_other_than_png_is_warned(output_format: str, warned: bool) -> None:
    made = plan(request(output_format=output_format))
    assert warned_fields(made) == (["output_format"] if warned else [])
    assert "output_format" not in made.payloads[0]["input"]


@pytest.mark.parametrize(("safety_check", "sent"), [(True, False), (False, True)])
def test_safety_check_is_inverted_into_disable_safety_checker(safety_check: bool, sent: bool) -> None:
    assert plan(request(safety_check=safety_check)).payloads[0]["input"]["disable_safety_checker"] is sent


# ------------------------------------------------------------------------------------- provider_options


def test_provider_options_model_inputs_go_in_input_and_body_keys_at_the_top() -> None:
    made = plan(request(num_images=6, steps=30, provider_options={"eachlabs": {
        "webhook_url": "https://hooks.example.com/eachlabs", "webhook_secret": "s3cret",
        "num_steps": 55, "x_extra": {"a": 1},
    }}))
    for payload in made.payloads:
        assert payload["webhook_url"] == "https://hooks.example.com/eachlabs"
        assert payload["webhook_secret"] == "s3cret"
        assert payload["input"]["num_steps"] == 55  # verbatim: overrides the translated value
        assert payload["input"]["x_extra"] == {"a": 1}
        assert "num_steps" not in payload and "webhook_url" not in payload["input"]
    recorded = {line.unified_field: line.provider_field for line in made.mapping
                if line.unified_field.startswith("provider_options.")}
    assert recorded == {"provider_options.webhook_url": "webhook_url", "provider_options.webhook_secret":
                        "webhook_secret", "provider_options.num_steps": "input.num_steps",
                        "provider_options.x_extra": "input.x_extra"}


def test_provider_options_input_mapping_merges_into_input_and_may_override_the_model() -> None:
    made = plan(request(provider_options={"eachlabs": {"input": {"num_outputs": 3}, "model": "photomaker"}}))
    assert made.payloads[0]["model"] == "photomaker"
    assert made.payloads[0]["input"]["num_outputs"] == 3
    assert made.payloads[0]["input"]["prompt"] == "a photo of a man img"  # merged, not replaced
    assert made.images_per_payload == (3,)


def test_other_providers_options_are_ignored() -> None:
    made = plan(request(provider_options={"fal": {"x": 1}, "runware": {"y": 2}}))
    assert made.payloads == plan(request()).payloads


# --------------------------------------------------------------------------------------------- images


def test_urls_go_as_is_in_order() -> None:
    urls = [f"https://example.com/face{index}.png" for index in range(4)]
    made = plan(request(images=urls))
    model_input = made.payloads[0]["input"]
    assert [model_input[field] for field in ("input_image", "input_image2", "input_image3", "input_image4")] == urls
    assert made.uploads == ()


def test_local_images_become_one_upload_per_distinct_image() -> None:
    made = plan(request(images=[FACE, FACE_URL, OTHER_FACE, FACE]))
    assert [upload.image_indices for upload in made.uploads] == [(0, 3), (2,)]
    first, second = made.uploads
    model_input = made.payloads[0]["input"]
    assert model_input["input_image"] == model_input["input_image4"] == first.placeholder
    assert model_input["input_image2"] == FACE_URL
    assert model_input["input_image3"] == second.placeholder
    assert first.placeholder == "{{upload:image:" + first.sha256[:12] + "}}"
    assert first.kind == "image" and first.content_type == "image/png"
    assert first.data == FACE and first.size == len(FACE)
    assert first.file_name == f"reference-{first.sha256[:12]}.png"
    assert "1, 4" in first.description


def test_every_split_prediction_uses_the_same_placeholders() -> None:
    made = plan(request(images=[FACE], num_images=6))
    assert {payload["input"]["input_image"] for payload in made.payloads} == {made.uploads[0].placeholder}


def test_a_runware_image_uuid_is_refused_naming_runware() -> None:
    with pytest.raises(InvalidRequestError, match="runware") as caught:
        plan(request(images=[FACE_URL, RUNWARE_UUID]))
    assert caught.value.field == "images[1]"


# ------------------------------------------------------------------------------------------- settings


def test_registry_and_explain_find_the_adapter() -> None:
    assert provider_class("eachlabs") is EachlabsProvider
    assert explain(request(), "eachlabs").payloads == plan(request()).payloads


def test_missing_key_names_both_ways_to_supply_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EACHLABS_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="EACHLABS_API_KEY") as caught:
        EachlabsProvider().require_key()
    assert "api_key=" in str(caught.value)


def test_key_from_environment_or_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EACHLABS_API_KEY", "from-env")
    EachlabsProvider().require_key()
    monkeypatch.delenv("EACHLABS_API_KEY")
    EachlabsProvider(api_key="given").require_key()


def test_plan_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EACHLABS_API_KEY", raising=False)
    assert plan(request()).payloads


def test_the_key_never_shows_in_repr() -> None:
    assert "super-secret" not in repr(EachlabsProvider(api_key="super-secret"))


def test_capabilities_cover_every_request_field() -> None:
    fields = {field.name for field in attrs.fields(PhotoMakerRequest)}
    assert {capability.field for capability in EachlabsProvider.capabilities} == fields


def test_initial_image_is_left_out_with_a_warning() -> None:
    made = plan(request(initial_image="https://example.com/start.png", initial_image_strength=0.2))
    assert warned_fields(made) == ["initial_image", "initial_image_strength"]
    assert "initial" not in str(made.payloads)
