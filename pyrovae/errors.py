"""The base of every error a user can fix: the message names the problem and the fix, on one line."""

from __future__ import annotations


class PyrovaeError(Exception):
    """A user-facing error: bad input, an unusable checkpoint, a run that cannot go on.

    The command line prints ``pyrovae: error: <message>`` and exits with code 2 for these,
    without a traceback; library callers can catch this one class.
    """


class InputError(PyrovaeError, ValueError):
    """Data, labels or settings that the model cannot use (NaN, wrong shape, outside the support)."""


class NonFiniteError(PyrovaeError, FloatingPointError):
    """Training met too many non-finite (NaN or infinite) losses or gradients in a row."""


class TrainingInterrupted(PyrovaeError):
    """Training stopped at a step boundary because a signal (Ctrl-C, SIGTERM) asked it to.

    Attributes:
        signal_number: the signal received, e.g. ``signal.SIGINT``.
        exit_code: the shell's convention for it, ``128 + signal_number`` (130, 143).
    """

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_code = 128 + signal_number


__all__ = ["PyrovaeError", "InputError", "NonFiniteError", "TrainingInterrupted"]
