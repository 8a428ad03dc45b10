"""``photomaker-bridge emulate``: option checking, what it prints, serving, and a clean exit on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import io
import json
import re
import shlex
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
        (["--port", "http"], "--port"),
        (["--port", "65534"], "--port"),
        (["--api-key", "two words"], "--api-key"),
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
        variables = dict(line.removeprefix("export ").split("=", 1) for line in lines
                         if re.fullmatch(r"export [A-Z_]+=\S+", line))
        assert set(variables) == {"RUNWARE_API_KEY", "FAL_KEY", "EACHLABS_API_KEY", "NO_PROXY"}
        assert "Paste into another shell (emulator keys" in text and "not real credentials" in text
        urls = dict(re.findall(r"^  (runware|fal|eachlabs)\s+(?:REST )?(http://127\.0\.0\.1:\d+)", text, re.M))
        assert set(urls) == {"runware", "fal", "eachlabs"}
        assert f"WebSocket ws://{urls['runware'].removeprefix('http://')}/v1" in text
        assert "point_fal_client_at(" in text
        examples = [line for line in lines if line.startswith("photomaker-bridge generate ")]
        assert [re.search(r"--provider (\w+)", line).group(1) for line in examples] == [  # type: ignore[union-attr]
            "runware", "fal", "eachlabs"]
        assert f"--base-url {urls['runware']}/v1 " in examples[0] and f"--base-url {urls['fal']} " in examples[1]

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


def free_port_range(count: int) -> int:
    """A first port with ``count`` consecutive free ports after it (bound briefly to check)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                taken = socket.socket()
                sockets.append(taken)
                taken.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for taken in sockets:
                taken.close()
    raise AssertionError("no free port range")


def test_port_and_api_key_fix_what_scripts_need(request: pytest.FixtureRequest,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from photomaker_bridge.cli import main

    conftest = next(plugin for plugin in request.config.pluginmanager.get_plugins()
                    if hasattr(plugin, "register_secret"))
    key = conftest.register_secret("fixed-emulator-key-for-scripts")
    first = free_port_range(3)
    with emulate("--json", "--port", str(first), "--api-key", key, "--run-time", "0.05") as process:
        assert process.stdout is not None
        description = json.loads(process.stdout.readline())
        emulators = description["emulators"]
        assert [emulators[name]["url"] for name in ("runware", "fal", "eachlabs")] == [
            f"http://127.0.0.1:{first + index}" for index in range(3)]
        assert {emulators[name]["api_key"] for name in emulators} == {key}
        # The printed example runs as printed, with the printed environment.
        example = shlex.split(description["generate"]["eachlabs"].replace("--out results/", "--json"))[1:]
        monkeypatch.setenv("EACHLABS_API_KEY", key)
        out, err = io.StringIO(), io.StringIO()
        assert main(example, out=out, err=err) == 0, err.getvalue()
        assert json.loads(out.getvalue())["provider"] == "eachlabs"
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0


def test_a_port_already_taken_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = subprocess.run([sys.executable, "-c", COMMAND, "--port", str(port)], capture_output=True,
                                   text=True, timeout=30, check=False)
    assert completed.returncode == 2
    assert completed.stderr.startswith(f"photomaker-bridge emulate: error: --port {port}: ")
    assert completed.stderr.count("\n") == 1 and "Traceback" not in completed.stderr
