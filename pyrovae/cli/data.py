"""The data of a run, resolved the same way by ``train``, ``evaluate`` and ``train --resume``."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from pyrovae.cli.config import ConfigError, TrainConfig
from pyrovae.data.datasets import DatasetError, ImageData
from pyrovae.data.sources import StreamedData, canonical_dataset, known_names, load_split, open_data


def with_absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with ``--dataset`` (when a path) and ``--data-root`` made absolute, as a checkpoint stores them."""
    root = None if config.data_root is None else str(Path(config.data_root).expanduser().resolve())
    return config.replace(dataset=canonical_dataset(config.dataset), data_root=root)


def _check_exists(config: TrainConfig, source: str) -> None:
    if config.dataset in known_names() or Path(config.dataset).exists():
        return
    raise DatasetError(f"the data of {source}, {config.dataset}, does not exist; put it back there or point "
                       f"at its new place with --dataset PATH")


def load_run_data(config: TrainConfig, source: str = "the run") -> ImageData | StreamedData:
    """Train and test data of ``config`` (in memory, or streamed when too large or ``--stream``)."""
    _check_exists(config, source)
    data = open_data(config.dataset, root=config.data_root, download=config.download, image_size=config.image_size,
                     grayscale=config.grayscale, seed=config.seed, stream=config.stream,
                     train_size=config.train_size)
    if len(data.image_shape) == 1 and config.network != "mlp":
        raise ConfigError(f"{config.dataset} holds tabular rows of {data.image_shape[0]} numbers, not images; "
                          f"--network {config.network} needs images: use --network mlp")
    return data


def load_run_split(config: TrainConfig, split: str, limit: int | None, source: str) -> tuple[Tensor, Tensor | None]:
    """One split of ``config``'s data in memory, the images its run trained or was tested on."""
    _check_exists(config, source)
    return load_split(config.dataset, root=config.data_root, download=config.download, image_size=config.image_size,
                      grayscale=config.grayscale, seed=config.seed, split=split, limit=limit,
                      train_size=config.train_size)


__all__ = ["load_run_data", "load_run_split", "with_absolute_paths"]
