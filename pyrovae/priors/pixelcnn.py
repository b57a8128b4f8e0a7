"""A gated PixelCNN over code maps: the learned prior of VQ-VAE, trained after the autoencoder.

``p(map) = prod_i p(k_i | k_<i)`` in raster order, each factor a softmax over the ``K`` codes
from a gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders"): a vertical stack that sees the rows above and a horizontal stack that sees the
positions to the left in the same row, so there is no blind spot. An optional context map (the
top level of VQ-VAE-2) enters every gated layer as a bias, resized to the map.

The two-stage recipe (van den Oord et al. 2017): the prior is uniform until :meth:`PixelCNNPrior.start_fit`
is called, so the autoencoder trains against ``KL = h * w * log K``; then the codes of the
training set, computed once with the encoder frozen, train the PixelCNN by maximum likelihood
(:class:`CodeMapModel`, a Pyro model with the codes observed, which :class:`~pyrovae.Trainer` fits).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import pyro
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor, nn

from pyrovae.priors.codes import CodePrior, UniformCodePrior
from pyrovae.nn.rebuild import Rebuildable

if TYPE_CHECKING:
    from pyrovae.guides.quantizer import VectorQuantizer


def _shift_down(t: Tensor) -> Tensor:
    return F.pad(t, (0, 0, 1, 0))[:, :, :-1]


def _shift_right(t: Tensor) -> Tensor:
    return F.pad(t, (1, 0))[..., :-1]


class GatedLayer(nn.Module):
    """One gated layer: ``tanh(a) * sigmoid(b)`` on a vertical and a horizontal stack.

    The vertical output at row ``i`` has seen rows ``<= i``; it reaches the horizontal stack
    shifted down one row, so the horizontal output at ``(i, j)`` has seen rows ``< i`` and, in
    row ``i``, columns ``< j`` (the first layer) or ``<= j`` of features that saw only ``< j``.
    """

    def __init__(self, channels: int, kernel_size: int, first: bool, context_channels: int = 0) -> None:
        super().__init__()
        self.half = kernel_size // 2
        self.first = first
        self.vertical = nn.Conv2d(channels, 2 * channels, (self.half + 1, kernel_size))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal = nn.Conv2d(channels, 2 * channels, (1, self.half + 1))
        self.horizontal_out = nn.Conv2d(channels, channels, 1)
        self.context = nn.Conv2d(context_channels, 2 * channels, 1) if context_channels else None

    @staticmethod
    def _gate(t: Tensor) -> Tensor:
        a, b = t.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, v: Tensor, h: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        v_pre = self.vertical(F.pad(v, (self.half, self.half, self.half, 0)))
        h_pre = self.horizontal(F.pad(h, (self.half, 0, 0, 0)))
        if self.first:
            h_pre = _shift_right(h_pre)
        h_pre = h_pre + self.vertical_to_horizontal(_shift_down(v_pre))
        if self.context is not None:
            bias = self.context(context)
            v_pre, h_pre = v_pre + bias, h_pre + bias
        h_out = self.horizontal_out(self._gate(h_pre))
        return self._gate(v_pre), h_out if self.first else h_out + h


class GatedPixelCNN(Rebuildable, nn.Module):
    """Logits ``(n, K, h, w)`` of ``p(k_ij | k_<ij [, context])`` for index maps ``(n, h, w)``.

    Args:
        num_codes: ``K``.
        channels: feature maps per stack.
        num_layers: gated layers (the first masks the current position).
        kernel_size: odd width of the convolutions.
        context_channels: channels of the context map, or 0.
    """

    def __init__(self, num_codes: int, channels: int = 64, num_layers: int = 5, kernel_size: int = 3,
                 context_channels: int = 0) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_codes, channels)
        self.layers = nn.ModuleList(GatedLayer(channels, kernel_size, i == 0, context_channels)
                                    for i in range(num_layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, num_codes, 1))

    def forward(self, indices: Tensor, context: Tensor | None = None) -> Tensor:
        x = self.embed(indices).movedim(-1, 1)
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h, context)
        return self.head(h)


class PixelCNNPrior(UniformCodePrior):
    """``p(code map [| context])`` from a :class:`GatedPixelCNN`; uniform until fitted.

    Args:
        quantizer: the codebook (shared with the encoder).
        map_shape: ``(h, w)``.
        channels, num_layers, kernel_size: the PixelCNN's size.
        context_shape: ``(D_top, h_top, w_top)`` of a flattened context code map (VQ-VAE-2's
            top level), resized to ``map_shape`` by nearest-neighbour upsampling; None: unconditional.

    The buffer ``fitted`` (False at construction, kept in checkpoints) switches from the uniform
    prior to the PixelCNN: :meth:`start_fit` sets it.
    """

    def __init__(self, quantizer: VectorQuantizer, map_shape: tuple[int, int], channels: int = 64,
                 num_layers: int = 5, kernel_size: int = 3, context_shape: tuple[int, int, int] | None = None) -> None:
        super().__init__(quantizer, map_shape)
        self.context_shape = None if context_shape is None else tuple(context_shape)
        self.net = GatedPixelCNN(quantizer.codebook_size, channels, num_layers, kernel_size,
                                 0 if context_shape is None else context_shape[0])
        self.register_buffer("fitted", torch.tensor(False))

    def start_fit(self) -> None:
        """From now on ``log_prob`` and ``sample`` use the PixelCNN."""
        self.fitted.fill_(True)

    def _context_map(self, context: Tensor | None) -> Tensor | None:
        if self.context_shape is None:
            return None
        if context is None:
            raise ValueError("this PixelCNN prior is conditional: pass the context code map")
        maps = context.reshape(-1, *self.context_shape)
        return F.interpolate(maps, size=self.map_shape, mode="nearest")

    def logits(self, indices: Tensor, context: Tensor | None = None) -> Tensor:
        """``(n, K, h, w)`` logits for ``(n, h, w)`` index maps."""
        return self.net(indices, self._context_map(context))

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        if not self.fitted:
            return super().log_prob(z, context)
        return CodePrior.log_prob(self, z, context)

    def index_log_prob(self, indices: Tensor, context: Tensor | None = None) -> Tensor:
        if not self.fitted:
            return super().index_log_prob(indices, context)
        log_p = self.logits(indices, context).log_softmax(1)
        return log_p.gather(1, indices.unsqueeze(1)).squeeze(1).sum((-1, -2))

    @torch.no_grad()
    def sample_indices(self, num_samples: int, context: Tensor | None = None) -> Tensor:
        if not self.fitted:
            return super().sample_indices(num_samples, context)
        h, w = self.map_shape
        indices = torch.zeros(num_samples, h, w, dtype=torch.long, device=self.quantizer.codebook.device)
        context_map = self._context_map(context)
        for i in range(h):
            for j in range(w):
                logits = self.net(indices, context_map)[:, :, i, j]
                indices[:, i, j] = torch.distributions.Categorical(logits=logits).sample()
        return indices


class CodeIndices(TorchDistribution):
    """A code prior over index maps, event shape ``(h, w)``: the observed site of :class:`CodeMapModel`."""

    arg_constraints: ClassVar[dict] = {}
    support = constraints.integer_interval(0, 1 << 30)

    def __init__(self, prior: CodePrior, context: Tensor | None, batch_shape: torch.Size) -> None:
        self.prior = prior
        self.context = context
        super().__init__(torch.Size(batch_shape), torch.Size(prior.map_shape), validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        return self.prior.index_log_prob(value, self.context)

    def sample(self, sample_shape: tuple[int, ...] = ()) -> Tensor:
        return self.prior.sample_indices(self.batch_shape.numel(), self.context)


class CodeMapModel(Rebuildable, nn.Module):
    """The prior stage as a Pyro model: ``codes ~ p(codes [| context])``, observed; no latent.

    ``Trainer(CodeMapModel(prior)).fit(train_codes, test_codes)`` maximises the log-likelihood of
    the code maps; the per-epoch ``elbo`` figures are then ``log p(codes)`` per map.

    Args:
        prior: the code prior to fit (its ``start_fit`` is called here).
        name: the PixelCNN's prefix in Pyro's param store (``SVI`` with ``pyro.optim`` finds it there).
    """

    def __init__(self, prior: PixelCNNPrior, name: str = "code_prior") -> None:
        super().__init__()
        self.prior = prior
        self.name = name
        prior.start_fit()

    def model(self, codes: Tensor, context: Tensor | None = None) -> None:
        """codes ~ p(codes | context), observed: ``(batch, h, w)`` long."""
        pyro.module(self.name, self.prior.net)
        with pyro.plate("data", codes.shape[0]):
            pyro.sample("codes", CodeIndices(self.prior, context, codes.shape[:1]), obs=codes)

    def guide(self, codes: Tensor, context: Tensor | None = None) -> None:
        """Nothing is latent."""


__all__ = ["CodeIndices", "CodeMapModel", "GatedPixelCNN", "PixelCNNPrior"]
