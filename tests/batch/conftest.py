"""The acceptance compare, run once per session and shared by the tests that check its journal, summary,
report (in a real browser) and contact sheet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers_batch import (
    AcceptanceRun,
    acceptance_matrix_arguments,
    adapters,
    created,
    emulator_settings,
    inject_faults,
)

from photomaker_bridge.batch import BatchOptions, CompareMatrix, compare
from photomaker_bridge.emulators import start_emulators


@pytest.fixture(scope="session")
def acceptance_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcceptanceRun]:
    out = tmp_path_factory.mktemp("compare") / "results"
    matrix = CompareMatrix(**acceptance_matrix_arguments())
    options = BatchOptions(concurrency=6, timeout=120)
    with start_emulators(runware=emulator_settings(), fal=emulator_settings(), eachlabs=emulator_settings()) as emu:
        inject_faults(emu)
        first = compare(matrix, out, providers=adapters(emu), options=options)
        created_first = created(emu)
        requests_first = sum(handle.counters["requests"] for handle in emu)
        second = compare(matrix, out, providers=adapters(emu), options=options)
        yield AcceptanceRun(out, first, second, created_first, created(emu), requests_first,
                            sum(handle.counters["requests"] for handle in emu))
