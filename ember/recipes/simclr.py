"""simclr: contrastive self-supervised learning (SimCLR's NT-Xent) on augmented digits.

Topic 37 (self-supervised / contrastive learning; Chen et al., 2020). Each image in a batch
of N is augmented twice (a random rotation, scale and shift by ``affine_grid`` +
``grid_sample``, then random contrast and pixel noise); a small CNN encoder f and a projection
head g map the 2N views to unit vectors z, and NT-Xent pulls each view's partner closer than
the other 2N - 2 views:

    l(i, j) = -log exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau)

with sim the cosine similarity and tau = 0.5, averaged over all 2N views (a cross-entropy
over each row of the similarity matrix with its diagonal masked out). No label is used.
The encoder's features are then judged by a linear probe: a softmax regression trained on
the frozen features of the training images, scored on the test images, against the same
probe on a random (untrained) encoder of the same shape and on the raw pixels. The last line
is ``final probe_acc <value>``.

Run: ``ember train simclr`` or ``python ember/recipes/simclr.py`` (``--smoke`` for a few
batches). The only framework line is ``import ember as torch``: swap it for ``import torch`` and
the file runs on PyTorch. Data: ``ember.datasets.load_digits`` (labels only for the probe).
Writes ``last.pt`` (encoder as ``model``, head and optimizer state dicts, PyTorch's format),
``curves.png`` (loss, positive-pair accuracy, probe accuracy) and ``augment.png`` (images
and their two views) to ``--out``.
"""
import math
import os
import sys
import time

import ember as torch
from ember.datasets import load_digits  # NumPy arrays, the same under PyTorch
from ember.recipes._common import pyplot, recipe_args, save_figure  # plain Python, no ember

nn = torch.nn
F = torch.nn.functional

NAME = "simclr"
DEFAULTS = dict(epochs=30, lr=2e-3, batch_size=128)
SMOKE_BATCHES = 3
TAU = 0.5


def _check_batch(p, args):
    """A batch of one image has no negatives: the loss would be 0."""
    if args.batch_size < 2:
        p.error("--batch-size must be at least 2 for NT-Xent's negatives, got 1")


def parse_args(argv=None, prog=None):
    """The recipe's flags, validated before any work starts (argparse exits 2 on error)."""
    return recipe_args(argv, prog, __doc__, NAME, DEFAULTS, check=_check_batch)


def encoder_net():
    """f: image (N, 1, 8, 8) -> 64 features (conv stages, then global average pooling)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),  # -> 4x4
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())


def head_net():
    """g: features -> the 32-d space where NT-Xent is computed (discarded after training)."""
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))


def augment(x):
    """A random view of each image: rotation +-20 deg, scale 0.85-1.15, shift +-1 pixel,
    contrast 0.6-1.4, Gaussian pixel noise (sd 0.1)."""
    n = len(x)
    angle = (torch.rand(n) * 2 - 1) * math.pi / 9
    scale = 0.85 + 0.3 * torch.rand(n)
    shift = (torch.rand(n, 2) * 2 - 1) * 0.25  # 0.25 in grid units is one pixel of eight
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    v = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    v = v * (0.6 + 0.8 * torch.rand(n, 1, 1, 1))
    return v + 0.1 * torch.randn_like(v)


def nt_xent(z1, z2, tau=TAU):
    """NT-Xent over the 2N views; also the share of views whose nearest view is the partner."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = z @ z.T / tau
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))  # not yourself
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, partner), (sim.argmax(1) == partner).float().mean().item()


def features(encoder, x):
    encoder.eval()
    with torch.no_grad():
        return encoder(x)


def linear_probe(f_train, y_train, f_test, y_test, steps=300):
    """Test accuracy of softmax regression on standardised frozen features (full-batch Adam)."""
    mu, sd = f_train.mean(0), f_train.std(0) + 1e-6
    f_train, f_test = (f_train - mu) / sd, (f_test - mu) / sd
    probe = nn.Linear(f_train.shape[1], 10)
    opt = torch.optim.Adam(probe.parameters(), lr=0.02, weight_decay=1e-4)
    for _ in range(steps):
        loss = F.cross_entropy(probe(f_train), y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (probe(f_test).argmax(1) == y_test).float().mean().item()


def save_curves(path, history, random_acc, pixel_acc):
    """NT-Xent loss, positive-pair accuracy and linear-probe accuracy per epoch."""
    import matplotlib.pyplot as plt
    ep = range(1, len(history["loss"]) + 1)
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.5))
    a.plot(ep, history["loss"])
    a.set(xlabel="epoch", ylabel="NT-Xent", title="contrastive loss")
    b.plot(ep, history["pair_acc"])
    b.set(xlabel="epoch", ylabel="share", title="partner is the most similar view")
    c.plot(ep, history["probe_acc"], label="SimCLR encoder")
    c.axhline(random_acc, ls="--", c="gray", label="random encoder")
    c.axhline(pixel_acc, ls=":", c="k", label="raw pixels")
    c.set(xlabel="epoch", ylabel="test accuracy", title="linear probe")
    c.legend()
    save_figure(fig, path)


def save_augment(path, x):
    """Six images (top) and two random views of each (below)."""
    import matplotlib.pyplot as plt
    rows = [x, augment(x), augment(x)]
    fig, axes = plt.subplots(3, len(x), figsize=(1.3 * len(x), 4.2))
    for r, (imgs, name) in enumerate(zip(rows, ("image", "view 1", "view 2"))):
        for c, img in enumerate(imgs.numpy()):
            axes[r, c].imshow(img[0], cmap="gray_r")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name)
    fig.suptitle("augmentations: each pair of views is a positive pair")
    save_figure(fig, path, dpi=80, tight=False)


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    plots = pyplot() is not None
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    x_train = torch.tensor(x_train[:, None] / 16.0, dtype=torch.float32)
    x_test = torch.tensor(x_test[:, None] / 16.0, dtype=torch.float32)
    y_train, y_test = torch.tensor(y_train), torch.tensor(y_test)
    probe_steps = 20 if args.smoke else 300

    encoder, head = encoder_net(), head_net()
    # the baselines: the same encoder before any training, and the 64 raw pixels
    random_acc = linear_probe(features(encoder, x_train), y_train, features(encoder, x_test),
                              y_test, probe_steps)
    pixel_acc = linear_probe(x_train.flatten(1), y_train, x_test.flatten(1), y_test,
                             probe_steps)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=args.lr, weight_decay=1e-5)
    epochs = 1 if args.smoke else args.epochs
    steps = len(x_train) // args.batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * max(steps, 1))
    print(f"{NAME}: encoder {sum(p.numel() for p in encoder.parameters()):,} + head "
          f"{sum(p.numel() for p in head.parameters()):,} parameters, {len(x_train)} unlabelled "
          f"images, {epochs} epochs; linear probe on a random encoder {random_acc:.2%}, "
          f"on raw pixels {pixel_acc:.2%}")
    history = {"loss": [], "pair_acc": [], "probe_acc": []}
    start = time.time()
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        encoder.train()
        head.train()
        order = torch.randperm(len(x_train))
        total, pair, n = 0.0, 0.0, 0
        # drop the last partial batch: a batch of 1 would have no negatives
        for i, lo in enumerate(range(0, len(order) - args.batch_size + 1, args.batch_size)):
            if args.smoke and i == SMOKE_BATCHES:
                break
            x = x_train[order[lo:lo + args.batch_size]]
            loss, acc = nt_xent(head(encoder(augment(x))), head(encoder(augment(x))))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            pair += acc
            n += 1
        probe_acc = linear_probe(features(encoder, x_train), y_train, features(encoder, x_test),
                                 y_test, probe_steps)
        history["loss"].append(total / n)
        history["pair_acc"].append(pair / n)
        history["probe_acc"].append(probe_acc)
        print(f"epoch {epoch:3d}/{epochs}  NT-Xent {total / n:.4f}  positive pair found "
              f"{pair / n:7.2%}  linear probe {probe_acc:7.2%}  {time.time() - t0:.1f}s",
              flush=True)
        torch.save({"model": encoder.state_dict(), "head": head.state_dict(),
                    "optimizer": opt.state_dict(), "epoch": epoch, "args": vars(args)},
                   os.path.join(args.out, "last.pt"))
    print(f"linear probe test accuracy: SimCLR encoder {history['probe_acc'][-1]:.2%}, "
          f"random encoder {random_acc:.2%}, raw pixels {pixel_acc:.2%}")
    if plots:
        save_curves(os.path.join(args.out, "curves.png"), history, random_acc, pixel_acc)
        save_augment(os.path.join(args.out, "augment.png"), x_test[:6])
    print(f"saved {args.out}/last.pt, curves.png, augment.png; {time.time() - start:.1f}s")
    print(f"final probe_acc {history['probe_acc'][-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
