"""Routing through ``Bridge`` and ``AsyncBridge`` against the emulators: what each failure does next, attempts
counted across providers, capability skips, routed submits, and the trail on results and errors."""

from __future__ import annotations

from decimal import Decimal

import helpers_bridge
import pytest
from helpers_bridge import FAST_RETRY, Client, adapters, open_client, photo_request
from helpers_routing import accepted, attempted, refuse_submits, requests_seen, routing_events, trail
from helpers_webhook import Receiver, receiver

from photomaker_bridge import (
    ContentPolicyError,
    GenerationFailedError,
    InvalidRequestError,
    JobHandle,
    ProgressEvent,
    ProviderUnavailableError,
    Route,
)
from photomaker_bridge.emulators import Emulators, Fault
from photomaker_bridge.emulators._images import render_image

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode
client = helpers_bridge.client
__all__ = ["client", "emu", "emulators", "mode", "receiver"]

LONG_PROMPT = "a photo of a man img " + "in a very detailed scene " * 14  # over Runware's 300 characters


async def test_a_provider_that_keeps_answering_503_is_left_for_the_next(client: Client, emu: Emulators) -> None:
    refuse_submits(emu, "fal", 503)
    events: list[ProgressEvent] = []

    result = await client.generate(photo_request(), Route(["fal", "runware"]), timeout=30, on_event=events.append)

    assert result.provider == "runware" and len(result.images) == 2
    assert trail(result.attempts) == [("fal", "error", "ProviderUnavailableError"), ("runware", "ok", None)]
    fal_attempt = result.attempts[0]
    assert fal_attempt.status == 503 and fal_attempt.reason == "first choice"
    assert result.attempts[1].reason == "fallback after fal: ProviderUnavailableError"
    assert result.attempts[1].request_ids == result.request_ids and result.attempts[1].cost == result.cost
    # fal's submit was tried as often as the step retry policy says — once for the route — and never accepted.
    assert emu.fal.counters["fault:status"] == FAST_RETRY.attempts and accepted(emu, "fal") == 0
    assert routing_events(events) == [("attempt", "fal"), ("fallback", "fal"), ("attempt", "runware")]


async def test_a_list_of_names_is_an_ordered_route(client: Client, emu: Emulators) -> None:
    refuse_submits(emu, "eachlabs", 503)
    result = await client.generate(photo_request(), ["eachlabs", "fal"], timeout=30)
    assert attempted(result.attempts) == ["eachlabs", "fal"] and result.provider == "fal"


async def test_insufficient_credits_fall_back_and_keep_the_provider_out_until_reset(
        client: Client, emu: Emulators) -> None:
    refuse_submits(emu, "eachlabs", 402)
    route = Route(["eachlabs", "fal"])

    first = await client.generate(photo_request(), route, timeout=30)
    assert trail(first.attempts) == [("eachlabs", "error", "InsufficientCreditsError"), ("fal", "ok", None)]

    before = requests_seen(emu)["eachlabs"]
    second = await client.generate(photo_request(), route, timeout=30)
    assert trail(second.attempts) == [("eachlabs", "skipped", None), ("fal", "ok", None)]
    assert "InsufficientCreditsError" in (second.attempts[0].reason or "")
    assert "reset_provider('eachlabs')" in (second.attempts[0].reason or "")
    assert requests_seen(emu)["eachlabs"] == before  # skipped without a request

    emu.eachlabs.settings.faults.clear()
    client.bridge.reset_provider("eachlabs")
    third = await client.generate(photo_request(), route, timeout=30)
    assert third.provider == "eachlabs" and trail(third.attempts) == [("eachlabs", "ok", None)]


async def test_a_safety_refusal_is_never_sent_to_another_provider_unless_the_route_opts_in(
        client: Client, emu: Emulators) -> None:
    # Eachlabs' safety checker drops every image: a ContentPolicyError (docs/providers.md).
    emu.eachlabs.settings.faults.append(Fault("partial", images=0))

    with pytest.raises(ContentPolicyError) as caught:
        await client.generate(photo_request(), Route(["eachlabs", "fal"]), timeout=30)
    assert trail(caught.value.attempts) == [("eachlabs", "error", "ContentPolicyError")]
    assert caught.value.attempts[0].request_ids == (caught.value.request_id,)
    assert requests_seen(emu)["fal"] == 0

    opted_in = Route(["eachlabs", "fal"], policies={ContentPolicyError: "fallback"})
    result = await client.generate(photo_request(), opted_in, timeout=30)
    assert trail(result.attempts) == [("eachlabs", "error", "ContentPolicyError"), ("fal", "ok", None)]


async def test_a_request_a_provider_refuses_stops_the_route_unless_it_opts_in(client: Client, emu: Emulators) -> None:
    request = photo_request(prompt=LONG_PROMPT)

    with pytest.raises(InvalidRequestError, match="300") as caught:
        await client.generate(request, Route(["runware", "fal"]), timeout=30)
    assert trail(caught.value.attempts) == [("runware", "error", "InvalidRequestError")]
    assert requests_seen(emu) == {"runware": 0, "fal": 0, "eachlabs": 0}  # refused before anything was sent

    opted_in = Route(["runware", "fal"], policies={"InvalidRequestError": "fallback"})
    result = await client.generate(request, opted_in, timeout=30)
    assert trail(result.attempts) == [("runware", "error", "InvalidRequestError"), ("fal", "ok", None)]
    assert requests_seen(emu)["runware"] == 0


async def test_max_attempts_counts_every_attempt_across_providers(client: Client, emu: Emulators) -> None:
    for name in ("runware", "fal", "eachlabs"):
        refuse_submits(emu, name, 503)

    with pytest.raises(ProviderUnavailableError) as caught:
        await client.generate(photo_request(), Route(["fal", "eachlabs", "runware"], max_attempts=2), timeout=30)

    assert attempted(caught.value.attempts) == ["fal", "eachlabs"]
    assert caught.value.provider == "eachlabs"
    assert requests_seen(emu)["runware"] == 0
    # Each attempt's submit was retried in place by the step policy; the route never multiplies it.
    assert emu.fal.counters["fault:status"] == emu.eachlabs.counters["fault:status"] == FAST_RETRY.attempts


async def test_a_second_round_goes_back_to_the_first_provider(client: Client, emu: Emulators) -> None:
    emu.fal.settings.faults.append(Fault("fail_job", nth=1))
    refuse_submits(emu, "eachlabs", 503)
    result = await client.generate(photo_request(), Route(["fal", "eachlabs"], max_attempts=3), timeout=30)
    assert attempted(result.attempts) == ["fal", "eachlabs", "fal"] and result.provider == "fal"
    assert accepted(emu, "fal") == 2


async def test_the_retry_policy_tries_the_same_provider_again(client: Client, emu: Emulators) -> None:
    emu.fal.settings.faults.append(Fault("fail_job", nth=1))
    route = Route(["fal", "runware"], policies={GenerationFailedError: "retry"})
    result = await client.generate(photo_request(), route, timeout=30)
    assert attempted(result.attempts) == ["fal", "fal"]
    assert result.attempts[1].reason == "retry after fal: GenerationFailedError"
    assert requests_seen(emu)["runware"] == 0


async def test_a_provider_that_cannot_take_the_request_is_skipped_with_its_reason(
        client: Client, emu: Emulators) -> None:
    webp = render_image(seed=4, style="face", width=64, height=64, image_format="webp")
    events: list[ProgressEvent] = []
    result = await client.generate(photo_request(images=[webp]), Route(["fal", "eachlabs"]), timeout=30,
                                   on_event=events.append)
    assert trail(result.attempts) == [("fal", "skipped", None), ("eachlabs", "ok", None)]
    assert "cannot take this request as given" in (result.attempts[0].reason or "")
    assert requests_seen(emu)["fal"] == 0
    assert ("skipped", "fal") in routing_events(events)


async def test_a_failed_job_names_its_id_in_the_trail_and_the_next_provider_delivers(
        client: Client, emu: Emulators) -> None:
    emu.eachlabs.settings.faults.append(Fault("fail_job", message="CUDA out of memory (emulated)"))
    result = await client.generate(photo_request(), Route(["eachlabs", "runware"]), timeout=30)
    failed = result.attempts[0]
    assert (failed.provider, failed.outcome, failed.error_type) == ("eachlabs", "error", "GenerationFailedError")
    assert len(failed.request_ids) == 1 and "CUDA out of memory" in failed.message
    assert failed.seconds is not None and failed.seconds > 0
    assert accepted(emu, "eachlabs") == 1 and result.provider == "runware"


async def test_a_direct_call_carries_its_one_attempt_and_no_routing_events(client: Client, emu: Emulators) -> None:
    events: list[ProgressEvent] = []
    result = await client.generate(photo_request(), "fal", timeout=30, on_event=events.append)
    assert trail(result.attempts) == [("fal", "ok", None)] and result.attempts[0].cost == result.cost
    assert routing_events(events) == []

    refuse_submits(emu, "fal", 503)
    with pytest.raises(ProviderUnavailableError) as caught:
        await client.generate(photo_request(), "fal", timeout=30)
    assert trail(caught.value.attempts) == [("fal", "error", "ProviderUnavailableError")]


async def test_a_routed_submit_falls_back_until_a_provider_accepts_and_result_completes_the_trail(
        client: Client, emu: Emulators) -> None:
    refuse_submits(emu, "fal", 429)
    handle = await client.submit(photo_request(), Route(["fal", "eachlabs"]), timeout=30)
    assert isinstance(handle, JobHandle) and handle.provider == "eachlabs"
    assert trail(handle.attempts) == [("fal", "error", "RateLimitedError"), ("eachlabs", "ok", None)]
    assert JobHandle.from_dict(handle.to_dict()) == handle

    result = await client.result(handle, timeout=30)
    assert trail(result.attempts) == [("fal", "error", "RateLimitedError"), ("eachlabs", "ok", None)]
    assert result.attempts[-1].request_ids == result.request_ids and result.attempts[-1].cost == result.cost


async def test_a_routed_submit_goes_on_after_the_failure_of_its_job(client: Client, emu: Emulators) -> None:
    emu.eachlabs.settings.faults.append(Fault("fail_job"))
    route = Route(["eachlabs", "fal", "runware"], max_attempts=2)
    handle = await client.submit(photo_request(), route, timeout=30)
    with pytest.raises(GenerationFailedError) as caught:
        await client.result(handle, timeout=30)
    assert trail(caught.value.attempts) == [("eachlabs", "error", "GenerationFailedError")]

    again = await client.submit(photo_request(), route, timeout=30, after=caught.value)
    assert again.provider == "fal"
    result = await client.result(again, timeout=30)
    assert trail(result.attempts) == [("eachlabs", "error", "GenerationFailedError"), ("fal", "ok", None)]

    # Two attempts made: a further failure ends the route with the error itself.
    emu.fal.settings.faults.append(Fault("fail_job"))
    third = await client.submit(photo_request(), Route(["fal", "runware"], max_attempts=1), timeout=30)
    with pytest.raises(GenerationFailedError) as ended:
        await client.result(third, timeout=30)
    with pytest.raises(GenerationFailedError) as raised_again:
        await client.submit(photo_request(), Route(["fal", "runware"], max_attempts=1), after=ended.value)
    assert raised_again.value is ended.value


async def test_generate_many_routes_each_request(client: Client, emu: Emulators) -> None:
    refuse_submits(emu, "fal", 503)
    outcomes = await client.generate_many([photo_request(seed=1), photo_request(seed=2)], Route(["fal", "runware"]),
                                          timeout=60)
    assert [outcome.provider for outcome in outcomes] == ["runware", "runware"]
    assert all(attempted(outcome.attempts) == ["fal", "runware"] for outcome in outcomes)


async def test_generate_many_on_runware_alone_gives_each_result_its_attempt(client: Client) -> None:
    outcomes = await client.generate_many([photo_request(seed=1), photo_request(seed=2)], "runware", timeout=60)
    assert [trail(outcome.attempts) for outcome in outcomes] == [[("runware", "ok", None)]] * 2


@pytest.mark.parametrize("call", ["resume", "in_flight", "cancel"])
async def test_calls_about_one_job_refuse_a_route(client: Client, call: str) -> None:
    from photomaker_bridge import ConfigurationError

    with pytest.raises(ConfigurationError, match="belong to one provider"):
        if call == "resume":
            await client.resume(["fal", "runware"], "some-id")  # type: ignore[arg-type]
        elif call == "in_flight":
            client.bridge.in_flight(Route(["fal"]))  # type: ignore[arg-type]
        else:
            client.bridge.provider(["fal"])  # type: ignore[arg-type]


async def test_every_client_method_takes_the_route_in_both_drivers(mode: str, emu: Emulators) -> None:
    async with open_client(mode, adapters(emu), budget=Decimal("1")) as opened:
        plan = opened.bridge.explain(photo_request(), Route(["fal", "runware"]))
        assert plan.provider == "fal"
        result = await opened.generate(photo_request(), Route(["fal", "runware"]), timeout=30)
        assert result.provider == "fal"
        assert opened.bridge.router_state.spent > 0  # type: ignore[attr-defined]


async def test_a_routed_webhook_skips_a_provider_without_one(client: Client, emu: Emulators,
                                                             receiver: Receiver) -> None:
    handle = await client.submit(photo_request(), Route(["eachlabs", "fal"]), timeout=30, webhook_url=receiver.url)
    assert handle.provider == "fal"
    assert trail(handle.attempts) == [("eachlabs", "skipped", None), ("fal", "ok", None)]
    assert "Workflows V2 only" in (handle.attempts[0].reason or "") and requests_seen(emu)["eachlabs"] == 0
    result = await client.result(handle, timeout=30)
    assert len(receiver.wait_for(1)) == 1 and result.provider == "fal"  # fal POSTed the outcome there too

    with pytest.raises(InvalidRequestError, match="webhook_url"):
        await client.submit(photo_request(), Route(["fal"]), webhook_url="ftp://example.com/hook")
