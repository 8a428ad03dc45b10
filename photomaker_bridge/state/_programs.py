"""Every question of the state interface as a Redis *program*: a generator that yields the commands to send
(:class:`Script`, :class:`Batch`) and turns their replies into the answer. Pure, like the provider flows
(docs/architecture.md): ``RedisState`` drives the same program with redis-py's sync client or its asyncio one.

Keys (docs/scaling.md, "What Redis holds"), all under the namespace, and per provider *account* — the provider
and a hash of its API key (``providers._steps.account_of``), never the key:

* ``<ns>:slots:<account>:leases`` (sorted set: lease id → expiry), ``…:bound`` (hash: job ↔ lease), ``…:hits``
  (sorted set: the creates of the last rate window);
* ``<ns>:route:<account>:breaker`` (the breaker, JSON), ``…:seconds``, ``…:queue``, ``…:prices`` (samples),
  ``…:written`` (the token of the breaker's last write, ten minutes);
* ``<ns>:spend:totals`` (hash), ``<ns>:spend:reserved``/``…:expiry`` and ``<ns>:hedge:reserved``/``…:expiry``,
  ``<ns>:spend:settled`` (sorted set: the tokens settled in the last hour);
* ``<ns>:job:<sha256 of the idempotency key>`` (hash: status, owner, handle, cost).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Generator, Sequence
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any, Final

import attrs

from .._coordination_operations import Busy
from ..routing._breaker import Breaker, admit, record
from ..routing._state import (
    SAMPLES,
    Admit,
    ReadNumbers,
    Record,
    ReserveHedge,
    ReserveSpend,
    Reset,
    SettleHedge,
    SettleSpend,
    StateOperation,
    numbers_from,
)
from ._operations import (
    BindLease,
    ClaimJob,
    CountLeases,
    DropJob,
    JobEntry,
    ReadJob,
    ReleaseLease,
    RenewLease,
    TakeSlots,
    UpdateJob,
)

__all__ = ["Batch", "Keys", "Program", "Script", "from_nano", "program_for", "to_nano"]

_NANO: Final = Decimal("1e9")
_CAS_TRIES: Final = 64
"""Compare-and-set rounds before a breaker update gives up (each round is lost only to another writer's success)."""


@attrs.frozen
class Script:
    """Run the script ``name`` (``_scripts.SCRIPTS``) on ``keys`` with ``args``."""

    name: str
    keys: tuple[str, ...]
    args: tuple[str | int | float, ...] = ()


@attrs.frozen
class Batch:
    """Send ``commands`` (each a tuple of command words) in one round trip; answers their replies in order."""

    commands: tuple[tuple[str | int, ...], ...]


Program = Generator[Script | Batch, Any, Any]
"""A question put to Redis: yields commands, receives their replies, returns the answer."""


def to_nano(amount: Decimal, *, up: bool = False) -> int:
    """``amount`` USD in whole nano-dollars (rounded up for what is reserved, to the nearest otherwise)."""
    return int((amount * _NANO).to_integral_value(rounding=ROUND_CEILING if up else ROUND_HALF_UP))


def from_nano(value: Any) -> Decimal:
    """Nano-dollars from Redis back into USD."""
    return Decimal(int(value or 0)) / _NANO


def _milliseconds(seconds: float) -> int:
    return max(1, int(seconds * 1000))


@attrs.frozen
class Keys:
    """Where each thing lives (see the module docstring)."""

    namespace: str

    def slots(self, account: str) -> tuple[str, str, str]:
        """The leases, bound jobs and rate hits of ``account``."""
        base = f"{self.namespace}:slots:{account}"
        return f"{base}:leases", f"{base}:bound", f"{base}:hits"

    def route(self, account: str) -> tuple[str, str, str, str, str]:
        """The breaker, the three sample lists of ``account`` and the token of the breaker's last write."""
        base = f"{self.namespace}:route:{account}"
        return f"{base}:breaker", f"{base}:seconds", f"{base}:queue", f"{base}:prices", f"{base}:written"

    def spend(self) -> tuple[str, str, str, str]:
        """The spend totals, the client-budget reservations, their expiry and the tokens settled in the last hour."""
        ns = self.namespace
        return f"{ns}:spend:totals", f"{ns}:spend:reserved", f"{ns}:spend:expiry", f"{ns}:spend:settled"

    def hedges(self) -> tuple[str, str, str, str]:
        """The spend totals, the hedge reservations, their expiry and the tokens settled in the last hour."""
        ns = self.namespace
        return f"{ns}:spend:totals", f"{ns}:hedge:reserved", f"{ns}:hedge:expiry", f"{ns}:spend:settled"

    def job(self, key: str) -> str:
        """The journal entry of the idempotency key ``key`` (hashed: a key may carry a user's data)."""
        return f"{self.namespace}:job:{hashlib.sha256(key.encode()).hexdigest()[:32]}"


@attrs.frozen
class Settings:
    """The durations a program needs (``RedisState``'s settings)."""

    keep_seconds: float
    """How long breakers, samples and spend totals are kept after their last change."""
    reservation_seconds: float
    """How long a reservation of spend lives without being settled (its caller may have died)."""


def encode_breaker(breaker: Breaker) -> str:
    """The breaker as compact JSON ('' for a fresh one, which is not stored)."""
    if breaker == Breaker():
        return ""
    return json.dumps([breaker.status, breaker.consecutive, [list(item) for item in breaker.outcomes],
                       breaker.retry_at, breaker.reason], separators=(",", ":"))


def decode_breaker(raw: Any) -> Breaker:
    """A stored breaker (``None`` or '': a fresh one)."""
    if not raw:
        return Breaker()
    status, consecutive, outcomes, retry_at, reason = json.loads(raw)
    return Breaker(status=status, consecutive=consecutive,
                   outcomes=tuple((float(at), bool(ok)) for at, ok in outcomes), retry_at=retry_at, reason=reason)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _breaker_update(keys: Keys, settings: Settings, account: str, change: Callable[[Breaker], tuple[Breaker, Any]],
                    token: Callable[[], str], samples: Sequence[str] = ("", "", "")) -> Program:
    """Read the breaker, apply ``change`` (pure) and write it back only if nobody changed it meanwhile."""
    names = keys.route(account)
    for _ in range(_CAS_TRIES):
        (raw,) = yield Batch((("GET", names[0]),))
        expected = "" if raw is None else _text(raw)
        updated, answer = change(decode_breaker(expected))
        new = encode_breaker(updated)
        if new == expected and not any(samples):
            return answer
        written = yield Script("breaker_set", names, (expected, new, _milliseconds(settings.keep_seconds), SAMPLES,
                                                       *samples, token()))
        if int(written) == 1:
            return answer
    raise RuntimeError(f"the breaker of {account} kept changing under {_CAS_TRIES} updates in a row")


def _record(keys: Keys, settings: Settings, account: str, operation: Record, token: Callable[[], str]) -> Program:
    samples = ("" if not operation.ok or operation.total_seconds is None else repr(operation.total_seconds),
               "" if not operation.ok or operation.queue_seconds is None else repr(operation.queue_seconds),
               "" if not operation.ok or operation.unit_price is None else str(operation.unit_price))

    def change(breaker: Breaker) -> tuple[Breaker, Any]:
        after = record(breaker, operation.now, operation.settings, ok=operation.ok, counts=operation.counts,
                       disable=operation.disable)
        return after, after.status

    answer = yield from _breaker_update(keys, settings, account, change, token, samples)
    return answer


def _numbers(keys: Keys, accounts: Callable[[str], str], operation: ReadNumbers) -> Program:
    commands: list[tuple[str | int, ...]] = []
    for name in operation.providers:
        breaker, seconds, queue, prices, _ = keys.route(accounts(name))
        commands += [("GET", breaker), ("LRANGE", seconds, 0, -1), ("LRANGE", queue, 0, -1),
                     ("LRANGE", prices, 0, -1)]
    replies = yield Batch(tuple(commands))
    answer = {}
    for index, name in enumerate(operation.providers):
        raw, seconds, queue, prices = replies[4 * index:4 * index + 4]
        answer[name] = numbers_from(decode_breaker(raw), [float(value) for value in seconds],
                                    [float(value) for value in queue], [Decimal(_text(value)) for value in prices])
    return answer


def _take(keys: Keys, operation: TakeSlots) -> Program:
    leases, bound, hits = keys.slots(operation.account)
    limits = operation.limits
    reply = yield Script("take", (leases, hits, bound), (
        -1 if limits.concurrency is None else limits.concurrency, -1 if limits.per_minute is None else
        limits.per_minute, _milliseconds(limits.rate_window), _milliseconds(limits.lease_seconds),
        *operation.lease_ids))
    kind, count = int(reply[0]), int(reply[1])
    if kind == 2:
        return True
    if kind == 0:
        return Busy(f"{count} jobs in flight across every process (limit {limits.concurrency})")
    return Busy(f"{limits.per_minute} job submissions a minute across every process", max(int(reply[2]), 10) / 1000)


def _claim(keys: Keys, operation: ClaimJob) -> Program:
    reply = yield Script("claim_job", (keys.job(operation.key),), (
        operation.owner, _milliseconds(operation.claim_seconds), _milliseconds(operation.keep_seconds),
        "" if operation.replace_round is None else operation.replace_round))
    fields = dict(zip(map(_text, reply[::2]), map(_text, reply[1::2]), strict=True))
    if fields.get("status") == "new":
        return JobEntry("new", owner=operation.owner, round=int(fields["round"]))
    return _entry(fields)


def _entry(fields: dict[str, str]) -> JobEntry:
    handle = json.loads(fields["handle"]) if fields.get("handle") else None
    status = fields.get("status", "claimed")
    expired = status == "claimed" and float(fields.get("claim_left", "1")) <= 0
    return JobEntry(status, handle=handle, cost=fields.get("cost") or None,  # type: ignore[arg-type]
                    owner=fields.get("owner", ""), claim_expired=expired, round=int(fields.get("round", "1")))


def _update(keys: Keys, operation: UpdateJob) -> Program:
    key = keys.job(operation.key)
    fields: list[str] = ["status", operation.status]
    if operation.handle is not None:
        fields += ["handle", json.dumps(operation.handle, separators=(",", ":"), default=str)]
    if operation.cost is not None:
        fields += ["cost", operation.cost]
    yield Batch((("HSET", key, *fields), ("PEXPIRE", key, _milliseconds(operation.keep_seconds))))
    return None


def _read_job(keys: Keys, operation: ReadJob) -> Program:
    (reply,) = yield Batch((("HGETALL", keys.job(operation.key)),))
    if not reply:
        return None
    return _entry({_text(name): _text(value) for name, value in reply.items()})


def program_for(operation: StateOperation, keys: Keys, settings: Settings, accounts: Callable[[str], str],
                token: Callable[[], str]) -> Program:
    """The program answering ``operation``; ``accounts`` names a provider's account (routing questions carry
    provider names), ``token`` makes a new process-unique reservation token."""
    keep = _milliseconds(settings.keep_seconds)
    if isinstance(operation, TakeSlots):
        return _take(keys, operation)
    if isinstance(operation, BindLease | RenewLease | ReleaseLease | CountLeases):
        return _lease(keys, operation)
    if isinstance(operation, Admit):
        return _breaker_update(keys, settings, accounts(operation.provider),
                               lambda breaker: admit(breaker, operation.now, operation.settings), token)
    if isinstance(operation, Record):
        return _record(keys, settings, accounts(operation.provider), operation, token)
    if isinstance(operation, Reset):
        return _single(Batch((("DEL", keys.route(accounts(operation.provider))[0]),)), None)
    if isinstance(operation, ReadNumbers):
        return _numbers(keys, accounts, operation)
    if isinstance(operation, ReserveSpend):
        name = token()
        return _single(Script("reserve_spend", keys.spend(), (
            to_nano(operation.amount, up=True), to_nano(operation.limit),
            name, _milliseconds(settings.reservation_seconds))), lambda reply: name if int(reply) else None)
    if isinstance(operation, SettleSpend):
        return _single(Script("settle_spend", keys.spend(), (operation.token, to_nano(operation.amount), "spent",
                                                             keep)), None)
    if isinstance(operation, ReserveHedge):
        name = token()
        return _single(Script("reserve_hedge", keys.hedges(), (
            to_nano(operation.amount, up=True), str(operation.ratio), to_nano(operation.base), name,
            _milliseconds(settings.reservation_seconds))), lambda reply: name if int(reply) else None)
    if isinstance(operation, SettleHedge):
        return _single(Script("settle_hedge", keys.hedges(), (
            operation.token or token(), to_nano(operation.extra), to_nano(operation.base), keep)), None)
    if isinstance(operation, ClaimJob):
        return _claim(keys, operation)
    if isinstance(operation, UpdateJob):
        return _update(keys, operation)
    if isinstance(operation, ReadJob):
        return _read_job(keys, operation)
    if isinstance(operation, DropJob):
        return _single(Script("drop_job", (keys.job(operation.key),), (operation.owner,)), None)
    raise TypeError(f"RedisState cannot answer {operation!r}")


def _lease(keys: Keys, operation: BindLease | RenewLease | ReleaseLease | CountLeases) -> Program:
    leases, bound, _ = keys.slots(operation.account)
    if isinstance(operation, BindLease):
        command = Script("bind", (leases, bound), (operation.lease_id, operation.request_id,
                                                   _milliseconds(operation.lease_seconds)))
    elif isinstance(operation, RenewLease):
        command = Script("renew", (leases, bound), (operation.request_id, _milliseconds(operation.lease_seconds)))
    elif isinstance(operation, ReleaseLease):
        command = Script("release", (leases, bound), (operation.request_id or "", operation.lease_id or ""))
    else:
        return _single(Script("count", (leases, bound)), int)
    return _single(command, None)


def _single(command: Script | Batch, parse: Callable[[Any], Any] | None) -> Program:
    reply = yield command
    return None if parse is None else parse(reply)
