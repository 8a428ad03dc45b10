"""Shared pieces of the batch tests: emulator settings, adapters polling at the emulators' pace, the acceptance
compare (2 face sets × 2 prompts × 2 styles × 3 providers × 2 seeds = 48 jobs) with its faults, and journal
readers that the tests use to check the runner independently of its own summary code."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from photomaker_bridge.batch import CompareOutcome
from photomaker_bridge.emulators import Emulators, EmulatorSettings, Fault, start_emulators
from photomaker_bridge.providers.base import Provider
from photomaker_bridge.providers.eachlabs import EachlabsProvider
from photomaker_bridge.providers.fal import FalProvider
from photomaker_bridge.providers.runware import RunwareProvider
from photomaker_bridge.samples import sample_faces

PROVIDERS: tuple[str, ...] = ("runware", "fal", "eachlabs")
JOB_COUNTER: dict[str, str] = {"runware": "jobs_created", "fal": "submits", "eachlabs": "predictions_created"}
"""The emulator counter of jobs it accepted (and would bill)."""

POLICY = attrs.evolve(EachlabsProvider().polling, first_check=0.02, min_interval=0.02, max_interval=0.2,
                      request_timeout=10.0)
"""Eachlabs' polling scaled down to the emulators' job times."""


def emulator_settings(seed: int = 5, **settings: Any) -> EmulatorSettings:
    """Short, slightly varied jobs, so that percentiles have something to measure."""
    values: dict[str, Any] = {"queue_time": (0.02, 0.1), "run_time": (0.05, 0.25), "seed": seed}
    values.update(settings)
    return EmulatorSettings(**values)


def adapter_config(emulators: Emulators) -> dict[str, Any]:
    """What a child process needs to build :func:`adapters_from` (JSON-ready; emulator keys only)."""
    return {"runware": {"api_key": emulators.runware.api_key, "base_url": emulators.runware.rest_url},
            "fal": {"key": emulators.fal.api_key, "base_url": emulators.fal.url},
            "eachlabs": {"api_key": emulators.eachlabs.api_key, "base_url": emulators.eachlabs.url}}


def adapters_from(config: Mapping[str, Any]) -> list[Provider]:
    """The three adapters for the emulators described by :func:`adapter_config`, polling at their pace."""
    return [
        RunwareProvider(**config["runware"], poll_interval=0.02, max_poll_interval=0.1),
        FalProvider(**config["fal"], poll_interval=0.02),
        EachlabsProvider(**config["eachlabs"], polling=POLICY, expected_seconds=0.2),
    ]


def adapters(emulators: Emulators) -> list[Provider]:
    """The three adapters pointed at ``emulators``."""
    return adapters_from(adapter_config(emulators))


def acceptance_matrix_arguments() -> dict[str, Any]:
    """The acceptance compare: 2 face sets × 2 prompts × 2 styles × 3 providers × 2 seeds = 48 jobs."""
    faces = sample_faces()
    return {
        "face_sets": [[str(faces[0])], [str(faces[1]), str(faces[2])]],
        "prompts": ["a portrait photo of a person img, studio light", "a person img riding a bicycle in Paris"],
        "styles": ["Cinematic", "Comic book"],
        "providers": list(PROVIDERS),
        "seeds": [42, 43],
        "options": {"num_images": 1},
    }


def inject_faults(emulators: Emulators) -> None:
    """One failure of a different kind per provider: a Runware job fails, a fal job fails, an Eachlabs create is
    refused with a 402 (the account cannot pay: nothing created, and not worth trying again; a 503 would be
    retried by the client and succeed)."""
    emulators.runware.settings.faults.append(Fault("fail_job", nth=5))
    emulators.fal.settings.faults.append(Fault("fail_job", nth=3))
    emulators.eachlabs.settings.faults.append(Fault("status", status=402, route=r"^/v1/prediction/?$",
                                                    method="POST", nth=2))


def journal_lines(out: Path) -> list[dict[str, Any]]:
    """Every line of ``out``'s journal, parsed (the test's own reader)."""
    text = (out / "journal.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def finished_by_key(lines: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The latest ``finished`` line of each key."""
    latest: dict[str, Mapping[str, Any]] = {}
    for line in lines:
        if line["type"] == "finished":
            latest[line["key"]] = line
    return latest


def _latest_steps(lines: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each key's latest submission step: ``intent``, ``submitted``, ``withdrawn`` or ``finished``."""
    steps: dict[str, str] = {}
    for line in lines:
        if line["type"] in ("intent", "submitted", "withdrawn", "finished"):
            steps[line["key"]] = line["type"]
    return steps


def open_intents(lines: Sequence[Mapping[str, Any]]) -> set[str]:
    """Keys whose latest step is an intent (the provider's answer never reached the journal)."""
    return {key for key, step in _latest_steps(lines).items() if step == "intent"}


def accepted_unfinished(lines: Sequence[Mapping[str, Any]]) -> set[str]:
    """Keys with a handle in the journal and no outcome after it."""
    return {key for key, step in _latest_steps(lines).items() if step == "submitted"}


def created(emulators: Emulators) -> dict[str, int]:
    """Jobs each emulator accepted so far."""
    return {name: emulators[name].counters[JOB_COUNTER[name]] for name in PROVIDERS}


def submitted_per_provider(lines: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """``submitted`` lines per provider (a job accepted while a run was being stopped counts once too)."""
    counts = dict.fromkeys(PROVIDERS, 0)
    for line in lines:
        if line["type"] == "submitted":
            counts[line["provider"]] += 1
    return counts


@attrs.frozen
class AcceptanceRun:
    """The 48-job compare with faults, then the same compare again over the same folder."""

    out: Path
    first: CompareOutcome
    second: CompareOutcome
    created_after_first: dict[str, int]
    created_after_second: dict[str, int]
    requests_after_first: int
    requests_after_second: int


@pytest.fixture(scope="module")
def running() -> Iterator[Emulators]:
    """One set of emulators per test module that imports this fixture (with ``emu``)."""
    with start_emulators(**{name: emulator_settings(seed=4) for name in PROVIDERS}) as emulators:
        yield emulators


@pytest.fixture
def emu(running: Emulators) -> Emulators:
    """The module's emulators back at their starting settings, with empty logs and counters."""
    running.reset()
    return running
