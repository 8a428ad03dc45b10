"""Run the three provider emulators on loopback, on one background thread with its own event loop.

:func:`start_emulators` returns a context manager usable with ``with`` and with ``async with``. Both forms
start the Runware, fal and Eachlabs applications on free loopback ports of one dedicated thread, so a
blocking client in the caller (``requests``, ``fal_client.SyncClient``) never stalls the emulators, and the
caller's own event loop is neither used nor changed. The async form awaits startup and shutdown through
loop futures, without blocking the caller's loop and without borrowing a thread from its executor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

import attrs
from aiohttp import web

from photomaker_bridge.emulators._common import EmulatorSettings, EmulatorState, LoggedRequest, mean_seconds

if TYPE_CHECKING:
    from photomaker_bridge.providers.base import Provider

__all__ = ["EmulatorHandle", "Emulators", "RunwareEmulatorHandle", "start_emulators"]

PROVIDER_NAMES: tuple[str, ...] = ("runware", "fal", "eachlabs")
"""The emulators :func:`start_emulators` runs, in this order."""

ApplicationFactory = Callable[[EmulatorState], web.Application]

if TYPE_CHECKING:
    from photomaker_bridge.emulators.eachlabs import EachlabsOptions
    from photomaker_bridge.emulators.fal import FalOptions
    from photomaker_bridge.emulators.runware import RunwareOptions

    EmulatorOptions = RunwareOptions | FalOptions | EachlabsOptions

_SHUTDOWN_TIMEOUT = 0.5
"""Seconds a request still being answered at shutdown (an open WebSocket, a latency sleep) may take before
it is cancelled."""


def _application_factories() -> dict[str, ApplicationFactory]:
    # Imported here so that importing the package stays cheap and free of import cycles.
    from photomaker_bridge.emulators import eachlabs, fal, runware

    return {"runware": runware.create_app, "fal": fal.create_app, "eachlabs": eachlabs.create_app}


def _options_of(application: web.Application) -> EmulatorOptions | None:
    """The options object of the emulator an application serves."""
    from photomaker_bridge.emulators import eachlabs, fal, runware

    if runware.EMULATOR_KEY in application:
        return application[runware.EMULATOR_KEY].options
    if fal.FAL_EMULATOR_KEY in application:
        return application[fal.FAL_EMULATOR_KEY].options
    if eachlabs.EMULATOR_KEY in application:
        return application[eachlabs.EMULATOR_KEY].options
    return None


def _call_in_loop(loop: asyncio.AbstractEventLoop, function: Callable[[], None]) -> None:
    """Run ``function`` on the emulators' loop thread and wait for it, so it never races a handler."""
    if not loop.is_running() or _running_loop() is loop:
        function()
        return
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def call() -> None:
        try:
            function()
        except BaseException as error:
            done.set_exception(error)
        else:
            done.set_result(None)

    try:
        loop.call_soon_threadsafe(call)
    except RuntimeError:  # the loop closed in the meantime: nothing runs on it any more
        function()
        return
    done.result()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class EmulatorHandle:
    """One running emulator: where it listens, the key it accepts, and its live settings, log and counters.

    Attributes: ``name`` (``"runware"``, ``"fal"`` or ``"eachlabs"``), ``url`` (the base URL, for example
    ``http://127.0.0.1:54321``, no trailing slash) and ``state`` (the emulator's :class:`EmulatorState`).
    ``settings`` is the live :class:`EmulatorSettings` object: change it (for example append to
    ``settings.faults``) and the next request sees the change. The API key never appears in ``repr``.
    """

    __slots__ = ("_initial_settings", "_loop", "_options", "name", "state", "url")

    def __init__(self, name: str, url: str, state: EmulatorState, loop: asyncio.AbstractEventLoop,
                 options: EmulatorOptions | None = None) -> None:
        self.name = name
        self.url = url
        self.state = state
        self._loop = loop
        self._options = options
        self._initial_settings = attrs.evolve(state.settings, faults=list(state.settings.faults))

    @property
    def options(self) -> EmulatorOptions:
        """The emulator's own live options (``RunwareOptions``, ``FalOptions`` or ``EachlabsOptions``): the
        behaviours its provider leaves undocumented, each settled one way by default. Change a field and the
        next request sees it; ``reset()`` leaves options alone."""
        if self._options is None:
            raise RuntimeError(f"the {self.name} emulator was started without options")
        return self._options

    @property
    def settings(self) -> EmulatorSettings:
        """The live settings; changes apply to the next request."""
        return self.state.settings

    @property
    def api_key(self) -> str:
        """The key this emulator accepts (an emulator key, worthless anywhere else)."""
        return self.state.settings.api_key

    @property
    def log(self) -> list[LoggedRequest]:
        """Every request received so far, in order."""
        return self.state.log

    @property
    def counters(self) -> Counter[str]:
        """Event counts: ``requests``, ``route:<METHOD> <path>``, ``fault:<kind>`` and the emulator's own."""
        return self.state.counters

    def reset(self) -> None:
        """Back to how the emulator started: the initial settings (faults included), an empty log, zero
        counters, a re-seeded generator. Jobs already accepted are not forgotten."""

        def restore() -> None:
            settings = self.state.settings
            for field in attrs.fields(EmulatorSettings):
                value = getattr(self._initial_settings, field.name)
                setattr(settings, field.name, list(value) if isinstance(value, list) else value)
            self.state.reset()

        _call_in_loop(self._loop, restore)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, url={self.url!r})"


class RunwareEmulatorHandle(EmulatorHandle):
    """The Runware emulator, which also speaks WebSocket: ``ws_url`` for the SDK, ``rest_url`` for REST."""

    __slots__ = ()

    @property
    def rest_url(self) -> str:
        """The REST endpoint, ``http://127.0.0.1:PORT/v1`` (POST a JSON array of tasks)."""
        return f"{self.url}/v1"

    @property
    def ws_url(self) -> str:
        """The WebSocket endpoint, ``ws://127.0.0.1:PORT/v1`` (``Runware(api_key=..., url=ws_url)``)."""
        return "ws" + self.url.removeprefix("http") + "/v1"


@attrs.frozen
class Emulators:
    """The three running emulators, by name; iterating yields the handles in the order runware, fal,
    eachlabs."""

    runware: RunwareEmulatorHandle
    """The Runware emulator (REST and WebSocket)."""
    fal: EmulatorHandle
    """The fal emulator (queue API and storage), for ``fal_client`` through ``point_fal_client_at``."""
    eachlabs: EmulatorHandle
    """The Eachlabs emulator (create a prediction, then poll it)."""

    def __iter__(self) -> Iterator[EmulatorHandle]:
        yield self.runware
        yield self.fal
        yield self.eachlabs

    def __getitem__(self, name: str) -> EmulatorHandle:
        """The handle for a provider name, for tests parametrised over providers."""
        if name not in PROVIDER_NAMES:
            raise KeyError(f"no emulator named {name!r}; the emulators are: {', '.join(PROVIDER_NAMES)}")
        handle: EmulatorHandle = getattr(self, name)
        return handle

    def reset(self) -> None:
        """Reset every emulator (see :meth:`EmulatorHandle.reset`)."""
        for handle in self:
            handle.reset()

    def providers(self) -> list[Provider]:
        """The three provider adapters configured for these emulators: ``Bridge(providers=emulators.providers())``.

        Each points only its own clients at its emulator (fal's too: fal_client's process-wide hosts are left
        alone), and Eachlabs' client-side limit follows the emulator's cap (``settings.max_in_flight``).
        """
        from photomaker_bridge.providers.eachlabs import EachlabsProvider
        from photomaker_bridge.providers.fal import FalProvider
        from photomaker_bridge.providers.runware import RunwareProvider

        return [
            RunwareProvider(api_key=self.runware.api_key, base_url=self.runware.rest_url),
            FalProvider(key=self.fal.api_key, base_url=self.fal.url,
                        expected_seconds=mean_seconds(self.fal.settings.queue_time)
                        + mean_seconds(self.fal.settings.run_time)),
            # Seed the poll schedule with the emulator's own job time instead of the real service's ~21 s.
            EachlabsProvider(api_key=self.eachlabs.api_key, base_url=self.eachlabs.url,
                             expected_seconds=mean_seconds(self.eachlabs.settings.queue_time)
                             + mean_seconds(self.eachlabs.settings.run_time),
                             concurrency=self.eachlabs.settings.max_in_flight),
        ]


class _ServerThread:
    """One thread running one event loop that serves every emulator application."""

    def __init__(self, states: Mapping[str, EmulatorState], factories: Mapping[str, ApplicationFactory],
                 host: str, ports: Mapping[str, int] | None = None) -> None:
        self.states = states
        self.options: dict[str, EmulatorOptions | None] = {}
        """Each emulator's options object, once its application exists."""
        self._factories = factories
        self._host = host
        self._ports = dict(ports or {})
        self.ready: concurrent.futures.Future[dict[str, int]] = concurrent.futures.Future()
        """Resolves to the port of each emulator once all of them listen (or to the startup error)."""
        self.finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        """Resolves once the servers are cleaned up and the loop is closed."""
        # A loop factory keeps asyncio.Runner from installing the loop as this (the caller's) thread's loop.
        self._runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
        self.loop = self._runner.get_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._main, name="photomaker-bridge-emulators", daemon=True)

    def start(self) -> None:
        """Start the thread; ``ready`` says when the emulators listen."""
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the servers to shut down (safe from any thread, at any time, more than once)."""
        with contextlib.suppress(RuntimeError):  # RuntimeError: the loop is already closed
            self.loop.call_soon_threadsafe(self._stop.set)

    def join(self) -> None:
        """Wait for the thread to end."""
        self._thread.join()

    def _main(self) -> None:
        failure: BaseException | None = None
        try:
            self._runner.run(self._serve())
        except BaseException as error:
            if self.ready.done():
                failure = error
            else:
                self.ready.set_exception(error)
        try:
            self._runner.close()  # cancels leftover tasks, shuts down async generators, closes the loop
        except BaseException as error:
            failure = failure or error
        if failure is None:
            self.finished.set_result(None)
        else:
            self.finished.set_exception(failure)

    async def _serve(self) -> None:
        runners: list[web.AppRunner] = []
        try:
            ports: dict[str, int] = {}
            for name, state in self.states.items():
                application = self._factories[name](state)
                self.options[name] = _options_of(application)
                runner = web.AppRunner(application, handle_signals=False, access_log=None,
                                       shutdown_timeout=_SHUTDOWN_TIMEOUT)
                await runner.setup()
                runners.append(runner)
                await web.TCPSite(runner, self._host, self._ports.get(name, 0)).start()
                ports[name] = int(runner.addresses[0][1])
            self.ready.set_result(ports)
            await self._stop.wait()
        finally:
            for runner in reversed(runners):
                await runner.cleanup()


def _check_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the emulators listen on loopback only: use 127.0.0.1 or ::1, not {host!r}")


class _EmulatorsContext:
    """What :func:`start_emulators` returns: enter it with ``with`` or ``async with``, once."""

    def __init__(self, settings: Mapping[str, EmulatorSettings], host: str,
                 ports: Mapping[str, int] | None = None) -> None:
        self._settings = settings
        self._host = host
        self._ports = ports
        self._server: _ServerThread | None = None

    def _begin(self) -> _ServerThread:
        if self._server is not None:
            raise RuntimeError("this start_emulators() context was already used; call it again")
        states = {name: EmulatorState(name=name, settings=self._settings[name]) for name in PROVIDER_NAMES}
        self._server = _ServerThread(states, _application_factories(), self._host, self._ports)
        self._server.start()
        return self._server

    def _emulators(self, server: _ServerThread, ports: Mapping[str, int]) -> Emulators:
        address = f"[{self._host}]" if ":" in self._host else self._host

        def state(name: str) -> EmulatorState:
            return server.states[name]

        def url(name: str) -> str:
            return f"http://{address}:{ports[name]}"

        return Emulators(
            runware=RunwareEmulatorHandle("runware", url("runware"), state("runware"), server.loop,
                                          server.options["runware"]),
            fal=EmulatorHandle("fal", url("fal"), state("fal"), server.loop, server.options["fal"]),
            eachlabs=EmulatorHandle("eachlabs", url("eachlabs"), state("eachlabs"), server.loop,
                                    server.options["eachlabs"]),
        )

    def _started(self) -> _ServerThread:
        if self._server is None:
            raise RuntimeError("the emulators were not started")
        return self._server

    def __enter__(self) -> Emulators:
        server = self._begin()
        try:
            ports = server.ready.result()
        except BaseException:
            server.request_stop()
            server.join()
            raise
        return self._emulators(server, ports)

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        server = self._started()
        server.request_stop()
        server.join()
        server.finished.result()

    async def __aenter__(self) -> Emulators:
        server = self._begin()
        try:
            ports = await asyncio.wrap_future(server.ready)
        except BaseException:
            server.request_stop()
            await asyncio.shield(asyncio.wrap_future(server.finished))
            server.join()
            raise
        return self._emulators(server, ports)

    async def __aexit__(self, error_type: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        server = self._started()
        server.request_stop()
        await asyncio.shield(asyncio.wrap_future(server.finished))
        server.join()  # the thread has only to return once `finished` is set


def start_emulators(*, runware: EmulatorSettings | None = None, fal: EmulatorSettings | None = None,
                    eachlabs: EmulatorSettings | None = None, seed: int | None = None,
                    host: str = "127.0.0.1", ports: Mapping[str, int] | None = None) -> _EmulatorsContext:
    """Start the Runware, fal and Eachlabs emulators on free loopback ports; use with ``with`` or
    ``async with``, which yields an :class:`Emulators`.

    Each ``*_settings`` object you pass becomes that emulator's live settings (``handle.settings is
    passed``); an emulator you pass nothing for gets default settings with a fresh random API key.
    ``seed``, when given, replaces the seed of all three. ``host`` must be a loopback address (``127.0.0.1``
    or ``::1``); anything else raises ``ValueError``. ``ports`` fixes an emulator's port by name
    (``{"runware": 8701}``); the others pick a free one.

    All three run on one background thread with its own event loop, and leaving the block stops the
    servers, closes the loop and joins the thread.
    """
    _check_loopback(host)
    chosen = {"runware": runware, "fal": fal, "eachlabs": eachlabs}
    settings = {name: value if value is not None else EmulatorSettings() for name, value in chosen.items()}
    if seed is not None:
        for value in settings.values():
            value.seed = seed
    return _EmulatorsContext(settings, host, ports)
