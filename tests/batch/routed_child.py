"""A child process for the routed interruption test: runs a batch of routed jobs (``routed_jobs`` of
``test_routed_batch``: runware, then fal) against emulators that live in the test's process.

Usage: ``python routed_child.py CONFIG.json`` where the config holds ``adapters`` (see
``helpers_batch.adapter_config``), ``out``, ``jobs`` (how many) and ``concurrency``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from helpers_batch import adapters_from
from test_routed_batch import routed_jobs

from photomaker_bridge.batch import BatchOptions, run_batch


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text())
    outcome = run_batch(routed_jobs(config["jobs"]), config["out"], providers=adapters_from(config["adapters"]),
                        options=BatchOptions(concurrency=config["concurrency"], timeout=120))
    print(json.dumps({"succeeded": outcome.succeeded, "failed": outcome.failed, "skipped": outcome.skipped,
                      "resumed": outcome.resumed, "left": list(outcome.left)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
