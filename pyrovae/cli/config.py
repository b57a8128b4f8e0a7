"""The training configuration: one frozen dataclass, filled from defaults, a TOML file and flags."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pyrovae.errors import PyrovaeError

#: The discrete-latent models (pyrovae.models.vqvae), which train through the VAE's path.
VQ_MODELS = ("vqvae", "vqvae2")

# The files a training run writes into its output folder.
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"


class ConfigError(PyrovaeError, ValueError):
    """A configuration value is unknown or out of range; the message names it and the fix."""


def refuse_to_overwrite(paths: Iterable[Path], overwrite: bool, options: str) -> None:
    """Stop with one line if any of ``paths`` (a command's outputs) exists and ``overwrite`` is
    off, naming ``--overwrite`` and the ``options`` that would give other file names."""
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]} exists; pass --overwrite to replace it, or change {options}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``pyrovae train`` needs; stored whole in every checkpoint so that the model
    can be rebuilt from the checkpoint alone."""

    dataset: str = "mnist-small"
    data_root: str | None = None
    download: bool = True
    train_size: int | None = None
    binarize: bool = False
    network: str = "mlp"
    hidden: int | tuple[int, ...] = 400
    activation: str = "softplus"
    encoder_scale: str = "softplus"
    mean_init: bool = True
    latent_dim: int = 16
    likelihood: str = "bernoulli"
    prior: str = "normal"
    num_components: int = 10
    pretrain_epochs: int = 0
    guide: str = "diagonal"
    num_flows: int = 2
    rank: int = 2
    objective: str = "elbo"
    num_particles: int = 1
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    beta: float = 1.0
    warmup_epochs: float = 0.0
    seed: int = 0
    device: str = "auto"
    out: str = "runs/vae"
    progress: bool = True
    checkpoint_every: int = 0
    max_nonfinite_steps: int = 10
    compile: bool | None = None
    # Semi-supervised and conditional models (pyrovae.models.m2, pyrovae.models.cvae); ignored by --model vae.
    model: str = "vae"
    labels: int = 100
    validation_size: int = 1000
    alpha: float = 50.0
    quadrants: int = 1
    baseline_epochs: int = 10
    is_samples: int = 20
    # TensorBoard event files in <out>/tensorboard (pyrovae.plots.tensorboard); needs the tensorboard extra.
    tensorboard: bool = False
    # Networks and likelihoods for any image shape (pyrovae.nn.conv, pyrovae.likelihoods.discrete).
    channels: tuple[int, ...] | None = None
    res_blocks: int = 0
    logistic_components: int = 5
    # Data sources (pyrovae.data.sources): image folders, resizing, streaming.
    image_size: int | None = None
    grayscale: bool = False
    stream: bool | None = None
    workers: int | None = None
    # Denoising (pyrovae.guides.corrupted), for --model vae, ae and m2: NAME:VALUE, e.g. gaussian:0.3, mask:0.25.
    corrupt: str | None = None
    # VQ-VAE and VQ-VAE-2 (pyrovae.models.vqvae); ignored by the other models.
    codebook_size: int = 256
    code_dim: int = 16
    code_map: int | None = None
    prior_epochs: int = 10
    ema: bool = True
    commitment: float = 0.25
    restart_after: int = 100

    def __post_init__(self) -> None:
        self._check_network_shape()
        positive = {"latent_dim": self.latent_dim, "epochs": self.epochs,
                    "batch_size": self.batch_size, "num_particles": self.num_particles,
                    "num_components": self.num_components, "num_flows": self.num_flows, "rank": self.rank}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.train_size is not None and self.train_size < 1:
            raise ConfigError(f"--train-size must be at least 1, got {self.train_size}")
        for name in ("lr", "beta", "warmup_epochs"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"--checkpoint-every must be 0 (every epoch only) or a number of steps, "
                              f"got {self.checkpoint_every}")
        if self.max_nonfinite_steps < 1:
            raise ConfigError(f"--max-nonfinite-steps must be at least 1, got {self.max_nonfinite_steps}")
        if not self.out:
            raise ConfigError("--out must name a folder, got an empty string")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.beta < 0:
            raise ConfigError(f"--beta must be non-negative, got {self.beta}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"--warmup-epochs must be non-negative, got {self.warmup_epochs}")
        if self.pretrain_epochs < 0:
            raise ConfigError(f"--pretrain-epochs must be 0 (no pretraining) or more, got {self.pretrain_epochs}")
        if self.pretrain_epochs and (self.prior not in ("gmm", "gmm-enum") or self.model != "vae"):
            raise ConfigError(f"--pretrain-epochs starts a mixture prior from an autoencoder's codes; it needs "
                              f"--prior gmm or gmm-enum with --model vae, got --prior {self.prior} --model "
                              f"{self.model}: drop --pretrain-epochs or change the prior")
        if self.model not in ("vae", "ae", "m2", "cvae", *VQ_MODELS):
            raise ConfigError(f"--model must be vae, ae, m2 or cvae, or vqvae/vqvae2 for discrete codes, got {self.model!r}")
        self._check_vq()
        if self.labels < 1 or self.is_samples < 1 or self.baseline_epochs < 1:
            raise ConfigError("--labels, --is-samples and --baseline-epochs must be at least 1, got "
                              f"{self.labels}, {self.is_samples} and {self.baseline_epochs}")
        if self.validation_size < 0:
            raise ConfigError(f"--validation-size must be non-negative, got {self.validation_size}")
        if self.alpha < 0:
            raise ConfigError(f"--alpha must be non-negative, got {self.alpha}")
        if self.encoder_scale not in ("softplus", "exp"):
            raise ConfigError(f"--encoder-scale must be softplus or exp, got {self.encoder_scale!r}")
        if self.quadrants not in (1, 2, 3):
            raise ConfigError(f"--quadrants (visible quadrants) must be 1, 2 or 3, got {self.quadrants}")
        if self.objective == "tcvae" and self.guide != "diagonal":  # factors
            raise ConfigError(f"--objective tcvae estimates the total correlation from diagonal Normal posteriors; "
                              f"--guide {self.guide} has none: use --guide diagonal")
        if (self.image_size is not None and self.image_size < 1) or (self.workers is not None and self.workers < 0):
            raise ConfigError(f"--image-size must be at least 1 and --workers at least 0, got {self.image_size} "
                              f"and {self.workers}")
        # autoencoders and denoising (pyrovae.cli.autoencoder)
        if self.model == "ae" and (self.guide != "diagonal" or self.objective != "elbo"):
            raise ConfigError(f"--model ae has its own point-mass guide and trains with --objective elbo; drop "
                              f"--guide {self.guide} / --objective {self.objective}")
        if self.model == "ae" and self.prior == "vamp":
            raise ConfigError("--prior vamp mixes the guide's posteriors, which are point masses for --model ae; "
                              "choose another --prior (flat: plain autoencoder, normal: code penalty)")
        if self.prior == "flat" and self.model != "ae":
            raise ConfigError(f"--prior flat is improper and gives no ELBO; use it with --model ae (a plain "
                              f"autoencoder), not --model {self.model}")
        if self.corrupt is not None:
            if self.model == "cvae":
                raise ConfigError("--corrupt applies to --model vae, ae and m2; drop it for --model cvae")
            from pyrovae.cli.registry import build_corruption  # the one table of names

            build_corruption(self.corrupt)
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise ConfigError(f"--device must be auto, cpu, cuda or mps, got {self.device!r}")

    def _check_network_shape(self) -> None:
        """``hidden`` and ``channels`` as tuples of positive widths (a TOML list or a flag's
        ``500,500``); one hidden layer stays an int, as in checkpoints from before lists."""
        hidden = (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)
        if not hidden or any(not isinstance(h, int) or h < 1 for h in hidden):
            raise ConfigError(f"--hidden must be one or more positive widths, e.g. 400 or 500,500, got {self.hidden}")
        object.__setattr__(self, "hidden", hidden[0] if len(hidden) == 1 else hidden)
        if len(hidden) > 1 and self.model != "vae":
            raise ConfigError(f"--hidden with several widths builds the networks of --model vae; --model "
                              f"{self.model} takes one width, e.g. --hidden 500")
        if self.channels is not None:
            channels = (self.channels,) if isinstance(self.channels, int) else tuple(self.channels)
            if not channels or any(not isinstance(c, int) or c < 1 for c in channels):
                raise ConfigError(f"--channels must be one or more positive widths, e.g. 32,64,128, "
                                  f"got {self.channels}")
            object.__setattr__(self, "channels", channels)
        if self.res_blocks < 0:
            raise ConfigError(f"--res-blocks must be 0 or more, got {self.res_blocks}")
        if self.logistic_components < 1:
            raise ConfigError(f"--logistic-components must be at least 1, got {self.logistic_components}")

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        """The hidden layer widths as a tuple, e.g. ``(400,)`` or ``(500, 500)``."""
        return (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)

    def _check_vq(self) -> None:
        """The VQ-VAE settings (--codebook-size, --code-dim, --code-map, --prior-epochs, ...)."""
        if self.codebook_size < 2:
            raise ConfigError(f"--codebook-size must be at least 2 codes, got {self.codebook_size}")
        if self.code_dim < 1:
            raise ConfigError(f"--code-dim must be at least 1, got {self.code_dim}")
        if self.code_map is not None and self.code_map < 1:
            raise ConfigError(f"--code-map must be at least 1 (the code map's height), got {self.code_map}")
        if self.model in VQ_MODELS and self.compile:
            raise ConfigError(f"--compile cannot trace --model {self.model}: the codebook's moving averages and "
                              "restarts change in every step; drop --compile")
        if self.model in VQ_MODELS and self.objective != "elbo":
            raise ConfigError(f"--model {self.model} has a point-mass guide, for which --objective "
                              f"{self.objective} equals the ELBO; use --objective elbo")
        if self.prior_epochs < 0 or self.restart_after < 0 or self.commitment < 0:
            raise ConfigError("--prior-epochs, --restart-after and --commitment must be non-negative, got "
                              f"{self.prior_epochs}, {self.restart_after} and {self.commitment}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON- and TOML-friendly)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a dict, refusing unknown keys with a message naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)} in {source}; "
                              f"valid settings: {', '.join(sorted(known))}")
        return cls(**values)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file of ``TrainConfig`` settings (top level, or under a ``[train]`` table)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            values = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check the path given to --config") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML ({e}); fix the syntax") from None
    values = values.get("train", values)
    return {k.replace("-", "_"): v for k, v in values.items()}


__all__ = ["TrainConfig", "ConfigError", "read_toml", "VQ_MODELS"]
