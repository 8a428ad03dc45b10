"""fal-ai/photomaker input rules as the fal emulator enforces them (fal.md §4.1, §4.2).

Input is accepted at submit and rejected when it runs (fal.md §1.3): each case submits, waits for
COMPLETED and expects the result to answer 422 with a FastAPI ``detail`` list naming the field.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from photomaker_bridge.emulators._common import EmulatorSettings, EmulatorState
from photomaker_bridge.emulators._fal_schema import STYLES, PhotoMakerInput, validate_input
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.emulators.fal import FalOptions, create_app

API_KEY = "validation-key"
AUTH = {"Authorization": f"Key {API_KEY}"}
MISSING = object()


class Emulator:
    """Submit a payload and read the request's final result."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.archive_url = ""

    async def upload_archive(self) -> None:
        """Upload a valid one-face archive and remember its URL."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("face.png", render_image(seed=3, style="test", width=16, height=16))
        async with self.session.post(self.base + "/storage/auth/token", headers=AUTH, json={}) as response:
            token = (await response.json())["token"]
        async with self.session.post(self.base + "/files/upload", data=buffer.getvalue(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/zip"}) as response:
            self.archive_url = (await response.json())["access_url"]

    def payload(self, **changes: Any) -> dict[str, Any]:
        """A valid payload with ``changes`` applied (``MISSING`` removes a field)."""
        payload: dict[str, Any] = {"image_archive_url": self.archive_url,
                                   "prompt": "instagram photo, portrait photo of a man img, film grain"}
        for name, value in changes.items():
            if value is MISSING:
                payload.pop(name, None)
            else:
                payload[name] = value
        return payload

    async def run(self, payload: Any = None, *, data: bytes | None = None) -> tuple[int, Any]:
        """Submit, wait for COMPLETED, and return the result's status and body."""
        body = {"json": payload} if data is None else {"data": data}
        async with self.session.post(self.base + "/fal-ai/photomaker", headers=AUTH, **body) as response:
            assert response.status == 200
            submitted = await response.json()
        while True:
            async with self.session.get(submitted["status_url"], headers=AUTH) as response:
                status = await response.json()
            if status["status"] == "COMPLETED":
                break
            await asyncio.sleep(0.01)
        async with self.session.get(submitted["response_url"], headers=AUTH) as response:
            return response.status, await response.json()


@pytest.fixture
def options() -> FalOptions:
    return FalOptions()


@pytest.fixture
def state() -> EmulatorState:
    return EmulatorState("fal", EmulatorSettings(api_key=API_KEY, queue_time=0.0, run_time=0.0))


@pytest.fixture
async def emulator(state: EmulatorState, options: FalOptions) -> AsyncIterator[Emulator]:
    async with TestServer(create_app(state, options=options), host="127.0.0.1") as server, \
            aiohttp.ClientSession() as session:
        client = Emulator(session, str(server.make_url("")).rstrip("/"))
        await client.upload_archive()
        yield client


RANGE_CASES = [
    ("initial_image_strength", -0.01, "not_ge", 0), ("initial_image_strength", 1.01, "not_le", 1),
    ("num_inference_steps", 19, "not_ge", 20), ("num_inference_steps", 101, "not_le", 100),
    ("style_strength", 14, "not_ge", 15), ("style_strength", 51, "not_le", 50),
    ("num_images", 0, "not_ge", 1), ("num_images", 5, "not_le", 4),
    ("guidance_scale", 0.09, "not_ge", 0.1), ("guidance_scale", 10.01, "not_le", 10),
]


@pytest.mark.parametrize(("field", "value", "kind", "limit"), RANGE_CASES,
                         ids=[f"{field}={value}" for field, value, _, _ in RANGE_CASES])
async def test_each_range_bound_is_enforced(emulator: Emulator, field: str, value: float, kind: str,
                                            limit: float) -> None:
    status, body = await emulator.run(emulator.payload(**{field: value}))
    assert status == 422
    relation = "greater than or equal to" if kind == "not_ge" else "less than or equal to"
    assert body == {"detail": [{"loc": ["body", field], "msg": f"ensure this value is {relation} {limit:g}",
                                "type": f"value_error.number.{kind}", "ctx": {"limit_value": limit}}]}


ACCEPTED_BOUNDS = [
    ("initial_image_strength", 0), ("initial_image_strength", 1), ("num_inference_steps", 20),
    ("num_inference_steps", 100), ("style_strength", 15), ("style_strength", 50), ("num_images", 1),
    ("num_images", 4), ("guidance_scale", 0.1), ("guidance_scale", 10), ("guidance_scale", 5),
    ("num_inference_steps", 50.0), ("seed", None), ("seed", 0), ("seed", 2**40), ("initial_image_url", None),
    ("negative_prompt", ""),
]


@pytest.mark.parametrize(("field", "value"), ACCEPTED_BOUNDS,
                         ids=[f"{field}={value}" for field, value in ACCEPTED_BOUNDS])
async def test_values_on_the_bounds_are_accepted(emulator: Emulator, field: str, value: object) -> None:
    status, body = await emulator.run(emulator.payload(**{field: value}))
    assert status == 200, body


ENUM_CASES = [
    ("style", "cinematic"), ("style", "Photographic (Default)"), ("style", "Disney Charactor"),
    ("style", "No style"), ("style", "Cinematic "), ("style", 3), ("base_pipeline", "photomaker-v2"),
    ("base_pipeline", "PhotoMaker"), ("base_pipeline", ""),
]


@pytest.mark.parametrize(("field", "value"), ENUM_CASES, ids=[f"{field}={value!r}" for field, value in ENUM_CASES])
async def test_enums_take_only_fal_spellings(emulator: Emulator, field: str, value: object) -> None:
    status, body = await emulator.run(emulator.payload(**{field: value}))
    assert status == 422
    (entry,) = body["detail"]
    assert (entry["loc"], entry["type"]) == (["body", field], "type_error.enum")
    assert entry["msg"].startswith("value is not a valid enumeration member; permitted: ")
    assert entry["ctx"]["enum_values"] == (list(STYLES) if field == "style" else ["photomaker", "photomaker-style"])


@pytest.mark.parametrize("style", STYLES)
async def test_every_style_is_accepted(emulator: Emulator, style: str) -> None:
    status, body = await emulator.run(emulator.payload(style=style, seed=1))
    assert status == 200 and len(body["images"]) == 1


@pytest.mark.parametrize("pipeline", ["photomaker", "photomaker-style"])
async def test_both_pipelines_are_accepted(emulator: Emulator, pipeline: str) -> None:
    assert (await emulator.run(emulator.payload(base_pipeline=pipeline)))[0] == 200


TYPE_CASES = [
    ("image_archive_url", MISSING, "value_error.missing"), ("prompt", MISSING, "value_error.missing"),
    ("image_archive_url", None, "type_error.none.not_allowed"), ("prompt", None, "type_error.none.not_allowed"),
    ("image_archive_url", 5, "type_error.str"), ("prompt", ["a man img"], "type_error.str"),
    ("negative_prompt", 1, "type_error.str"), ("initial_image_url", 1, "type_error.str"),
    ("num_images", 2.5, "type_error.integer"), ("num_images", "2", "type_error.integer"),
    ("num_images", True, "type_error.integer"), ("num_images", None, "type_error.none.not_allowed"),
    ("num_inference_steps", "fifty", "type_error.integer"), ("style_strength", 20.5, "type_error.integer"),
    ("seed", "42", "type_error.integer"), ("seed", 4.2, "type_error.integer"),
    ("guidance_scale", "5", "type_error.float"), ("initial_image_strength", False, "type_error.float"),
    ("style", None, "type_error.none.not_allowed"),
]


@pytest.mark.parametrize(("field", "value", "error_type"), TYPE_CASES,
                         ids=[f"{field}={'missing' if value is MISSING else repr(value)}"
                              for field, value, _ in TYPE_CASES])
async def test_required_fields_and_types(emulator: Emulator, field: str, value: object, error_type: str) -> None:
    status, body = await emulator.run(emulator.payload(**{field: value}))
    assert status == 422
    (entry,) = body["detail"]
    assert (entry["loc"], entry["type"]) == (["body", field], error_type)
    assert isinstance(entry["msg"], str) and entry["msg"]


TRIGGER_REJECTED = ["portrait photo of a man", "a man img and a woman img", "portrait of a man IMG",
                    "a man imgs", "a man with an img_1 tag", ""]
TRIGGER_ACCEPTED = ["a man img", "img, portrait photo", "photo of a woman img.", "(img) in a spacesuit"]


@pytest.mark.parametrize("prompt", TRIGGER_REJECTED)
async def test_prompt_needs_the_trigger_word_exactly_once(emulator: Emulator, prompt: str) -> None:
    status, body = await emulator.run(emulator.payload(prompt=prompt))
    assert status == 422
    (entry,) = body["detail"]
    assert (entry["loc"], entry["type"]) == (["body", "prompt"], "value_error")
    assert "Trigger word: img" in entry["msg"] and entry["ctx"]["trigger_word"] == "img"


@pytest.mark.parametrize("prompt", TRIGGER_ACCEPTED)
async def test_prompts_with_one_trigger_word_are_accepted(emulator: Emulator, prompt: str) -> None:
    assert (await emulator.run(emulator.payload(prompt=prompt)))[0] == 200


async def test_trigger_rule_is_configurable(emulator: Emulator, options: FalOptions) -> None:
    options.trigger_status = 500
    status, body = await emulator.run(emulator.payload(prompt="a man"))
    assert status == 500 and body["detail"].startswith("PhotoMaker currently does not support")
    options.trigger_rule = False
    assert (await emulator.run(emulator.payload(prompt="a man")))[0] == 200


async def test_all_field_errors_are_reported_together_in_schema_order(emulator: Emulator) -> None:
    status, body = await emulator.run({"num_images": 9, "style": "nope", "seed": "x"})
    assert status == 422
    assert [(entry["loc"][1], entry["type"]) for entry in body["detail"]] == [
        ("image_archive_url", "value_error.missing"), ("prompt", "value_error.missing"),
        ("style", "type_error.enum"), ("num_images", "value_error.number.not_le"), ("seed", "type_error.integer")]


async def test_schema_errors_come_before_archive_and_trigger_checks(emulator: Emulator) -> None:
    status, body = await emulator.run(emulator.payload(image_archive_url="https://elsewhere.invalid/a.zip",
                                                       prompt="no trigger", num_images=0))
    assert status == 422 and [entry["loc"][1] for entry in body["detail"]] == ["num_images"]
    status, body = await emulator.run(emulator.payload(image_archive_url="https://elsewhere.invalid/a.zip",
                                                       prompt="no trigger"))
    assert [entry["loc"][1] for entry in body["detail"]] == ["image_archive_url"]


async def test_body_must_be_a_json_object(emulator: Emulator) -> None:
    status, body = await emulator.run(["not", "an", "object"])
    assert (status, body) == (422, {"detail": [{"loc": ["body"], "msg": "value is not a valid dict",
                                                "type": "type_error.dict"}]})
    status, body = await emulator.run(data=b'{"prompt": ')
    assert status == 422 and body["detail"][0]["type"] == "value_error.jsondecode"
    assert body["detail"][0]["loc"] == ["body", 11]


async def test_lax_types_coerce_like_pydantic(emulator: Emulator, options: FalOptions) -> None:
    options.strict_types = False
    status, body = await emulator.run(emulator.payload(num_images="2", guidance_scale="7.5", seed=3.9))
    assert status == 200 and len(body["images"]) == 2 and body["seed"] == 3


async def test_extra_fields_are_ignored_unless_forbidden(emulator: Emulator, options: FalOptions) -> None:
    assert (await emulator.run(emulator.payload(numImages=2)))[0] == 200
    options.forbid_extra_fields = True
    status, body = await emulator.run(emulator.payload(numImages=2))
    assert status == 422 and body["detail"] == [{"loc": ["body", "numImages"], "msg": "extra fields not permitted",
                                                 "type": "value_error.extra"}]


async def test_rejected_requests_run_briefly_and_complete_without_error_fields(
        emulator: Emulator, state: EmulatorState) -> None:
    # fal never says FAILED: an invalid request goes IN_PROGRESS, then COMPLETED; only the result tells
    # (fal.md §1.4, TanStack/ai #396).
    state.settings.run_time = 1.0
    async with emulator.session.post(emulator.base + "/fal-ai/photomaker", headers=AUTH,
                                     json=emulator.payload(num_images=7)) as response:
        submitted = await response.json()
    phases: list[dict[str, Any]] = []
    while not phases or phases[-1]["status"] != "COMPLETED":
        async with emulator.session.get(submitted["status_url"], headers=AUTH) as response:
            phases.append(await response.json())
        await asyncio.sleep(0.01)
    assert phases[0]["status"] == "IN_PROGRESS"
    assert "error" not in phases[-1] and phases[-1]["metrics"]["inference_time"] == pytest.approx(0.05)


@given(st.integers(min_value=-10, max_value=110), st.integers(min_value=0, max_value=60),
       st.integers(min_value=-2, max_value=8), st.floats(min_value=-1, max_value=12, allow_nan=False))
def test_validate_input_accepts_exactly_the_documented_ranges(steps: int, strength: int, images: int,
                                                              guidance: float) -> None:
    result = validate_input({"image_archive_url": "u", "prompt": "a man img", "num_inference_steps": steps,
                             "style_strength": strength, "num_images": images, "guidance_scale": guidance})
    expected_valid = 20 <= steps <= 100 and 15 <= strength <= 50 and 1 <= images <= 4 and 0.1 <= guidance <= 10
    assert isinstance(result, PhotoMakerInput) == expected_valid
    if isinstance(result, PhotoMakerInput):
        assert (result.style, result.base_pipeline, result.seed) == ("Photographic", "photomaker", None)
        assert (result.initial_image_strength, result.negative_prompt) == (0.5, "")
