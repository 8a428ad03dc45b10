"""The options of ``photomaker-bridge compare`` and ``batch``: plain argparse, so that building the CLI's parser
(``--help``) loads neither the batch package nor the clients, rich, Jinja2 or Pillow under it (docs/architecture.md,
"Imports"). The commands run in ``batch/_cli.py``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from ._cli_options import add_route_arguments
from .pricing import DEFAULT_MAX_COST
from .request import PROVIDER_NAMES

if TYPE_CHECKING:
    from ._display import JobBoard

__all__ = ["add_commands"]

Command = Callable[[str, Callable[..., int], str], argparse.ArgumentParser]
"""``cli.py``'s way to add a sub-command: name, handler, help text → its parser."""


def _command_compare(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    from .batch._cli import command_compare

    return command_compare(arguments, board, out, err)


def _command_batch(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    from .batch._cli import command_batch

    return command_batch(arguments, board, out, err)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="where the journal, images, summary.json/.csv, report.html and contact_sheet.png go; "
                             "checked before anything is sent (DIR may be new but its parent must exist); run the "
                             "same command with the same DIR to finish an interrupted run")
    parser.add_argument("--concurrency", type=int, default=8, metavar="N",
                        help="jobs in flight at once, default 8 (provider limits such as Eachlabs' are the "
                             "client's to respect within this)")
    parser.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS",
                        help="per job, submission to collection, default 900; a job still running then is "
                             "collected by the next run")
    parser.add_argument("--max-cost", metavar="USD",
                        help=f"refuse to start when the jobs left to submit are estimated above this, default "
                             f"{DEFAULT_MAX_COST} ('none': no limit); the estimate is printed first")
    parser.add_argument("--resubmit-unknown", action="store_true",
                        help="send again the jobs an earlier run was killed while submitting (the provider may "
                             "then run them twice); without it they are listed and left alone")
    parser.add_argument("--no-download", action="store_true",
                        help="keep the images' URLs instead of downloading them (the report then shows none)")
    parser.add_argument("--base-url", action="append", default=[], metavar="PROVIDER=URL",
                        help="another endpoint for a provider, e.g. fal=http://127.0.0.1:8001 (repeatable); "
                             "keys still come from the environment")
    parser.add_argument("--title", help="the report's title")
    parser.add_argument("--state", metavar="URL",
                        help="a Redis (redis://host:6379/0) that keeps provider limits and breakers for every run "
                             "naming it: the shards of one batch then respect Eachlabs' cap and rates together "
                             "(docs/scaling.md); without it each run has its own")
    parser.add_argument("--state-namespace", default="photomaker-bridge", metavar="NAME",
                        help="the namespace within --state's Redis, default photomaker-bridge")


def add_commands(command: Command) -> None:
    """Declare ``compare`` and ``batch`` with ``cli.py``'s ``command(name, handler, help)``."""
    compare = command("compare", _command_compare,
                      "the same jobs on several providers side by side: reference sets × prompts × styles × seeds "
                      "× providers, with a report")
    compare.add_argument("--provider", action="append", default=[], metavar="P[,P...]",
                         help="providers to compare, e.g. runware,fal,eachlabs (repeatable); default: all three")
    compare.add_argument("--prompt", action="append", required=True, metavar="TEXT",
                         help="a prompt with the trigger word after the class word, e.g. 'a man img on a boat' "
                              "(repeat for several)")
    compare.add_argument("--style", action="append", default=[], metavar="STYLE",
                         help="a style in any provider's spelling (repeat for several); default: no style")
    compare.add_argument("--seeds", metavar="N[,N...]", help="seeds, e.g. 42,43; default: one random seed")
    compare.add_argument("--faces", action="append", default=[], metavar="PATH[,PATH...]",
                         help="one reference set: 1 to 4 photos of one person joined by commas (repeat for more "
                              "sets)")
    compare.add_argument("--image", action="append", default=[], metavar="PATH|URL",
                         help="a photo of one reference set made of all the --image photos (repeat the option, "
                              "1 to 4 photos)")
    compare.add_argument("--sample-faces", type=int, default=0, metavar="N",
                         help="one more reference set of N (1-3) of the package's bundled sample faces")
    compare.add_argument("--num-images", type=int, metavar="1-100", help="images per job, default 1")
    compare.add_argument("--steps", type=int, metavar="N", help="denoising steps; default: each provider's")
    compare.add_argument("--guidance-scale", type=float, metavar="X", help="guidance; default: each provider's")
    compare.add_argument("--style-strength", type=int, metavar="15-50", help="style strength, default 20")
    compare.add_argument("--negative-prompt", metavar="TEXT", help="what to avoid; default: each provider's")
    _add_run_options(compare)
    batch = command("batch", _command_batch,
                    "run the jobs of a JSONL file (one request per line), resumably, with a report")
    batch.add_argument("jobs", metavar="JOBS.jsonl",
                       help="one PhotoMakerRequest.to_dict() object per line, plus optional \"provider\" (a name or "
                            "a list of names), \"route\" (an object: docs/compare-and-batch.md) and \"key\"; bad "
                            "lines are reported by number and skipped")
    where = batch.add_mutually_exclusive_group()
    where.add_argument("--provider", choices=PROVIDER_NAMES,
                       help="the provider of lines that name none")
    where.add_argument("--route", metavar="P[,P...]",
                       help="the route of lines that name none: providers tried in turn as --strategy says, falling "
                            "back when one fails; each job is journaled under the provider that ran it "
                            "(docs/compare-and-batch.md)")
    add_route_arguments(batch, flag="--route", hedge=False)
    batch.add_argument("--shard", metavar="K/N",
                       help="run only shard K of N (by a stable hash of each job's key): N processes or machines "
                            "share one input and one --out folder (docs/scaling.md)")
    _add_run_options(batch)
