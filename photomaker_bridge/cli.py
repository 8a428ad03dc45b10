"""``photomaker-bridge``: a thin shell — parse, build a request, call the library, print.

Commands: ``explain`` (the exact payloads and warnings for a provider, offline), ``styles`` (each provider's
style names side by side), ``generate`` (run on a provider, with a live display), ``resume`` (collect a job
submitted earlier), ``cancel`` (cancel one), ``demo`` (all three providers against the local emulators),
``compare`` and ``batch`` (many jobs, resumably, with a report: ``batch/_cli.py``) and ``emulate`` (serve the
emulators). Every command takes ``-v``/``-vv``/``--quiet`` (logging) and ``--no-progress`` (plain lines).

Exit codes: 0 success; 2 bad input (one line naming the flag); 3 configuration (missing key, unknown
provider); 4 the provider failed; 5 the deadline passed; 6 generated but not saved (the URLs and the result
were printed); 7 a spend cap (``--budget``) left no attempt to send; 130 interrupted (Ctrl-C). For 5 and 130
the job's fate and its ``resume`` line are printed. No tracebacks for any of these. More in docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ._cli_batch import add_commands as add_batch_commands
from ._cli_emulate import add_emulate_arguments
from ._cli_options import (
    EXIT_INTERRUPTED,
    EXIT_NOT_SAVED,
    RangeHelpFormatter,
    add_request_arguments,
    add_route_arguments,
    cli_error_message,
    request_from,
)
from ._logging import cli_logging
from .errors import (
    BridgeError,
    BudgetExceededError,
    ConfigurationError,
    GenerationTimeoutError,
    InvalidRequestError,
    ProviderError,
)
from .request import PROVIDER_NAMES

if TYPE_CHECKING:
    from ._display import JobBoard
    from .plan import Plan

# The commands' modules (the clients, the HTTP libraries, rich) are imported when a command runs, so that
# `--help` and usage errors stay fast (docs/architecture.md, "Imports").

__all__ = ["EXIT_BUDGET", "EXIT_CONFIGURATION", "EXIT_INPUT", "EXIT_INTERRUPTED", "EXIT_NOT_SAVED", "EXIT_OK",
           "EXIT_PROVIDER", "EXIT_TIMEOUT", "build_parser", "main"]

EXIT_OK, EXIT_INPUT, EXIT_CONFIGURATION, EXIT_PROVIDER, EXIT_TIMEOUT, EXIT_BUDGET = 0, 2, 3, 4, 5, 7

Handler = Callable[[argparse.Namespace, "JobBoard", TextIO, TextIO], int]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit 2."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message}\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    try:
        return version("photomaker-bridge")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return __version__


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked for (importlib.metadata costs ~15 ms at every start)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show program's version number and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        sys.stdout.write(f"{parser.prog} {_version()}\n")  # on stdout, as argparse's own version action
        parser.exit()


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text.startswith("data:"):
        return text[:30] + f"...({len(text)} chars)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _print_plan(plan: Plan, out: TextIO) -> None:
    from ._display import print_table

    out.write(f"{plan.provider}: {plan.target}; {len(plan.payloads)} payload(s), "
              f"images per payload {list(plan.images_per_payload)}\n\n")
    rows = [[line.unified_field, line.provider_field or "-", "-" if line.value is None else _short(line.value),
             line.note] for line in plan.mapping]
    print_table(out, ["unified field", "provider field", "value sent", "note"], rows)
    if plan.uploads:
        out.write("\nuploaded first (each placeholder becomes the uploaded file's URL or id):\n")
    for upload in plan.uploads:
        out.write(f"  {upload.placeholder}  {upload.description}\n")


def _print_warnings(warnings: Sequence[Any], err: TextIO) -> None:
    for warning in warnings:
        err.write(f"warning: {warning}\n")


def _command_explain(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    from .providers import explain

    plan = explain(request_from(arguments), arguments.provider, strict=arguments.strict)
    if arguments.json:
        out.write(json.dumps(plan.to_dict(), indent=2, default=str) + "\n")
    else:
        _print_plan(plan, out)
    _print_warnings(plan.warnings, err)
    return EXIT_OK


def _command_styles(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    from ._display import print_table
    from .providers import provider_class
    from .styles import Style

    spellings = {name: provider_class(name).style_names() for name in PROVIDER_NAMES}
    if arguments.json:
        out.write(json.dumps({style.value: {name: table[style] for name, table in spellings.items()}
                              for style in Style}, indent=2) + "\n")
        return EXIT_OK
    rows = [[style.value, *(spellings[name][style] for name in PROVIDER_NAMES)] for style in Style]
    print_table(out, ["style", *PROVIDER_NAMES], rows)
    return EXIT_OK


def _command_generate(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    from ._cli_route import command_generate

    return command_generate(arguments, board, out, err)


def _command_resume(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    from ._cli_jobs import command_resume

    return command_resume(arguments, board, out, err)


def _command_cancel(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    from ._cli_cancel import command_cancel

    return command_cancel(arguments, board, out, err)


def _command_demo(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    from ._console import check_out_folder
    from ._demo import run_demo

    folder = check_out_folder(arguments.out) if arguments.out else None
    return run_demo(folder, board, out, err)


def _command_emulate(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    from .emulators._cli import run_emulate

    return run_emulate(arguments, out=out, err=err)


def _common_options() -> argparse.ArgumentParser:
    """Options every command takes (given after the command name)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output")
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="log job state changes (-v), and every request and response (-vv), on stderr")
    group.add_argument("-q", "--quiet", action="store_true",
                       help="no progress display and no log lines below errors")
    group.add_argument("--no-progress", action="store_true",
                       help="plain progress lines instead of the live display (the default when stderr is not "
                            "a terminal); NO_COLOR is honoured either way")
    return common


def _add_job_options(parser: argparse.ArgumentParser, *, timeout_help: str) -> None:
    parser.add_argument("--out", metavar="DIR",
                        help="save the images (extension from their real format) and <provider>.json into DIR; "
                             "checked before anything is sent: DIR may be new but its parent must exist")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help=timeout_help)
    parser.add_argument("--base-url", metavar="[NAME=]URL", action="append",
                        help="another endpoint for the provider: a proxy, or `photomaker-bridge emulate` "
                             "(which prints ready-to-paste lines); with several providers, NAME=URL once for each; "
                             "the key still comes from the environment")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``photomaker-bridge``."""
    common = _common_options()
    parser = _Parser(prog="photomaker-bridge", description="One PhotoMaker request to Runware, fal or Eachlabs.",
                     epilog="Keys come from RUNWARE_API_KEY, FAL_KEY (or FAL_KEY_ID + FAL_KEY_SECRET) and "
                            "EACHLABS_API_KEY. Exit codes: 0 ok, 2 bad input, 3 configuration, 4 provider error, "
                            "5 deadline, 6 generated but not saved, 7 over budget (nothing sent), 130 interrupted.")
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name, help=help_text, description=help_text, parents=[common],  # type: ignore[list-item]
            formatter_class=RangeHelpFormatter)
        sub.set_defaults(handler=handler)
        return sub

    explain = command("explain", _command_explain, "show the exact payloads and adjustments for a provider "
                                                   "(offline, no key)")
    add_request_arguments(explain)
    styles = command("styles", _command_styles, "each provider's spelling of the 11 styles")
    styles.add_argument("--json", action="store_true", help="print JSON instead of a table")
    generate = command("generate", _command_generate, "generate on a provider, with a live progress display "
                                                      "(keys from the environment)")
    add_request_arguments(generate, routed=True)
    add_route_arguments(generate)
    _add_job_options(generate, timeout_help="deadline in seconds for the whole call, every attempt of a route "
                                            "included (default: none); when it passes, the job's fate and its "
                                            "resume line are printed")
    resume = command("resume", _command_resume, "collect a job submitted earlier (by `generate`, the library or "
                                               "another process) from its provider and request id")
    resume.add_argument("--provider", required=True, choices=PROVIDER_NAMES, help="where the job runs")
    resume.add_argument("--request-id", required=True, metavar="ID[,ID...]",
                        help="the provider's id of the job: a Runware taskUUID, a fal request_id, an Eachlabs "
                             "predictionID (Runware and Eachlabs: several joined with commas)")
    resume.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    _add_job_options(resume, timeout_help="how long to wait, in seconds (default: until the job ends); the job "
                                          "keeps running when it passes")
    cancel = command("cancel", _command_cancel, "cancel a job by its provider and request id (where the provider "
                                               "allows it), printing what became of each id")
    cancel.add_argument("--provider", required=True, choices=PROVIDER_NAMES, help="where the job runs")
    cancel.add_argument("--request-id", required=True, metavar="ID[,ID...]",
                        help="the provider's id of the job (Runware and Eachlabs: several joined with commas)")
    cancel.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="how long to wait for the provider's answers (default: no limit)")
    cancel.add_argument("--base-url", metavar="URL", action="append",
                        help="another endpoint for the provider (see generate)")
    cancel.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    demo = command("demo", _command_demo, "one request to each provider's local emulator, side by side "
                                          "(no keys, no network)")
    demo.add_argument("--out", metavar="DIR",
                      help="where to write images and summary.json (default: a new photomaker-demo-* folder "
                           "here); checked before anything runs")
    add_batch_commands(command)  # compare and batch
    emulate = command("emulate", _command_emulate, "serve local emulators of the three providers")
    add_emulate_arguments(emulate)
    return parser


def _run(handler: Handler, arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    """Run the command; every expected failure becomes one line on ``err`` and an exit code."""
    try:
        return handler(arguments, board, out, err)
    except InvalidRequestError as error:
        err.write(f"error: {cli_error_message(error, arguments)}\n")
        _print_trail_of(error, err)
        return EXIT_INPUT
    except ConfigurationError as error:
        err.write(f"configuration error: {error}\n")
        _print_trail_of(error, err)
        return EXIT_CONFIGURATION
    except BudgetExceededError as error:
        err.write(f"budget: {error}\n")
        _print_trail_of(error, err)
        return EXIT_BUDGET
    except GenerationTimeoutError as error:
        err.write(f"timed out: {error}\n")
        _print_trail_of(error, err)
        return EXIT_TIMEOUT
    except ProviderError as error:
        err.write(f"provider error: {error}{_hint(error)}\n")
        _print_trail_of(error, err)
        return EXIT_PROVIDER
    except BridgeError as error:
        err.write(f"error: {error}\n")
        return EXIT_PROVIDER
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return EXIT_INTERRUPTED


def _print_trail_of(error: BridgeError, err: TextIO) -> None:
    """The decision trail of a routed call that failed (a direct call's one line says nothing more)."""
    if len(error.attempts) > 1 or any(entry.outcome != "error" for entry in error.attempts):
        from ._display import print_trail

        err.write("\n")
        print_trail(err, error.attempts)


def _hint(error: ProviderError) -> str:
    """A pointer for answers that usually mean a wrong ``--base-url``."""
    if error.status in (404, 405) and error.provider == "runware":
        return ("\nhint: Runware answers every task on POST <base>/v1; check --base-url (the root URL or the "
                ".../v1 URL both work)")
    return ""


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    arguments = build_parser().parse_args(argv)
    from ._display import JobBoard, make_console

    console = make_console(err)
    quiet = arguments.quiet
    verbosity = -1 if quiet else arguments.verbose
    enabled = not quiet and not getattr(arguments, "json", False)
    board = JobBoard(err, progress=not arguments.no_progress, enabled=enabled, console=console)
    with cli_logging(verbosity, console), board:
        code = _run(arguments.handler, arguments, board, out, err)
    if code == EXIT_INTERRUPTED and getattr(arguments, "forced_exit", False):
        out.flush()
        err.flush()
        os._exit(code)  # a second Ctrl-C: do not wait for worker threads still blocked in a request
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
