"""A child process for the interruption tests: runs the acceptance compare against emulators that live in the
test's process (so they outlive this one), as a user's script would. Exit 130 on Ctrl-C.

Usage: ``python compare_child.py CONFIG.json`` where the config holds ``adapters`` (see
``helpers_batch.adapter_config``), ``out`` and ``concurrency``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from helpers_batch import acceptance_matrix_arguments, adapters_from

from photomaker_bridge.batch import BatchOptions, CompareMatrix, compare


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text())
    matrix = CompareMatrix(**acceptance_matrix_arguments())
    options = BatchOptions(concurrency=config["concurrency"], timeout=120)
    try:
        outcome = compare(matrix, config["out"], providers=adapters_from(config["adapters"]), options=options)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        return 130
    run = outcome.run
    print(json.dumps({"succeeded": run.succeeded, "failed": run.failed, "skipped": run.skipped,
                      "resumed": run.resumed, "left": list(run.left)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
