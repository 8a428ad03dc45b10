"""The options of ``photomaker-bridge emulate``: plain argparse, so that building the CLI's parser (``--help``)
does not import the emulators, which load aiohttp (docs/architecture.md, "Imports"). The command itself runs in
``emulators/_cli.py``."""

from __future__ import annotations

import argparse

__all__ = ["add_emulate_arguments"]


def add_emulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``photomaker-bridge emulate`` on ``parser`` (values are checked by
    :func:`run_emulate`, which reports a bad one in a single line and exits 2)."""
    duration_help = "seconds: a number, or LOW-HIGH drawn per request from the seeded generator"
    parser.add_argument("--latency", metavar="SECONDS|LOW-HIGH",
                        help=f"delay before every answer; {duration_help}")
    parser.add_argument("--queue-time", metavar="SECONDS|LOW-HIGH",
                        help=f"time a job waits in the queue; {duration_help}")
    parser.add_argument("--run-time", metavar="SECONDS|LOW-HIGH", help=f"time a job runs; {duration_help}")
    parser.add_argument(
        "--fault", metavar="SPEC", action="append", default=[],
        help="inject a fault, e.g. 'status:429,retry_after=2,nth=2', 'status:503,rate=0.1', 'drop,nth=3', "
             "'fail_job', 'stuck_job', 'partial,images=1', 'slow_job,rate=0.05'; prefix 'runware:', 'fal:' or "
             "'eachlabs:' to target one emulator (default: all three); repeatable",
    )
    parser.add_argument("--seed", metavar="N", help="seed of every emulator's generator (default 0)")
    parser.add_argument("--port", metavar="PORT",
                        help="fixed ports: Runware on PORT, fal on PORT+1, Eachlabs on PORT+2 (default: free ports "
                             "picked at random)")
    parser.add_argument("--api-key", metavar="KEY",
                        help="the key all three emulators accept (default: a new random key per emulator); "
                             "an emulator key is accepted only by these local emulators")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (URLs, emulator keys, environment) instead of text")
