"""End-to-end flows through ``Bridge`` and ``AsyncBridge`` against the emulators over real loopback HTTP.

Every test runs for each client (sync and async) and, where the behaviour is shared, for each provider. The
emulators' request logs and counters show what went on the wire: how many jobs, uploads, task arrays and
cancels the provider saw.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import helpers_bridge
import pytest
from helpers_bridge import (
    FACE,
    JOB_COUNTER,
    OTHER_FACE,
    PROVIDERS,
    THIRD_FACE,
    Client,
    adapters,
    cancelled_ids,
    job_ids,
    open_client,
    photo_request,
    submitted_payloads,
    upload_requests,
)
from PIL import Image

from photomaker_bridge import (
    AsyncBridge,
    Bridge,
    ConfigurationError,
    GenerationFailedError,
    GenerationTimeoutError,
    JobHandle,
    PhotoMakerResult,
)
from photomaker_bridge.emulators import Emulators, Fault
from photomaker_bridge.providers.eachlabs import EachlabsProvider
from photomaker_bridge.providers.fal import FalProvider
from photomaker_bridge.providers.runware import RunwareProvider

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode
provider = helpers_bridge.provider
client = helpers_bridge.client

PIL_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
SPLIT = {"runware": (21, [20, 1]), "fal": (5, [4, 1]), "eachlabs": (5, [4, 1])}
"""num_images above a provider's per-call maximum, and the per-call counts it must become."""
COUNT_FIELD = {"fal": "num_images", "eachlabs": "num_outputs"}


def _small(provider: str, **fields: Any) -> Any:
    """A request that needs no adjustment: Runware's trigger word for Runware (any other would be renamed, with a
    warning), and small images there (it takes width/height; fal and Eachlabs always make 1024²)."""
    if provider == "runware":
        fields = {"width": 128, "height": 128, "prompt": "a photo of a man rwre in a spacesuit", **fields}
    return photo_request(**fields)


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- generate ---------------------------------------------------------------------------------------------


async def test_generate_returns_every_image_of_one_job(client: Client, emu: Emulators, provider: str) -> None:
    result = await client.generate(_small(provider, num_images=3), provider, timeout=20)

    emulator = emu[provider]
    assert isinstance(result, PhotoMakerResult)
    assert result.provider == provider
    assert len(result.images) == 3 and result.requested_images == 3
    assert len({image.url for image in result.images}) == 3  # three distinct images, each with its URL
    assert all(image.url and image.url.startswith(emulator.url) and image.data is None for image in result.images)
    assert emulator.counters[JOB_COUNTER[provider]] == 1
    assert list(result.request_ids) == job_ids(emulator)
    assert result.cost is not None and result.cost.amount > 0
    assert result.timings.total_seconds is not None and result.timings.total_seconds > 0
    assert result.created_at is not None and result.created_at.tzinfo is not None
    assert result.warnings == ()  # nothing had to be adjusted for this request
    assert len(result.raw) == 1


async def test_the_emulators_own_adapters_work_with_both_clients(emu: Emulators, mode: str) -> None:
    """``Bridge(providers=emulators.providers())``, as the docs show (Runware: its sync answer needs no polling)."""
    configured = emu.providers()
    assert sorted(adapter.name for adapter in configured) == sorted(PROVIDERS)
    async with open_client(mode, configured) as opened:
        result = await opened.generate(_small("runware"), "runware", timeout=20)
    assert len(result.images) == 2 and list(result.request_ids) == job_ids(emu.runware)


async def test_num_images_above_the_per_call_maximum_is_split(client: Client, emu: Emulators, provider: str) -> None:
    asked, counts = SPLIT[provider]

    result = await client.generate(_small(provider, num_images=asked), provider, timeout=30)

    emulator = emu[provider]
    assert len(result.images) == asked and result.requested_images == asked
    assert len({image.url for image in result.images}) == asked
    assert len(result.request_ids) == len(counts) == emulator.counters[JOB_COUNTER[provider]]
    payloads = submitted_payloads(emulator)
    if provider == "runware":
        # One POST carrying both tasks; the second task's seeds continue where the first one's ended.
        [tasks] = payloads
        assert [task["numberResults"] for task in tasks] == counts
        assert [task["seed"] for task in tasks] == [42, 62]
        assert [task["taskUUID"] for task in tasks] == list(result.request_ids)
        assert sorted(image.seed for image in result.images) == list(range(42, 42 + asked))
    else:
        inputs = [payload if provider == "fal" else payload["input"] for payload in payloads]
        assert [values[COUNT_FIELD[provider]] for values in inputs] == counts
        assert [values["seed"] for values in inputs] == [42, 46]
    assert result.seed == 42


async def test_partial_result_keeps_the_images_and_warns(client: Client, emu: Emulators, provider: str) -> None:
    emulator = emu[provider]
    emulator.settings.faults.append(Fault("partial", images=1))

    result = await client.generate(_small(provider, num_images=3), provider, timeout=20)

    assert len(result.images) == 1 and result.requested_images == 3
    assert emulator.counters["fault:partial"] == 1
    [warning] = [warning for warning in result.warnings if warning.field == "num_images"]
    assert (warning.asked, warning.sent, warning.provider) == (3, 1, provider)
    assert list(result.request_ids) == job_ids(emulator)


async def test_second_call_with_the_same_faces_uploads_nothing(client: Client, emu: Emulators,
                                                               provider: str) -> None:
    emulator = emu[provider]

    await client.generate(_small(provider, images=[FACE, OTHER_FACE]), provider, timeout=20)
    first_uploads = len(upload_requests(emulator))
    uploaded = emulator.counters["uploads"]
    assert first_uploads > 0
    assert uploaded == (1 if provider == "fal" else 2)  # fal: one zip of both faces; the others: each face

    # The same faces, another prompt and seed: nothing goes up again, the same references are sent.
    await client.generate(_small(provider, images=[FACE, OTHER_FACE], prompt="a photo of a man img as a knight",
                                 seed=7), provider, timeout=20)
    assert len(upload_requests(emulator)) == first_uploads
    assert emulator.counters["uploads"] == uploaded
    assert emulator.counters[JOB_COUNTER[provider]] == 2
    first, second = submitted_payloads(emulator)
    assert _image_refs(provider, first) == _image_refs(provider, second)

    # A new face is uploaded (alone, where photos go one by one).
    await client.generate(_small(provider, images=[FACE, THIRD_FACE]), provider, timeout=20)
    assert emulator.counters["uploads"] == uploaded + 1


def _image_refs(provider: str, payload: Any) -> Any:
    if provider == "runware":
        task = payload[0]
        return task["inputImages"] if "inputImages" in task else task["photoMaker"]["images"]
    if provider == "fal":
        return payload["image_archive_url"]
    return [payload["input"][key] for key in ("input_image", "input_image2")]


async def test_clients_do_not_share_their_upload_cache(emu: Emulators, mode: str) -> None:
    for _ in range(2):
        async with open_client(mode, adapters(emu)) as fresh:
            await fresh.generate(_small("eachlabs", images=[FACE]), "eachlabs", timeout=20)
    assert emu.eachlabs.counters["uploads"] == 2


# --- submit, result, resume -------------------------------------------------------------------------------


async def test_resume_after_a_client_side_timeout_collects_the_same_job(client: Client, emu: Emulators,
                                                                        provider: str) -> None:
    emulator = emu[provider]
    emulator.settings.run_time = 0.6  # long enough for the first wait to time out

    handle = await client.submit(_small(provider), provider, timeout=20)
    assert isinstance(handle, JobHandle) and handle.provider == provider
    assert emulator.counters[JOB_COUNTER[provider]] == 1

    with pytest.raises(GenerationTimeoutError) as caught:
        await client.result(handle, timeout=0.2)
    assert job_ids(emulator) == list(handle.request_ids)  # the job the provider accepted was polled
    error = caught.value
    assert error.handle == handle
    assert error.request_id == handle.request_id and error.provider == provider
    assert cancelled_ids(emulator) == []  # result() leaves the job running

    resumed = await client.resume(provider, handle.request_id, timeout=20, download=True)

    assert len(resumed.images) == 2
    assert all(image.data and _decoded(image.data) for image in resumed.images)
    assert list(resumed.request_ids) == list(handle.request_ids)
    assert emulator.counters[JOB_COUNTER[provider]] == 1  # one job, collected once: paid once
    assert cancelled_ids(emulator) == []


async def test_after_generates_deadline_the_job_is_collectable_only_on_runware(client: Client, emu: Emulators,
                                                                               provider: str) -> None:
    """Runware cannot cancel: its task keeps running and ``result(error.handle)`` collects it. fal and Eachlabs
    cancel on generate's deadline, so collecting the handle then reports the cancelled job."""
    emulator = emu[provider]
    # The job waits in the queue well past the deadline, and the deadline leaves ample time to upload and submit
    # however busy the machine: the outcome does not depend on its speed.
    emulator.settings.queue_time = 3.0

    with pytest.raises(GenerationTimeoutError) as caught:
        await client.generate(_small(provider), provider, timeout=1.5)
    handle = caught.value.handle
    assert isinstance(handle, JobHandle)

    if provider == "runware":
        result = await client.result(handle, timeout=20)
        assert len(result.images) == 2 and result.request_ids == handle.request_ids
    else:
        assert cancelled_ids(emulator) == list(handle.request_ids)
        with pytest.raises(GenerationFailedError) as failed:
            await client.result(handle, timeout=20)
        assert failed.value.request_id == handle.request_id
    assert emulator.counters[JOB_COUNTER[provider]] == 1


async def test_submit_then_result_with_the_handle(client: Client, emu: Emulators, provider: str) -> None:
    handle = await client.submit(_small(provider, num_images=3), provider, timeout=20)
    result = await client.result(handle, timeout=20)
    assert len(result.images) == 3 and result.request_ids == handle.request_ids
    assert emu[provider].counters[JOB_COUNTER[provider]] == 1
    # The handle survives a JSON round trip, so another process could collect it.
    assert JobHandle.from_dict(handle.to_dict()) == handle


# --- downloads --------------------------------------------------------------------------------------------


async def test_generate_with_download_gives_decodable_bytes(client: Client, emu: Emulators, provider: str) -> None:
    result = await client.generate(_small(provider, num_images=2), provider, timeout=20, download=True)

    side = 128 if provider == "runware" else 1024
    assert len(result.images) == 2
    for image in result.images:
        assert isinstance(image.data, bytes)
        picture = _decoded(image.data)
        assert picture.size == (side, side)
        if image.content_type is not None:
            assert PIL_FORMATS[image.content_type] == picture.format
    fetched = [entry.path for entry in emu[provider].log if entry.method == "GET"
               and any(image.url and image.url.endswith(entry.path) for image in result.images)]
    assert len(fetched) == 2  # each image downloaded once


async def test_images_fetch_and_save_on_demand(client: Client, emu: Emulators, provider: str,
                                               tmp_path: Path) -> None:
    result = await client.generate(_small(provider, num_images=1), provider, timeout=20)
    [image] = result.images
    assert image.data is None and image.url is not None
    target = tmp_path / "out.img"

    if client.mode == "sync":
        data = image.fetch(timeout=10)
        image.save(target, timeout=10)
    else:
        data = await image.afetch(timeout=10)
        await image.asave(target, timeout=10)

    assert target.read_bytes() == data
    assert _decoded(data).size[0] in (128, 1024)
    downloaded = await client.download(result)
    assert downloaded.images[0].data == data and downloaded.images[0].url == image.url


@pytest.mark.parametrize("output_type", ["base64Data", "dataURI"])
async def test_runware_inline_outputs_are_bytes_at_once(client: Client, emu: Emulators, output_type: str) -> None:
    request = _small("runware", provider_options={"runware": {"outputType": output_type}})

    result = await client.generate(request, "runware", timeout=20)

    [tasks] = submitted_payloads(emu.runware)
    assert tasks[0]["outputType"] == output_type
    assert len(result.images) == 2
    for image in result.images:
        assert isinstance(image.data, bytes) and _decoded(image.data).size == (128, 128)
        assert image.fetch() == image.data  # no download: the bytes are already there
    assert [entry for entry in emu.runware.log if entry.method == "GET"] == []


# --- generate_many --------------------------------------------------------------------------------------


async def test_generate_many_on_runware_sends_one_task_array(client: Client, emu: Emulators) -> None:
    emu.runware.settings.faults.append(Fault("fail_job", nth=2, message="the second request fails"))
    requests = [
        _small("runware", prompt="a photo of a man img as a pilot", num_images=2, seed=10),
        _small("runware", prompt="a photo of a man img as a chef", seed=20),
        _small("runware", prompt="a photo of a man img as a diver", images=[OTHER_FACE], num_images=1, seed=30),
    ]

    outcomes = await client.generate_many(requests, provider="runware", timeout=20)

    [tasks] = submitted_payloads(emu.runware)  # ONE POST with every photoMaker task
    assert [task["seed"] for task in tasks] == [10, 20, 30]
    assert len(outcomes) == 3
    first, second, third = outcomes
    assert isinstance(first, PhotoMakerResult) and len(first.images) == 2
    assert isinstance(second, GenerationFailedError) and "the second request fails" in second.message
    assert isinstance(third, PhotoMakerResult) and len(third.images) == 1
    assert first.request_ids == (tasks[0]["taskUUID"],)
    assert second.request_id == tasks[1]["taskUUID"]
    assert third.request_ids == (tasks[2]["taskUUID"],)
    assert {image.seed for image in first.images} == {10, 11} and third.images[0].seed == 30
    # Both faces went up in one imageUpload array before the tasks: two POSTs in all.
    assert len(upload_requests(emu.runware)) == 1 and emu.runware.counters["uploads"] == 2
    assert emu.runware.counters["route:POST /v1"] == 2


@pytest.mark.parametrize("name", ["fal", "eachlabs"])
async def test_generate_many_elsewhere_gives_one_outcome_per_request(client: Client, emu: Emulators,
                                                                     name: str) -> None:
    emu[name].settings.faults.append(Fault("fail_job", nth=2))
    requests = [_small(name, seed=10), _small(name, seed=20), _small(name, seed=30)]

    outcomes = await client.generate_many(requests, provider=name, timeout=20)

    assert [type(outcome) for outcome in outcomes].count(GenerationFailedError) == 1
    assert sum(isinstance(outcome, PhotoMakerResult) for outcome in outcomes) == 2
    assert emu[name].counters[JOB_COUNTER[name]] == 3
    ids = [outcome.request_id for outcome in outcomes]
    assert sorted(ids) == sorted(job_ids(emu[name]))  # every request accounted for, none lost
    for outcome, seed in zip(outcomes, (10, 20, 30), strict=True):
        if isinstance(outcome, PhotoMakerResult):
            assert outcome.seed == seed and len(outcome.images) == 2


@pytest.mark.parametrize("name", ["fal", "eachlabs"])
async def test_generate_many_timeout_bounds_the_whole_call(client: Client, emu: Emulators, name: str,
                                                           request: pytest.FixtureRequest) -> None:
    emu[name].settings.faults.append(Fault("stuck_job"))
    started = time.monotonic()

    outcomes = await client.generate_many([_small(name, seed=seed) for seed in (1, 2, 3)], provider=name,
                                          timeout=0.4)

    elapsed = time.monotonic() - started
    assert [type(outcome) for outcome in outcomes] == [GenerationTimeoutError] * 3
    assert sorted(cancelled_ids(emu[name])) == sorted(job_ids(emu[name]))  # each stuck job cancelled
    assert elapsed < 1.0  # the deadline (0.4 s) plus the clean-up (cancels); not 3 x 0.4 s


@pytest.mark.parametrize("name", ["fal", "eachlabs"])
async def test_generate_many_uploads_a_shared_face_once(client: Client, emu: Emulators, name: str,
                                                        request: pytest.FixtureRequest) -> None:

    await client.generate_many([_small(name, seed=seed) for seed in (1, 2, 3)], provider=name, timeout=20)

    assert emu[name].counters["uploads"] == 1
    assert emu[name].counters[JOB_COUNTER[name]] == 3


# --- configuration ----------------------------------------------------------------------------------------

KEYLESS = {
    "runware": (lambda emu: RunwareProvider(base_url=emu.runware.rest_url), ("RUNWARE_API_KEY", "api_key=")),
    "fal": (lambda emu: FalProvider(base_url=emu.fal.url), ("FAL_KEY", "key=")),
    "eachlabs": (lambda emu: EachlabsProvider(base_url=emu.eachlabs.url), ("EACHLABS_API_KEY", "api_key=")),
}


@pytest.mark.parametrize("call", ["generate", "submit", "resume", "generate_many"])
async def test_a_missing_key_is_a_configuration_error_before_any_request(emu: Emulators, mode: str, provider: str,
                                                                         call: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("RUNWARE_API_KEY", "FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "EACHLABS_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    make, names = KEYLESS[provider]
    async with open_client(mode, [make(emu)]) as keyless:
        with pytest.raises(ConfigurationError) as caught:
            if call == "generate":
                await keyless.generate(_small(provider), provider)
            elif call == "submit":
                await keyless.submit(_small(provider), provider)
            elif call == "resume":
                await keyless.resume(provider, "00000000-0000-4000-8000-000000000000")
            else:
                await keyless.generate_many([_small(provider)], provider=provider)
    message = str(caught.value)
    for name in names:
        assert name in message  # both ways to supply the key
    assert emu[provider].log == []  # raised before any request


@pytest.mark.parametrize("client_class", [Bridge, AsyncBridge])
async def test_default_clients_without_keys_fail_before_any_request(client_class: type, provider: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``Bridge()`` / ``AsyncBridge()`` with no key set: ConfigurationError, and no attempt to reach the real
    provider (the network guard in conftest.py would fail the test)."""
    for variable in ("RUNWARE_API_KEY", "FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "EACHLABS_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    bridge = client_class()
    try:
        with pytest.raises(ConfigurationError, match=KEYLESS[provider][1][0]):
            outcome = bridge.generate(_small(provider), provider)
            if client_class is AsyncBridge:
                await outcome
    finally:
        if isinstance(bridge, AsyncBridge):
            await bridge.aclose()
        else:
            bridge.close()
