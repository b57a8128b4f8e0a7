"""Your own training loop over a Pyro VAE, with the ELBO traced once and compiled as one graph.

    python examples/traced_loss.py           # half a minute on 2 CPU cores, most of it compiling once
    python examples/traced_loss.py --smoke   # a few seconds, as the test suite runs it

``SVI`` runs the model and the guide in Python on every step. For a model whose structure
is the same every step, ``pyrovae.TracedLoss`` records the tensor operations of one step
(Pyro's ELBO of ``vae.model`` and ``vae.guide``) and compiles them into one forward and one
backward graph; later steps run that graph. The loss is Pyro's: the same value, gradient and
random draws (checked in tests/test_traced_loss.py). ``pyrovae.Trainer(compile=True)`` and
``pyrovae train --compile`` do this for you; this is the same in a loop you write yourself, with
a torch optimizer over ``vae.parameters()`` in place of Pyro's param store.
"""

import argparse
import time

import pyro
import torch

import pyrovae
from pyrovae.data import InMemoryBatches, load_dataset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    args = parser.parse_args()
    epochs, size = (2, 600) if args.smoke else (args.epochs, None)

    pyro.set_rng_seed(0)
    data = load_dataset("mnist-small")  # 10,000 training and 2,000 test digits, no network needed
    train, test = data.train_images[:size], data.test_images[:size]

    latent_dim = 20
    vae = pyrovae.VAE(
        encoder=pyrovae.DiagonalNormalEncoder(pyrovae.MLP((1, 28, 28), [400], 2 * latent_dim), latent_dim),
        likelihood=pyrovae.BernoulliLikelihood(pyrovae.MLP(latent_dim, [400], 784), (1, 28, 28)),
        prior=pyrovae.StandardNormalPrior(latent_dim),
    )
    vae.likelihood.init_output_bias(train)  # the decoder starts at the mean digit
    # The ELBO of vae.model and vae.guide as a module, per data point; then traced and compiled.
    elbo = pyrovae.ELBOLoss(vae, vae.model, vae.guide, pyrovae.SyncFreeTrace_ELBO())
    loss_fn = pyrovae.TracedLoss(elbo)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)

    with pyro.validation_enabled(False):  # the graph holds no checks; a validated step runs eagerly
        for epoch in range(1, epochs + 1):
            start, total = time.perf_counter(), torch.zeros(())
            for (x,) in InMemoryBatches(train, batch_size=128):
                optimizer.zero_grad()
                loss = loss_fn(x)
                loss.backward()
                optimizer.step()
                total += loss.detach() * x.shape[0]
            with torch.no_grad():
                test_elbo = -elbo(test).item()
            print(f"epoch {epoch}: train ELBO {-total.item() / len(train):.1f}, test ELBO {test_elbo:.1f} "
                  f"nats/image, {time.perf_counter() - start:.1f} s")
    print(f"steps ran as a traced graph: {loss_fn.refused is None} ({loss_fn.num_graphs} graphs)")


if __name__ == "__main__":
    main()
