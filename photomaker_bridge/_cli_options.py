"""The request options of ``explain`` and ``generate``: their help, their ranges, and errors in the user's words.

Help text and error messages quote each provider's range for the numeric options (``--steps: -5 is not
allowed; ...; runware 1–100, fal 20–100, eachlabs 1–100``). The ranges are not written here: they are read from
the adapters themselves, by planning a request with the lowest and the highest value the unified request
accepts and looking at what each adapter would send (``Provider.plan`` is pure and offline). The help cannot
drift from the translation because it *is* the translation. The probe runs only when help or an error needs
it (about 70 ms), never on an ordinary run.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._strategies import STRATEGIES
from .errors import InvalidRequestError
from .request import PROVIDER_NAMES, PhotoMakerRequest, structure_request

if TYPE_CHECKING:
    from .providers.base import Provider  # the adapters (and asyncio under them) load when a command runs
    from .routing import Route  # so does the routing package

EXIT_NOT_SAVED = 6
"""The images were generated (and paid for) but could not be saved; their URLs and the result were printed."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT), the shell's convention."""

__all__ = ["EXIT_INTERRUPTED", "EXIT_NOT_SAVED", "RangeHelpFormatter", "add_request_arguments",
           "add_route_arguments", "base_url_for", "base_urls", "cli_error_message", "configured_providers",
           "provider_defaults", "provider_from", "provider_ranges", "request_from"]

_ORDER = ("runware", "fal", "eachlabs")  # the order the README and docs list the providers in
_MAX_SEED = 2**63 - 1
_LOW: Mapping[str, Any] = {"steps": 1, "guidance_scale": 0.0, "style_strength": 15, "num_images": 1, "seed": 0}
_HIGH: Mapping[str, Any] = {"steps": 10**6, "guidance_scale": 1e6, "style_strength": 50, "num_images": 100,
                            "seed": _MAX_SEED}
RANGED_FIELDS = tuple(_LOW)
"""The numeric fields whose per-provider range the help and the errors quote."""

FLAGS: Mapping[str, str] = {
    "prompt": "--prompt", "images": "--image", "style": "--style", "style_strength": "--style-strength",
    "negative_prompt": "--negative-prompt", "num_images": "--num-images", "steps": "--steps",
    "guidance_scale": "--guidance-scale", "seed": "--seed", "width": "--width", "height": "--height",
    "output_format": "--output-format", "safety_check": "--safety-check", "provider_options": "--option",
    "providers": "--provider", "strategy": "--strategy", "max_attempts": "--max-attempts", "budget": "--budget",
    "hedge": "--hedge",
}
"""The CLI flag of each request field (errors name the flag the user typed, not the Python field)."""


def _probe(values: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """What each adapter would send for a request with ``values``: {provider: {field: value or note}}."""
    from .providers import explain
    from .samples import sample_faces

    request = PhotoMakerRequest(prompt="a photo of a person img", images=[str(sample_faces()[0])], **(values or {}))
    sent: dict[str, dict[str, Any]] = {}
    for name in _ORDER:
        plan = explain(request, name)
        sent[name] = {line.unified_field: line.value if line.value is not None else line.note
                      for line in plan.mapping}
    return sent


@functools.cache
def provider_ranges() -> dict[str, dict[str, tuple[Any, Any]]]:
    """``{field: {provider: (lowest, highest) value it sends}}`` for :data:`RANGED_FIELDS`; for
    ``num_images`` the highest is per call (more images become several calls)."""
    low, high = _probe(_LOW), _probe(_HIGH)
    return {field: {name: (low[name][field], high[name][field]) for name in _ORDER}
            for field in RANGED_FIELDS}


@functools.cache
def provider_defaults() -> dict[str, dict[str, str]]:
    """``{field: {provider: default}}`` for ``steps`` and ``guidance_scale`` when not given, read from the
    adapters' own notes ("Runware's default: 20", "fal's default (50)")."""
    notes = _probe(None)
    defaults: dict[str, dict[str, str]] = {}
    for field in ("steps", "guidance_scale"):
        for name in _ORDER:
            match = re.search(r"(\d+(?:\.\d+)?)\)?$", str(notes[name].get(field, "")))
            if match:
                defaults.setdefault(field, {})[name] = match.group(1)
    return defaults


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "2**63-1" if value == _MAX_SEED else str(value)


def ranges_text(field: str) -> str:
    """``runware 1–100, fal 20–100, eachlabs 1–100`` for ``field``."""
    return ", ".join(f"{name} {_number(low)}–{_number(high)}" for name, (low, high)
                     in provider_ranges()[field].items())


def _defaults_text(field: str) -> str:
    found = provider_defaults().get(field, {})
    return ", ".join(f"{name} {value}" for name, value in found.items())


_TOKEN = re.compile(r"\{(ranges|defaults):(\w+)\}")


class RangeHelpFormatter(argparse.HelpFormatter):
    """Fills ``{ranges:FIELD}`` and ``{defaults:FIELD}`` in help strings with what the adapters send; the
    probe runs only when help is printed."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text is None:
            return None

        def fill(match: re.Match[str]) -> str:
            kind, field = match.groups()
            return ranges_text(field) if kind == "ranges" else _defaults_text(field)

        return _TOKEN.sub(fill, text)


def add_request_arguments(parser: argparse.ArgumentParser, *, routed: bool = False) -> None:
    """The request options shared by ``explain`` and ``generate`` (whose ``--provider`` may name a route)."""
    if routed:
        parser.add_argument("--provider", required=True, metavar="NAME[,NAME...]",
                            help="where to send the request: runware, fal or eachlabs, or several joined with commas "
                                 "(a route: tried in turn as --strategy says, falling back when one fails; "
                                 "docs/routing.md)")
    else:
        parser.add_argument("--provider", required=True, choices=PROVIDER_NAMES, help="where to send the request")
    parser.add_argument("--prompt", required=True,
                        help="what to draw, with the trigger word after the class word: 'a photo of a man img on "
                             "a boat' (Runware's 'rwre' is translated; without one, the bridge inserts it)")
    parser.add_argument("--image", action="append", default=[], metavar="PATH|URL",
                        help="a reference photo of the person: a file, an http(s) URL or a data URI; 1 to 4 in "
                             "all (repeat the option); see also --sample-faces")
    parser.add_argument("--sample-faces", type=int, metavar="N", default=0,
                        help="add N (1-3) of the package's bundled sample faces as reference photos")
    parser.add_argument("--style",
                        help="a style in any provider's spelling (list: `photomaker-bridge styles`); default: "
                             "no style (best identity fidelity)")
    parser.add_argument("--style-strength", type=int, metavar="15-50",
                        help="how strongly the style applies (lower keeps more identity); default 20; sent as "
                             "{ranges:style_strength}")
    parser.add_argument("--negative-prompt", metavar="TEXT",
                        help="what to avoid (no trigger word); default: each provider's own")
    parser.add_argument("--num-images", type=int, metavar="1-100",
                        help="how many images, default 1; per call {ranges:num_images} (more become several "
                             "calls)")
    parser.add_argument("--steps", type=int, metavar="N",
                        help="denoising steps, at least 1; clamped with a warning to {ranges:steps}; "
                             "default: each provider's ({defaults:steps})")
    parser.add_argument("--guidance-scale", type=float, metavar="X",
                        help="classifier-free guidance, at least 0; clamped with a warning to "
                             "{ranges:guidance_scale}; default: each provider's ({defaults:guidance_scale})")
    parser.add_argument("--seed", type=int, metavar="0-2**63-1",
                        help="seed for reproducible images; sent as {ranges:seed} (Runware sends 0 as 1, "
                             "Eachlabs wraps larger seeds); default: random")
    parser.add_argument("--width", type=int, metavar="128-2048",
                        help="output width, a multiple of 64; Runware only (fal and Eachlabs make 1024); "
                             "default 1024")
    parser.add_argument("--height", type=int, metavar="128-2048",
                        help="output height, a multiple of 64; Runware only (fal and Eachlabs make 1024); "
                             "default 1024")
    parser.add_argument("--output-format", choices=["png", "jpeg", "jpg", "webp"],
                        help="image format; Runware only (default JPG; fal and Eachlabs make PNG)")
    parser.add_argument("--safety-check", action=argparse.BooleanOptionalAction, default=None,
                        help="ask the provider to check the images for unsafe content (default: the "
                             "provider's own: Runware off, Eachlabs on; fal has none)")
    parser.add_argument("--option", action="append", default=[], metavar="PROVIDER.KEY=JSON",
                        help="a provider-specific wire field, e.g. runware.scheduler='\"Euler\"' (repeatable)")
    parser.add_argument("--strict", action="store_true", help="refuse any adjustment instead of warning")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def add_route_arguments(parser: argparse.ArgumentParser, *, flag: str = "--provider", hedge: bool = True) -> None:
    """The routing options of ``generate`` (any of them makes even one provider a route) and of ``batch`` (for its
    ``--route``: ``flag`` names the option that lists the providers; ``hedge=False`` leaves ``--hedge`` out)."""
    group = parser.add_argument_group("routing (docs/routing.md)")
    group.add_argument("--strategy", choices=STRATEGIES,
                       help=f"how the providers of {flag} are ordered: as listed (ordered, the default), by the "
                            "estimated price of this request (cheapest), by learned median time (fastest), at random "
                            "(weighted)")
    group.add_argument("--max-attempts", type=int, metavar="N",
                       help="attempts across all providers together (default 3); a skipped provider is not one")
    group.add_argument("--budget", metavar="USD",
                       help="the most this call may spend, e.g. 0.05: an attempt whose estimated cost would pass it "
                            "is not sent (exit 7 when none fits)" if hedge else
                            "the most one job may spend, e.g. 0.05: an attempt whose estimated cost would pass it "
                            "is not sent (the job then fails with BudgetExceededError)")
    if not hedge:
        return
    group.add_argument("--hedge", metavar="p95|SECONDS[:CAP]",
                       help="while the first job is still queued this long after it was accepted (p95: its "
                            "provider's learned 95th percentile queue wait), send the request to the next provider "
                            "too; the first to finish wins and the other is cancelled. CAP bounds what the hedge may "
                            "cost as a fraction of this call's spend (default 1: as much again)")


CLI_HEDGE_CAP = "1"
"""``--hedge``'s spend cap when none is given. The library's default (0.10 of a client's hedged spend) needs a
history of calls to leave room for one hedge; one CLI run is one call, so its hedge may cost as much again."""


def provider_from(arguments: argparse.Namespace) -> str | Route:
    """``--provider`` and the routing options: a name (a direct call) or a :class:`Route`."""
    from .routing import parse_route

    hedge = getattr(arguments, "hedge", None)
    if hedge is not None and ":" not in hedge:
        hedge = f"{hedge}:{CLI_HEDGE_CAP}"
    return parse_route(arguments.provider, strategy=getattr(arguments, "strategy", None),
                       max_attempts=getattr(arguments, "max_attempts", None),
                       budget=getattr(arguments, "budget", None), hedge=hedge)


def base_urls(arguments: argparse.Namespace) -> dict[str, str]:
    """``--base-url`` per provider: ``URL`` for the one provider of ``--provider``, ``NAME=URL`` for any."""
    given = getattr(arguments, "base_url", None) or []
    names = [name.strip() for name in str(arguments.provider).split(",") if name.strip()]
    urls: dict[str, str] = {}
    for item in [given] if isinstance(given, str) else given:
        name, separator, url = item.partition("=")
        if separator and name.strip() in PROVIDER_NAMES:
            urls[name.strip()] = url.strip()
        elif len(names) == 1:
            urls[names[0]] = item
        else:
            raise InvalidRequestError("--base-url", item, "NAME=URL for each provider of a route, e.g. "
                                      "--base-url fal=http://127.0.0.1:8701")
    return urls


def base_url_for(arguments: argparse.Namespace, provider: str) -> str | None:
    """The ``--base-url`` given for ``provider``, if any."""
    return base_urls(arguments).get(provider)


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


def request_from(arguments: argparse.Namespace) -> PhotoMakerRequest:
    """The request the options describe (bad values: :class:`InvalidRequestError` naming the field)."""
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


def _flag_of(field: str, arguments: argparse.Namespace | None) -> str:
    """``images[0]`` → ``--image 1`` (or ``--sample-faces`` for a bundled face), ``steps`` → ``--steps``."""
    match = re.fullmatch(r"images\[(\d+)\]", field)
    if match:
        index = int(match.group(1))
        given = len(arguments.image) if arguments is not None else index + 1
        return f"--image {index + 1}" if index < given else "--sample-faces"
    head = field.split("[", 1)[0]
    return FLAGS.get(head, field) + field[len(head):] if head in FLAGS else field


def cli_error_message(error: InvalidRequestError, arguments: argparse.Namespace | None = None) -> str:
    """``error`` in the user's words: the flag they typed, no Python spellings, and each provider's range
    for a numeric option."""
    flag = _flag_of(error.field, arguments)
    message = str(error)
    if message.startswith(error.field):
        message = flag + message[len(error.field):]
    message = message.replace(", or None", "").replace(" or None", "")
    if error.field in RANGED_FIELDS:
        message += f"; {'per call ' if error.field == 'num_images' else ''}{ranges_text(error.field)}"
    return message


def configured_providers(arguments: argparse.Namespace) -> list[Provider]:
    """The adapters the CLI sets up: each with its ``--base-url`` when given (the keys still come from the
    environment), each keeping learned job lengths between runs unless
    ``PHOTOMAKER_BRIDGE_DURATION_CACHE=off`` (docs/cli.md): every run is a new client, which would otherwise
    start knowing nothing of how long jobs take."""
    from .providers import provider_class
    from .providers._durations import cli_setting

    urls = base_urls(arguments)
    cache = cli_setting()
    adapters: list[Provider] = []
    for name in ("runware", "fal", "eachlabs"):
        settings: dict[str, Any] = {}
        if name in urls:
            settings["base_url"] = urls[name]  # another endpoint (a proxy, or `photomaker-bridge emulate`)
        if cache is not None:
            settings["duration_cache"] = cache
        if settings:
            adapters.append(provider_class(name)(**settings))
    return adapters
