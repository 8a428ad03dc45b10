"""The Eachlabs emulator refuses what Eachlabs refuses, in Eachlabs' own shapes.

Schema rules of the input table (eachlabs.md §3.1/§3.2) answer 400 ``Invalid input for model`` at create;
model-runtime rules (trigger word, §3.3) and undownloadable images answer 200 and fail on poll with the
classified envelope of §2.6. Also: auth both ways, unknown model, malformed bodies, both models' defaults.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp.test_utils import TestServer
from PIL import Image

from photomaker_bridge.emulators._common import EmulatorSettings, EmulatorState
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.emulators.eachlabs import EMULATOR_KEY, EachlabsOptions, create_app

API_KEY = "validation-key"
FACE_URL = "https://example.com/face.jpg"
STYLES = ["(No style)", "Cinematic", "Disney Charactor", "Digital Art", "Photographic (Default)", "Fantasy art",
          "Neonpunk", "Enhance", "Comic book", "Lowpoly", "Line art"]
# Cinematic and Digital Art currently render undecodable PNGs: _images._rows builds rows too short when
# width*3 is not covered by (width // len(unit) * 3 + 2) stripe units. Reported to the owner of _images.py.


@attrs.define
class Harness:
    """An emulator on a TestServer plus a client session, with create/poll helpers."""

    state: EmulatorState
    server: TestServer
    session: aiohttp.ClientSession

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on the emulator."""
        return str(self.server.make_url(path))

    @property
    def options(self) -> EachlabsOptions:
        """The running emulator's options (mutable)."""
        return self.server.app[EMULATOR_KEY].options

    async def post(self, path: str, body: object, headers: dict[str, str] | None = None
                   ) -> tuple[int, Any, aiohttp.ClientResponse]:
        """POST JSON with the key (unless ``headers`` replaces it); status, parsed body, response."""
        sent = {"X-API-Key": API_KEY} if headers is None else headers
        async with self.session.post(self.url(path), json=body, headers=sent) as response:
            return response.status, await response.json(content_type=None), response

    async def create(self, input_values: dict[str, Any], model: str = "photomaker") -> tuple[int, Any]:
        """Create a prediction; status and body."""
        status, body, _ = await self.post("/v1/prediction/", {"model": model, "version": "0.0.1",
                                                               "input": input_values})
        return status, body

    async def upload(self) -> str:
        """Presign and PUT a small PNG; its public URL."""
        _, slot, _ = await self.post("/v1/upload/presign", {"content_type": "image/png"})
        face = render_image(seed=2, style="(No style)", width=16, height=16)
        async with self.session.put(slot["presigned_url"], data=face,
                                    headers={"Content-Type": "image/png", **slot["required_headers"]}) as put:
            assert put.status == 200
        return str(slot["public_url"])

    async def get(self, prediction_id: str) -> dict[str, Any]:
        """One poll."""
        async with self.session.get(self.url(f"/v1/prediction/{prediction_id}"),
                                    headers={"X-API-Key": API_KEY}) as response:
            assert response.status == 200
            body: dict[str, Any] = await response.json()
            return body

    async def finished(self, prediction_id: str) -> dict[str, Any]:
        """Poll until the prediction is terminal; the last body."""
        for _ in range(500):
            body = await self.get(prediction_id)
            if body["status"] in ("success", "error", "cancelled"):
                return body
            await asyncio.sleep(0.01)
        raise AssertionError("prediction did not finish")


@pytest.fixture
async def emulator() -> AsyncIterator[Harness]:
    """A fresh emulator on loopback, with external URLs counting as reachable."""
    settings = EmulatorSettings(api_key=API_KEY, seed=3, external_urls_reachable=True)
    state = EmulatorState("eachlabs", settings)
    server = TestServer(create_app(state), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Harness(state, server, session)
    finally:
        await server.close()


# ------------------------------------------------------------------------------------- schema violations

INVALID_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("input_image missing", {}, "input_image"),
    ("input_image null", {"input_image": None}, "input_image"),
    ("input_image empty", {"input_image": ""}, "input_image"),
    ("input_image not a string", {"input_image": 7}, "input_image"),
    ("input_image2 not a string", {"input_image2": ["x"]}, "input_image2"),
    ("num_steps below 1", {"num_steps": 0}, "num_steps"),
    ("num_steps above 100", {"num_steps": 101}, "num_steps"),
    ("num_steps string below 1", {"num_steps": "0"}, "num_steps"),
    ("num_steps string above 100", {"num_steps": "101"}, "num_steps"),
    ("num_steps fractional", {"num_steps": 20.5}, "num_steps"),
    ("num_steps fractional string", {"num_steps": "20.5"}, "num_steps"),
    ("num_steps non-numeric string", {"num_steps": "twenty"}, "num_steps"),
    ("num_steps boolean", {"num_steps": True}, "num_steps"),
    ("style_strength_ratio below 15", {"style_strength_ratio": 14.99}, "style_strength_ratio"),
    ("style_strength_ratio above 50", {"style_strength_ratio": 50.01}, "style_strength_ratio"),
    ("style_strength_ratio string above 50", {"style_strength_ratio": "51"}, "style_strength_ratio"),
    ("style_strength_ratio non-numeric", {"style_strength_ratio": "strong"}, "style_strength_ratio"),
    ("style_strength_ratio nan string", {"style_strength_ratio": "nan"}, "style_strength_ratio"),
    ("num_outputs below 1", {"num_outputs": 0}, "num_outputs"),
    ("num_outputs above 4", {"num_outputs": 5}, "num_outputs"),
    ("num_outputs string above 4", {"num_outputs": "5"}, "num_outputs"),
    ("num_outputs non-numeric", {"num_outputs": "one"}, "num_outputs"),
    ("guidance_scale below 1", {"guidance_scale": 0.99}, "guidance_scale"),
    ("guidance_scale above 10", {"guidance_scale": 10.01}, "guidance_scale"),
    ("guidance_scale string below 1", {"guidance_scale": "0.5"}, "guidance_scale"),
    ("guidance_scale non-numeric", {"guidance_scale": "5x"}, "guidance_scale"),
    ("seed below 0", {"seed": -1}, "seed"),
    ("seed above int32", {"seed": 2147483648}, "seed"),
    ("seed string above int32", {"seed": "2147483648"}, "seed"),
    ("seed non-numeric", {"seed": "random"}, "seed"),
    ("seed fractional", {"seed": 1.5}, "seed"),
    ("style_name wrong case Comic Book", {"style_name": "Comic Book"}, "style_name"),
    ("style_name wrong case Fantasy Art", {"style_name": "Fantasy Art"}, "style_name"),
    ("style_name corrected spelling", {"style_name": "Disney Character"}, "style_name"),
    ("style_name lower case", {"style_name": "cinematic"}, "style_name"),
    ("style_name unknown", {"style_name": "Watercolor"}, "style_name"),
    ("style_name not a string", {"style_name": 4}, "style_name"),
    ("prompt not a string", {"prompt": 5}, "prompt"),
    ("negative_prompt not a string", {"negative_prompt": ["blurry"]}, "negative_prompt"),
    ("disable_safety_checker string", {"disable_safety_checker": "false"}, "disable_safety_checker"),
]


@pytest.mark.parametrize(("model", "values", "field"), [
    pytest.param(model, values, field, id=f"{model}: {name}")
    for model in ("photomaker", "photomaker-style") for name, values, field in INVALID_INPUTS
])
async def test_schema_violation_is_refused_at_create(emulator: Harness, model: str, values: dict[str, Any],
                                                     field: str) -> None:
    input_values = {"input_image": FACE_URL, **values}
    if not values:  # the "input_image missing" case
        del input_values["input_image"]

    status, body = await emulator.create(input_values, model=model)

    assert status == 400
    assert list(body) == ["error", "details"]
    assert body["error"] == "Invalid input for model"
    assert body["details"].startswith(f"{field}:")
    assert emulator.state.counters["predictions_created"] == 0
    assert emulator.server.app[EMULATOR_KEY].predictions == {}


async def test_every_violation_is_listed_in_details(emulator: Harness) -> None:
    status, body = await emulator.create({"num_steps": 0, "num_outputs": 9, "style_name": "Pixar"})
    assert status == 400
    for field in ("input_image", "num_steps", "num_outputs", "style_name"):
        assert f"{field}:" in body["details"]


async def test_schema_violation_can_fail_on_poll_instead(emulator: Harness) -> None:
    emulator.options.validate_at_create = False
    status, created = await emulator.create({"input_image": FACE_URL, "num_steps": 500})
    assert status == 200
    result = await emulator.finished(created["predictionID"])
    assert result["status"] == "error"
    assert result["output"]["error_code"] == "INPUT_VALIDATION_ERROR"
    assert result["output"]["error_message"].startswith("num_steps:")
    assert result["metrics"]["cost"] == 0


# ------------------------------------------------------------------------------------- accepted payloads

ACCEPTED_INPUTS: list[tuple[str, dict[str, Any]]] = [
    ("num_steps at 1", {"num_steps": 1}),
    ("num_steps at 100", {"num_steps": 100}),
    ("num_steps numeric string", {"num_steps": "20"}),
    ("num_steps integral float", {"num_steps": 20.0}),
    ("style_strength_ratio at 15", {"style_strength_ratio": 15}),
    ("style_strength_ratio at 50", {"style_strength_ratio": 50.0}),
    ("style_strength_ratio numeric string", {"style_strength_ratio": "20"}),
    ("style_strength_ratio decimal string", {"style_strength_ratio": "33.5"}),
    ("num_outputs at 1", {"num_outputs": 1}),
    ("num_outputs at 4", {"num_outputs": 4}),
    ("num_outputs numeric string", {"num_outputs": "1"}),
    ("guidance_scale at 1", {"guidance_scale": 1}),
    ("guidance_scale at 10", {"guidance_scale": 10}),
    ("guidance_scale numeric string", {"guidance_scale": "5"}),
    ("seed at 0", {"seed": 0}),
    ("seed at int32 max", {"seed": 2147483647}),
    ("seed numeric string", {"seed": "42"}),
    ("seed null", {"seed": None}),
    ("all four images", {"input_image2": FACE_URL, "input_image3": FACE_URL, "input_image4": FACE_URL}),
    ("empty optional images", {"input_image2": "", "input_image3": None}),
    ("safety checker disabled", {"disable_safety_checker": True}),
    ("unknown extra input", {"width": 512}),
    *[(f"style {name}", {"style_name": name}) for name in STYLES],
]


@pytest.mark.parametrize(("model", "values"), [
    pytest.param(model, values, id=f"{model}: {name}")
    for model in ("photomaker", "photomaker-style") for name, values in ACCEPTED_INPUTS
])
async def test_valid_payload_is_accepted(emulator: Harness, model: str, values: dict[str, Any]) -> None:
    status, body = await emulator.create({"input_image": FACE_URL, **values}, model=model)
    assert status == 200
    assert body["status"] == "success" and body["message"] == "Prediction created successfully"
    assert len(body["predictionID"]) == 36


async def test_version_is_optional_and_empty_webhook_url_accepted(emulator: Harness) -> None:
    status, body, _ = await emulator.post("/v1/prediction", {
        "model": "photomaker-style", "input": {"input_image": FACE_URL}, "webhook_url": ""})
    assert status == 200 and body["status"] == "success"


@pytest.mark.parametrize(("model", "default_style"), [
    ("photomaker", "Photographic (Default)"),
    ("photomaker-style", "(No style)"),
])
async def test_each_model_renders_its_default_style(emulator: Harness, model: str, default_style: str) -> None:
    _, created = await emulator.create({"input_image": FACE_URL, "seed": 99}, model=model)
    result = await emulator.finished(created["predictionID"])
    assert result["status"] == "success"
    async with emulator.session.get(result["output"][0]) as response:
        served = await response.read()
    assert served == render_image(seed=99, style=default_style, width=1024, height=1024)


@pytest.mark.parametrize("style", STYLES)
async def test_outputs_are_decodable_pngs_of_the_requested_size(emulator: Harness, style: str) -> None:
    _, created = await emulator.create({"input_image": FACE_URL, "style_name": style, "num_outputs": 2})
    result = await emulator.finished(created["predictionID"])
    for url in result["output"]:
        async with emulator.session.get(url) as response:
            assert response.status == 200 and response.content_type == "image/png"
            picture = Image.open(io.BytesIO(await response.read()))
            picture.load()
            assert picture.format == "PNG" and picture.size == (1024, 1024)


async def test_output_images_do_not_exist_before_success(emulator: Harness) -> None:
    emulator.state.settings.run_time = 30.0
    _, created = await emulator.create({"input_image": FACE_URL})
    async with emulator.session.get(emulator.url(f"/uploads/{created['predictionID']}/image_0.png")) as response:
        assert response.status == 404


# ------------------------------------------------------------------------------------------ runtime rules

TRIGGER_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("trigger word missing", {"prompt": "a photo of a man"},
     "Cannot find the trigger word 'img' in text prompt!"),
    ("trigger word in another case", {"prompt": "a photo of a man IMG"},
     "Cannot find the trigger word 'img' in text prompt!"),
    ("trigger word twice", {"prompt": "a man img and a woman img"},
     "Cannot use multiple trigger words 'img' in text prompt!"),
    ("trigger word in negative prompt", {"prompt": "a man img", "negative_prompt": "blurry img"},
     "Cannot use trigger word 'img' in negative prompt!"),
    ("trigger word missing with numeric strings", {"prompt": "portrait", "num_steps": "20"},
     "Cannot find the trigger word 'img' in text prompt!"),
]


@pytest.mark.parametrize(("model", "values", "message"), [
    pytest.param(model, values, message, id=f"{model}: {name}")
    for model in ("photomaker", "photomaker-style") for name, values, message in TRIGGER_CASES
])
async def test_trigger_word_rule_fails_the_prediction_on_poll(emulator: Harness, model: str,
                                                              values: dict[str, Any], message: str) -> None:
    status, created = await emulator.create({"input_image": FACE_URL, **values}, model=model)
    assert status == 200  # accepted: only the model itself checks the trigger word (eachlabs.md §3.3)

    result = await emulator.finished(created["predictionID"])

    assert list(result) == ["id", "input", "logs", "status", "output", "metrics", "urls"]
    assert result["status"] == "error"
    assert result["metrics"]["cost"] == 0
    envelope = result["output"]
    assert list(envelope) == sorted(envelope)
    assert envelope["error"] == "Execution failed"
    assert envelope["error_code"] == "PROVIDER_FAILED"
    assert envelope["error_message"] == message
    assert envelope["classification"] == {"category": "PROVIDER"}
    assert envelope["execution_id"] == created["predictionID"]
    assert envelope["model_slug"] == model
    assert envelope["success"] is False and envelope["status"] == "ERROR"


@pytest.mark.parametrize("prompt", ["a man img", "img of a woman", "a woman img, on imgur", "Asian woman img"])
async def test_single_trigger_word_passes(emulator: Harness, prompt: str) -> None:
    _, created = await emulator.create({"input_image": FACE_URL, "prompt": prompt})
    assert (await emulator.finished(created["predictionID"]))["status"] == "success"


async def test_failure_output_can_be_a_plain_string(emulator: Harness) -> None:
    emulator.options.failure_output_as_string = True
    _, created = await emulator.create({"input_image": FACE_URL, "prompt": "no trigger"})
    result = await emulator.finished(created["predictionID"])
    assert result["output"] == "Cannot find the trigger word 'img' in text prompt!"


@pytest.mark.parametrize(("field", "url"), [
    ("input_image", "https://example.com/face.jpg"),
    ("input_image", "your_file.image/jpeg"),
    ("input_image", "data:image/png;base64,iVBORw0KGgo="),
    ("input_image2", "https://example.com/second.jpg"),
])
async def test_unreachable_image_fails_with_input_download_error(emulator: Harness, field: str,
                                                                 url: str) -> None:
    emulator.state.settings.external_urls_reachable = False
    values = {"input_image": await emulator.upload(), "prompt": "no trigger word", field: url}

    _, created = await emulator.create(values)
    result = await emulator.finished(created["predictionID"])

    assert result["status"] == "error"
    assert result["metrics"]["cost"] == 0
    # The download happens before the model runs, so it wins over the missing trigger word.
    assert result["output"]["error_code"] == "INPUT_DOWNLOAD_ERROR"
    assert result["output"]["error_message"].startswith(f"An input file could not be downloaded: {field} (")


async def test_own_origin_url_that_serves_nothing_is_unreachable(emulator: Harness) -> None:
    _, created = await emulator.create({"input_image": emulator.url("/uploads/nothing-here.png")})
    result = await emulator.finished(created["predictionID"])
    assert result["output"]["error_code"] == "INPUT_DOWNLOAD_ERROR"


async def test_data_uri_option_accepts_an_embedded_image(emulator: Harness) -> None:
    import base64

    emulator.options.data_uris_downloadable = True
    png = render_image(seed=1, style="(No style)", width=8, height=8)
    data_uri = "data:image/png;base64," + base64.b64encode(png).decode()
    emulator.state.settings.external_urls_reachable = False
    _, created = await emulator.create({"input_image": data_uri})
    assert (await emulator.finished(created["predictionID"]))["status"] == "success"


# ---------------------------------------------------------------------------------- auth, model, body

@pytest.mark.parametrize("headers", [
    {"X-API-Key": API_KEY},
    {"x-api-key": API_KEY},
    {"X-API-KEY": API_KEY},
    {"Authorization": f"Bearer {API_KEY}"},
    {"authorization": f"bearer {API_KEY}"},
], ids=["X-API-Key", "x-api-key", "X-API-KEY", "Bearer", "lower-case bearer"])
async def test_key_is_accepted_in_either_header(emulator: Harness, headers: dict[str, str]) -> None:
    status, body, _ = await emulator.post("/v1/prediction", {"model": "photomaker",
                                                             "input": {"input_image": FACE_URL}}, headers)
    assert status == 200
    async with emulator.session.get(emulator.url(f"/v1/prediction/{body['predictionID']}"),
                                    headers=headers) as response:
        assert response.status == 200


@pytest.mark.parametrize("headers", [
    {},
    {"X-API-Key": "wrong"},
    {"X-API-Key": ""},
    {"Authorization": "Bearer wrong"},
    {"Authorization": API_KEY},
    {"Authorization": f"Basic {API_KEY}"},
], ids=["none", "wrong key", "empty key", "wrong bearer", "no scheme", "basic scheme"])
@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/prediction/"),
    ("GET", "/v1/prediction/{id}"),
    ("POST", "/v1/prediction/{id}/cancel"),
    ("POST", "/v1/upload/presign"),
])
async def test_missing_or_wrong_key_is_401(emulator: Harness, headers: dict[str, str], method: str,
                                           path: str) -> None:
    emulator.state.settings.queue_time = 30.0
    _, created = await emulator.create({"input_image": FACE_URL})
    url = emulator.url(path.format(id=created["predictionID"]))
    body = {"model": "photomaker", "input": {"input_image": FACE_URL}, "content_type": "image/png"}
    async with emulator.session.request(method, url, json=body, headers=headers) as response:
        assert response.status == 401
        assert await response.json() == {"error": "Invalid or missing API key"}
    assert emulator.state.counters["predictions_created"] == 1
    assert (await emulator.get(created["predictionID"]))["status"] == "created"


@pytest.mark.parametrize("model", ["photomaker-v2", "PhotoMaker", "flux-1-1-pro"])
async def test_unknown_model_is_404(emulator: Harness, model: str) -> None:
    status, body = await emulator.create({"input_image": FACE_URL}, model=model)
    assert status == 404
    assert body == {"error": "Model not found"}


@pytest.mark.parametrize("payload", [
    {"input": {"input_image": FACE_URL}},
    {"model": "", "input": {"input_image": FACE_URL}},
    {"model": None, "input": {"input_image": FACE_URL}},
])
async def test_missing_model_is_400(emulator: Harness, payload: dict[str, Any]) -> None:
    status, body, _ = await emulator.post("/v1/prediction/", payload)
    assert status == 400
    assert body == {"error": "model field is required"}


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"'])
async def test_body_that_is_not_a_json_object_is_400(emulator: Harness, raw: bytes) -> None:
    async with emulator.session.post(emulator.url("/v1/prediction/"), data=raw,
                                     headers={"X-API-Key": API_KEY, "Content-Type": "application/json"}
                                     ) as response:
        assert response.status == 400
        assert await response.json() == {"error": "invalid request body"}


@pytest.mark.parametrize("input_value", [None, "input_image=x", ["x"]])
async def test_input_that_is_not_an_object_is_400(emulator: Harness, input_value: object) -> None:
    status, body, _ = await emulator.post("/v1/prediction/", {"model": "photomaker", "input": input_value})
    assert status == 400
    assert body["error"] == "Invalid input for model"


async def test_unknown_prediction_is_404(emulator: Harness) -> None:
    async with emulator.session.get(emulator.url("/v1/prediction/does-not-exist"),
                                    headers={"X-API-Key": API_KEY}) as response:
        assert response.status == 404
        assert await response.json() == {"error": "Prediction not found"}


async def test_single_output_as_string_option(emulator: Harness) -> None:
    emulator.options.single_output_as_string = True
    _, created = await emulator.create({"input_image": FACE_URL})
    result = await emulator.finished(created["predictionID"])
    assert isinstance(result["output"], str) and result["output"].endswith("/image_0.png")


async def test_same_seed_gives_same_prediction_ids() -> None:
    ids: list[list[str]] = []
    for _ in range(2):
        state = EmulatorState("eachlabs", EmulatorSettings(api_key=API_KEY, seed=5, external_urls_reachable=True))
        server = TestServer(create_app(state), host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as session:
                run: list[str] = []
                for _ in range(3):
                    async with session.post(server.make_url("/v1/prediction"), headers={"X-API-Key": API_KEY},
                                            json={"model": "photomaker",
                                                  "input": {"input_image": FACE_URL}}) as response:
                        run.append((await response.json())["predictionID"])
                ids.append(run)
        finally:
            await server.close()
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 3
