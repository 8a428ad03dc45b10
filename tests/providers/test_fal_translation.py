"""Golden payloads of the fal adapter: PhotoMakerRequest → fal-ai/photomaker arguments, zip upload, warnings.

Expected arguments are written by hand from fal.md §4.1 and fal.md SEED3. Every payload is also checked with
the fal emulator's schema validator and trigger-word rule (written from the same reference, independently
of the adapter), so a payload outside a documented range or enum fails even where no golden body pins it.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import attrs
import pytest
from fixtures_images import jpeg_bytes, png_bytes, webp_bytes

from photomaker_bridge import ConfigurationError, InvalidRequestError, PhotoMakerRequest, Plan, Style
from photomaker_bridge.emulators._fal_schema import STYLES, trigger_word_issue, validate_input
from photomaker_bridge.images import sha256_hex, zip_digest, zip_images
from photomaker_bridge.providers import explain, provider_class
from photomaker_bridge.providers.fal import FalProvider

FACE = png_bytes(64, 64)
OTHER_FACE = jpeg_bytes(48, 64)
FACE_URL = "https://example.com/face.jpg"
RUNWARE_UUID = "0b9a2c4e-1f3d-4a5b-8c7d-9e0f1a2b3c4d"
STORED_ARCHIVE = "https://v3.fal.media/files/emulator/archive.zip"


def plan(request: PhotoMakerRequest, *, strict: bool = False, **settings: Any) -> Plan:
    """The plan, after checking every payload against the emulator's copy of fal's schema."""
    made = FalProvider(**settings).plan(request, strict=strict)
    for payload in made.payloads:
        concrete = {key: (STORED_ARCHIVE if str(value).startswith("{{upload:") else value)
                    for key, value in payload.items()}
        checked = validate_input(concrete, strict=True)
        assert not isinstance(checked, list), checked
        assert trigger_word_issue(concrete["prompt"]) is None, concrete["prompt"]
    json.dumps(made.to_dict())  # the plan is JSON-ready
    return made


def request(**fields: Any) -> PhotoMakerRequest:
    values: dict[str, Any] = {"prompt": "a photo of a man img", "images": [FACE]}
    values.update(fields)
    return PhotoMakerRequest(**values)


def warned(made: Plan) -> list[str]:
    return [warning.field for warning in made.warnings]


def placeholder(made: Plan) -> str:
    assert len(made.uploads) == 1
    return made.uploads[0].placeholder


# ----------------------------------------------------------------------------------------------- golden


def test_minimal_request() -> None:
    made = plan(request())
    assert made.provider == "fal"
    assert made.target == "fal queue: fal-ai/photomaker"
    assert list(made.payloads) == [{
        "image_archive_url": placeholder(made),
        "prompt": "a photo of a man img",
        "base_pipeline": "photomaker",
        "style": "(No style)",
        "style_strength": 20,
        "num_images": 1,
    }]
    assert list(made.images_per_payload) == [1]
    assert made.warnings == ()


def test_seed_full_example_is_reproduced() -> None:
    # fal.md SEED3 "Full Example", minus the archive (ours is uploaded) and initial_image_strength (no img2img).
    made = plan(request(
        prompt="instagram photo, portrait photo of a man img, colorful, perfect face, natural skin, hard shadows, "
               "film grain",
        style="Photographic",
        negative_prompt="nsfw, lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer "
                        "digits, cropped, worst quality, low quality, normal quality, jpeg artifacts, signature, "
                        "watermark, username, blurry",
        steps=50, style_strength=20, num_images=1, guidance_scale=5, seed=42))
    assert list(made.payloads) == [{
        "image_archive_url": placeholder(made),
        "prompt": "instagram photo, portrait photo of a man img, colorful, perfect face, natural skin, hard "
                  "shadows, film grain",
        "base_pipeline": "photomaker",
        "style": "Photographic",
        "negative_prompt": "nsfw, lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, "
                           "fewer digits, cropped, worst quality, low quality, normal quality, jpeg artifacts, "
                           "signature, watermark, username, blurry",
        "num_inference_steps": 50,
        "style_strength": 20,
        "num_images": 1,
        "guidance_scale": 5,
        "seed": 42,
    }]
    assert made.warnings == ()


FAL_SPELLINGS = {
    Style.NO_STYLE: "(No style)", Style.CINEMATIC: "Cinematic", Style.DISNEY_CHARACTER: "Disney Character",
    Style.DIGITAL_ART: "Digital Art", Style.PHOTOGRAPHIC: "Photographic", Style.FANTASY_ART: "Fantasy art",
    Style.NEONPUNK: "Neonpunk", Style.ENHANCE: "Enhance", Style.COMIC_BOOK: "Comic book",
    Style.LOWPOLY: "Lowpoly", Style.LINE_ART: "Line art",
}


@pytest.mark.parametrize("style", list(Style))
def test_every_style_has_fal_spelling(style: Style) -> None:
    made = plan(request(style=style))
    assert made.payloads[0]["style"] == FAL_SPELLINGS[style]
    assert made.payloads[0]["style"] in STYLES


def test_style_table_is_exported_for_docs() -> None:
    assert FalProvider.style_names() == FAL_SPELLINGS
    assert set(FalProvider.style_names().values()) == set(STYLES)


def test_other_providers_spellings_are_accepted() -> None:
    assert plan(request(style="Disney Charactor")).payloads[0]["style"] == "Disney Character"
    assert plan(request(style="Photographic (Default)")).payloads[0]["style"] == "Photographic"
    assert plan(request(style="No style")).payloads[0]["style"] == "(No style)"


# ---------------------------------------------------------------------------------------- trigger word


@pytest.mark.parametrize(("prompt", "sent", "warns"), [
    ("a photo of a man img in a spacesuit", "a photo of a man img in a spacesuit", False),
    ("a photo of a woman rwre at the sea", "a photo of a woman img at the sea", True),  # every change is a warning
    ("a photo of a girl IMG, smiling", "a photo of a girl img, smiling", True),
    ("portrait of a man, studio light", "portrait of a man img, studio light", True),
    ("img at the beach, a person", "at the beach, a person img", True),
    ("a sunset over the sea", "a photo of a person img, a sunset over the sea", True),
])
def test_trigger_word(prompt: str, sent: str, warns: bool) -> None:
    made = plan(request(prompt=prompt))
    assert made.payloads[0]["prompt"] == sent
    assert warned(made) == (["prompt"] if warns else [])
    line = next(line for line in made.mapping if line.unified_field == "prompt")
    assert line.value == sent


def test_renamed_trigger_is_noted_in_the_mapping() -> None:
    made = plan(request(prompt="a photo of a woman rwre"))
    note = next(line.note for line in made.mapping if line.unified_field == "prompt")
    assert "'rwre'" in note and "'img'" in note


def test_trigger_warning_names_the_provider_and_what_was_sent() -> None:
    warning = plan(request(prompt="a man on a boat")).warnings[0]
    assert (warning.field, warning.asked, warning.sent, warning.provider) == (
        "prompt", "a man on a boat", "a man img on a boat", "fal")


# --------------------------------------------------------------------------------------- split, seeds


def test_more_than_four_images_are_split_with_offset_seeds() -> None:
    made = plan(request(num_images=9, seed=42))
    assert [payload["num_images"] for payload in made.payloads] == [4, 4, 1]
    assert [payload["seed"] for payload in made.payloads] == [42, 46, 50]
    assert list(made.images_per_payload) == [4, 4, 1]
    # Everything else is the same in every submission, including the one archive.
    for payload in made.payloads:
        assert {key: value for key, value in payload.items() if key not in ("num_images", "seed")} == {
            "image_archive_url": placeholder(made), "prompt": "a photo of a man img",
            "base_pipeline": "photomaker", "style": "(No style)", "style_strength": 20}
    assert len(made.uploads) == 1
    assert made.warnings == ()  # a split is not a lossy change
    line = next(line for line in made.mapping if line.unified_field == "num_images")
    assert "4+4+1" in line.note


def test_split_without_seed_lets_fal_draw_one_per_submission() -> None:
    made = plan(request(num_images=5))
    assert [payload["num_images"] for payload in made.payloads] == [4, 1]
    assert all("seed" not in payload for payload in made.payloads)


def test_exactly_four_images_is_one_submission() -> None:
    made = plan(request(num_images=4, seed=7))
    assert [(payload["num_images"], payload["seed"]) for payload in made.payloads] == [(4, 7)]


def test_split_seeds_wrap_inside_the_seed_range() -> None:
    top = 2**63 - 1
    made = plan(request(num_images=6, seed=top))
    assert [payload["seed"] for payload in made.payloads] == [top, 3]


def test_seed_zero_is_sent() -> None:
    assert plan(request(seed=0)).payloads[0]["seed"] == 0


# ------------------------------------------------------------------------------------ ranges, clamping


@pytest.mark.parametrize(("steps", "sent", "warns"), [(10, 20, True), (20, 20, False), (100, 100, False),
                                                       (150, 100, True), (1, 20, True), (57, 57, False)])
def test_steps_are_clamped_to_20_100(steps: int, sent: int, warns: bool) -> None:
    made = plan(request(steps=steps))
    assert made.payloads[0]["num_inference_steps"] == sent
    assert isinstance(made.payloads[0]["num_inference_steps"], int)
    assert warned(made) == (["steps"] if warns else [])
    if warns:
        assert made.warnings[0].asked == steps and made.warnings[0].sent == sent
        assert "20-100" in made.warnings[0].reason


@pytest.mark.parametrize(("guidance", "sent", "warns"), [(0, 0.1, True), (0.05, 0.1, True), (0.1, 0.1, False),
                                                         (5, 5, False), (7.5, 7.5, False), (10, 10, False),
                                                         (12.5, 10, True), (50, 10, True)])
def test_guidance_is_clamped_to_0_1_10(guidance: float, sent: float, warns: bool) -> None:
    made = plan(request(guidance_scale=guidance))
    assert made.payloads[0]["guidance_scale"] == sent
    assert warned(made) == (["guidance_scale"] if warns else [])


def test_defaults_are_left_to_fal_and_recorded() -> None:
    made = plan(request())
    for field, key in [("steps", "num_inference_steps"), ("guidance_scale", "guidance_scale"),
                       ("negative_prompt", "negative_prompt"), ("seed", "seed")]:
        assert key not in made.payloads[0]
        line = next(line for line in made.mapping if line.unified_field == field)
        assert line.provider_field is None and line.note


def test_empty_negative_prompt_is_sent() -> None:
    assert plan(request(negative_prompt="")).payloads[0]["negative_prompt"] == ""


def test_style_strength_is_sent_as_given() -> None:
    for strength in (15, 33, 50):
        assert plan(request(style_strength=strength)).payloads[0]["style_strength"] == strength


# -------------------------------------------------------------------------------- unsupported fields


@pytest.mark.parametrize(("fields", "expected"), [
    ({"width": 512}, ["width"]),
    ({"height": 768}, ["height"]),
    ({"width": 512, "height": 768}, ["width", "height"]),
    ({"width": 1024, "height": 1024}, []),
    ({"output_format": "jpeg"}, ["output_format"]),
    ({"output_format": "webp"}, ["output_format"]),
    ({"output_format": "png"}, []),
    ({"safety_check": True}, ["safety_check"]),
    ({"safety_check": False}, ["safety_check"]),
])
def test_fields_fal_cannot_take_are_warnings(fields: dict[str, Any], expected: list[str]) -> None:
    made = plan(request(**fields))
    assert warned(made) == expected
    for warning in made.warnings:
        assert warning.sent is None and warning.provider == "fal"
    assert made.payloads == plan(request()).payloads  # nothing about them reaches the wire


def test_width_warning_says_why() -> None:
    warning = plan(request(width=512)).warnings[0]
    assert warning.asked == 512 and "1024x1024" in warning.reason


# -------------------------------------------------------------------------------------------- strict


@pytest.mark.parametrize(("fields", "field"), [
    ({"steps": 10}, "steps"), ({"guidance_scale": 20}, "guidance_scale"), ({"width": 512}, "width"),
    ({"output_format": "jpeg"}, "output_format"), ({"safety_check": True}, "safety_check"),
    ({"prompt": "a photo of a man"}, "prompt"),
])
def test_strict_refuses_every_adjustment(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan(request(**fields), strict=True)
    assert caught.value.field == field
    assert "strict" in str(caught.value)


def test_strict_accepts_what_needs_no_adjustment() -> None:
    made = plan(request(num_images=6, seed=3, steps=30, guidance_scale=4.5, width=1024, output_format="png",
                        prompt="a photo of a woman img"), strict=True)
    assert [payload["num_images"] for payload in made.payloads] == [4, 2]
    assert made.warnings == ()


def test_strict_via_explain() -> None:
    with pytest.raises(InvalidRequestError):
        explain(request(steps=5), "fal", strict=True)


# ------------------------------------------------------------------------------------ provider options


def test_provider_options_are_merged_verbatim_into_every_payload() -> None:
    options = {"initial_image_strength": 0.3, "num_inference_steps": 30, "x_future_field": {"a": 1}}
    made = plan(request(num_images=5, steps=60, provider_options={"fal": options, "runware": {"scheduler": "x"}}))
    for payload in made.payloads:
        assert payload["initial_image_strength"] == 0.3
        assert payload["num_inference_steps"] == 30  # overrides the translated 60
        assert payload["x_future_field"] == {"a": 1}
        assert "scheduler" not in payload
    lines = [line for line in made.mapping if line.unified_field.startswith("provider_options.")]
    assert [(line.unified_field, line.provider_field, line.value) for line in lines] == [
        ("provider_options.initial_image_strength", "initial_image_strength", 0.3),
        ("provider_options.num_inference_steps", "num_inference_steps", 30),
        ("provider_options.x_future_field", "x_future_field", {"a": 1}),
    ]


def test_provider_options_archive_replaces_the_upload() -> None:
    archive = "https://example.com/my-faces.zip"
    made = plan(request(images=[FACE_URL, RUNWARE_UUID], provider_options={"fal": {"image_archive_url": archive}}))
    assert made.uploads == ()
    assert made.payloads[0]["image_archive_url"] == archive
    line = next(line for line in made.mapping if line.unified_field == "images")
    assert "not sent" in line.note


# --------------------------------------------------------------------------------------------- settings


def test_pipeline_setting() -> None:
    made = plan(request(num_images=5), pipeline="photomaker-style")
    assert [payload["base_pipeline"] for payload in made.payloads] == ["photomaker-style"] * 2
    line = next(line for line in made.mapping if line.provider_field == "base_pipeline")
    assert line.value == "photomaker-style"


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="pipeline"):
        FalProvider(pipeline="sdxl")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="poll_interval"):
        FalProvider(poll_interval=0)


def test_application_and_base_url_show_in_the_target() -> None:
    made = plan(request(), application="fal-ai/photomaker-v2", base_url="http://127.0.0.1:9999")
    assert made.target == "fal queue: fal-ai/photomaker-v2 (at http://127.0.0.1:9999)"


# ----------------------------------------------------------------------------------- reference images


def test_local_photos_are_zipped_into_one_upload() -> None:
    made = plan(request(images=[FACE, OTHER_FACE]))
    upload = made.uploads[0]
    assert upload.kind == "zip"
    assert upload.content_type == "application/zip"
    assert upload.image_indices == (0, 1)
    # Keyed by the photos' own SHA-256s (the archive is deterministic), so planning never zips or hashes it.
    assert upload.sha256 == zip_digest([("png", sha256_hex(FACE)), ("jpeg", sha256_hex(OTHER_FACE))])
    assert upload.size == len(upload.data)
    assert upload.placeholder == "{{upload:zip:" + upload.sha256[:12] + "}}"
    assert upload.file_name == f"photomaker-{upload.sha256[:12]}.zip"
    assert upload.description == f"zip of 2 images, {round(upload.size / 1024)} KB"
    assert made.payloads[0]["image_archive_url"] == upload.placeholder
    with zipfile.ZipFile(io.BytesIO(upload.data)) as archive:
        assert [(info.filename, info.compress_type) for info in archive.infolist()] == [
            ("image_1.png", zipfile.ZIP_STORED), ("image_2.jpg", zipfile.ZIP_STORED)]
        assert archive.read("image_1.png") == FACE and archive.read("image_2.jpg") == OTHER_FACE


def test_planning_does_not_zip_and_the_plan_keeps_no_archive(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []

    def counting_zip(members: Any) -> bytes:
        built.append(len(members))
        return zip_images(members)

    monkeypatch.setattr("photomaker_bridge.providers._fal_plan.zip_images", counting_zip)
    made = plan(request(images=[FACE, OTHER_FACE]))
    assert built == []  # explain/plan: the placeholder, its size and key, without building the archive
    assert json.loads(json.dumps(made.to_dict()))["uploads"][0]["size"] == made.uploads[0].size
    assert built == []
    first, second = made.uploads[0].data, made.uploads[0].data
    assert built == [2, 2] and first == second  # built on each read: nothing holds the bytes in between
    assert first is not second


def test_the_same_photos_in_another_order_are_another_archive() -> None:
    assert (plan(request(images=[FACE, OTHER_FACE])).uploads[0].sha256
            != plan(request(images=[OTHER_FACE, FACE])).uploads[0].sha256)


def test_one_image_description_is_singular() -> None:
    assert plan(request()).uploads[0].description.startswith("zip of 1 image, ")


def test_same_photos_give_the_same_upload() -> None:
    first, second = plan(request()), plan(request(prompt="a photo of a woman img"))
    assert first.uploads[0].sha256 == second.uploads[0].sha256
    assert first.uploads[0].placeholder == second.uploads[0].placeholder
    assert plan(request(images=[OTHER_FACE])).uploads[0].sha256 != first.uploads[0].sha256


def test_paths_and_data_uris_are_zipped(tmp_path: Any) -> None:
    path = tmp_path / "face.jpg"
    path.write_bytes(OTHER_FACE)
    from photomaker_bridge.images import build_data_uri

    made = plan(request(images=[str(path), build_data_uri(FACE, "image/png")]))
    with zipfile.ZipFile(io.BytesIO(made.uploads[0].data)) as archive:
        assert archive.namelist() == ["image_1.jpg", "image_2.png"]


def test_url_reference_is_refused_clearly() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan(request(images=[FACE, FACE_URL]))
    assert caught.value.field == "images[1]"
    assert "zip" in str(caught.value) and "image_archive_url" in str(caught.value)


def test_runware_uuid_is_refused_naming_runware() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan(request(images=[RUNWARE_UUID]))
    assert caught.value.field == "images[0]"
    assert "runware" in str(caught.value)


def test_webp_reference_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan(request(images=[FACE, webp_bytes(16, 16)]))
    assert caught.value.field == "images[1]"
    assert "PNG or JPEG" in str(caught.value)


# ----------------------------------------------------------------------------------------- bookkeeping


def test_every_request_field_has_a_mapping_line() -> None:
    made = plan(request(negative_prompt="blurry", steps=30, guidance_scale=4, seed=1, width=512, height=512,
                        output_format="jpeg", safety_check=True, provider_options={"fal": {"x": 1}}))
    covered = {line.unified_field.split(".")[0] for line in made.mapping}
    assert {field.name for field in attrs.fields(PhotoMakerRequest)} <= covered


def test_capabilities_cover_every_field() -> None:
    fields = {field.name for field in attrs.fields(PhotoMakerRequest)}
    assert {line.field for line in FalProvider.capabilities} == fields


def test_registry_and_explain() -> None:
    assert provider_class("fal") is FalProvider
    assert explain(request(), "fal").payloads == plan(request()).payloads


def test_key_never_in_repr() -> None:
    assert "secret-value" not in repr(FalProvider(key="kid:secret-value"))


def test_require_key_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError) as caught:
        FalProvider().require_key()
    assert all(word in str(caught.value) for word in ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "key="))
    monkeypatch.setenv("FAL_KEY_ID", "kid")
    with pytest.raises(ConfigurationError):
        FalProvider().require_key()  # the id without the secret is not a key
    monkeypatch.setenv("FAL_KEY_SECRET", "ksecret")
    assert FalProvider().resolved_key() == "kid:ksecret"
    monkeypatch.setenv("FAL_KEY", "whole:key")
    assert FalProvider().resolved_key() == "whole:key"
    assert FalProvider(key="explicit:key").resolved_key() == "explicit:key"


def test_plan_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAL_KEY", raising=False)
    assert plan(request()).payloads


def test_handle_for_builds_a_resumable_handle() -> None:
    handle = FalProvider(application="fal-ai/photomaker").handle_for("80e732af-660e-45cd-bd63-580e4f2a94cc")
    assert handle.provider == "fal"
    assert list(handle.request_ids) == ["80e732af-660e-45cd-bd63-580e4f2a94cc"]
    assert handle.details["application"] == "fal-ai/photomaker"
    assert type(handle).from_dict(handle.to_dict()) == handle


# ---------------------------------------------------------------------------------------- image-to-image


def test_golden_local_initial_image_is_uploaded_and_its_url_sent() -> None:
    made = plan(request(initial_image=OTHER_FACE, initial_image_strength=0.35))
    archive, start = made.uploads
    assert archive.kind == "zip" and start.kind == "image"
    assert start.data == OTHER_FACE and start.content_type == "image/jpeg" and start.sha256 == sha256_hex(OTHER_FACE)
    assert start.image_indices == () and start.file_name.endswith(".jpg")
    assert list(made.payloads[0]) == ["image_archive_url", "prompt", "base_pipeline", "initial_image_url",
                                      "initial_image_strength", "style", "style_strength", "num_images"]
    assert made.payloads[0]["initial_image_url"] == start.placeholder
    assert made.payloads[0]["initial_image_strength"] == 0.35
    assert made.warnings == ()


def test_initial_image_url_goes_as_given_and_the_strength_default_is_fal_s() -> None:
    made = plan(request(initial_image=FACE_URL, num_images=6))
    assert [upload.kind for upload in made.uploads] == ["zip"]
    assert all(payload["initial_image_url"] == FACE_URL for payload in made.payloads)
    assert all("initial_image_strength" not in payload for payload in made.payloads)
    lines = {line.unified_field: line for line in made.mapping}
    assert lines["initial_image_strength"].provider_field is None and "0.5" in lines["initial_image_strength"].note


def test_a_runware_uuid_as_initial_image_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan(request(initial_image=RUNWARE_UUID))
    assert caught.value.field == "initial_image" and "runware" in str(caught.value)


# ---------------------------------------------------------------------------------------- submit settings


def test_submit_settings_and_the_webhook_are_on_the_plan_not_in_the_arguments() -> None:
    adapter = FalProvider(priority="low", hint="runner-7", start_timeout=45)
    made = adapter.with_webhook(adapter.plan(request()), "https://hooks.example.com/fal")
    assert made.submit_options == {"priority": "low", "hint": "runner-7", "start_timeout": 45,
                                   "webhook_url": "https://hooks.example.com/fal"}
    assert not set(made.payloads[0]) & {"priority", "hint", "start_timeout", "webhook_url", "fal_webhook"}
    assert {line.unified_field for line in made.mapping} >= {"priority (FalProvider setting)", "webhook_url"}
    assert made.to_dict()["submit_options"]["webhook_url"] == "https://hooks.example.com/fal"
