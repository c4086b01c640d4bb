"""autoencoder: an MLP autoencoder with a 2-D bottleneck on the digits, used as an anomaly detector.

Topic 23 (autoencoders). The encoder squeezes each 8x8 digit (64 pixels) through 128 and 32
units to a 2-D code z; the decoder maps z back to 64 pixels in [0, 1] (a sigmoid). Training
minimises the mean squared reconstruction error with Adam. With only two numbers per image
the code can be drawn: digits of one class gather in one region without the net ever seeing
a label. Decoding points on the line between two codes interpolates between the digits.
An image unlike the training data reconstructs badly, so its reconstruction error is an
anomaly score: the recipe scores the held-out digits against two kinds of anomaly made from
them, their pixels shuffled (no strokes) and two digits blended (strokes, but no digit), and
reports the ROC AUC of each.

Run: ``ember train autoencoder`` or ``python ember/recipes/autoencoder.py`` (``--smoke`` for a
few batches). The only framework line is ``import ember as torch``: swap it for ``import torch``
and the file runs on PyTorch. Data: ``ember.datasets.load_digits`` (NumPy arrays; UCI optical
digits, CC BY 4.0), its fixed 1,438/359 train/test split. Writes ``last.pt`` (state dicts, in
PyTorch's format), ``curves.png``, ``reconstructions.png``, ``latent.png``,
``interpolation.png`` and ``anomaly.png`` to ``--out``; the last line printed is
``final test_mse <mean squared error per pixel>``.
"""
import os
import sys
import time

import numpy as np

import ember as torch
from ember.datasets import load_digits  # NumPy arrays, the same under PyTorch
from ember.recipes._common import pyplot, recipe_args, save_figure  # plain Python, no ember

nn = torch.nn
F = torch.nn.functional

NAME = "autoencoder"
DEFAULTS = dict(epochs=100, lr=2e-3, batch_size=64)
LATENT = 2
SMOKE_BATCHES = 3


def parse_args(argv=None, prog=None):
    """The recipe's flags, validated before any work starts (argparse exits 2 on error)."""
    return recipe_args(argv, prog, __doc__, NAME, DEFAULTS)


class AutoEncoder(nn.Module):
    """x -> z = encoder(x) (2-D) -> x_hat = sigmoid(decoder(z))."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32),
                                     nn.ReLU(), nn.Linear(32, LATENT))
        self.decoder = nn.Sequential(nn.Linear(LATENT, 32), nn.ReLU(), nn.Linear(32, 128),
                                     nn.ReLU(), nn.Linear(128, 64), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


def per_image_error(model, x):
    """The anomaly score: each image's mean squared reconstruction error."""
    with torch.no_grad():
        return ((model(x) - x) ** 2).mean(dim=1)


def roc_auc(normal, anomalous):
    """P(score of a random anomaly > score of a random normal image), ties counting half."""
    normal, anomalous = np.asarray(normal), np.asarray(anomalous)
    greater = (anomalous[:, None] > normal[None, :]).mean()
    ties = (anomalous[:, None] == normal[None, :]).mean()
    return float(greater + 0.5 * ties)


def save_figures(out, plt, history, x, x_hat, z, labels, interp, scores):
    """curves, reconstructions, the 2-D latent space, an interpolation, anomaly scores."""
    ep = range(1, len(history["loss"]) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ep, history["loss"], label="train")
    ax.plot(ep, history["test_loss"], label="test")
    ax.set(xlabel="epoch", ylabel="MSE per pixel", title=NAME, yscale="log")
    ax.legend()
    save_figure(fig, os.path.join(out, "curves.png"))

    fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
    for i in range(10):
        axes[0, i].imshow(x[i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        axes[1, i].imshow(x_hat[i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("test digits (top) and their reconstructions from 2 numbers (bottom)")
    save_figure(fig, os.path.join(out, "reconstructions.png"), dpi=90, tight=False)

    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=12)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit (never seen in training)")
    ax.set(xlabel="z1", ylabel="z2", title="test digits in the 2-D code space")
    save_figure(fig, os.path.join(out, "latent.png"))

    fig, axes = plt.subplots(1, len(interp), figsize=(len(interp), 1.4))
    for ax, img in zip(axes, interp):
        ax.imshow(img.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
    fig.suptitle("decoding the line between two codes")
    save_figure(fig, os.path.join(out, "interpolation.png"), dpi=90, tight=False)

    normal, anomalies = scores
    fig, ax = plt.subplots(figsize=(6, 3.8))
    bins = np.linspace(0, max(v.max() for v in [normal, *anomalies.values()]), 50)
    ax.hist(normal, bins, alpha=0.6, label="test digits")
    for kind, anomalous in anomalies.items():
        ax.hist(anomalous, bins, alpha=0.5,
                label=f"{kind} (ROC AUC {roc_auc(normal, anomalous):.3f})")
    ax.set(xlabel="reconstruction error", ylabel="images",
           title="anomaly scores")
    ax.legend()
    save_figure(fig, os.path.join(out, "anomaly.png"))


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_train, _ = load_digits("train")
    x_test, y_test = load_digits("test")
    x_train = torch.tensor(x_train.reshape(-1, 64) / 16.0, dtype=torch.float32)
    x_test = torch.tensor(x_test.reshape(-1, 64) / 16.0, dtype=torch.float32)

    model = AutoEncoder()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    epochs = 1 if args.smoke else args.epochs
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{NAME}: {n_params:,} parameters, {len(x_train)} train / {len(x_test)} test images, "
          f"{epochs} epochs")
    history = {"loss": [], "test_loss": []}
    start = time.time()
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        model.train()
        order = torch.tensor(rng.permutation(len(x_train)))
        total, seen = 0.0, 0
        for i, lo in enumerate(range(0, len(order), args.batch_size)):
            if args.smoke and i == SMOKE_BATCHES:
                break
            x = x_train[order[lo:lo + args.batch_size]]
            loss = F.mse_loss(model(x), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
            seen += len(x)
        model.eval()
        with torch.no_grad():
            test_loss = F.mse_loss(model(x_test), x_test).item()
        history["loss"].append(total / seen)
        history["test_loss"].append(test_loss)
        if epoch == 1 or epoch % 10 == 0 or epoch == epochs:
            print(f"epoch {epoch:3d}/{epochs}  loss {total / seen:.5f}  test loss "
                  f"{test_loss:.5f}  {time.time() - t0:.2f}s", flush=True)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                    "args": vars(args)}, os.path.join(args.out, "last.pt"))

    # anomalies: each test digit with its 64 pixels in a random order (no strokes at all),
    # and each test digit blended half and half with the next one (strokes, but no digit)
    perm = torch.tensor(np.argsort(rng.random((len(x_test), 64)), axis=1))
    anomalies = {"pixels shuffled": torch.gather(x_test, 1, perm),
                 "two digits blended": 0.5 * (x_test + x_test.roll(1, dims=0))}
    normal = per_image_error(model, x_test).numpy()
    anomalies = {k: per_image_error(model, v).numpy() for k, v in anomalies.items()}
    aucs = {k: roc_auc(normal, v) for k, v in anomalies.items()}
    print(f"anomaly detection: mean error {normal.mean():.4f} on test digits; "
          + "; ".join(f"{k}: {anomalies[k].mean():.4f}, ROC AUC {aucs[k]:.3f}" for k in aucs))
    plt = pyplot()
    if plt is not None:
        with torch.no_grad():
            z = model.encoder(x_test)
            # the codes of the first test "0" and the first test "1"
            a, b = z[int(np.flatnonzero(y_test == 0)[0])], z[int(np.flatnonzero(y_test == 1)[0])]
            t = torch.linspace(0, 1, 10)[:, None]
            interp = model.decoder((1 - t) * a + t * b)
            save_figures(args.out, plt, history, x_test.numpy(), model(x_test).numpy(),
                         z.numpy(), y_test, interp.numpy(), (normal, anomalies))
    print(f"saved {args.out}/last.pt, curves.png, reconstructions.png, latent.png, "
          f"interpolation.png, anomaly.png; {time.time() - start:.1f}s")
    print(f"final test_mse {history['test_loss'][-1]:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
