"""``photomaker-bridge``: a thin shell — parse, build a request, call the library, print.

Commands: ``explain`` (the exact payloads and warnings for a provider, offline), ``styles`` (each provider's
style names side by side), ``generate`` (run on a provider), ``demo`` (all three providers against the local
emulators) and ``emulate`` (serve the emulators).

Exit codes: 0 success; 2 bad input (one line naming the field); 3 configuration (missing key, unknown
provider); 4 the provider failed; 5 the deadline passed (the job handle is printed to resume it). No tracebacks
for any of these.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ._convert import structure_request
from .errors import BridgeError, ConfigurationError, GenerationTimeoutError, InvalidRequestError, ProviderError
from .plan import Plan
from .request import PROVIDER_NAMES, PhotoMakerRequest

__all__ = ["main"]

EXIT_OK, EXIT_INPUT, EXIT_CONFIGURATION, EXIT_PROVIDER, EXIT_TIMEOUT = 0, 2, 3, 4, 5


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit 2."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_INPUT, f"{self.prog}: {message}\n")


def _add_request_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", required=True, choices=PROVIDER_NAMES, help="where to send the request")
    parser.add_argument("--prompt", required=True, help="what to draw, e.g. 'a photo of a man img on a boat'")
    parser.add_argument("--image", action="append", default=[], metavar="PATH|URL",
                        help="a reference photo (1 to 4; repeat the option); see also --sample-faces")
    parser.add_argument("--sample-faces", type=int, metavar="N", default=0,
                        help="add N (1-3) of the package's bundled sample faces as reference photos")
    parser.add_argument("--style", help="a style in any provider's spelling (see `photomaker-bridge styles`)")
    parser.add_argument("--style-strength", type=int, metavar="15-50")
    parser.add_argument("--negative-prompt")
    parser.add_argument("--num-images", type=int, metavar="N")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--guidance-scale", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--output-format", choices=["png", "jpeg", "jpg", "webp"])
    parser.add_argument("--safety-check", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--option", action="append", default=[], metavar="PROVIDER.KEY=JSON",
                        help="a provider-specific wire field, e.g. runware.scheduler='\"Euler\"' (repeatable)")
    parser.add_argument("--strict", action="store_true", help="refuse any adjustment instead of warning")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _provider_options(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        target, separator, raw = item.partition("=")
        provider, dot, key = target.partition(".")
        if not separator or not dot or not key:
            raise InvalidRequestError("--option", item, "PROVIDER.KEY=JSON, e.g. runware.scheduler='\"Euler\"'")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare word is taken as a string
        options.setdefault(provider, {})[key] = value
    return options


def _request_from(arguments: argparse.Namespace) -> PhotoMakerRequest:
    from .samples import sample_faces

    images: list[str] = list(arguments.image)
    if arguments.sample_faces:
        faces = sample_faces()
        if not 1 <= arguments.sample_faces <= len(faces):
            raise InvalidRequestError("--sample-faces", arguments.sample_faces, f"1 to {len(faces)}")
        images += [str(path) for path in faces[: arguments.sample_faces]]
    if not images:
        raise InvalidRequestError("--image", None, "at least one reference photo (--image PATH or --sample-faces N)")
    fields = {
        "prompt": arguments.prompt, "images": images, "style": arguments.style,
        "style_strength": arguments.style_strength, "negative_prompt": arguments.negative_prompt,
        "num_images": arguments.num_images, "steps": arguments.steps, "guidance_scale": arguments.guidance_scale,
        "seed": arguments.seed, "width": arguments.width, "height": arguments.height,
        "output_format": arguments.output_format, "safety_check": arguments.safety_check,
        "provider_options": _provider_options(arguments.option),
    }
    # Options not given keep the request's own defaults.
    return structure_request({key: value for key, value in fields.items() if value is not None})


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text.startswith("data:"):
        return text[:30] + f"...({len(text)} chars)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for index, row in enumerate(rows):
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")
        if index == 0:
            out.write("  ".join("-" * width for width in widths) + "\n")


def _print_plan(plan: Plan, out: TextIO) -> None:
    out.write(f"{plan.provider}: {plan.target}; {len(plan.payloads)} payload(s), "
              f"images per payload {list(plan.images_per_payload)}\n\n")
    rows = [["unified field", "provider field", "value sent", "note"]]
    rows += [[line.unified_field, line.provider_field or "-", "-" if line.value is None else _short(line.value),
              line.note] for line in plan.mapping]
    _table(rows, out)
    if plan.uploads:
        out.write("\nuploaded first (each placeholder becomes the uploaded file's URL or id):\n")
    for upload in plan.uploads:
        out.write(f"  {upload.placeholder}  {upload.description}\n")


def _print_warnings(warnings: Sequence[Any], err: TextIO) -> None:
    for warning in warnings:
        err.write(f"warning: {warning}\n")


def _command_explain(arguments: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .providers import explain

    plan = explain(_request_from(arguments), arguments.provider, strict=arguments.strict)
    if arguments.json:
        out.write(json.dumps(plan.to_dict(), indent=2, default=str) + "\n")
    else:
        _print_plan(plan, out)
    _print_warnings(plan.warnings, err)
    return EXIT_OK


def _command_styles(arguments: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .providers import provider_class
    from .styles import Style

    spellings = {name: provider_class(name).style_names() for name in ("runware", "fal", "eachlabs")}
    if arguments.json:
        out.write(json.dumps({style.value: {name: table[style] for name, table in spellings.items()}
                              for style in Style}, indent=2) + "\n")
        return EXIT_OK
    rows = [["style", "runware", "fal", "eachlabs"]]
    rows += [[style.value, *(spellings[name][style] for name in ("runware", "fal", "eachlabs"))] for style in Style]
    _table(rows, out)
    return EXIT_OK


def _command_generate(arguments: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._console import Progress, print_summary, save_result
    from .client import Bridge

    request = _request_from(arguments)
    providers = []
    if arguments.base_url:
        from .providers import provider_class

        # Another endpoint for the provider (a proxy, or `photomaker-bridge emulate`); the key still comes
        # from the environment.
        providers.append(provider_class(arguments.provider)(base_url=arguments.base_url))  # type: ignore[call-arg]
    with Bridge(providers=providers) as bridge, Progress(err, enabled=not arguments.json) as progress:
        result = bridge.generate(request, arguments.provider, strict=arguments.strict, timeout=arguments.timeout,
                                 on_event=progress.on_event, download=bool(arguments.out))
    paths = save_result(result, Path(arguments.out)) if arguments.out else []
    if arguments.json:
        payload = result.to_dict()
        payload["saved"] = [str(path) for path in paths]
        for image in payload["images"]:
            image["data"] = None  # the bytes are in the saved files, not on stdout
        out.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        print_summary([result], out)
        for path in paths:
            out.write(f"saved {path}\n")
    _print_warnings(result.warnings, err)
    return EXIT_OK


def _command_demo(arguments: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._demo import run_demo

    return run_demo(Path(arguments.out) if arguments.out else None, out, err)


def _command_emulate(arguments: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .emulators._cli import run_emulate

    return run_emulate(arguments, out=out, err=err)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``photomaker-bridge``."""
    from .emulators._cli import add_emulate_arguments

    parser = _Parser(prog="photomaker-bridge", description="One PhotoMaker request to Runware, fal or Eachlabs.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    explain = commands.add_parser("explain", help="show the exact payloads and adjustments for a provider (offline)")
    _add_request_arguments(explain)
    explain.set_defaults(handler=_command_explain)
    styles = commands.add_parser("styles", help="each provider's spelling of the 11 styles")
    styles.add_argument("--json", action="store_true")
    styles.set_defaults(handler=_command_styles)
    generate = commands.add_parser("generate", help="generate on a provider (keys from the environment)")
    _add_request_arguments(generate)
    generate.add_argument("--out", metavar="DIR", help="save the images (and result.json) into DIR")
    generate.add_argument("--timeout", type=float, metavar="SECONDS", help="deadline for the whole call")
    generate.add_argument("--base-url", metavar="URL",
                          help="another endpoint for the provider (a proxy, or `photomaker-bridge emulate`)")
    generate.set_defaults(handler=_command_generate)
    demo = commands.add_parser("demo", help="one request to each provider's local emulator, side by side")
    demo.add_argument("--out", metavar="DIR", help="where to write images and summary.json (default: a new folder)")
    demo.set_defaults(handler=_command_demo)
    emulate = commands.add_parser("emulate", help="serve local emulators of the three providers")
    add_emulate_arguments(emulate)
    emulate.set_defaults(handler=_command_emulate)
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    arguments = build_parser().parse_args(argv)
    try:
        code: int = arguments.handler(arguments, out, err)
        return code
    except InvalidRequestError as error:
        err.write(f"error: {error}\n")
        return EXIT_INPUT
    except ConfigurationError as error:
        err.write(f"configuration error: {error}\n")
        return EXIT_CONFIGURATION
    except GenerationTimeoutError as error:
        err.write(f"timed out: {error}\n")
        if error.handle is not None:
            err.write(f"resume with request id(s): {', '.join(error.handle.request_ids)}\n")
        return EXIT_TIMEOUT
    except ProviderError as error:
        err.write(f"provider error: {error}\n")
        return EXIT_PROVIDER
    except BridgeError as error:
        err.write(f"error: {error}\n")
        return EXIT_PROVIDER
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
