"""Small datasets shipped inside ember, so the examples run on a machine with no network.

``load_digits()``: the 8x8 handwritten digits used by ``ember train digits``.

Source: "Optical Recognition of Handwritten Digits", E. Alpaydin and C. Kaynak (1998),
UCI Machine Learning Repository,
https://archive.ics.uci.edu/ml/datasets/Optical+Recognition+of+Handwritten+Digits -- licensed
under Creative Commons Attribution 4.0 International (CC BY 4.0). The 1,797 images are the copy
scikit-learn ships as ``sklearn.datasets.load_digits`` (the UCI test set, 43 writers'
32x32 bitmaps reduced to 8x8 blocks counting on-pixels, so each pixel is an integer 0..16),
extracted once and stored unchanged in ``digits.npz`` (``images`` uint8 (1797, 8, 8),
``labels`` uint8 (1797,)). Changes: none besides the storage format.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["load_digits", "digits_split"]

_DIGITS = os.path.join(os.path.dirname(__file__), "digits.npz")
# the held-out split is part of the dataset's definition, not of a run: every run and every
# `ember eval` scores the same 359 images, whatever --seed training used
_SPLIT_SEED = 0
_TEST_FRACTION = 0.2


def load_digits(split: str = "all"):
    """The 8x8 digits as NumPy arrays ``(images uint8 (N, 8, 8) in 0..16, labels int64 (N,))``.

    ``split`` is ``"all"`` (1,797 images), ``"train"`` (1,438) or ``"test"`` (359): a fixed
    stratified 80/20 split (20% of each digit held out, chosen by a seeded permutation).
    """
    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test', got {split!r}")
    with np.load(_DIGITS) as f:
        images, labels = f["images"], f["labels"].astype(np.int64)
    if split != "all":
        train, test = digits_split(labels)
        idx = train if split == "train" else test
        images, labels = images[idx], labels[idx]
    return images, labels


def digits_split(labels):
    """Indices ``(train, test)`` of the fixed stratified split of ``labels`` (both sorted)."""
    rng = np.random.default_rng(_SPLIT_SEED)
    test = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:int(round(_TEST_FRACTION * len(idx)))])
    test = np.sort(np.concatenate(test))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test
