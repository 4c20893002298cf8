"""Graceful shutdown on a signal, the asyncio way: :func:`stop_on_signal`."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable, Optional, Union, cast

if TYPE_CHECKING:
    from . import _native, blocking

__all__ = ["stop_on_signal"]

_log = logging.getLogger("stateful_route")


def stop_on_signal(
    server: Union[_native.ServerDriver, blocking.ServerDriver],
    *,
    signals: Iterable[int] = (signal.SIGTERM,),
    loop: Optional[asyncio.AbstractEventLoop] = None,
) -> asyncio.Future[signal.Signals]:
    """Stops ``server`` gracefully when the process gets one of ``signals`` (SIGTERM, what
    Kubernetes sends a pod it stops, by default) and returns a future that is done once the
    stop has finished; its result is the signal that came.

    It installs ``loop.add_signal_handler`` for each signal (``loop``: the running loop by
    default, so call it from a coroutine or pass ``loop``; signal handlers can only be set from
    the main thread). On the first of them it removes its handlers again (a second signal then
    gets the default action, as before) and runs ``await server.stop()`` once: the pod publishes
    ``DENY_NEW_CALL``, waits ``drain_seconds`` and publishes ``SHUTDOWN``. A blocking
    ``stateful_route.blocking.ServerDriver`` is stopped on the loop's default executor, so the
    loop keeps running meanwhile. If the stop fails, the future holds its exception.
    Cancelling the future before a signal came removes the handlers and stops nothing.

    Set the pod's ``terminationGracePeriodSeconds`` above ``drain_seconds`` so the drain
    finishes before Kubernetes kills the process::

        async def main() -> None:
            async with stateful_route.ServerDriver(store, info, config) as server:
                stopped = stateful_route.stop_on_signal(server)
                ...  # serve until SIGTERM
                await stopped
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    wanted = [signal.Signals(s) for s in signals]
    done: asyncio.Future[signal.Signals] = loop.create_future()
    installed: list[signal.Signals] = []

    def uninstall() -> None:
        while installed:
            loop.remove_signal_handler(installed.pop())

    def settle(stop: asyncio.Future[None], signum: signal.Signals) -> None:
        failure = asyncio.CancelledError() if stop.cancelled() else stop.exception()
        if done.done():
            return
        if failure is not None:
            done.set_exception(failure)
        else:
            done.set_result(signum)

    def on_signal(signum: signal.Signals) -> None:
        if not installed or done.done():
            return
        uninstall()
        _log.info("stopping the pod on %s", signum.name)
        stop: asyncio.Future[None]
        if getattr(server, "_blocking", False):
            stop = loop.run_in_executor(None, cast(Callable[[], None], server.stop))
        else:
            stop = asyncio.ensure_future(cast(Awaitable[None], server.stop()), loop=loop)
        stop.add_done_callback(lambda f: settle(f, signum))

    done.add_done_callback(lambda _: uninstall())
    try:
        for s in wanted:
            loop.add_signal_handler(s, on_signal, s)
            installed.append(s)
    except BaseException:
        uninstall()
        raise
    return done
