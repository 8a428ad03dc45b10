"""1,000 async requests, 200 at a time, over the three emulators through one ``AsyncBridge``.

Nothing fails, nothing is lost or created twice, Eachlabs never sees more than its cap of 10 predictions in flight
(the client queues the rest), and each distinct face is uploaded once per provider however many calls ask for it
at the same moment.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest
from helpers_bridge import FAST_RETRY, JOB_COUNTER, adapters, emulator_settings, photo_request, upload_requests

from photomaker_bridge import AsyncBridge, PhotoMakerResult, ProviderError
from photomaker_bridge.emulators import Emulators, start_emulators
from photomaker_bridge.emulators._images import render_image

REQUESTS = 1000
IN_FLIGHT = 200
FACES = [render_image(seed=100 + index, style="face", width=48, height=48) for index in range(5)]


@pytest.fixture(scope="module")
def loaded() -> Iterator[Emulators]:
    settings = {name: emulator_settings(run_time=0.02) for name in ("runware", "fal", "eachlabs")}
    with start_emulators(**settings, seed=5) as running:
        yield running


async def test_a_thousand_requests_two_hundred_at_a_time(loaded: Emulators) -> None:
    gate = asyncio.Semaphore(IN_FLIGHT)
    names = ("runware", "fal", "eachlabs")

    async def one(index: int) -> PhotoMakerResult | ProviderError:
        async with gate:
            try:
                return await bridge.generate(photo_request(images=[FACES[index % len(FACES)]], seed=index + 1,
                                                           num_images=1), names[index % 3], timeout=300)
            except ProviderError as error:
                return error

    async with AsyncBridge(providers=adapters(loaded), retry=FAST_RETRY) as bridge:
        outcomes = await asyncio.gather(*(one(index) for index in range(REQUESTS)))
    errors = [outcome for outcome in outcomes if isinstance(outcome, ProviderError)]
    assert errors == []
    assert all(len(outcome.images) == 1 for outcome in outcomes if isinstance(outcome, PhotoMakerResult))
    per_provider = Counter(names[index % 3] for index in range(REQUESTS))
    for name in names:
        emulator = loaded[name]
        assert emulator.counters[JOB_COUNTER[name]] == per_provider[name]  # one job per call: none lost or doubled
        uploads = upload_requests(emulator)
        expected = {"runware": len(FACES), "fal": len(FACES) + 1, "eachlabs": 2 * len(FACES)}[name]
        assert len(uploads) == expected  # every distinct face once (fal: one token, then the files; Eachlabs:
        # presign + PUT each)
    assert loaded.eachlabs.counters["peak_in_flight"] <= 10
    assert loaded.eachlabs.counters["predictions_rate_limited"] == 0  # queued on the client, never refused
    for name in names:  # each call got its own job back (ids are unique per provider)
        request_ids = [rid for outcome in outcomes if isinstance(outcome, PhotoMakerResult) and outcome.provider == name
                       for rid in outcome.request_ids]
        assert len(request_ids) == len(set(request_ids)) == per_provider[name]
