"""SIGINT (Ctrl-C) and SIGTERM (a scheduler's preemption, `kill`) stop a run; what was written is kept.

`on_signals()` (the command's first act) makes both raise `Stopped` in the main thread. Python
runs the handler between two bytecodes, wherever the main thread is: a compilation under way
ends first. Where those bytecodes are inside a bare `except:` (JAX's tracing has several, run at
every shape check) the exception is lost there, so the signal is recorded too, and `check()`,
which the train loop calls before every step, raises it again.
"""

import signal

# Exit statuses of a run stopped by a signal, as a shell reports them (128 + the signal's number).
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
_received: list[int] = []  # the stop signals this process got, in order


class Stopped(KeyboardInterrupt):
    """A KeyboardInterrupt, so that Hydra and the engine let it through and every `finally` runs."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def on_signals() -> None:
    def stop(signum, frame):
        _received.append(signum)
        raise Stopped(signum)

    for signum in EXIT_STATUS:
        signal.signal(signum, stop)


def check() -> None:
    """Raise `Stopped` if a stop signal came, though its first exception was lost."""
    if _received:
        raise Stopped(_received[0])
