"""TensorBoard event files of a run: per-epoch figures as scalars, the run's pictures as images.

Optional: needs the ``tensorboard`` package (``pip install "pyrovae[tensorboard]"``); the writer
is torch's :class:`torch.utils.tensorboard.SummaryWriter`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyrovae.errors import InputError

#: The extra that installs what this module needs.
EXTRA_HINT = 'pip install "pyrovae[tensorboard]"'


def require_tensorboard() -> None:
    """Raise the one-line :class:`~pyrovae.errors.InputError` naming the extra if ``tensorboard`` is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise InputError(f"--tensorboard needs the tensorboard package; install it with {EXTRA_HINT}, "
                         "or drop --tensorboard") from None


class TensorBoardLog:
    """Writes ``<folder>``'s event files; ``epoch(figures)`` after every epoch, ``pictures(paths)`` once.

    Args:
        folder: where the event files go, e.g. ``out / "tensorboard"``.

    Raises:
        InputError: one line naming the extra when the ``tensorboard`` package is missing.
    """

    def __init__(self, folder: str | Path) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder))

    def epoch(self, figures: dict[str, Any]) -> None:
        """Every numeric figure of one epoch as a scalar at step ``figures["epoch"]``."""
        step = int(figures["epoch"])
        for name, value in figures.items():
            if name != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def pictures(self, paths: Iterable[Path], step: int = 0) -> None:
        """The PNGs at ``paths`` as images named after their files (``samples``, ...)."""
        from matplotlib.image import imread

        for path in paths:
            image = imread(path)  # (H, W, 3 or 4) floats in [0, 1]
            self.writer.add_image(Path(path).stem, image[..., :3], step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


__all__ = ["TensorBoardLog", "require_tensorboard", "EXTRA_HINT"]
