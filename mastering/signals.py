"""Termination by SIGTERM/SIGHUP as an exception, raised again at safe points if it was swallowed.

A signal handler's exception is lost when it fires inside a ``__del__`` or a weakref callback
(Python prints "Exception ignored" and goes on); long loops call :func:`check_terminated` between
blocks, so such a run still stops before it writes its output.
"""

from __future__ import annotations

import signal

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


def clear_terminated() -> None:
    """Forget a handled termination (a new command line starts clean)."""
    global _received
    _received = None
