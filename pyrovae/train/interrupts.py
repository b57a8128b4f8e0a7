"""Turning Ctrl-C and SIGTERM into a clean stop at the next step boundary."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def stop_on_signals(trainer: Any, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM only ask ``trainer`` to stop after its current step.

    The handler sets a flag (``trainer.request_stop``) and nothing else, so no tensor is left
    half-updated; ``fit`` then raises :class:`~pyrovae.errors.TrainingInterrupted`, whose
    ``exit_code`` is 130 for SIGINT and 143 for SIGTERM, and the caller saves a checkpoint. A
    second signal of the same kind falls back to the previous handler (e.g. a second Ctrl-C
    raises ``KeyboardInterrupt`` at once). Outside the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in signals}

    def handler(number: int, frame: Any) -> None:
        trainer.request_stop(number)
        signal.signal(number, previous[number])

    for s in signals:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


__all__ = ["stop_on_signals"]
