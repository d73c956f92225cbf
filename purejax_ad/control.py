"""What every training entry point shares: exit statuses, the default output directory, stop signals.

Used by :mod:`purejax_ad.run` (``python -m purejax_ad.train``) and :mod:`purejax_ad.sac`.
"""

from __future__ import annotations

import datetime
import signal
import threading
from pathlib import Path

#: Process exit statuses: complete; invalid input; stopped early (signal, ``--stop-after-steps``);
#: stopped on a non-finite loss or parameter.
EXIT_OK, EXIT_BAD_INPUT, EXIT_STOPPED, EXIT_NONFINITE = 0, 2, 3, 4


def default_run_dir(env: str, algo: str) -> Path:
    """``runs/<env>-<algo>-<timestamp>/`` (``/`` in ``env`` becomes ``_``; the timestamp is local time)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{env.replace('/', '_')}-{algo}-{stamp}"


class Stopped(BaseException):
    """Raised in the main thread by :class:`StopSignals` with ``raise_in_main=True``; ``str()`` is the signal's name.

    A ``BaseException``, like ``KeyboardInterrupt``, so that ``except Exception`` in library code lets it through.
    """


class StopSignals:
    """Context manager for SIGINT / SIGTERM (main thread only; handlers are restored on exit).

    By default a signal only sets :attr:`received` (the signal's name, e.g. ``"SIGTERM"``), so a host
    loop can finish its current step and stop cleanly. With ``raise_in_main=True`` the handler also
    raises :class:`Stopped` (for code that blocks inside one long library call).
    """

    def __init__(self, raise_in_main: bool = False):
        self.received: str | None = None
        self._raise = raise_in_main
        self._previous = {}

    def _handle(self, signum, _frame):
        self.received = signal.Signals(signum).name
        if self._raise:
            raise Stopped(self.received)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
