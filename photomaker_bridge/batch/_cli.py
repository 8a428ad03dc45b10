"""``photomaker-bridge compare`` and ``photomaker-bridge batch``: parse, check, show progress, summarise.

Both run through the batch runner into ``--out`` (journal, images, summary files, report), after a preflight
that needs no network: every job planned, bad lines reported by number, keys checked, the cost estimated and
refused above ``--max-cost``. Running the same command again finishes what an earlier run left (see
docs/compare-and-batch.md). Their options are declared in ``_cli_batch.py`` (outside this package, so that
``--help`` loads none of it); ``cli.py`` registers them with ``_cli_batch.add_commands``.

Exit codes: 0 every job succeeded; 2 bad input (lines skipped, a bad flag, a cost above ``--max-cost``);
3 configuration (a missing key); 4 some jobs failed; 5 some jobs are unfinished (run again); 6 images could not
be written (make room, run again); 130 interrupted (run again).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .._console import check_out_folder
from .._display import JobBoard, print_table
from ..client import Bridge
from ..errors import ConfigurationError, InvalidRequestError
from ..providers import provider_class
from ..providers.base import Provider
from ..request import PROVIDER_NAMES
from .artifacts import OutputFiles, write_outputs
from .compare import DEFAULT_MAX_COST, CompareMatrix
from .display import BatchDisplay
from .jobs import BatchJob
from .jsonl import JobFile, LineProblem
from .options import BatchOptions
from .output import prepare_output
from .preflight import Preflight, check_cost, preflight
from .progress import BatchProgress
from .routes import JobProvider
from .runner import run_batch
from .summary import summarize_journal
from .tables import COMPACT_COLUMNS, summary_rows

if TYPE_CHECKING:
    from ..state import State

__all__ = ["command_batch", "command_compare", "run_command"]

EXIT_OK, EXIT_INPUT, EXIT_PROVIDER, EXIT_UNFINISHED, EXIT_NOT_SAVED, EXIT_INTERRUPTED = 0, 2, 4, 5, 6, 130

Handler = Callable[[argparse.Namespace, JobBoard, TextIO, TextIO], int]
Command = Callable[[str, Handler, str], argparse.ArgumentParser]
"""``cli.py``'s way to add a sub-command: name, handler, help text → its parser."""

Items = Callable[[], Iterable[tuple[str, BatchJob | LineProblem]]]


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _providers_flag(values: list[str]) -> list[str]:
    names = [name for value in values for name in _comma_list(value)] or list(PROVIDER_NAMES)
    for name in names:
        if name not in PROVIDER_NAMES:
            raise InvalidRequestError("--provider", name, "one of " + ", ".join(PROVIDER_NAMES),
                                      reason="unknown provider")
    return list(dict.fromkeys(names))


def _seeds_flag(text: str | None) -> list[int | None]:
    if text is None:
        return [None]
    seeds: list[int | None] = []
    for part in _comma_list(text):
        try:
            seeds.append(int(part))
        except ValueError:
            raise InvalidRequestError("--seeds", text, "integers joined by commas, e.g. 42,43") from None
    return seeds or [None]


def _money_flag(text: str | None) -> Decimal | None:
    if text is None:
        return DEFAULT_MAX_COST
    if text.lower() in ("none", "off"):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidRequestError("--max-cost", text, "an amount in USD such as 5 or 0.50, or 'none'") from None
    if not value.is_finite() or value < 0:
        raise InvalidRequestError("--max-cost", text, "an amount in USD of at least 0, or 'none'")
    return value


def _options_from(arguments: argparse.Namespace) -> BatchOptions:
    if arguments.concurrency < 1:
        raise InvalidRequestError("--concurrency", arguments.concurrency, "an integer of at least 1")
    if not arguments.timeout > 0:
        raise InvalidRequestError("--timeout", arguments.timeout, "a positive number of seconds")
    return BatchOptions(concurrency=arguments.concurrency, timeout=arguments.timeout,
                        download=not arguments.no_download, resubmit_unknown=arguments.resubmit_unknown,
                        shard=_shard_flag(getattr(arguments, "shard", None)))


def _shard_flag(text: str | None) -> tuple[int, int] | None:
    """``--shard K/N`` as ``(K, N)``."""
    if text is None:
        return None
    head, _, tail = text.partition("/")
    if not (head.strip().isdigit() and tail.strip().isdigit()) or not 1 <= int(head) <= int(tail):
        raise InvalidRequestError("--shard", text, "K/N with 1 <= K <= N, such as 2/8 (this run's shard of N)")
    return int(head), int(tail)


def default_route(arguments: argparse.Namespace) -> JobProvider | None:
    """``batch``'s ``--provider`` or ``--route`` (with ``--strategy``, ``--max-attempts``, ``--budget``, read by the
    routing package's own ``parse_route``, as ``generate`` reads them): where the lines that name none go."""
    from ..routing import parse_route

    options = {flag: getattr(arguments, field, None) for flag, field in (
        ("--strategy", "strategy"), ("--max-attempts", "max_attempts"), ("--budget", "budget"))}
    if arguments.route is None:
        for flag, value in options.items():
            if value is not None:
                raise InvalidRequestError(flag, value, "given with --route (it shapes the route of the lines that "
                                          "name none)")
        return arguments.provider  # type: ignore[no-any-return]
    try:
        return parse_route(arguments.route, strategy=arguments.strategy, max_attempts=arguments.max_attempts,
                           budget=arguments.budget)
    except InvalidRequestError as error:
        if error.field != "providers":
            raise
        raise InvalidRequestError("--route", error.value, error.allowed, reason=error.reason) from None


def _base_urls(values: list[str]) -> list[Provider]:
    adapters: list[Provider] = []
    for value in values:
        name, separator, url = value.partition("=")
        if not separator or name not in PROVIDER_NAMES or not url:
            raise InvalidRequestError("--base-url", value, "PROVIDER=URL with PROVIDER one of "
                                      + ", ".join(PROVIDER_NAMES))
        # Another endpoint for the provider (a proxy, or `photomaker-bridge emulate`); the key still comes
        # from the environment.
        adapters.append(provider_class(name)(base_url=url))  # type: ignore[call-arg]
    return adapters


def _face_sets(arguments: argparse.Namespace) -> list[list[str]]:
    from ..samples import sample_faces

    sets = [_comma_list(value) for value in arguments.faces]
    if arguments.image:
        sets.append(list(arguments.image))
    if arguments.sample_faces:
        faces = sample_faces()
        if not 1 <= arguments.sample_faces <= len(faces):
            raise InvalidRequestError("--sample-faces", arguments.sample_faces, f"1 to {len(faces)}")
        sets.append([str(path) for path in faces[: arguments.sample_faces]])
    if not sets:
        raise InvalidRequestError("--faces", None, "at least one reference set: --faces, --image or --sample-faces")
    return sets


def matrix_from(arguments: argparse.Namespace) -> CompareMatrix:
    """The compare matrix the flags describe."""
    options = {field: getattr(arguments, field) for field in ("num_images", "steps", "guidance_scale",
                                                               "style_strength", "negative_prompt")
               if getattr(arguments, field) is not None}
    return CompareMatrix(face_sets=_face_sets(arguments), prompts=arguments.prompt,
                         providers=_providers_flag(arguments.provider), styles=arguments.style or [None],
                         seeds=_seeds_flag(arguments.seeds), options=options)


def _folder(arguments: argparse.Namespace) -> Path:
    return prepare_output(check_out_folder(arguments.out), field="--out")


def command_compare(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    """``photomaker-bridge compare``."""
    max_cost, options = _money_flag(arguments.max_cost), _options_from(arguments)
    matrix = matrix_from(arguments)
    adapters = _base_urls(arguments.base_url)
    return run_command(board, out, err, folder=_folder(arguments), items=matrix.numbered, jobs=lambda: matrix,
                       providers=adapters, options=options, max_cost=max_cost,
                       title=arguments.title or "PhotoMaker compare", state=_state_flag(arguments))


def command_batch(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    """``photomaker-bridge batch``."""
    max_cost, options = _money_flag(arguments.max_cost), _options_from(arguments)
    path = Path(arguments.jobs)
    if not path.is_file():
        raise InvalidRequestError("JOBS.jsonl", arguments.jobs, "a JSONL file, one request per line",
                                  reason="no such file")
    source = JobFile(path, default_provider=default_route(arguments))

    def items() -> Iterator[tuple[str, BatchJob | LineProblem]]:  # this shard's jobs (and every problem line)
        return ((where, item) for where, item in source.numbered()
                if not isinstance(item, BatchJob) or options.owns(item.key))

    return run_command(board, out, err, folder=_folder(arguments), items=items, jobs=lambda: source,
                       providers=_base_urls(arguments.base_url), options=options, max_cost=max_cost,
                       title=arguments.title or f"PhotoMaker batch: {path.name}", state=_state_flag(arguments))


def _state_flag(arguments: argparse.Namespace) -> State | None:
    """``--state URL`` (and ``--state-namespace``) as a ``RedisState``, checked before anything is sent."""
    from ..state import RedisState

    url = getattr(arguments, "state", None)
    if url is None:
        return None
    namespace = getattr(arguments, "state_namespace", "photomaker-bridge")
    try:
        return RedisState(url, namespace=namespace)
    except ConfigurationError as error:
        if "namespace" in str(error):
            raise InvalidRequestError("--state-namespace", namespace, "letters, digits, '.', '_' or '-'") from None
        raise InvalidRequestError("--state", url, "a redis://, rediss:// or unix:// URL (needs the redis extra)",
                                  reason=str(error)) from None


def _plan_lines(checked: Preflight, *, paid: bool = True) -> Iterator[str]:
    estimate = checked.estimate
    parts = ", ".join(f"{name} {count}" for name, count in sorted(checked.per_provider.items()))
    yield (f"{checked.jobs} jobs ({parts or 'none'}): {sum(checked.to_submit.values())} to submit, "
           f"{checked.to_resume} accepted earlier to collect, {checked.finished} finished earlier")
    if estimate.jobs:
        yield (f"estimated cost of the jobs to submit: {estimate.total} USD" if paid else
               f"what the jobs to submit would cost on the real providers: {estimate.total} USD (the emulators "
               "charge nothing)")
        for name, item in sorted(estimate.providers.items()):
            unpriced = f" ({item.unpriced} with no estimate)" if item.unpriced else ""
            yield f"  {name}: {item.jobs} jobs ≈ {item.amount} USD{unpriced} — {item.basis}"
    for problem in checked.problems:
        yield f"skipped {problem}"


def run_command(board: JobBoard, out: TextIO, err: TextIO, *, folder: Path, items: Items,
                jobs: Callable[[], Iterable[BatchJob]], providers: list[Provider], options: BatchOptions,
                max_cost: Decimal | None, title: str, paid: bool = True, state: State | None = None) -> int:
    """What ``compare``, ``batch`` and ``demo`` share: preflight, the cost limit, the run with its display, the
    outputs. ``folder`` has been checked (:func:`prepare_output`); ``paid=False`` for the emulators; ``state``:
    where the run's provider limits and breakers live (``--state``)."""
    with Bridge(providers=providers) as bridge:
        checked = preflight(items(), bridge, folder, owns=options.owns if options.shard is not None else None)
    for line in _plan_lines(checked, paid=paid):
        err.write(line + "\n")
    err.flush()
    check_cost(checked.estimate, max_cost, field="--max-cost")
    progress = BatchProgress(started=time.monotonic())
    for name, total in checked.per_provider.items():
        progress.expect(name, total)
    try:
        with BatchDisplay(board, progress) as display:
            run = run_batch(jobs(), folder, providers=providers, options=options, on_event=display.on_event,
                            state=state)
    except OSError as error:  # the disk filled up, the folder went away: paid jobs wait in the journal
        err.write(f"error: cannot write into {folder}: {error.strerror or error}; every accepted job's handle is "
                  "in the journal: make room and run the same command again to collect them\n")
        return EXIT_NOT_SAVED
    except KeyboardInterrupt:
        files = write_outputs(folder, title=title)
        _print_outputs(files, out)
        err.write(f"interrupted: accepted jobs keep running and their handles are in {files.journal}; run the same "
                  "command again to collect them and finish the rest\n")
        return EXIT_INTERRUPTED
    files = write_outputs(folder, title=title)
    _print_outputs(files, out)
    for key in run.left:
        err.write(f"unfinished: {key} (run the same command again)\n")
    if checked.problems:
        return EXIT_INPUT
    # A shard answers for its own jobs: the others' may still be in flight in the shared folder (docs/scaling.md).
    own = files.summary if options.shard is None else summarize_journal(files.journal, options.owns)
    if own.unfinished or run.left:
        return EXIT_UNFINISHED
    if any(item.successes < item.jobs for item in own.providers):
        return EXIT_PROVIDER
    return EXIT_OK


def _print_outputs(files: OutputFiles, out: TextIO) -> None:
    rows = summary_rows(files.summary, COMPACT_COLUMNS)
    print_table(out, rows[0], rows[1:])
    out.write("\n")
    for label, path in (("summary", files.summary_json), ("summary", files.summary_csv),
                        ("contact sheet", files.contact_sheet), ("journal", files.journal),
                        ("images", files.folder / "images"), ("report", files.report)):
        out.write(f"{label}: {path}\n")
