"""The Eachlabs emulator's own knobs: every behaviour eachlabs.md leaves open, in one place."""

from __future__ import annotations

import attrs

__all__ = ["EachlabsOptions"]


@attrs.define
class EachlabsOptions:
    """Emulator choices where Eachlabs' behaviour is not verified; the defaults are the likeliest reading.

    Mutable: tests may change them while the emulator runs.
    """

    validate_at_create: bool = True
    """Refuse schema violations at create with 400 ``Invalid input for model`` (eachlabs.md §6.3). ``False``
    accepts the prediction and fails it on poll with ``INPUT_VALIDATION_ERROR`` instead, the other behaviour
    the docs allow (MD-BR, eachlabs.md §3.1)."""
    single_output_as_string: bool = False
    """Send a success's ``output`` as one URL string (the documented example) instead of a list (production
    captures and photomaker's "array" output type, eachlabs.md §2.4)."""
    failure_output_as_string: bool = False
    """Send a failure's ``output`` as a plain message string instead of the classified envelope; V1 allows
    both (eachlabs.md §2.6)."""
    terminal_cancel_status: int = 400
    """HTTP status of a cancel on a finished prediction (eachlabs.md §2.8 only says it is refused)."""
    data_uris_downloadable: bool = False
    """Whether an input image given as a ``data:`` URI counts as downloadable; the reference advises against
    relying on it (§3.1), so by default it fails like an unreachable URL."""
    synchronous_models: frozenset[str] = frozenset({"photomaker", "photomaker-style"})
    """Models ``POST /v1/prediction/run`` serves; any other answers 400. Which models have "synchronous
    execution enabled" is not documented (eachlabs.md §2.9): the default serves both PhotoMaker models, so the
    documented route is usable; ``frozenset()`` reproduces a service that refuses them."""
    concurrency_retry_after: float = 5.0
    """``Retry-After`` seconds of the concurrency 429 when no unfinished prediction is due to end (all stuck).
    Eachlabs documents no value (eachlabs.md §1: "endpoint-dependent")."""
