"""Logging: a line per request and response at DEBUG, job state changes at INFO, and never a key.

Every provider runs every fault (and a success) with every logger involved at DEBUG — ours, fal_client's,
httpx's, httpcore's, urllib3's and aiohttp's — and with two kinds of key (the emulators' own, and keys invented
here and registered as secrets). Each record is formatted the way a handler would print it; none may hold a
key or a URL's query string from our own lines. Then the CLI's ``-vv`` output is checked the same way.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import fal_client.client as fal_module
import pytest

sys.path.insert(0, str(Path(__file__).parent / "clients"))

from helpers_bridge import PROVIDERS, SUBMIT_FAULT_TARGET, adapters, emulator_settings, photo_request
from test_secrets import FAULTS  # every fault kind, the same list the secrets test runs

from photomaker_bridge import Bridge, ProviderError
from photomaker_bridge.cli import main
from photomaker_bridge.emulators import Emulators, Fault, start_emulators

LOGGERS = ("photomaker_bridge", "fal_client", "httpx", "httpcore", "urllib3", "aiohttp")
ENVIRONMENT = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY", "eachlabs": "EACHLABS_API_KEY"}
OUR_LINE = re.compile(r"^(GET|POST|PUT|DELETE) (\S+) -> (\d{3}|failed \(\w+\)) in \d+\.\d{3} s")


def _conftest(config: pytest.Config) -> ModuleType:
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, ModuleType) and hasattr(plugin, "register_secret"):
            return plugin
    raise AssertionError("tests/conftest.py is not loaded")


class Capture(logging.Handler):
    """Every record, formatted as a handler prints it (message, arguments, exception text)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)
        for logger, level in zip(loggers, previous, strict=True):
            logger.setLevel(level)


@pytest.fixture(scope="module", params=["emulator-keys", "registered-keys"])
def keyed(request: pytest.FixtureRequest) -> Iterator[Emulators]:
    conftest = _conftest(request.config)
    if request.param == "emulator-keys":
        settings = {name: emulator_settings() for name in PROVIDERS}
    else:
        settings = {name: emulator_settings(api_key=conftest.register_secret(
            f"{name}-log-secret-{secrets.token_hex(16)}")) for name in PROVIDERS}
    with start_emulators(**settings, seed=3) as running:
        yield running


@pytest.mark.parametrize("provider", PROVIDERS)
def test_debug_logs_every_request_and_no_key_for_every_fault(provider: str, keyed: Emulators, capture: Capture,
                                                             request: pytest.FixtureRequest,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fal_module, "MAX_ATTEMPTS", 1)  # fal_client would retry 429s and drops for ~50 s
    conftest = _conftest(request.config)
    emulator = keyed[provider]
    outcomes: dict[str, str] = {}
    for name, fault in FAULTS.items():
        keyed.reset()
        if fault is not None:
            target = SUBMIT_FAULT_TARGET[provider] if fault.kind in ("status", "drop", "malformed") else {}
            fields = {field: getattr(fault, field) for field in ("kind", "status", "retry_after", "images")}
            emulator.settings.faults.append(Fault(**{**fields, **target}))
        with Bridge(providers=adapters(keyed)) as bridge:
            try:
                bridge.generate(photo_request(), provider, timeout=0.5 if name == "stuck_job" else 20)
                outcomes[name] = "ok"
            except ProviderError as error:
                outcomes[name] = type(error).__name__
        emulator.settings.faults.clear()
    assert outcomes["success"] == "ok" and outcomes["401"] == "AuthenticationError"
    leaks = [line for line in capture.lines if conftest.leaked_secrets(line)]
    assert leaks == []
    ours = [record for record in capture.records if record.name == f"photomaker_bridge.{provider}"]
    states = {record.getMessage().split()[0] for record in ours if record.levelno == logging.INFO}
    assert {"submitted", "completed", "failed"} <= states  # job state changes at INFO
    if provider == "fal":
        # fal's calls go through fal_client and httpx, which log them on their own loggers.
        assert any(record.name == "httpx" and "/fal-ai/photomaker" in record.getMessage()
                   for record in capture.records)
    else:
        exchanges = [OUR_LINE.match(record.getMessage()) for record in ours if record.levelno == logging.DEBUG]
        matched = [match for match in exchanges if match]
        assert {match.group(3) for match in matched} >= {"200", "401", "500"}
        assert any(match.group(3).startswith("failed") for match in matched)  # the dropped connection
        assert all("?" not in match.group(2) for match in matched)  # no query string (presigned signatures)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cli_verbose_output_shows_requests_and_state_changes_but_no_key(
        provider: str, keyed: Emulators, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    conftest = _conftest(request.config)
    keyed.reset()
    monkeypatch.setenv(ENVIRONMENT[provider], keyed[provider].api_key)
    base_url = keyed.runware.rest_url if provider == "runware" else keyed[provider].url
    prompt = "a man rwre" if provider == "runware" else "a man img"  # no prompt change, so no warning line
    arguments = ["generate", "--provider", provider, "--prompt", prompt, "--sample-faces", "1",
                 "--base-url", base_url]
    outputs = {}
    for flags in ([], ["-v"], ["-vv"], ["--quiet"]):
        out, err = io.StringIO(), io.StringIO()
        assert main([*arguments, *flags], out=out, err=err) == 0, err.getvalue()
        outputs[" ".join(flags)] = err.getvalue()
        assert conftest.leaked_secrets(out.getvalue() + err.getvalue()) == []
    assert f"photomaker_bridge.{provider}:" not in outputs[""]  # warnings only by default
    assert re.search(rf"INFO photomaker_bridge\.{provider}: completed", outputs["-v"])
    assert "DEBUG" not in outputs["-v"]
    if provider == "fal":
        assert re.search(r"INFO httpx: HTTP Request: POST \S+/fal-ai/photomaker", outputs["-vv"])
    else:
        assert re.search(rf"DEBUG photomaker_bridge\.{provider}: POST \S+ -> 200 in", outputs["-vv"])
    assert outputs["--quiet"] == ""  # no progress, no log lines: the result is on stdout
