"""How a batch runs (:class:`BatchOptions`), and which shard a job belongs to when several processes share one
batch (docs/scaling.md, "Sharded batches")."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import attrs

from ..errors import ConfigurationError

__all__ = ["BatchOptions", "check_shard", "shard_of"]


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{attribute.name} must be a positive number of seconds or None, got {value!r}")


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{attribute.name} must be an integer of at least 1, got {value!r}")


@attrs.frozen
class BatchOptions:
    """How a batch runs."""

    concurrency: int = attrs.field(default=8, validator=_at_least_one)
    """Jobs in flight at once (submitting or waiting for their result). Provider limits, such as Eachlabs'
    concurrent predictions, are the client's to respect within this."""
    timeout: float | None = attrs.field(default=900.0, validator=_positive_or_none)
    """Seconds one job may take from submission to collection. When it passes while the provider still runs
    the job, the outcome is ``timeout`` and the next run collects it by handle."""
    download: bool = True
    """Fetch every image and save it under ``images/`` in the output folder (else keep URLs only)."""
    resubmit_unknown: bool = False
    """Submit again the jobs whose submission an earlier run left undecided (see :mod:`.journal`); the
    provider may then run such a job twice."""
    submit_grace: float = attrs.field(default=30.0, validator=_positive_or_none)
    """Seconds a submission already on its way may take to be accepted and journaled after the run is
    cancelled."""
    strict: bool = False
    """Refuse any adjustment of a request instead of warning (see ``Bridge.submit``)."""
    fsync: bool = False
    """Force every journal line to the disk (survives a power cut, not only a killed process)."""
    shard: tuple[int, int] | None = attrs.field(default=None, validator=lambda _, __, value: check_shard(value))
    """``(K, N)``: run only the jobs of shard K of N (by a stable hash of their key), so that N processes or
    machines can share one input and one output folder (docs/scaling.md, "Sharded batches"); ``None``: all."""

    def owns(self, key: str) -> bool:
        """Whether the job ``key`` belongs to this run's shard."""
        return self.shard is None or shard_of(key, self.shard[1]) == self.shard[0] - 1


def shard_of(key: str, count: int) -> int:
    """The shard (0 to ``count`` - 1) of the job ``key``: the same in every process and on every machine."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:16], 16) % count


def check_shard(value: object) -> None:
    """Refuse a shard that is not ``(K, N)`` with 1 <= K <= N."""
    if value is None:
        return
    if (not isinstance(value, tuple) or len(value) != 2 or not all(isinstance(part, int) and not isinstance(
            part, bool) for part in value) or not 1 <= value[0] <= value[1]):
        raise ConfigurationError(f"shard must be (K, N) with 1 <= K <= N, such as (2, 8), got {value!r}")
