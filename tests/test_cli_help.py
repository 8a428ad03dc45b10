"""``--version``, and help text: every option of every command has help, and the ranges it quotes are the
adapters' own translation tables (read independently here, from the adapters' constants)."""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
from importlib.metadata import version

import pytest

import photomaker_bridge
from photomaker_bridge.cli import build_parser, main
from photomaker_bridge.providers import _eachlabs_plan, _fal_plan, runware

# The adapters' tables, as the adapters define them (what the translation clamps to).
TABLES = {
    "steps": {"runware": runware.STEPS_RANGE, "fal": _fal_plan._STEPS_RANGE,
              "eachlabs": _eachlabs_plan._NUM_STEPS_RANGE},
    "guidance_scale": {"runware": runware.CFG_SCALE_RANGE, "fal": _fal_plan._GUIDANCE_RANGE,
                       "eachlabs": _eachlabs_plan._GUIDANCE_SCALE_RANGE},
    "style_strength": {"runware": runware.STRENGTH_RANGE, "fal": _fal_plan._STYLE_STRENGTH_RANGE,
                       "eachlabs": _eachlabs_plan._STYLE_STRENGTH_RANGE},
    "num_images": {"runware": (1, runware.MAX_RESULTS_PER_TASK), "fal": (1, _fal_plan._MAX_IMAGES_PER_CALL),
                   "eachlabs": (1, _eachlabs_plan._MAX_OUTPUTS_PER_PREDICTION)},
}
FLAGS = {"steps": "--steps", "guidance_scale": "--guidance-scale", "style_strength": "--style-strength",
         "num_images": "--num-images"}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return dict(action.choices)


def help_of(command: str) -> str:
    return subcommands()[command].format_help()


def option_help(command: str, flag: str) -> str:
    """The help paragraph of ``flag``, joined into one line."""
    text = help_of(command)
    match = re.search(rf"^  {re.escape(flag)}\b.*?(?=^  -|\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, text
    return " ".join(match.group(0).split())


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def test_version_is_the_installed_package_version() -> None:
    completed = subprocess.run([sys.executable, "-m", "photomaker_bridge", "--version"], capture_output=True,
                               text=True, timeout=60, check=False)
    assert completed.returncode == 0
    assert completed.stdout.strip() == f"photomaker-bridge {version('photomaker-bridge')}"
    assert version("photomaker-bridge") == photomaker_bridge.__version__


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_option_of_every_command_has_help(command: str) -> None:
    for action in subcommands()[command]._actions:
        assert action.help and len(action.help) > 10, f"{command} {action.option_strings} has no help"
    text = help_of(command)
    assert "None" not in text and "{ranges:" not in text and "{defaults:" not in text


@pytest.mark.parametrize("command", ["explain", "generate"])
@pytest.mark.parametrize("field", sorted(TABLES))
def test_help_quotes_each_providers_range_from_the_adapters(command: str, field: str) -> None:
    text = option_help(command, FLAGS[field])
    for provider, (low, high) in TABLES[field].items():
        assert f"{provider} {number(low)}–{number(high)}" in text, text


def test_help_quotes_each_providers_default_steps() -> None:
    text = option_help("generate", "--steps")
    assert re.search(r"default: each provider's \(runware \d+, fal 50, eachlabs \d+\)", text), text


def test_an_error_quotes_the_ranges_in_the_flags_words() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["generate", "--provider", "fal", "--prompt", "a man img", "--sample-faces", "1", "--steps", "-5"],
                out=out, err=err)
    assert code == 2
    low = {provider: number(table[0]) for provider, table in TABLES["steps"].items()}
    high = {provider: number(table[1]) for provider, table in TABLES["steps"].items()}
    assert err.getvalue() == (
        f"error: --steps: -5 is not allowed; an integer of at least 1; runware {low['runware']}–{high['runware']}, "
        f"fal {low['fal']}–{high['fal']}, eachlabs {low['eachlabs']}–{high['eachlabs']}\n")


def test_top_level_help_lists_every_command_and_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for command in subcommands():
        assert re.search(rf"^    {command} ", text, re.MULTILINE), text
    assert "6 generated but not saved" in text and "130 interrupted" in text
