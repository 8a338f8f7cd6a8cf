"""Termination by SIGTERM/SIGHUP as an exception, raised again at safe points if it was swallowed.

A signal handler's exception is lost when it fires inside a ``__del__``, a weakref callback or a
ctypes callback (numba's compiler calls back into Python through one): Python passes it to
``sys.unraisablehook`` and goes on. Long loops call :func:`check_terminated` between blocks, so such a
run still stops before it writes its output; :func:`termination_handlers` installs the handlers
with a hook that keeps such a swallowed termination off stderr (it is raised again, once).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

_received: int | None = None


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM or SIGHUP so that ``finally`` blocks run (like SIGINT)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_terminated(signum, frame):  # noqa: ARG001 - signal handler signature
    """Signal handler: remember the signal, then raise :class:`Terminated`."""
    global _received
    _received = signum
    raise Terminated(signum)


def check_terminated() -> None:
    """Raise :class:`Terminated` if a termination signal came and its exception was swallowed."""
    if _received is not None:
        raise Terminated(_received)


def _quiet_unraisable(previous):
    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, Terminated):
            return  # recorded in _received; check_terminated() raises it at the next safe point
        previous(unraisable)

    return hook


@contextlib.contextmanager
def termination_handlers(signums=(signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Turn ``signums`` into :class:`Terminated` for the block, then restore the handlers and forget
    a pending termination. Outside the main thread (where handlers cannot be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, raise_terminated) for s in signums}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_unraisable(previous_hook)
    try:
        yield
    finally:
        clear_terminated()
        sys.unraisablehook = previous_hook
        for s, handler in previous.items():
            signal.signal(s, handler)


def clear_terminated() -> None:
    """Forget a handled termination (a new command line starts clean)."""
    global _received
    _received = None
