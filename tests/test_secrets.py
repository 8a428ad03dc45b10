"""No API key used in the suite ever appears in an exception, a repr or a value the library hands back.

Every provider is run through ``Bridge`` and ``AsyncBridge`` against the emulators — success, submit/result,
resume, generate_many, a refused key, and every fault kind (401, 402, 429, 500, 503, a dropped connection,
malformed JSON, a failed job, a stuck job, a partial result) — and every text a user could print is collected:
``str()``/``repr()`` of each exception and every link of its ``__cause__``/``__context__`` chain (with its
formatted traceback), of each error's ``raw`` body, of results (and their ``to_dict()``), handles, plans,
events, provider adapters, the clients, and the emulator handles, settings and logs. None may contain a key.

It runs twice: with the emulators' own keys (``emulator-`` + 24 hex digits, which ``leaked_secrets`` knows)
and with keys invented here and registered with ``register_secret`` (configured explicitly on the adapters
and accepted by the emulators). Log records are checked for every test by conftest's autouse fixture.
"""

from __future__ import annotations

import json
import secrets
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "clients"))

from helpers_bridge import (
    MODES,
    PROVIDERS,
    SUBMIT_FAULT_TARGET,
    Client,
    adapters,
    emulator_settings,
    open_client,
    photo_request,
)

from photomaker_bridge import (
    AuthenticationError,
    GenerationFailedError,
    GenerationTimeoutError,
    InsufficientCreditsError,
    JobHandle,
    PhotoMakerResult,
    ProgressEvent,
    ProviderUnavailableError,
    RateLimitedError,
)
from photomaker_bridge.emulators import Emulators, Fault, start_emulators

FAULTS: dict[str, Fault | None] = {
    "success": None,
    "401": Fault("status", status=401),
    "402": Fault("status", status=402),
    "429": Fault("status", status=429, retry_after=0.05),
    "500": Fault("status", status=500),
    "503": Fault("status", status=503),
    "drop": Fault("drop"),
    "malformed": Fault("malformed"),
    "fail_job": Fault("fail_job"),
    "stuck_job": Fault("stuck_job"),
    "partial": Fault("partial", images=1),
}
EXPECTED_ERRORS = {AuthenticationError, InsufficientCreditsError, RateLimitedError, ProviderUnavailableError,
                   GenerationFailedError, GenerationTimeoutError}


def _root_conftest(config: pytest.Config) -> ModuleType:
    """tests/conftest.py as pytest loaded it (looked up among the plugins: ``sys.modules["conftest"]`` is
    whichever conftest.py was imported last)."""
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, ModuleType) and hasattr(plugin, "register_secret") and hasattr(plugin, "leaked_secrets"):
            return plugin
    raise AssertionError("tests/conftest.py with register_secret is not loaded")


@pytest.fixture(scope="module", params=["emulator-keys", "registered-keys"])
def keyed(request: pytest.FixtureRequest) -> Iterator[tuple[Emulators, dict[str, str]]]:
    """Running emulators and the key each adapter is configured with (which the emulator accepts)."""
    conftest = _root_conftest(request.config)
    if request.param == "emulator-keys":
        settings = {name: emulator_settings() for name in PROVIDERS}
    else:
        fal_id, fal_secret = f"fal-key-id-{secrets.token_hex(8)}", f"fal-key-secret-{secrets.token_hex(16)}"
        conftest.register_secret(fal_secret)  # the secret half alone is a leak too
        settings = {
            "runware": emulator_settings(api_key=conftest.register_secret(f"rw-secret-{secrets.token_hex(16)}")),
            "fal": emulator_settings(api_key=conftest.register_secret(f"{fal_id}:{fal_secret}")),
            "eachlabs": emulator_settings(api_key=conftest.register_secret(f"el-secret-{secrets.token_hex(16)}")),
        }
    with start_emulators(**settings, seed=5) as running:
        yield running, {name: running[name].api_key for name in PROVIDERS}


class Texts:
    """Every text a user could see, labelled with where it came from."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.errors: list[BaseException] = []
        self.sent_key: list[str] = []
        """The scenarios in which the emulator received the configured key (so a leak was possible)."""

    def add(self, label: str, value: Any) -> None:
        self.items.append((label, str(value)))
        self.items.append((label, repr(value)))

    def error(self, label: str, error: BaseException) -> None:
        link: BaseException | None = error
        seen: list[BaseException] = []
        while link is not None and link not in seen:
            seen.append(link)
            self.errors.append(link)
            self.add(f"{label}: {type(link).__name__}", link)
            self.add(f"{label}: {type(link).__name__}.args", link.args)
            self.items.append((f"{label}: traceback", "".join(traceback.format_exception(link))))
            for field in ("raw", "message", "handle"):
                if hasattr(link, field):
                    self.add(f"{label}: {type(link).__name__}.{field}", getattr(link, field))
            if isinstance(getattr(link, "handle", None), JobHandle):
                self.add(f"{label}: handle.to_dict", json.dumps(link.handle.to_dict()))  # type: ignore[attr-defined]
            link = link.__cause__ or link.__context__

    def value(self, label: str, value: Any) -> None:
        self.add(label, value)
        if isinstance(value, PhotoMakerResult):
            self.add(f"{label}.raw", value.raw)
            self.add(f"{label}.to_dict", json.dumps(value.to_dict()))
            for image in value.images:
                self.add(f"{label}.image", image)
            for warning in value.warnings:
                self.add(f"{label}.warning", warning)
        elif isinstance(value, JobHandle):
            self.add(f"{label}.to_dict", json.dumps(value.to_dict()))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseException):
                    self.error(f"{label}[{index}]", item)
                else:
                    self.value(f"{label}[{index}]", item)

    async def run(self, label: str, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            outcome = await call()
        except Exception as error:
            self.error(label, error)
            return error
        self.value(label, outcome)
        return outcome


async def _scenarios(emulators: Emulators, keys: dict[str, str], mode: str, provider: str, texts: Texts,
                     register: Callable[[str], str]) -> None:
    emulator = emulators[provider]
    events: list[ProgressEvent] = []

    async def fresh(label: str, fault: Fault | None, call: Callable[[Client], Awaitable[Any]],
                    **key: str) -> Any:
        emulators.reset()
        if fault is not None:
            target = SUBMIT_FAULT_TARGET[provider] if fault.kind in ("status", "drop", "malformed") else {}
            emulator.settings.faults.append(Fault(**{**_fields(fault), **target}))
        async with open_client(mode, adapters(emulators, **{**keys, **key})) as client:
            texts.add(f"{label}: client", client.bridge)
            texts.add(f"{label}: providers", client.bridge.providers)
            texts.add(f"{label}: plan", client.bridge.explain(photo_request(), provider))
            texts.add(f"{label}: plan.to_dict", client.bridge.explain(photo_request(), provider).to_dict())
            outcome = await texts.run(label, lambda: call(client))
        texts.add(f"{label}: emulator log", emulator.log)
        used = {**keys, **key}[provider]
        if any(used in value for entry in emulator.log for value in entry.headers.values()):
            texts.sent_key.append(label)
        return outcome

    for name, fault in FAULTS.items():
        timeout = 0.3 if name == "stuck_job" else 20
        await fresh(name, fault, lambda client, timeout=timeout: client.generate(
            photo_request(), provider, timeout=timeout, on_event=events.append))

    async def submit_and_result(client: Client) -> Any:
        handle = await client.submit(photo_request(), provider, timeout=20, on_event=events.append)
        texts.value("submit: handle", handle)
        return await client.result(handle, timeout=20, on_event=events.append, download=True)

    await fresh("submit+result", None, submit_and_result)

    async def resume_after_timeout(client: Client) -> Any:
        emulator.settings.run_time = 0.3
        handle = await client.submit(photo_request(), provider, timeout=20)
        await texts.run("result with a short timeout", lambda: client.result(handle, timeout=0.05))
        return await client.resume(provider, handle.request_id, timeout=20)

    await fresh("resume", None, resume_after_timeout)
    await fresh("generate_many", Fault("fail_job", nth=2),
                lambda client: client.generate_many([photo_request(), photo_request(seed=3)], provider=provider,
                                                    timeout=20))
    wrong = register(f"wrong-{provider}-key-{secrets.token_hex(12)}")
    await fresh("refused key", None, lambda client: client.generate(photo_request(), provider, timeout=20),
                **{provider: wrong})
    for event in events:
        texts.add("event", event)
    texts.add("emulators", emulators)
    texts.add("emulator handle", emulator)
    texts.add("emulator settings", emulator.settings)
    texts.add("emulator state", emulator.state)


def _fields(fault: Fault) -> dict[str, Any]:
    return {name: getattr(fault, name) for name in ("kind", "status", "retry_after", "route", "method", "nth",
                                                     "rate", "times", "images", "message")}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_no_key_in_any_exception_repr_or_value(keyed: tuple[Emulators, dict[str, str]], mode: str,
                                                     provider: str, request: pytest.FixtureRequest,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    conftest = _root_conftest(request.config)
    emulators, keys = keyed
    key = keys[provider]
    assert conftest.leaked_secrets(f"...{key}...") != []  # the check would see this key

    texts = Texts()
    await _scenarios(emulators, keys, mode, provider, texts, conftest.register_secret)

    leaks = [(label, text[:200]) for label, text in texts.items if conftest.leaked_secrets(text)]
    assert leaks == []
    # Not vacuous: every kind of failure was produced and looked at, and the key was really sent.
    assert {type(error) for error in texts.errors} >= EXPECTED_ERRORS
    assert len(texts.items) > 200
    assert {"success", "submit+result", "resume", "generate_many", "refused key"} <= set(texts.sent_key)
