"""A conv VAE on 8-bit colour images with a discretized logistic mixture likelihood, trained with
Pyro's own SVI loop; the test log-likelihood in bits/dim, and latent traversals.

    python examples/colour_images.py            # minutes on a CPU
    python examples/colour_images.py --smoke    # seconds, as the test suite runs it

The images are drawn here (no download): a square of one colour on a background of another,
32x32 pixels, 8 bits per channel, scaled to ``k / 255`` as pyrovae's loaders scale uint8 images.
Any ``(N, 3, H, W)`` uint8 array of 16 to 128 pixels a side works the same way.
"""

import argparse
import tempfile
from pathlib import Path

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO

import pyrovae
from pyrovae.data import InMemoryBatches
from pyrovae.infer.bits import bits_per_dim
from pyrovae.infer.evaluation import log_likelihood
from pyrovae.plots.report import save_vae_traversals


def squares(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """``n`` images ``(3, size, size)``: a square of a random colour, side and place on a plain
    background of another random colour; values ``k / 255``."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 1, 1), generator=g).expand(n, 3, size, size).clone()
    colours = torch.randint(0, 256, (n, 3), generator=g)
    sides = torch.randint(size // 4, size // 2, (n,), generator=g)
    for i in range(n):
        top, left = torch.randint(0, size - int(sides[i]), (2,), generator=g).tolist()
        images[i, :, top : top + sides[i], left : left + sides[i]] = colours[i].view(3, 1, 1)
    return images.float() / 255


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    parser.add_argument("--out", default=None,
                        help="traversals picture to write (default: colour_images_traversals.png; a temporary "
                             "folder with --smoke)")
    args = parser.parse_args()
    out = Path(args.out or (Path(tempfile.mkdtemp()) if args.smoke else Path()) / "colour_images_traversals.png")
    epochs, n, k = (1, 128, 10) if args.smoke else (args.epochs, 5000, 100)

    pyro.set_rng_seed(0)
    train, test = squares(n), squares(n // 4, seed=1)
    shape, latent_dim = (3, 32, 32), 8
    # The decoder gives every pixel a mixture of 5 logistics with the channels coupled (PixelCNN++),
    # so its output has output_shape(...) channels instead of the image's 3.
    out_shape = pyrovae.DiscretizedLogisticMixtureLikelihood.output_shape(shape, num_components=5, coupled=True)
    vae = pyrovae.VAE(
        encoder=pyrovae.DiagonalNormalEncoder(pyrovae.ConvEncoderNet(shape, 2 * latent_dim, channels=(32, 64)),
                                              latent_dim),
        likelihood=pyrovae.DiscretizedLogisticMixtureLikelihood(
            pyrovae.ConvDecoderNet(latent_dim, out_shape, channels=(32, 64)), shape, num_components=5, coupled=True),
        prior=pyrovae.StandardNormalPrior(latent_dim),
    )
    vae.likelihood.init_output_bias(train)  # each mixture starts spread over the data's intensities
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    for epoch in range(1, epochs + 1):
        total = sum(svi.step(x) for (x,) in InMemoryBatches(train, batch_size=64))
        print(f"epoch {epoch}: train ELBO {-total / len(train):.1f} nats/image")

    vae.eval()
    # The decoder gives 51 numbers per sub-pixel: a few particles per pass keep the memory small.
    nll = -log_likelihood(vae.model, vae.guide, test, num_samples=k, chunk_size=2, batch_size=50).mean().item()
    print(f"test NLL {nll:.1f} nats/image = {bits_per_dim(nll, shape):.3f} bits/dim (k={k} importance samples)")
    print("wrote", save_vae_traversals(vae, test, out))


if __name__ == "__main__":
    main()
