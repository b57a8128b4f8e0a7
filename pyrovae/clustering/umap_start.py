"""A clustering of a pretrained encoder's codes by UMAP and a Gaussian mixture (N2D), to start a
mixture prior from.

An EM fit straight to the codes (VaDE's start, :meth:`GaussianMixturePrior.fit_to`) matches
MNIST's digits only 65-78% of the time: in the 10-dimensional code space the digits are curved,
touching clouds, and a diagonal Gaussian per digit does not fit them. N2D (McConville et al.
2019, "N2D: (Not Too) Deep Clustering via Clustering the Local Manifold of an Autoencoded
Embedding") first embeds the codes with UMAP (McInnes et al. 2018), which keeps each point's
nearest neighbours close and pulls the manifolds apart, then fits the mixture there; the fit
with the highest likelihood is kept, so no label is looked at. The partition it finds sets the
prior in code space (:meth:`GaussianMixturePrior.fit_to_partition`), and training with the
prior goes on from there. Measured on full MNIST in benchmarks/clustering.py (``--init umap``).

UMAP comes from the ``umap-learn`` package: ``pip install "pyrovae[cluster]"``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pyrovae.priors.mixture_fit import fit_diagonal_gmm


def umap_embedding(codes: Tensor, dimensions: int, neighbours: int = 20, seed: int = 0) -> Tensor:
    """UMAP of the codes with N2D's settings (``min_dist=0``: clusters packed tight).

    Args:
        codes: ``(N, D)`` points, ``N > neighbours``.
        dimensions: size of the embedding.
        neighbours: UMAP's ``n_neighbors``, the size of the neighbourhood it keeps (N2D: 20).
        seed: UMAP's ``random_state`` (fixes the layout; UMAP then runs on one thread).

    Returns:
        ``(N, dimensions)`` float64 embedding on the CPU (UMAP computes in float32).
    """
    try:
        import umap
    except ImportError as error:
        raise ImportError("the UMAP start needs the umap-learn package; install it with "
                          "pip install \"pyrovae[cluster]\"") from error
    if codes.dim() != 2 or codes.shape[0] <= neighbours:
        raise ValueError(f"need (N, D) codes with N > neighbours = {neighbours}, got shape {tuple(codes.shape)}")
    points = codes.detach().cpu().float().numpy()
    reducer = umap.UMAP(n_neighbors=neighbours, n_components=dimensions, min_dist=0.0, random_state=seed,
                        n_jobs=1)  # a seeded UMAP runs on one thread anyway; saying so stops its warning
    return torch.from_numpy(reducer.fit_transform(points)).double()


def umap_partition(codes: Tensor, num_clusters: int, neighbours: int = 20, restarts: int = 10,
                   seed: int = 0) -> Tensor:
    """N2D's clustering: UMAP to ``num_clusters`` dimensions, then the diagonal Gaussian
    mixture with the highest likelihood over ``restarts`` k-means++ starts, each point given
    its most probable component.

    Args:
        codes: ``(N, D)`` encoder means.
        num_clusters: ``K``.
        neighbours: UMAP's neighbourhood size.
        restarts: EM starts; the likeliest fit wins (on MNIST the fits that merge two digits
            and split a third are clearly less likely, and in a scratch run one start in five
            found the digits, so keep this at ten or more).
        seed: fixes the UMAP layout and the EM starts.

    Returns:
        ``(N,)`` long labels in ``[0, K)``.
    """
    embedding = umap_embedding(codes, num_clusters, neighbours, seed)
    fit = fit_diagonal_gmm(embedding, num_clusters, iterations=300, restarts=restarts,
                           generator=torch.Generator().manual_seed(seed))
    return fit.most_probable(embedding).to(codes.device)


__all__ = ["umap_embedding", "umap_partition"]
