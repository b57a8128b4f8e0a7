"""How good a start for the mixture prior each way of clustering a pretrained autoencoder's codes
is: test accuracy (Hungarian-matched) of EM fits with single restarts, of k-means, and of k-means
on length-normalized codes, all from the networks that ``clustering.py --save-pretrained`` wrote.

    PYTHONPATH=$PWD python benchmarks/clustering_starts.py benchmarks/out/vade_ae_40ep.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy.cluster.vq import kmeans2

from pyrovae.clustering.accuracy import cluster_accuracy
from pyrovae.data import load_dataset
from pyrovae.priors import GaussianMixturePrior

from clustering import vade_encoder  # benchmarks/ is the script's directory, so on sys.path


def nearest_centre(z: np.ndarray, centres: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(((z[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("networks", help="file written by clustering.py --save-pretrained")
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--hidden", type=int, nargs="+", default=[500, 500, 2000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))  # ../shared/data beside the checkout
    args = parser.parse_args()
    torch.set_num_threads(1)

    data = load_dataset("mnist", args.data_root, download=False)
    d = args.latent_dim
    encoder = vade_encoder(d, tuple(args.hidden)).eval()
    state = torch.load(args.networks, weights_only=True)
    encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")})
    with torch.no_grad():
        train = torch.cat([encoder.loc_scale(data.train_images[i : i + 5000])[0] for i in range(0, 60000, 5000)])
        test = torch.cat([encoder.loc_scale(data.test_images[i : i + 5000])[0] for i in range(0, 10000, 5000)])
    labels = data.test_labels
    for seed in range(args.seeds):
        prior = GaussianMixturePrior(d, 10)
        fit = prior.fit_to(train, restarts=1, generator=torch.Generator().manual_seed(seed))
        accuracy = cluster_accuracy(prior.cluster(test), labels)
        print(f"EM, one restart, seed {seed}: mean log-density {fit.mean_log_likelihood:.3f}, "
              f"test accuracy {accuracy:.4f}")
    ways = [("k-means", lambda z: z), ("k-means, normalized codes", lambda z: z / z.norm(dim=1, keepdim=True))]
    for name, transform in ways:
        z_train, z_test = transform(train).double().numpy(), transform(test).double().numpy()
        for seed in range(args.seeds):
            centres, _ = kmeans2(z_train, 10, minit="++", seed=seed)
            print(f"{name}, seed {seed}: test accuracy {cluster_accuracy(nearest_centre(z_test, centres), labels):.4f}")


if __name__ == "__main__":
    main()
