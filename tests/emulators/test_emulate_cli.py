"""``photomaker-bridge emulate``: option checking, what it prints, serving, and a clean exit on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import requests

from photomaker_bridge.emulators._cli import add_emulate_arguments, run_emulate

COMMAND = (
    "import argparse, sys\n"
    "from photomaker_bridge.emulators._cli import add_emulate_arguments, run_emulate\n"
    "parser = argparse.ArgumentParser(prog='photomaker-bridge emulate')\n"
    "add_emulate_arguments(parser)\n"
    "sys.exit(run_emulate(parser.parse_args(sys.argv[1:])))\n"
)


def parse(*options: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="photomaker-bridge emulate")
    add_emulate_arguments(parser)
    return parser.parse_args(list(options))


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--latency", "soon"], "--latency"),
        (["--latency", "3-1"], "--latency"),
        (["--queue-time", "-1"], "--queue-time"),
        (["--run-time", "1-2-3"], "--run-time"),
        (["--seed", "seven"], "--seed"),
        (["--fault", "explode"], "--fault"),
        (["--fault", "fal:status:200"], "--fault"),
        (["--fault", "status:429,after=2"], "--fault"),
        (["--fault", "runware:drop", "--fault", "replicate:drop"], "--fault"),
    ],
)
def test_a_bad_option_exits_2_with_one_line_naming_it(
    options: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_emulate(parse(*options)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("photomaker-bridge emulate: error: ")
    assert named in lines[0]


@contextmanager
def emulate(*options: str) -> Iterator[subprocess.Popen[str]]:
    """The command running in a child process; killed after 20 s whatever happens, so a hang cannot stall
    the suite."""
    process = subprocess.Popen([sys.executable, "-c", COMMAND, *options], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(20, process.kill)
    watchdog.start()
    try:
        yield process
    finally:
        watchdog.cancel()
        watchdog.join()
        if process.poll() is None:
            process.kill()
        process.communicate()


def read_until(process: subprocess.Popen[str], prefix: str) -> list[str]:
    assert process.stdout is not None
    lines = []
    while True:
        line = process.stdout.readline()
        assert line, f"the command ended before printing {prefix!r}: {lines}"
        lines.append(line.rstrip("\n"))
        if line.startswith(prefix):
            return lines


def assert_refused(url: str) -> None:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()


def test_text_output_then_sigint_exits_0() -> None:
    with emulate("--fault", "eachlabs:status:503", "--seed", "3") as process:
        lines = read_until(process, "# Eachlabs:")
        text = "\n".join(lines)
        variables = dict(line.split("=", 1) for line in lines if re.fullmatch(r"[A-Z_]+=\S+", line))
        assert set(variables) == {"RUNWARE_API_KEY", "FAL_KEY", "EACHLABS_API_KEY", "NO_PROXY"}
        assert "Emulator keys" in text and "not real credentials" in text
        urls = dict(re.findall(r"^  (runware|fal|eachlabs)\s+(?:REST )?(http://127\.0\.0\.1:\d+)", text, re.M))
        assert set(urls) == {"runware", "fal", "eachlabs"}
        assert f"WebSocket ws://{urls['runware'].removeprefix('http://')}/v1" in text
        assert "point_fal_client_at(" in text

        eachlabs = requests.post(f"{urls['eachlabs']}/v1/prediction/",
                                 headers={"X-API-Key": variables["EACHLABS_API_KEY"]}, json={}, timeout=5)
        assert eachlabs.status_code == 503  # the targeted fault
        fal = requests.post(f"{urls['fal']}/fal-ai/photomaker", json={},
                            headers={"Authorization": f"Key {variables['FAL_KEY']}"}, timeout=5)
        assert fal.status_code == 200  # not targeted, and the printed key works

        process.send_signal(signal.SIGINT)
        output, errors = process.communicate(timeout=10)
    assert process.returncode == 0, errors
    assert "Traceback" not in errors
    assert "emulators stopped." in output
    for url in urls.values():
        assert_refused(url)


def test_json_output_then_sigterm_exits_0() -> None:
    with emulate("--json", "--latency", "0-0.01", "--run-time", "0.01", "--fault", "status:429,nth=1") as process:
        assert process.stdout is not None
        description = json.loads(process.stdout.readline())
        assert "emulator keys" in description["note"]
        emulators = description["emulators"]
        assert set(emulators) == {"runware", "fal", "eachlabs"}
        runware = emulators["runware"]
        assert runware["rest_url"] == runware["url"] + "/v1"
        assert runware["ws_url"] == "ws://" + runware["url"].removeprefix("http://") + "/v1"
        assert description["environment"]["RUNWARE_API_KEY"] == runware["api_key"]
        assert description["environment"]["FAL_KEY"] == emulators["fal"]["api_key"]
        assert description["environment"]["EACHLABS_API_KEY"] == emulators["eachlabs"]["api_key"]

        headers = {"Authorization": f"Bearer {runware['api_key']}"}
        statuses = [requests.post(runware["rest_url"], headers=headers, json=[], timeout=5).status_code
                    for _ in range(2)]
        assert statuses[0] == 429 and statuses[1] != 429  # the untargeted fault reached runware, once

        process.send_signal(signal.SIGTERM)
        output, errors = process.communicate(timeout=10)
    assert process.returncode == 0, errors
    assert output == ""  # --json prints the one object and nothing else
    for emulator in emulators.values():
        assert_refused(emulator["url"])
