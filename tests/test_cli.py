"""The command line: explain, styles, generate's configuration errors, exit codes, no tracebacks."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from photomaker_bridge.cli import EXIT_CONFIGURATION, EXIT_INPUT, EXIT_OK, main
from photomaker_bridge.samples import sample_faces


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("provider", ["runware", "fal", "eachlabs"])
def test_explain_prints_the_mapping_table(provider: str) -> None:
    code, out, err = run("explain", "--provider", provider, "--prompt", "a man img on a boat", "--sample-faces", "2",
                         "--style", "Disney Charactor", "--steps", "150")
    assert code == EXIT_OK
    assert "unified field" in out and "provider field" in out
    assert "steps" in out and "style" in out
    assert "warning: " in err and "steps" in err  # 150 is above every provider's maximum


def test_explain_json_is_the_plan() -> None:
    code, out, _ = run("explain", "--provider", "eachlabs", "--prompt", "a woman img", "--image",
                       str(sample_faces()[0]), "--json", "--num-images", "6")
    assert code == EXIT_OK
    plan = json.loads(out)
    assert plan["provider"] == "eachlabs"
    assert plan["images_per_payload"] == [4, 2]
    assert [body["input"]["num_outputs"] for body in plan["payloads"]] == [4, 2]
    assert plan["uploads"] and "data" not in plan["uploads"][0]


def test_explain_strict_refuses_an_adjustment_with_one_line() -> None:
    code, _, err = run("explain", "--provider", "fal", "--prompt", "a man img", "--sample-faces", "1",
                       "--width", "512", "--strict")
    assert code == EXIT_INPUT
    assert err.count("\n") == 1 and "width" in err


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        (["--style", "vaporwave"], "--style:"),
        (["--style-strength", "5"], "--style-strength: 5"),
        (["--width", "1000"], "--width: 1000"),
        (["--image", "/no/such/face.jpg"], "--image 1: '/no/such/face.jpg'"),
        (["--prompt", "img and img"], "--prompt:"),
        (["--option", "nope"], "--option"),
        (["--steps", "-5"], "--steps: -5"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_flag(arguments: list[str], field: str) -> None:
    base = ["explain", "--provider", "runware", "--prompt", "a man img", "--sample-faces", "1"]
    code, out, err = run(*base, *arguments)
    assert code == EXIT_INPUT
    assert out == ""
    assert err.count("\n") == 1 and field in err and "Traceback" not in err
    assert "None" not in err and "images[" not in err and "style_strength" not in err  # no Python spellings


def test_styles_prints_each_provider_spelling_side_by_side() -> None:
    code, out, _ = run("styles")
    assert code == EXIT_OK
    line = next(row for row in out.splitlines() if row.startswith("disney_character"))
    assert "Disney Character" in line and "Disney Charactor" in line
    code, out, _ = run("styles", "--json")
    table = json.loads(out)
    assert table["no_style"] == {"runware": "No style", "fal": "(No style)", "eachlabs": "(No style)"}
    assert table["photographic"]["eachlabs"] == "Photographic (Default)"


def test_generate_without_a_key_names_both_ways_to_supply_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EACHLABS_API_KEY", raising=False)
    code, _, err = run("generate", "--provider", "eachlabs", "--prompt", "a man img", "--sample-faces", "1")
    assert code == EXIT_CONFIGURATION
    assert "EACHLABS_API_KEY" in err and "api_key" in err and "Traceback" not in err


def test_python_dash_m_runs_the_same_cli() -> None:
    completed = subprocess.run([sys.executable, "-m", "photomaker_bridge", "styles", "--json"],
                               capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    assert len(json.loads(completed.stdout)) == 11


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["paint"], out=io.StringIO(), err=io.StringIO())
    assert caught.value.code == EXIT_INPUT


@pytest.mark.parametrize("provider", ["runware", "fal", "eachlabs"])
def test_generate_saves_images_and_prints_a_summary(provider: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from photomaker_bridge.emulators import EmulatorSettings, start_emulators

    fast = EmulatorSettings(run_time=0.05)
    with start_emulators(runware=fast, fal=EmulatorSettings(run_time=0.05),
                         eachlabs=EmulatorSettings(run_time=0.05)) as emulators:
        handle = emulators[provider]
        environment = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY", "eachlabs": "EACHLABS_API_KEY"}[provider]
        monkeypatch.setenv(environment, handle.api_key)
        base_url = emulators.runware.rest_url if provider == "runware" else handle.url
        code, out, err = run("generate", "--provider", provider, "--prompt", "a woman img", "--sample-faces", "1",
                             "--num-images", "2", "--seed", "5", "--out", str(tmp_path), "--base-url", base_url)
        assert code == EXIT_OK, err
        row = next(line for line in out.splitlines() if line.startswith(provider))
        assert row.split()[1] == "2/2" and row.split()[2] == "5"  # images, seed
        saved = sorted(path.name for path in tmp_path.iterdir())
        assert len([name for name in saved if name.startswith(provider + "_")]) == 2
        assert f"{provider}.json" in saved
        assert "submitted" in err or "completed" in err  # the progress display
        code, out, _ = run("generate", "--provider", provider, "--prompt", "a woman img", "--sample-faces", "1",
                           "--json", "--base-url", base_url)
        assert code == EXIT_OK
        summary = json.loads(out)
        assert summary["provider"] == provider and len(summary["images"]) == 1
        assert handle.api_key not in out + err


def test_runware_base_url_may_be_the_root_and_a_wrong_path_gets_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from photomaker_bridge.emulators import EmulatorSettings, start_emulators
    from photomaker_bridge.providers.runware import RunwareProvider

    assert RunwareProvider(base_url="https://api.runware.ai").base_url == "https://api.runware.ai/v1"
    assert RunwareProvider(base_url="https://api.runware.ai/v1/").base_url == "https://api.runware.ai/v1"
    assert RunwareProvider(base_url="https://proxy.example/runware").base_url == "https://proxy.example/runware"
    with start_emulators(runware=EmulatorSettings(run_time=0.05)) as emulators:
        monkeypatch.setenv("RUNWARE_API_KEY", emulators.runware.api_key)
        base = ["generate", "--provider", "runware", "--prompt", "a man img", "--sample-faces", "1", "--json"]
        code, out, err = run(*base, "--base-url", emulators.runware.url)  # the root, as `emulate` prints it
        assert code == EXIT_OK, err
        assert json.loads(out)["provider"] == "runware"
        code, out, err = run(*base, "--base-url", emulators.runware.url + "/api")
        assert code == 4 and "HTTP 404" in err
        assert "hint: Runware answers every task on POST <base>/v1; check --base-url" in err


def test_generate_keeps_learned_job_lengths_for_the_next_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from photomaker_bridge.emulators import EmulatorSettings, start_emulators
    from photomaker_bridge.providers._durations import DurationCache

    cache = tmp_path / "lengths.json"
    monkeypatch.setenv("PHOTOMAKER_BRIDGE_DURATION_CACHE", str(cache))
    with start_emulators(fal=EmulatorSettings(run_time=0.05)) as emulators:
        monkeypatch.setenv("FAL_KEY", emulators.fal.api_key)
        code, _, err = run("generate", "--provider", "fal", "--prompt", "a woman img", "--sample-faces", "1",
                           "--json", "--base-url", emulators.fal.url)
        assert code == EXIT_OK, err
    key = f"fal|fal-ai/photomaker|photomaker|{emulators.fal.url}"
    assert DurationCache(cache, "fal").estimate(key, 15.0, known=False).known  # the next run starts warm
    monkeypatch.setenv("PHOTOMAKER_BRIDGE_DURATION_CACHE", "off")
    from photomaker_bridge._cli_options import configured_providers
    from photomaker_bridge.cli import build_parser

    arguments = build_parser().parse_args(["generate", "--provider", "fal", "--prompt", "a man img"])
    assert configured_providers(arguments) == []
