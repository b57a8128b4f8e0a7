"""Discrete codes: train a VQ-VAE in Pyro's own SVI loop, then a PixelCNN prior over its code maps,
and report the bound log p(x) >= log p(x | z_q(x)) + log p(z_q(x)) on test images.

    python examples/vq_vae.py                  # several minutes on 2 CPU cores
    python examples/vq_vae.py --smoke          # seconds, as the test suite runs it
"""

import argparse

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO

import pyrovae
from pyrovae.data import InMemoryBatches, load_dataset
from pyrovae.models.vq_builders import conv_vqvae
from pyrovae.priors.pixelcnn import CodeMapModel
from pyrovae.train.code_priors import code_maps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--prior-epochs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    args = parser.parse_args()
    epochs, prior_epochs, size = (1, 1, 256) if args.smoke else (args.epochs, args.prior_epochs, None)

    pyro.set_rng_seed(0)
    data = load_dataset("mnist-small")
    train, test = data.train_images[:size], data.test_images[: size or 2000]

    # 7x7 map of 16-dim codes, 256 of them; the prior is uniform until the PixelCNN is fitted.
    vq = conv_vqvae((1, 28, 28), pyrovae.BernoulliLikelihood, codebook_size=256, code_dim=16)
    svi = SVI(vq.model, vq.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    for epoch in range(1, epochs + 1):
        vq.encoder.quantizer.reset_usage()
        total = sum(svi.step(x) for (x,) in InMemoryBatches(train, batch_size=64, shuffle=True))
        usage = vq.encoder.quantizer.usage_figures()
        print(f"epoch {epoch}: loss {total / len(train):.1f} nats/image (-bound + commitment), "
              f"code perplexity {usage['perplexity']:.1f}, {usage['codes_used']:.0%} of codes used")

    vq.eval()  # from here on the guide adds no penalty and the codebook stays put
    uniform = vq.bound(test).mean().item()

    # Stage two: the codes of the frozen encoder are data for the PixelCNN prior.
    (codes,) = code_maps(vq, train)
    prior_model = CodeMapModel(vq.prior)
    prior_svi = SVI(prior_model.model, prior_model.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    for epoch in range(1, prior_epochs + 1):
        total = sum(prior_svi.step(c) for (c,) in InMemoryBatches(codes, batch_size=64, shuffle=True))
        print(f"prior epoch {epoch}: -log p(codes) {total / len(codes):.1f} nats/map")

    bound = vq.bound(test).mean().item()
    print(f"test bound log p(x) >= {bound:.1f} nats/image with the PixelCNN prior "
          f"({uniform:.1f} with the uniform prior)")
    with torch.no_grad():
        samples = vq.sample(4)
    print(f"decoded {samples.shape[0]} samples of shape {tuple(samples.shape[1:])} from the PixelCNN prior")


if __name__ == "__main__":
    main()
