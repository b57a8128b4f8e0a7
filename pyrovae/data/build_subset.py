"""Build the class-balanced MNIST subset that ships with pyrovae as ``mnist_small.npz``.

Run from the repository root::

    python -m pyrovae.data.build_subset --root ../shared/data --out pyrovae/data/mnist_small.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Pick ``per_class`` indices of every class without replacement.

    Args:
        labels: Integer class labels, shape ``(N,)``.
        per_class: How many examples to draw from each class.
        rng: Source of randomness, so the subset is reproducible.

    Returns:
        Indices into ``labels``, shape ``(num_classes * per_class,)``, sorted in
        increasing order so the subset keeps the original file order.

    Raises:
        ValueError: If a class has fewer than ``per_class`` examples.
    """
    chosen = []
    for label in np.unique(labels):
        candidates = np.flatnonzero(labels == label)
        if candidates.size < per_class:
            raise ValueError(
                f"class {label} has only {candidates.size} examples, fewer than {per_class} requested"
            )
        chosen.append(rng.choice(candidates, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def build_subset(
    root: str | Path,
    out: str | Path,
    train_per_class: int = 1000,
    test_per_class: int = 200,
    seed: int = 0,
) -> Path:
    """Read full MNIST through torchvision and write a balanced subset as a compressed npz.

    The file holds ``train_images`` ``(10 * train_per_class, 28, 28)`` uint8,
    ``train_labels`` ``(10 * train_per_class,)`` uint8, and ``test_images`` /
    ``test_labels`` likewise with ``test_per_class``.

    Args:
        root: Folder holding ``MNIST/raw`` in torchvision's layout.
        out: Path of the ``.npz`` file to write; parent folders are created.
        train_per_class: Training digits kept per class.
        test_per_class: Test digits kept per class.
        seed: Seed of the NumPy generator that picks the subset.

    Returns:
        The path written.
    """
    from torchvision.datasets import MNIST

    rng = np.random.default_rng(seed)
    arrays = {}
    for split, train, per_class in (("train", True, train_per_class), ("test", False, test_per_class)):
        dataset = MNIST(root=str(root), train=train, download=False)
        images = dataset.data.numpy().astype(np.uint8)
        labels = dataset.targets.numpy().astype(np.uint8)
        keep = balanced_indices(labels, per_class, rng)
        arrays[f"{split}_images"] = images[keep]
        arrays[f"{split}_labels"] = labels[keep]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder holding MNIST/raw")
    parser.add_argument("--out", default="pyrovae/data/mnist_small.npz", help="npz file to write")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = build_subset(args.root, args.out, args.train_per_class, args.test_per_class, args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
