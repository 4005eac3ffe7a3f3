"""What the console shows of a run's log; `train.log` keeps every record."""

import logging
import sys


class WithoutLibraryTracebacks(logging.Filter):
    """orbax logs a failed background write (a full disk) from each of its threads through absl,
    each with a traceback: 300 lines or more. cnnlab's `CheckpointError` says it in one sentence;
    the tracebacks stay in train.log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "absl" and record.levelno >= logging.ERROR and record.exc_info)


def without_closed_loop_noise() -> None:
    """A failed orbax read leaves tensorstore callbacks that still post to the asyncio loop orbax
    closed: 40 or more "Event loop is closed" tracebacks after the one message that matters.
    Python reports them as unraisable; those are dropped, every other one is reported as before."""
    default = sys.unraisablehook

    def hook(unraisable) -> None:
        value = unraisable.exc_value
        if not (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"):
            default(unraisable)

    sys.unraisablehook = hook
