"""Labelled/unlabelled splits and mixed batches; quadrant masks for the CVAE task."""

import pytest
import torch

from pyrovae.data.quadrants import HIDDEN, fill_hidden, hidden_pixels, hide_quadrants, visible_mask
from pyrovae.data.semisupervised import MixedBatches, split_labelled


def toy(n=400, k=4):
    labels = torch.arange(k).repeat(n // k)
    images = torch.arange(n, dtype=torch.float32)[:, None].expand(n, 3).clone()  # row id as pixel
    return images, labels


def test_split_is_balanced_disjoint_complete_and_seeded():
    images, labels = toy()
    split = split_labelled(images, labels, num_labelled=20, num_validation=100, seed=1)
    assert torch.bincount(split.labelled_labels, minlength=4).tolist() == [5, 5, 5, 5]
    ids = [part[:, 0].long() for part in (split.labelled_images, split.unlabelled_images,
                                          split.validation_images)]
    everything = torch.cat(ids)
    assert everything.unique().numel() == everything.numel() == 400
    assert torch.equal(labels[ids[0]], split.labelled_labels)
    assert torch.equal(labels[ids[2]], split.validation_labels)
    again = split_labelled(images, labels, num_labelled=20, num_validation=100, seed=1)
    other = split_labelled(images, labels, num_labelled=20, num_validation=100, seed=2)
    assert torch.equal(again.labelled_images, split.labelled_images)
    assert not torch.equal(other.labelled_images, split.labelled_images)


def test_split_refuses_unbalanced_or_impossible_counts():
    images, labels = toy()
    with pytest.raises(ValueError, match="multiple of 4"):
        split_labelled(images, labels, num_labelled=10)
    with pytest.raises(ValueError, match="fewer"):
        split_labelled(images, labels, num_labelled=100, num_validation=300)


def test_mixed_batches_pair_every_unlabelled_batch_with_a_labelled_one():
    images, labels = toy()
    split = split_labelled(images, labels, num_labelled=8, num_validation=0, seed=0)
    batches = MixedBatches(split, batch_size=50, labelled_batch_size=100)
    items = list(batches)
    assert len(items) == len(batches) == 8  # 392 unlabelled images
    for x_l, y_l, x_u in items:
        assert x_l.shape == (8, 3) and y_l.shape == (8,) and x_u.shape[1] == 3
    seen = torch.cat([x_u[:, 0] for _, _, x_u in items])
    assert torch.equal(seen.sort().values, split.unlabelled_images[:, 0].sort().values)


@pytest.mark.parametrize("num_visible", [1, 2, 3])
def test_quadrant_masks(num_visible):
    mask = visible_mask((1, 28, 28), num_visible)
    assert int(mask.sum()) == num_visible * 196
    assert bool(mask[0, 27, 0])  # bottom left is always visible
    images = torch.rand(2, 1, 28, 28)
    context = hide_quadrants(images, num_visible)
    assert torch.equal(hidden_pixels(context)[0], ~mask)
    assert torch.equal(context[:, mask], images[:, mask])
    assert bool((context[:, ~mask] == HIDDEN).all())
    assert torch.equal(fill_hidden(context, images), images)


def test_quadrant_count_is_checked():
    with pytest.raises(ValueError, match="1, 2 or 3"):
        visible_mask((1, 28, 28), 4)
