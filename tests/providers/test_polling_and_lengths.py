"""When fal and Eachlabs jobs are polled, and what is learned from them (issue 10, docs/architecture.md "Polling").

The schedules are pure functions, checked exhaustively with hypothesis. The flows are checked against the
emulators through the order of what the emulator received: a status call never comes before its due time, and
what is learned is the job's length, not the moment a poll noticed it. No assertion depends on the machine's
speed: a slow machine makes polls later, never earlier, and the emulator's jobs end at fixed times.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from photomaker_bridge import AsyncBridge, ConfigurationError, PhotoMakerRequest
from photomaker_bridge.emulators import EmulatorHandle, Emulators, EmulatorSettings, start_emulators
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.providers._durations import DurationCache
from photomaker_bridge.providers._polling import DurationEstimate, PollPolicy, PollTimer
from photomaker_bridge.providers.eachlabs import EachlabsProvider
from photomaker_bridge.providers.fal import FalProvider

FACE = render_image(seed=3, style="face", width=64, height=64)
RUN_SECONDS = 0.3


def request() -> PhotoMakerRequest:
    return PhotoMakerRequest(prompt="a photo of a man img", images=[FACE])


# -- the cold schedule (pure) ----------------------------------------------------------------------------------


def polls_until(length: float, guess: float, policy: PollPolicy) -> list[float]:
    """The poll times of a cold timer until one finds a job of ``length`` seconds finished."""
    timer = PollTimer(policy, guess, cold=True)
    times: list[float] = []
    while True:
        times.append(timer.next_at)
        if timer.next_at >= length:
            return times
        timer.pending(timer.next_at, started=True)


@settings(max_examples=300, deadline=None)
@given(length=st.floats(0.05, 300), guess=st.sampled_from([15.0, 21.0, 73.0]),
       policy=st.sampled_from([PollPolicy(), PollPolicy(first_check=1.0, min_interval=0.25, max_interval=5.0)]))
def test_a_cold_timer_notices_any_job_within_a_tenth_of_its_length_bounded(length: float, guess: float,
                                                                         policy: PollPolicy) -> None:
    times = polls_until(length, guess, policy)
    lag = times[-1] - length
    bound = min(policy.cold_max_interval, max(policy.cold_min_interval, policy.cold_fraction * length))
    assert 0 <= lag <= bound + 1e-9
    gaps = [later - earlier for earlier, later in zip([0.0, *times], times, strict=False)]
    assert min(gaps) >= policy.min_interval / 2 - 1e-9  # never a burst


@pytest.mark.parametrize("length", [60.0, 73.0, 120.0, 300.0])
def test_a_cold_timer_polls_less_than_a_loop_polling_every_second_on_long_jobs(length: float) -> None:
    assert len(polls_until(length + 0.5, 21.0, PollPolicy())) < length


@pytest.mark.parametrize(("guess", "policy"), [(21.0, PollPolicy()),
                                               (15.0, PollPolicy(first_check=1.0, min_interval=0.25))])
def test_a_cold_timer_still_polls_right_at_the_typical_time(guess: float, policy: PollPolicy) -> None:
    times = polls_until(guess + 0.01, guess, policy)
    assert any(math.isclose(at, guess) for at in times)


def test_a_known_duration_uses_the_warm_schedule() -> None:
    policy = PollPolicy()
    warm, cold = PollTimer(policy, 21.0), PollTimer(policy, 21.0, cold=True)
    assert warm.next_at == 2.0 and cold.next_at == 0.5
    warm.pending(2.0, started=True)
    assert warm.next_at == 10.0  # halving the time left (9.5 s), at most max_interval (8 s): as before


def test_cold_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="cold_min_interval"):
        PollPolicy(cold_min_interval=2.0, cold_max_interval=1.0)
    with pytest.raises(ValueError, match="cold_fraction"):
        PollPolicy(cold_fraction=0)


def test_an_estimate_becomes_known_when_it_learns_and_says_so() -> None:
    seen: list[float] = []
    estimate = DurationEstimate(15.0, on_update=lambda updated: seen.append(updated.seconds))
    assert not estimate.known
    estimate.update(4.0)
    assert estimate.known and estimate.seconds == 4.0 and seen == [4.0]
    estimate.update(0.0)  # not a length: ignored
    assert seen == [4.0]


# -- the learned-lengths cache ---------------------------------------------------------------------------------


def test_the_cache_keeps_lengths_per_key_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "lengths.json"
    first = DurationCache(path, "fal")
    estimate = first.estimate("fal|a", 15.0, known=False)
    assert not estimate.known and estimate.seconds == 15.0
    estimate.update(3.0)
    DurationCache(path, "fal").estimate("fal|b", 15.0, known=False).update(9.0)
    again = DurationCache(path, "fal").estimate("fal|a", 15.0, known=False)
    assert again.known and again.seconds == 3.0 and again.samples == 1
    stored = json.loads(path.read_text())
    assert set(stored["lengths"]) == {"fal|a", "fal|b"}
    assert not [name for name in path.parent.iterdir() if name.name.endswith(".tmp")]


@pytest.mark.parametrize("content", ["not json", "[]", '{"lengths": []}', '{"lengths": {"fal|a": {"seconds": -1}}}',
                                     '{"lengths": {"fal|a": {"seconds": true}}}'])
def test_an_unreadable_cache_counts_as_empty(tmp_path: Path, content: str) -> None:
    path = tmp_path / "lengths.json"
    path.write_text(content)
    estimate = DurationCache(path, "fal").estimate("fal|a", 15.0, known=False)
    assert not estimate.known and estimate.seconds == 15.0
    estimate.update(2.0)  # and the next save repairs it
    assert json.loads(path.read_text())["lengths"]["fal|a"]["seconds"] == 2.0


def test_a_cache_that_cannot_be_written_never_fails_a_call(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    estimate = DurationCache(blocker / "lengths.json", "fal").estimate("fal|a", 15.0, known=False)
    estimate.update(2.0)
    assert estimate.seconds == 2.0


def test_the_cache_setting_is_checked_and_off_by_default(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="duration_cache"):
        FalProvider(duration_cache=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="duration_cache"):
        EachlabsProvider(duration_cache=[])  # type: ignore[arg-type]
    assert FalProvider().duration_cache is None and EachlabsProvider().duration_cache is None
    assert DurationCache.from_setting(None, "fal") is None and DurationCache.from_setting(False, "fal") is None
    default = DurationCache.from_setting(True, "fal")
    assert default is not None and default.path.name == "job-lengths.json"
    assert "photomaker-bridge" in str(default.path)


# -- the fal flow against the emulator -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    fast = EmulatorSettings(run_time=RUN_SECONDS)
    with start_emulators(fal=fast, eachlabs=EmulatorSettings(run_time=RUN_SECONDS), seed=5) as running:
        yield running


@pytest.fixture
def fal(emulators: Emulators) -> EmulatorHandle:
    emulators.fal.reset()
    return emulators.fal


def calls(handle: EmulatorHandle, suffix: str, method: str = "GET") -> list[float]:
    return [entry.received_at for entry in handle.log if entry.method == method and entry.path.endswith(suffix)]


async def test_fal_makes_no_status_call_before_the_first_is_due_and_fetches_straight_after(fal: EmulatorHandle) -> None:
    provider = FalProvider(key=fal.api_key, base_url=fal.url, expected_seconds=1.0)
    async with AsyncBridge(providers=[provider]) as bridge:
        await bridge.generate(request(), "fal", timeout=60)
    submitted = calls(fal, "/fal-ai/photomaker", "POST")[0]
    statuses = calls(fal, "/status")
    results = [entry for entry in fal.log if entry.method == "GET" and "/requests/" in entry.path
               and not entry.path.endswith("/status")]
    # Due at the expected end (1 s), when the 0.3 s job is over: one status call, then the result, once.
    assert len(statuses) == 1 and statuses[0] - submitted >= 0.9
    assert len(results) == 1 and results[0].received_at >= statuses[0]


@pytest.mark.parametrize("with_logs", [True, False])
async def test_fal_learns_the_job_length_not_when_a_poll_noticed_it(fal: EmulatorHandle, with_logs: bool) -> None:
    provider = FalProvider(key=fal.api_key, base_url=fal.url, expected_seconds=2.0, with_logs=with_logs)
    async with AsyncBridge(providers=[provider]) as bridge:
        await bridge.generate(request(), "fal", timeout=60)
    estimate = provider._estimate
    assert estimate.samples == 1
    # Noticed at 2 s; the job ran 0.3 s from the submit (metrics.inference_time, and the logs' timestamps).
    assert RUN_SECONDS - 0.01 <= estimate.seconds < 1.0


async def test_fal_saves_what_it_learns_and_a_new_adapter_starts_from_it(fal: EmulatorHandle, tmp_path: Path) -> None:
    path = tmp_path / "lengths.json"
    first = FalProvider(key=fal.api_key, base_url=fal.url, duration_cache=path)
    assert not first._estimate.known  # nothing learned yet: the cold schedule
    async with AsyncBridge(providers=[first]) as bridge:
        await bridge.generate(request(), "fal", timeout=60)
    second = FalProvider(key=fal.api_key, base_url=fal.url, duration_cache=path)
    assert second._estimate.known and second._estimate.seconds == pytest.approx(first._estimate.seconds, abs=1e-3)
    elsewhere = FalProvider(key=fal.api_key, base_url="http://127.0.0.1:9", duration_cache=path)
    assert not elsewhere._estimate.known  # another endpoint's lengths are its own


async def test_eachlabs_saves_what_it_learns(emulators: Emulators, tmp_path: Path) -> None:
    eachlabs = emulators.eachlabs
    path = tmp_path / "lengths.json"
    provider = EachlabsProvider(api_key=eachlabs.api_key, base_url=eachlabs.url, duration_cache=path)
    assert not provider.estimate().known
    async with AsyncBridge(providers=[provider]) as bridge:
        await bridge.generate(request(), "eachlabs", timeout=60)
    again = EachlabsProvider(api_key=eachlabs.api_key, base_url=eachlabs.url, duration_cache=path)
    assert again.estimate().known
    assert again.estimate().seconds == pytest.approx(provider.estimate().seconds, abs=1e-3)


async def test_fal_builds_the_archive_once_for_concurrent_first_calls(fal: EmulatorHandle,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from photomaker_bridge.providers import _fal_plan

    built: list[int] = []
    real = _fal_plan.zip_images

    def counting(members: list[tuple[str, bytes]]) -> bytes:
        built.append(len(members))
        return real(members)  # type: ignore[arg-type]

    monkeypatch.setattr(_fal_plan, "zip_images", counting)
    provider = FalProvider(key=fal.api_key, base_url=fal.url, expected_seconds=RUN_SECONDS)
    async with AsyncBridge(providers=[provider]) as bridge:
        await asyncio.gather(*(bridge.generate(request(), "fal", timeout=60) for _ in range(5)))
        await bridge.generate(request(), "fal", timeout=60)
    assert built == [1]  # zipped for the one upload, never for the calls that found it uploaded
    assert len(calls(fal, "/files/upload", "POST")) == 1


def test_a_poll_proves_the_job_unfinished_only_when_it_was_sent() -> None:
    # On a busy client an answer may be read long after the provider wrote it: the job may have ended since.
    timer = PollTimer(PollPolicy(), 10.0)
    timer.pending(7.5, started=True, sent=2.0)
    assert timer.last_pending == 2.0 and timer.polls == 1
    timer.pending(9.0, started=True)
    assert timer.last_pending == 9.0
