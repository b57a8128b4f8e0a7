"""A conv VAE on your own folder of images, trained with Pyro's own SVI loop; pictures out.

    python examples/own_images.py --folder ~/photos --image-size 64   # any PNG/JPEG folder
    python examples/own_images.py                   # no folder: writes 2,000 coloured shapes first
    python examples/own_images.py --smoke           # a few seconds, as the test suite runs it

The folder may hold the images directly or in class subfolders (``cats/``, ``dogs/``), as
torchvision's ``ImageFolder`` reads them. ``--image-size N`` resizes every image's shorter side
to N and centre-crops it to NxN, so photos of mixed sizes can be used. A folder small enough
for memory is decoded once; a larger one streams through a ``DataLoader`` with workers, batch by
batch (``pyrovae.data.sources``), and the loop below reads both the same way.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyro
import torch
from PIL import Image
from pyro.infer import SVI, Trace_ELBO
from torchvision.utils import save_image

import pyrovae
from pyrovae.data import InMemoryBatches
from pyrovae.data.shapes import colour_shapes
from pyrovae.data.sources import StreamedData, open_data
from pyrovae.data.streaming import StreamingImages


def write_demo_folder(folder: Path, count: int) -> Path:
    """``count`` random 64x64 colour shapes as PNGs, one subfolder per shape, as a user's folder would be."""
    shapes = colour_shapes()
    indices = np.random.default_rng(0).choice(len(shapes), count, replace=False)
    names = ("square", "ellipse", "heart")
    for index, image, codes in zip(indices, shapes.images(indices), shapes.factor_codes(indices)):
        (folder / names[codes[0]]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / names[codes[0]] / f"{index}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", type=Path, help="folder of PNG/JPEG images (default: write a demo folder)")
    parser.add_argument("--image-size", type=int, default=None, help="resize and centre-crop to NxN")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the pictures (default: own_images_out, or a scratch folder with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    args = parser.parse_args()
    epochs = 1 if args.smoke else args.epochs

    pyro.set_rng_seed(0)
    scratch = tempfile.TemporaryDirectory()
    out = args.out or (Path(scratch.name) / "out" if args.smoke else Path("own_images_out"))
    folder = args.folder or write_demo_folder(Path(scratch.name) / "shapes", 64 if args.smoke else 2000)
    data = open_data(str(folder), image_size=args.image_size)  # 10% of the images held out for testing
    shape = tuple(data.image_shape)
    print(f"{folder}: images of shape {shape}, "
          + ("streamed from disk" if isinstance(data, StreamedData) else "held in memory"))

    latent_dim = 32
    channels = (16, 32) if args.smoke else (32, 64, 128)
    vae = pyrovae.VAE(
        encoder=pyrovae.DiagonalNormalEncoder(pyrovae.ConvEncoderNet(shape, 2 * latent_dim, channels), latent_dim),
        likelihood=pyrovae.ContinuousBernoulliLikelihood(pyrovae.ConvDecoderNet(latent_dim, shape, channels), shape),
        prior=pyrovae.StandardNormalPrior(latent_dim),
    )
    if isinstance(data, StreamedData):
        batches = StreamingImages(data.train).batches(batch_size=64)
    else:
        batches = InMemoryBatches(data.train_images, batch_size=64)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())

    test = data.test_images[:256]
    for epoch in range(1, epochs + 1):
        total = sum(svi.step(x) for (x,) in batches)
        print(f"epoch {epoch}: train ELBO {-total / batches.num_examples:.1f}, "
              f"test ELBO {-svi.evaluate_loss(test) / len(test):.1f} nats/image")

    out.mkdir(parents=True, exist_ok=True)
    vae.eval()
    with torch.no_grad():
        inputs = test[:8]
        save_image(torch.cat([inputs, vae.reconstruct(inputs).clamp(0, 1)]), out / "reconstructions.png", nrow=8)
        save_image(vae.sample(64).clamp(0, 1), out / "samples.png", nrow=8)
    print(f"wrote {out / 'reconstructions.png'} (inputs above their reconstructions) and {out / 'samples.png'}")
    scratch.cleanup()


if __name__ == "__main__":
    main()
