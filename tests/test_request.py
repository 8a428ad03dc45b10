"""PhotoMakerRequest: defaults, construction-time validation (field, value, allowed), to_dict/from_dict."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import attrs
import pytest
from fixtures_images import jpeg_bytes, png_bytes, write_image
from hypothesis import given
from hypothesis import strategies as st

from photomaker_bridge import InvalidRequestError, PhotoMakerRequest, ReferenceImage, Style
from photomaker_bridge._convert import converter

URL = "https://example.com/face.jpg"
UUID = "8e2b1c54-1f0a-4c39-9b7e-0d4a5b6c7d8e"


def make(**fields: Any) -> PhotoMakerRequest:
    fields.setdefault("prompt", "a photo of a man img in a spacesuit")
    fields.setdefault("images", [URL])
    return PhotoMakerRequest(**fields)


def refused(**fields: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        make(**fields)
    return caught.value


# --- defaults and shape -------------------------------------------------------------------------------------


def test_defaults() -> None:
    request = make()
    assert request.style is Style.NO_STYLE
    assert request.style_strength == 20
    assert request.num_images == 1
    for name in ("negative_prompt", "steps", "guidance_scale", "seed", "width", "height", "output_format",
                 "safety_check"):
        assert getattr(request, name) is None, name
    assert request.provider_options == {}
    assert request.images == (ReferenceImage.load(URL),)


def test_fields_in_order() -> None:
    assert [field.name for field in attrs.fields(PhotoMakerRequest)] == [
        "prompt", "images", "style", "style_strength", "negative_prompt", "num_images", "steps", "guidance_scale",
        "seed", "width", "height", "output_format", "safety_check", "initial_image", "initial_image_strength",
        "provider_options",
    ]


def test_the_request_is_frozen() -> None:
    request = make()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.seed = 3  # type: ignore[misc]


def test_every_field_set(tmp_path: Path) -> None:
    path = write_image(tmp_path, "a.png", png_bytes(64, 80))
    request = make(
        images=[path, jpeg_bytes(32, 16), URL, UUID], style="Photographic (Default)", style_strength=35,
        negative_prompt="blurry", num_images=4, steps=30, guidance_scale=5.5, seed=42, width=768, height=1024,
        output_format="JPG", safety_check=False, provider_options={"runware": {"scheduler": "Euler"}},
    )
    assert [image.kind for image in request.images] == ["path", "bytes", "url", "runware_uuid"]
    assert [(image.width, image.height) for image in request.images] == [(64, 80), (32, 16), (None, None),
                                                                         (None, None)]
    assert request.style is Style.PHOTOGRAPHIC
    assert (request.style_strength, request.negative_prompt, request.num_images, request.steps) == (
        35, "blurry", 4, 30)
    assert (request.guidance_scale, request.seed, request.width, request.height) == (5.5, 42, 768, 1024)
    assert (request.output_format, request.safety_check) == ("jpeg", False)
    assert request.provider_options == {"runware": {"scheduler": "Euler"}}


def test_a_single_image_need_not_be_in_a_list() -> None:
    assert make(images=URL).images == (ReferenceImage.load(URL),)
    data = png_bytes()
    assert make(images=data).images == (ReferenceImage.load(data),)
    assert make(images=(image for image in [URL, UUID])).images[1].kind == "runware_uuid"


def test_requests_are_equal_by_value_and_hashable() -> None:
    data = png_bytes()
    first = make(images=[data], provider_options={"fal": {"x": 1}})
    second = make(images=[ReferenceImage.load(data)], provider_options={"fal": {"x": 1}})
    assert first == second
    assert hash(first) == hash(second)
    assert {first: "cached plan"}[second] == "cached plan"
    assert first != make(images=[data], provider_options={"fal": {"x": 2}})


def test_provider_options_are_copied_on_the_way_in() -> None:
    options: dict[str, dict[str, Any]] = {"eachlabs": {"version": "v1"}}
    request = make(provider_options=options)
    options["eachlabs"]["version"] = "v2"
    options["fal"] = {}
    assert request.provider_options == {"eachlabs": {"version": "v1"}}


# --- validation: images -------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 5, 9])
def test_one_to_four_images(count: int) -> None:
    error = refused(images=[URL] * count)
    assert (error.field, error.value, error.allowed) == ("images", f"<{count} images>",
                                                         "1 to 4 reference images of the person")
    assert str(error) == f"images: '<{count} images>' is not allowed; 1 to 4 reference images of the person"


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_one_to_four_images_accepted(count: int) -> None:
    assert len(make(images=[URL] * count).images) == count


def test_images_must_be_iterable() -> None:
    error = refused(images=12)
    assert (error.field, error.value) == ("images", 12)


# --- validation: scalar fields ------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t", None, 42])
def test_the_prompt_is_a_non_empty_string(prompt: object) -> None:
    error = refused(prompt=prompt)
    assert (error.field, error.value) == ("prompt", prompt)
    assert error.allowed == "a non-empty string describing the picture"


@pytest.mark.parametrize("value", [14, 51, 0, -20, 20.0, 20.5, True, "20", None])
def test_style_strength_is_an_integer_from_15_to_50(value: object) -> None:
    error = refused(style_strength=value)
    assert (error.field, error.value, error.allowed) == ("style_strength", value, "an integer from 15 to 50")
    assert str(error).startswith(f"style_strength: {value!r} is not allowed; ")


@pytest.mark.parametrize("value", [15, 50, 33])
def test_style_strength_bounds_are_inclusive(value: int) -> None:
    assert make(style_strength=value).style_strength == value


@pytest.mark.parametrize("value", [0, -1, 1.0, True, "2", None, 101])
def test_num_images_is_a_positive_integer(value: object) -> None:
    error = refused(num_images=value)
    assert (error.field, error.value) == ("num_images", value)
    assert error.allowed == "an integer from 1 to 100"


@pytest.mark.parametrize("value", [1, 5, 100])
def test_num_images_accepted(value: int) -> None:
    assert make(num_images=value).num_images == value


@pytest.mark.parametrize("field", ["width", "height"])
@pytest.mark.parametrize("value", [64, 0, 100, 130, 1000, 2112, 4096, -128, 1024.0, True, "1024"])
def test_width_and_height_are_multiples_of_64_from_128_to_2048(field: str, value: object) -> None:
    error = refused(**{field: value})
    assert (error.field, error.value, error.allowed) == (field, value, "a multiple of 64 from 128 to 2048, or None")


@pytest.mark.parametrize("field", ["width", "height"])
@given(multiple=st.integers(2, 32))
def test_every_multiple_of_64_in_range_is_accepted(field: str, multiple: int) -> None:
    assert getattr(make(**{field: 64 * multiple}), field) == 64 * multiple


@pytest.mark.parametrize("value", [0, 1, 2**31, 2**63 - 1])
def test_seed_accepted(value: int) -> None:
    assert make(seed=value).seed == value


@pytest.mark.parametrize("value", [-1, 2**63, 1.0, True, "42"])
def test_seed_refused(value: object) -> None:
    error = refused(seed=value)
    assert (error.field, error.value, error.allowed) == ("seed", value, "an integer from 0 to 2**63-1, or None")


@pytest.mark.parametrize("value", [0, -5, 2.5, False, "30"])
def test_steps_refused(value: object) -> None:
    error = refused(steps=value)
    assert (error.field, error.value, error.allowed) == ("steps", value, "an integer of at least 1, or None")


@pytest.mark.parametrize("value", [-0.1, math.nan, math.inf, True, "7"])
def test_guidance_scale_refused(value: object) -> None:
    error = refused(guidance_scale=value)
    assert error.field == "guidance_scale"
    assert error.allowed == "a finite number of at least 0, or None"


@pytest.mark.parametrize("value", [0, 0.0, 7.5, 50])
def test_guidance_scale_accepted(value: float) -> None:
    assert make(guidance_scale=value).guidance_scale == value


@pytest.mark.parametrize(("given_format", "stored"), [("png", "png"), ("PNG", "png"), ("jpg", "jpeg"),
                                                      ("JPEG", "jpeg"), ("webp", "webp"), (None, None)])
def test_output_format_spellings(given_format: str | None, stored: str | None) -> None:
    assert make(output_format=given_format).output_format == stored


@pytest.mark.parametrize("value", ["gif", "", "image/png", 1])
def test_output_format_refused(value: object) -> None:
    error = refused(output_format=value)
    assert (error.field, error.value) == ("output_format", value)
    assert error.allowed == "one of png, jpeg (jpg), webp, or None for the default"


@pytest.mark.parametrize("value", ["yes", 1, 0])
def test_safety_check_is_a_bool(value: object) -> None:
    error = refused(safety_check=value)
    assert (error.field, error.value, error.allowed) == ("safety_check", value, "True, False or None")


def test_negative_prompt_is_a_string() -> None:
    error = refused(negative_prompt=["blurry"])
    assert (error.field, error.value, error.allowed) == ("negative_prompt", ["blurry"], "a string or None")


# --- validation: provider_options ---------------------------------------------------------------------------


def test_an_unknown_provider_in_provider_options() -> None:
    error = refused(provider_options={"runware": {}, "midjourney": {"v": 6}})
    assert error.field == "provider_options['midjourney']"
    assert error.value == "midjourney"
    assert error.allowed == "provider names: eachlabs, fal, runware"
    assert error.reason == "unknown provider"


@pytest.mark.parametrize("fields", [3, "x", ["a"], {1: "a"}])
def test_provider_options_values_are_mappings_with_string_keys(fields: object) -> None:
    error = refused(provider_options={"fal": fields})
    assert (error.field, error.value) == ("provider_options['fal']", fields)
    assert error.allowed == "a mapping of field name to value"


def test_provider_options_must_be_a_mapping() -> None:
    error = refused(provider_options=[("fal", {})])
    assert error.field == "provider_options"
    assert make(provider_options=None).provider_options == {}


# --- to_dict / from_dict ------------------------------------------------------------------------------------


def test_to_dict_exact() -> None:
    data = png_bytes(2, 2)
    request = make(images=[data, URL, UUID], style="Comic book", seed=7, output_format="jpg",
                   provider_options={"fal": {"sync_mode": True}})
    assert request.to_dict() == {
        "prompt": "a photo of a man img in a spacesuit",
        "images": ["data:image/png;base64," + base64.b64encode(data).decode(), URL, UUID],
        "style": "comic_book",
        "style_strength": 20,
        "negative_prompt": None,
        "num_images": 1,
        "steps": None,
        "guidance_scale": None,
        "seed": 7,
        "width": None,
        "height": None,
        "output_format": "jpeg",
        "safety_check": None,
        "initial_image": None,
        "initial_image_strength": None,
        "provider_options": {"fal": {"sync_mode": True}},
    }
    assert request.to_dict() == converter.unstructure(request)


def test_round_trip_through_json(tmp_path: Path) -> None:
    path = write_image(tmp_path, "face.jpg", jpeg_bytes(20, 20))
    original = make(
        images=[path, png_bytes(3, 3), URL, base64.b64encode(png_bytes(5, 5)).decode()],
        style="Disney Charactor", style_strength=15, negative_prompt="lowres", num_images=3, steps=50,
        guidance_scale=2.0, seed=2**40, width=1280, height=704, output_format="webp", safety_check=True,
        initial_image=URL, initial_image_strength=0.25,
        provider_options={"eachlabs": {"version": "abc", "nested": {"a": [1, 2]}}},
    )
    text = json.dumps(original.to_dict())
    again = PhotoMakerRequest.from_dict(json.loads(text))
    assert again == original
    assert again.images[0].kind == "path" and again.images[0].source == str(path)
    assert converter.structure(json.loads(text), PhotoMakerRequest) == original


@given(
    style=st.sampled_from(list(Style)), strength=st.integers(15, 50), num_images=st.integers(1, 100),
    seed=st.none() | st.integers(0, 2**63 - 1), side=st.none() | st.integers(2, 32).map(lambda n: n * 64),
    guidance=st.none() | st.floats(0, 100, allow_nan=False), steps=st.none() | st.integers(1, 1000),
    output_format=st.sampled_from([None, "png", "jpeg", "webp"]), safety=st.sampled_from([None, True, False]),
    negative=st.none() | st.text(alphabet="abc ,", max_size=20),
)
def test_round_trip_property(style: Style, strength: int, num_images: int, seed: int | None, side: int | None,
                             guidance: float | None, steps: int | None, output_format: str | None,
                             safety: bool | None, negative: str | None) -> None:
    original = make(style=style, style_strength=strength, num_images=num_images, seed=seed, width=side,
                    height=side, guidance_scale=guidance, steps=steps, output_format=output_format,
                    safety_check=safety, negative_prompt=negative, images=[URL, UUID])
    assert PhotoMakerRequest.from_dict(json.loads(json.dumps(original.to_dict()))) == original


def test_from_dict_accepts_any_style_spelling_and_defaults() -> None:
    request = PhotoMakerRequest.from_dict({"prompt": "a woman img", "images": [URL], "style": "(No style)"})
    assert request == make(prompt="a woman img")


def test_from_dict_refuses_an_unknown_key_by_name() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        PhotoMakerRequest.from_dict({"prompt": "a man img", "images": [URL], "sampler": "euler"})
    error = caught.value
    assert (error.field, error.value, error.reason) == ("sampler", "euler", "unknown field")
    assert error.allowed.startswith("known fields: ")
    assert "guidance_scale" in error.allowed and "provider_options" in error.allowed
    assert str(error).startswith("sampler: 'euler' is not allowed (unknown field); known fields: ")


@pytest.mark.parametrize("missing", ["prompt", "images"])
def test_from_dict_names_a_missing_required_key(missing: str) -> None:
    value = {"prompt": "a man img", "images": [URL]}
    del value[missing]
    with pytest.raises(InvalidRequestError) as caught:
        PhotoMakerRequest.from_dict(value)
    assert (caught.value.field, caught.value.value, caught.value.reason) == (missing, None, "missing")


@pytest.mark.parametrize("value", [[("prompt", "x")], "a man img", None])
def test_from_dict_needs_a_mapping(value: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        PhotoMakerRequest.from_dict(value)  # type: ignore[arg-type]
    assert caught.value.field == "request"


def test_from_dict_validates_like_the_constructor() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        PhotoMakerRequest.from_dict({"prompt": "a man img", "images": [URL], "seed": "42"})
    assert (caught.value.field, caught.value.value) == ("seed", "42")
    with pytest.raises(InvalidRequestError) as caught:
        PhotoMakerRequest.from_dict({"prompt": "a man img", "images": ["/no/such/face.jpg"]})
    assert caught.value.field == "images[0]"


def test_initial_image_takes_the_sources_of_images_and_is_named_in_errors(tmp_path: Path) -> None:
    path = write_image(tmp_path, "start.png", png_bytes(8, 8))
    assert make(initial_image=path).initial_image == make(initial_image=png_bytes(8, 8)).initial_image
    assert make(initial_image=URL).initial_image is not None
    with pytest.raises(InvalidRequestError) as caught:
        make(initial_image=b"not an image")
    assert caught.value.field == "initial_image"


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), True, "0.5"])
def test_initial_image_strength_is_a_number_from_0_to_1(strength: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        make(initial_image=URL, initial_image_strength=strength)
    assert caught.value.field == "initial_image_strength" and "0 to 1" in str(caught.value)


def test_initial_image_strength_needs_an_initial_image() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        make(initial_image_strength=0.5)
    assert caught.value.field == "initial_image_strength" and "initial_image" in str(caught.value)
    assert make(initial_image=URL, initial_image_strength=0).initial_image_strength == 0
