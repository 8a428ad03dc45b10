"""``RedisState``: the state interface over Redis (or Valkey), shared by every process that names the same server
and namespace (docs/scaling.md).

Each question is a program (``_programs``) of Lua scripts and plain reads, driven here by redis-py's sync client
(``Bridge``) or its asyncio client (``AsyncBridge``, one client per event loop). Every call has a timeout
(``timeout``, for connecting and for each answer); a dropped connection is re-made once on the spot and, after
that, on the next question. When Redis cannot answer, ``on_state_error`` decides:

* ``"fail"``: a question that decides whether to send something (a slot, a breaker admission, a budget
  reservation, the journal) raises :class:`~photomaker_bridge.StateUnavailableError` before anything is sent;
* ``"local"``: it is answered from this process's :class:`~photomaker_bridge.state.MemoryState` instead, and
  Redis is not asked again for ``retry_seconds`` (so a dead server costs one timeout, not one per call).

Bookkeeping after a job was accepted (binding, renewing and freeing its lease, recording its outcome, settling
its spend) never raises in either mode: a running, paid job is not abandoned over its bookkeeping. What could not
be written is answered locally and counted (:meth:`incidents`), and the client puts a warning on the call's result.
What a lost answer may have taken in Redis (a lease, a reservation, a claim) is given back, and bookkeeping that
could not be written is written, once Redis answers again (``_fallback``, the undo queue).

Only a Redis that cannot answer is an outage (connection errors, timeouts, a read-only replica, a cluster that is
down). Any other error Redis answers — a script's bug — is raised as it is, never hidden behind local answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

from ..errors import ConfigurationError, StateUnavailableError
from ..routing._state import Admit, ReadNumbers, ReserveHedge, ReserveSpend, Reset, StateOperation
from ._fallback import Fallback
from ._interface import OnStateError, State
from ._operations import ClaimJob, CountLeases, ReadJob, TakeSlots, UpdateJob
from ._programs import Batch, Keys, Program, Script, Settings, program_for
from ._scripts import SCRIPTS
from ._slots import SharedCoordinator

__all__ = ["RedisState"]

logger = logging.getLogger("photomaker_bridge.state")

DECISIONS: Final = (Admit, ReadNumbers, Reset, ReserveSpend, ReserveHedge, TakeSlots, CountLeases, ClaimJob,
                    UpdateJob, ReadJob)
"""Questions whose failure ``on_state_error="fail"`` raises: nothing has been sent on their answer yet (or, for
``UpdateJob``, the caller turns the error into one carrying the accepted job's handle)."""

_SHAS: Final = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SCRIPTS.items()}

_NAMESPACE: Final = re.compile(r"[A-Za-z0-9._-]+")
"""A namespace: no ``:`` (``clear()`` deletes ``<namespace>:*``, which must not reach ``<namespace>:other:*``), no
glob characters, no spaces."""


def _outages() -> tuple[type[BaseException], ...]:
    """The errors that mean Redis cannot answer now (redis-py is imported only when a RedisState is used)."""
    from redis import exceptions

    return (exceptions.ConnectionError, exceptions.TimeoutError, exceptions.ReadOnlyError,
            exceptions.ClusterDownError, exceptions.TryAgainError, OSError)


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"RedisState {name} must be a finite number of seconds above 0, got {value!r}")
    return float(value)


class RedisState(State):
    """Provider slots, breakers, numbers, spend and the job journal in Redis, shared by every process using the
    same ``url`` and ``namespace``. Needs the ``redis`` extra: ``pip install 'photomaker-bridge[redis]'``.

    ``timeout`` bounds connecting and each answer (seconds); ``on_state_error`` is ``"fail"`` or ``"local"`` (see
    the module docstring); ``retry_seconds`` is how long ``"local"`` answers locally before trying Redis again;
    ``keep_seconds`` how long breakers, numbers and spend totals live after their last change;
    ``reservation_seconds`` how long a budget reservation lives unsettled (its caller may have died);
    ``journal_seconds`` how long the journal remembers an idempotency key."""

    def __init__(self, url: str = "redis://localhost:6379/0", *, namespace: str = "photomaker-bridge",
                 on_state_error: OnStateError = "fail", timeout: float = 0.5, retry_seconds: float = 5.0,
                 keep_seconds: float = 30 * 86400.0, reservation_seconds: float = 3600.0,
                 journal_seconds: float = 7 * 86400.0) -> None:
        if not isinstance(url, str) or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigurationError(f"RedisState url must be a redis://, rediss:// or unix:// URL, got a "
                                     f"{type(url).__name__}" if not isinstance(url, str) else
                                     f"RedisState url must be a redis://, rediss:// or unix:// URL, got scheme "
                                     f"{urlsplit(url).scheme!r}")
        if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
            raise ConfigurationError(f"RedisState namespace must be letters, digits, '.', '_' or '-' (no ':', which "
                                     f"separates its keys), got {namespace!r}")
        if on_state_error not in ("fail", "local"):
            raise ConfigurationError(f"RedisState on_state_error must be 'fail' or 'local', got {on_state_error!r}")
        try:
            import redis  # noqa: F401  (the optional extra: checked now, used when the first question is asked)
        except ImportError as error:
            raise ConfigurationError("RedisState needs redis-py: pip install 'photomaker-bridge[redis]'") from error
        self.url = url
        self.namespace = namespace
        self.on_state_error: OnStateError = on_state_error
        self.timeout = _seconds("timeout", timeout)
        self.retry_seconds = _seconds("retry_seconds", retry_seconds)
        self.journal_seconds = _seconds("journal_seconds", journal_seconds)
        self._settings = Settings(keep_seconds=_seconds("keep_seconds", keep_seconds),
                                  reservation_seconds=_seconds("reservation_seconds", reservation_seconds))
        self.keys = Keys(namespace)
        """Where each thing lives in Redis (docs/scaling.md, "What Redis holds")."""
        self._fallback = Fallback(reservation_seconds=self._settings.reservation_seconds,
                                  journal_seconds=self.journal_seconds)
        self._down_until = 0.0
        self._reset_process()

    def _reset_process(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._instance = uuid.uuid4().hex[:12]
        self._tokens = itertools.count(1)
        self._sync: Any = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"RedisState({self.describe()}, namespace={self.namespace!r}, on_state_error={self.on_state_error!r})"

    def describe(self) -> str:
        """Where the server is, without user name or password."""
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return f"Redis at unix:{parts.path}"
        return f"Redis at {parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"

    def incidents(self) -> int:
        """Questions Redis could not answer (answered locally or raised) since this state was made."""
        return self._fallback.incidents()

    def token(self) -> str:
        """A new name unique across processes (leases, reservations, claims)."""
        return f"{self._instance}-{next(self._tokens)}"

    @property
    def owner(self) -> str:
        """This process's name in journal claims."""
        self._check_fork()
        return self._instance

    # -- the interface ------------------------------------------------------------------------------------------

    def perform(self, operation: StateOperation, accounts: Callable[[str], str] | None = None) -> Any:
        """Answer ``operation`` in Redis (sync)."""
        if self._stays_local(operation):
            return self._fallback.answer(operation, accounts)
        made: list[str] = []
        try:
            if self._fallback.has_undo():
                self._replay()
            return self._run(self._program(operation, accounts, made))
        except _outages() as error:
            return self._failed(operation, accounts, error, made)

    async def aperform(self, operation: StateOperation, accounts: Callable[[str], str] | None = None) -> Any:
        """Answer ``operation`` in Redis (async: the running loop's own client)."""
        if self._stays_local(operation):
            return self._fallback.answer(operation, accounts)
        made: list[str] = []
        try:
            if self._fallback.has_undo():
                await self._areplay()
            return await self._arun(self._program(operation, accounts, made))
        except _outages() as error:
            return self._failed(operation, accounts, error, made)

    def coordinator(self) -> SharedCoordinator:
        """A client's coordinator whose slots live in Redis."""
        return SharedCoordinator(self)

    def after_fork(self) -> None:
        """In a forked child: new connections and a new process name; the parent's leases stay the parent's."""
        self._check_fork()

    def close(self) -> None:
        """Close the sync client's connections (the state reconnects if used again)."""
        client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the running loop's client (and the sync one)."""
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()

    def reset_spend(self) -> None:
        """Start the shared spend total over at zero (a new budget period: a daily job, say). The spend of a
        ``Bridge(budget=...)`` over Redis is a running total for the namespace — kept across restarts, for
        ``keep_seconds`` after its last change — not a per-process one (docs/scaling.md, "Budgets over Redis").
        Reservations of calls in flight and the hedge ratio's history are kept."""
        self._client().hdel(self.keys.spend()[0], "spent")

    def clear(self) -> int:
        """Delete every key of this namespace (tests, or starting over): slots, breakers, numbers, spend and the
        journal; returns how many."""
        client = self._client()
        names = list(client.scan_iter(match=f"{self.namespace}:*", count=1000))
        return int(client.delete(*names)) if names else 0

    # -- failure ----------------------------------------------------------------------------------------------

    def _stays_local(self, operation: StateOperation) -> bool:
        self._check_fork()
        if self._fallback.is_local(operation):
            return True
        return self.on_state_error == "local" and time.monotonic() < self._down_until

    def _failed(self, operation: StateOperation, accounts: Callable[[str], str] | None, error: BaseException,
                made: list[str]) -> Any:
        now = time.monotonic()
        # One warning per outage (then debug lines): a dead server would otherwise log every poll of every job.
        level = logging.WARNING if now >= self._down_until else logging.DEBUG
        self._down_until = now + self.retry_seconds
        logger.log(level, "%s did not answer %s: %s: %s", self.describe(), type(operation).__name__,
                   type(error).__name__, error)
        raise_it = self.on_state_error == "fail" and isinstance(operation, DECISIONS)
        self._fallback.queue_undo(operation, made, raised=raise_it)
        if raise_it:
            self._fallback.count()
            raise StateUnavailableError(f"the shared state ({self.describe()}) did not answer "
                                        f"{type(operation).__name__} within {self.timeout:g} s: "
                                        f"{type(error).__name__}: {error}; nothing was sent") from error
        return self._fallback.answer(operation, accounts)

    def _replay(self) -> None:
        """Send the undo queue (sync); an outage puts back what is left and is raised."""
        import redis

        pending = self._fallback.take_undo()
        for index, operation in enumerate(pending):
            try:
                self._run(self._program(operation, None, []))
            except _outages():
                self._fallback.put_back(pending[index:])
                raise
            except redis.RedisError as error:  # answered, but refused: not the next question's business
                logger.warning("%s refused to replay %s: %s", self.describe(), type(operation).__name__, error)

    async def _areplay(self) -> None:
        """Send the undo queue (async)."""
        import redis

        pending = self._fallback.take_undo()
        for index, operation in enumerate(pending):
            try:
                await self._arun(self._program(operation, None, []))
            except _outages():
                self._fallback.put_back(pending[index:])
                raise
            except redis.RedisError as error:  # answered, but refused: not the next question's business
                logger.warning("%s refused to replay %s: %s", self.describe(), type(operation).__name__, error)

    # -- drivers ----------------------------------------------------------------------------------------------

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            self._reset_process()
            self._fallback.after_fork()

    def _program(self, operation: StateOperation, accounts: Callable[[str], str] | None, made: list[str]) -> Program:
        def token() -> str:  # remembered: what a lost answer took is given back under the same name
            name = self.token()
            made.append(name)
            return name

        return program_for(operation, self.keys, self._settings, accounts or (lambda name: name), token)

    def _options(self) -> dict[str, Any]:
        return {"socket_timeout": self.timeout, "socket_connect_timeout": self.timeout, "decode_responses": True}

    def _client(self) -> Any:
        with self._lock:
            return self._sync or self._new_client()

    def _new_client(self) -> Any:
        client = self._sync
        if client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # One immediate retry, on a dropped connection only (a restarted server's pooled connections). The
            # re-sent command may have run already with its reply lost: every script is safe to run twice
            # (_scripts); a timeout is not retried (an answer that slow means the server is struggling).
            client = self._sync = redis.Redis.from_url(
                self.url, retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)), **self._options())
        return client

    def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            import redis
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            client = self._async[loop] = redis.asyncio.Redis.from_url(
                self.url, retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)), **self._options())
        return client

    def _run(self, program: Program) -> Any:
        client = self._client()
        command = next(program)
        while True:
            try:
                command = program.send(self._send(client, command))
            except StopIteration as stop:
                return stop.value

    async def _arun(self, program: Program) -> Any:
        client = self._aclient()
        command = next(program)
        while True:
            try:
                command = program.send(await self._asend(client, command))
            except StopIteration as stop:
                return stop.value

    @staticmethod
    def _send(client: Any, command: Script | Batch) -> Any:
        import redis

        if isinstance(command, Script):
            words = (_SHAS[command.name], len(command.keys), *command.keys, *command.args)
            try:
                return client.evalsha(*words)
            except redis.exceptions.NoScriptError:
                client.script_load(SCRIPTS[command.name])
                return client.evalsha(*words)
        if len(command.commands) == 1:
            return [client.execute_command(*command.commands[0])]
        pipeline = client.pipeline(transaction=False)
        for words in command.commands:
            pipeline.execute_command(*words)
        return pipeline.execute()

    @staticmethod
    async def _asend(client: Any, command: Script | Batch) -> Any:
        import redis

        if isinstance(command, Script):
            words = (_SHAS[command.name], len(command.keys), *command.keys, *command.args)
            try:
                return await client.evalsha(*words)
            except redis.exceptions.NoScriptError:
                await client.script_load(SCRIPTS[command.name])
                return await client.evalsha(*words)
        if len(command.commands) == 1:
            return [await client.execute_command(*command.commands[0])]
        pipeline = client.pipeline(transaction=False)
        for words in command.commands:
            pipeline.execute_command(*words)
        return await pipeline.execute()
